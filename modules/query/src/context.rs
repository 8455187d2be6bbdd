//! What every resolver reads: the store, the stream catalog (which metric is stored how), the
//! core settings and the time zone.

use std::sync::Arc;

use oap_cluster::MembershipRef;

use oap_core::{CoreConfigRef, TimeBuckets};
use oap_oal::Catalog;
use oap_storage::StorageRef;

/// The query side's view of the node, shared by every request.
#[derive(Clone)]
pub struct QueryContext {
    /// The store and its DAOs.
    pub storage: StorageRef,
    /// The streams and their models, as the write path compiled them.
    pub catalog: Arc<Catalog>,
    /// The core settings (TTLs, ports).
    pub core: CoreConfigRef,
    /// The zone of every bucket and of the UI's duration strings.
    pub buckets: TimeBuckets,
    /// The cluster's aggregating nodes.
    pub membership: MembershipRef,
}
