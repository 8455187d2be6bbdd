//! Provider `cluster.etcd` (`SW_CLUSTER=etcd`): a Mixed or Aggregator node puts its internal
//! address under `<namespace>/<serviceName>/<host>_<port>` with a lease it keeps alive, and
//! every node reads the prefix every `pollPeriod` seconds. A node that stops revokes its
//! lease; one that dies drops out when the lease expires (`leaseTtl` seconds). A node whose
//! address would be `0.0.0.0` refuses to start: no other node could reach it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oap_core::{CoreConfigRef, GrpcServerRef};
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::etcd_client::EtcdClient;
use crate::membership::{RemoteNode, arrange};
use crate::{MODULE_NAME, Membership, MembershipRef};

/// How long the provider waits at start for etcd to answer.
const CONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// `cluster.etcd`, with SkyWalking's names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EtcdConfig {
    /// `endpoints` (`SW_CLUSTER_ETCD_ENDPOINTS`): `host:port` list, comma-separated.
    pub endpoints: String,
    /// `namespace` (`SW_CLUSTER_ETCD_NAMESPACE`): the key prefix.
    pub namespace: String,
    /// `serviceName` (`SW_CLUSTER_ETCD_SERVICE_NAME`).
    pub service_name: String,
    /// `authentication` (`SW_CLUSTER_ETCD_AUTHENTICATION`): log in with `user` and `password`.
    pub authentication: bool,
    /// `user` (`SW_CLUSTER_ETCD_USER`).
    pub user: String,
    /// `password` (`SW_CLUSTER_ETCD_PASSWORD`).
    pub password: String,
    /// `internalComHost` (`SW_CLUSTER_INTERNAL_COM_HOST`): the host other nodes reach this one
    /// at; empty means `core.gRPCHost`.
    pub internal_com_host: String,
    /// `internalComPort` (`SW_CLUSTER_INTERNAL_COM_PORT`): its port; -1 means `core.gRPCPort`.
    pub internal_com_port: i32,
    /// `leaseTtl` (`SW_CLUSTER_ETCD_LEASE_TTL`, ours): seconds a dead node stays listed.
    pub lease_ttl: u64,
    /// `pollPeriod` (`SW_CLUSTER_ETCD_POLL_PERIOD`, ours): seconds between reads of the list.
    pub poll_period: u64,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: "localhost:2379".to_owned(),
            namespace: "/skywalking".to_owned(),
            service_name: "SkyWalking_OAP_Cluster".to_owned(),
            authentication: false,
            user: String::new(),
            password: String::new(),
            internal_com_host: String::new(),
            internal_com_port: -1,
            lease_ttl: 30,
            poll_period: 3,
        }
    }
}

fn is_any_address(host: &str) -> bool {
    matches!(host.trim(), "" | "0.0.0.0" | "::" | "[::]")
}

impl EtcdConfig {
    fn validate(&self) -> Result<Vec<String>, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let endpoints: Vec<String> = self
            .endpoints
            .split(',')
            .map(str::trim)
            .filter(|endpoint| !endpoint.is_empty())
            .map(str::to_owned)
            .collect();
        for endpoint in &endpoints {
            let valid =
                endpoint.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                errors.push(ConfigError::new("endpoints", format!("`{endpoint}` is not host:port")));
            }
        }
        if endpoints.is_empty() {
            errors.push(ConfigError::new("endpoints", "names no etcd endpoint"));
        }
        if !self.internal_com_host.is_empty() && is_any_address(&self.internal_com_host) {
            errors.push(ConfigError::new(
                "internalComHost",
                format!("`{}` cannot be reached by other nodes; give this node's address", self.internal_com_host),
            ));
        }
        if self.internal_com_port == 0 || self.internal_com_port > i32::from(u16::MAX) {
            errors.push(ConfigError::new("internalComPort", "must be a port, or -1 for core.gRPCPort"));
        }
        if self.lease_ttl < 2 {
            errors.push(ConfigError::new("leaseTtl", "must be at least 2 seconds"));
        }
        if self.poll_period == 0 {
            errors.push(ConfigError::new("pollPeriod", "must be at least 1 second"));
        }
        if errors.is_empty() { Ok(endpoints) } else { Err(errors) }
    }

    /// The prefix of every node's key.
    fn prefix(&self) -> String {
        format!("{}/{}/", self.namespace.trim_end_matches('/'), self.service_name)
    }
}

