//! The `cluster` module (docs/reference/pipeline-and-storage.md §2, §4): which nodes of an OAP
//! cluster take metrics to aggregate (L2). Mixed and Aggregator nodes register their internal
//! address with the coordinator; every node follows the sorted list of registered nodes, which
//! routing hashes over, and whose first node runs the data keeper.
//!
//! Providers:
//! - `standalone` (default): one node, which is the whole cluster;
//! - `etcd` (`SW_CLUSTER=etcd`): nodes register under a lease and read the list every few
//!   seconds, through etcd's v3 JSON gateway (no gRPC client, so no `protoc` at build).
//!
//! - [`membership`]: the node list other modules look up;
//! - [`standalone`], [`etcd`]: the providers; [`etcd_client`]: the calls made to etcd.

pub mod etcd;
pub mod etcd_client;
pub mod membership;
pub mod standalone;

use std::sync::Arc;

use oap_kernel::{ModuleDefinition, ServiceDecl};

pub use self::etcd::{EtcdConfig, EtcdProviderFactory};
pub use self::membership::{Membership, RemoteNode};
pub use self::standalone::StandaloneProviderFactory;

/// The module's name in `application.yml`.
pub const MODULE_NAME: &str = "cluster";

/// The node list, as other modules look it up.
pub type MembershipRef = Arc<Membership>;

/// The module's definition: it offers a [`MembershipRef`].
pub fn module_definition() -> ModuleDefinition {
    ModuleDefinition::new(MODULE_NAME, vec![ServiceDecl::of::<MembershipRef>()])
}