/// What a node writes about itself.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    service_name: String,
    host: String,
    port: u16,
}

/// Builds the `etcd` provider of `cluster`.
pub struct EtcdProviderFactory;

impl TypedProviderFactory for EtcdProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "etcd";
    const REQUIRES: &'static [&'static str] = &[oap_core::MODULE_NAME];
    type Config = EtcdConfig;

    fn build(&self, config: EtcdConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        let endpoints = config.validate()?;
        let auth = config.authentication.then(|| (config.user.clone(), config.password.clone()));
        let client = EtcdClient::new(endpoints, auth, Duration::from_secs(5));
        Ok(Box::new(EtcdProvider { config, client, registration: None, nodes: None, keeper: None }))
    }
}

/// This node's entry: its address, and whether it registers (Mixed, Aggregator).
#[derive(Debug, Clone)]
struct Registration {
    host: String,
    port: u16,
    registers: bool,
}

struct EtcdProvider {
    config: EtcdConfig,
    client: EtcdClient,
    registration: Option<Registration>,
    nodes: Option<watch::Sender<Arc<Vec<RemoteNode>>>>,
    keeper: Option<(JoinHandle<()>, watch::Receiver<Option<i64>>)>,
}

#[async_trait]
impl ModuleProvider for EtcdProvider {
    async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let core = ctx.service::<CoreConfigRef>()?;
        let host = if self.config.internal_com_host.is_empty() {
            core.grpc_host.clone()
        } else {
            self.config.internal_com_host.clone()
        };
        if is_any_address(&host) {
            return Err(ModuleError::Config(format!(
                "cluster.etcd: this node would register `{host}`, which other nodes cannot reach; set \
                 internalComHost (SW_CLUSTER_INTERNAL_COM_HOST) or core's gRPCHost (SW_CORE_GRPC_HOST) to its address"
            )));
        }
        let port = u16::try_from(self.config.internal_com_port).unwrap_or(core.grpc_port);
        self.registration = Some(Registration { host, port, registers: core.role.is_aggregation_target() });
        let (nodes, list) = watch::channel(Arc::new(Vec::new()));
        self.nodes = Some(nodes);
        let membership: MembershipRef = Arc::new(Membership::new("etcd", list));
        ctx.register(membership)
    }

    async fn start(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let mut registration =
            self.registration.clone().ok_or_else(|| ModuleError::Other("not prepared".to_owned()))?;
        // Port 0 in the settings: register the port core's gRPC server really bound.
        if registration.port == 0
            && let Some(bound) = ctx.service::<GrpcServerRef>()?.local_addr()
        {
            registration.port = bound.port();
        }
        let nodes = self.nodes.clone().ok_or_else(|| ModuleError::Other("not prepared".to_owned()))?;
        let node = Node { client: self.client.clone(), config: self.config.clone(), registration, nodes };
        // The first round before the other modules start: they route by the list.
        let started = Instant::now();
        let mut lease = None;
        loop {
            match node.round(lease).await {
                Ok(granted) => {
                    lease = granted;
                    break;
                }
                Err(failure) if started.elapsed() < CONNECT_PATIENCE => {
                    warn!(%failure, endpoints = %self.config.endpoints, "waiting for etcd");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(failure) => {
                    return Err(ModuleError::Other(format!(
                        "etcd at {} did not answer within {CONNECT_PATIENCE:?}: {failure}",
                        self.config.endpoints
                    )));
                }
            }
        }
        let (leases, lease_now) = watch::channel(lease);
        let keeper = tokio::spawn(async move { node.run(lease, leases).await });
        self.keeper = Some((keeper, lease_now));
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<(), ModuleError> {
        if let Some((keeper, lease)) = self.keeper.take() {
            keeper.abort();
            let lease = *lease.borrow();
            if let Some(lease) = lease {
                // Leave the list now rather than when the lease expires.
                if let Err(failure) = self.client.revoke(lease).await {
                    warn!(%failure, "could not leave the etcd node list; the entry expires with its lease");
                }
            }
        }
        Ok(())
    }
}

/// The registration and polling work of this node.
struct Node {
    client: EtcdClient,
    config: EtcdConfig,
    registration: Registration,
    nodes: watch::Sender<Arc<Vec<RemoteNode>>>,
}

impl Node {
    /// One round: registers (or keeps the lease alive), then reads the list; returns the lease.
    async fn round(&self, lease: Option<i64>) -> Result<Option<i64>, crate::etcd_client::EtcdError> {
        let Registration { host, port, registers } = &self.registration;
        let mut lease = lease;
        if *registers {
            let alive = match lease {
                Some(id) => self.client.keep_alive(id).await?,
                None => false,
            };
            if !alive {
                let id = self.client.grant(self.config.lease_ttl).await?;
                let key = format!("{}{host}_{port}", self.config.prefix());
                let value = serde_json::to_string(&Endpoint {
                    service_name: self.config.service_name.clone(),
                    host: host.clone(),
                    port: *port,
                })
                .unwrap_or_default();
                self.client.put(&key, &value, id).await?;
                info!(%key, lease = id, "registered in etcd");
                lease = Some(id);
            }
        }
        let listed: Vec<RemoteNode> = self
            .client
            .values_with_prefix(&self.config.prefix())
            .await?
            .iter()
            .filter_map(|value| serde_json::from_str::<Endpoint>(value).ok())
            .map(|endpoint| RemoteNode { host: endpoint.host, port: endpoint.port, is_self: false })
            .collect();
        let this = format!("{host}:{port}");
        let arranged = Arc::new(arrange(listed, Some(&this)));
        self.nodes.send_if_modified(|known| {
            if **known == *arranged {
                return false;
            }
            info!(nodes = ?arranged.iter().map(RemoteNode::address).collect::<Vec<_>>(), "cluster nodes changed");
            *known = arranged.clone();
            true
        });
        Ok(lease)
    }

    async fn run(self, mut lease: Option<i64>, leases: watch::Sender<Option<i64>>) {
        let period = Duration::from_secs(self.config.poll_period);
        let mut failing_since: Option<Instant> = None;
        loop {
            tokio::time::sleep(period).await;
            match self.round(lease).await {
                Ok(granted) => {
                    if let Some(since) = failing_since.take() {
                        info!(after = ?since.elapsed(), "etcd answers again");
                    }
                    lease = granted;
                    let _ = leases.send(lease);
                }
                Err(failure) => {
                    // The list stays as last read; the lease is kept alive again once etcd answers.
                    if failing_since.is_none() {
                        warn!(%failure, "etcd does not answer; keeping the last node list");
                        failing_since = Some(Instant::now());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_skywalking_s_and_unreachable_addresses_are_refused() {
        let config = EtcdConfig::default();
        assert_eq!(config.validate().map_err(|_| ()), Ok(vec!["localhost:2379".to_owned()]));
        assert_eq!(config.prefix(), "/skywalking/SkyWalking_OAP_Cluster/");
        let wrong = EtcdConfig {
            endpoints: "etcd1".to_owned(),
            internal_com_host: "0.0.0.0".to_owned(),
            internal_com_port: 0,
            ..EtcdConfig::default()
        };
        let errors = wrong.validate().expect_err("wrong");
        let paths: Vec<&str> = errors.iter().map(|error| error.path.as_str()).collect();
        assert_eq!(paths, ["endpoints", "internalComHost", "internalComPort"]);
    }
}
