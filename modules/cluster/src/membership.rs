//! The node list: the aggregating nodes of the cluster, sorted as SkyWalking sorts them (by
//! `host_port`, as text), each flagged when it is this node.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

/// One aggregating node, by its internal gRPC address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteNode {
    /// Host name or IP.
    pub host: String,
    /// gRPC port.
    pub port: u16,
    /// Whether it is this node.
    #[serde(rename = "self")]
    pub is_self: bool,
}

impl RemoteNode {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `host_port`: what SkyWalking sorts nodes by, as text.
    pub fn sort_key(&self) -> String {
        format!("{}_{}", self.host, self.port)
    }
}

/// Sorts `nodes` by `host_port`, drops repeats, and flags `this` (a `host:port`).
pub fn arrange(mut nodes: Vec<RemoteNode>, this: Option<&str>) -> Vec<RemoteNode> {
    nodes.sort_by_key(RemoteNode::sort_key);
    nodes.dedup_by(|a, b| a.host == b.host && a.port == b.port);
    for node in &mut nodes {
        node.is_self = this.is_some_and(|this| node.address() == this);
    }
    nodes
}

/// The cluster as this node sees it; the list changes as nodes come and go.
pub struct Membership {
    coordinator: &'static str,
    nodes: watch::Receiver<Arc<Vec<RemoteNode>>>,
}

impl Membership {
    /// A membership whose list `nodes` follows, from `coordinator` (its provider's name).
    pub fn new(coordinator: &'static str, nodes: watch::Receiver<Arc<Vec<RemoteNode>>>) -> Self {
        Self { coordinator, nodes }
    }

    /// The list that never changes: this node alone, at `host:port`.
    pub fn standalone(host: &str, port: u16) -> Self {
        let node = RemoteNode { host: host.to_owned(), port, is_self: true };
        let (_, nodes) = watch::channel(Arc::new(vec![node]));
        Self::new("standalone", nodes)
    }

    /// The coordinator's name (`standalone`, `etcd`).
    pub fn coordinator(&self) -> &'static str {
        self.coordinator
    }

    /// Whether this node is the whole cluster.
    pub fn is_standalone(&self) -> bool {
        self.coordinator == "standalone"
    }

    /// The aggregating nodes now, sorted.
    pub fn nodes(&self) -> Arc<Vec<RemoteNode>> {
        self.nodes.borrow().clone()
    }

    /// A receiver that sees every change of the list.
    pub fn watch(&self) -> watch::Receiver<Arc<Vec<RemoteNode>>> {
        self.nodes.clone()
    }

    /// Whether this node is the first of the list (the one that runs the data keeper).
    pub fn is_first(&self) -> bool {
        self.nodes.borrow().first().is_some_and(|node| node.is_self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: u16) -> RemoteNode {
        RemoteNode { host: host.to_owned(), port, is_self: false }
    }

    #[test]
    fn nodes_sort_by_host_port_as_text_once_each() {
        let nodes =
            vec![node("10.0.0.2", 11800), node("10.0.0.10", 11800), node("10.0.0.2", 11800), node("10.0.0.2", 1180)];
        let arranged = arrange(nodes, Some("10.0.0.2:11800"));
        let addresses: Vec<(String, bool)> = arranged.iter().map(|node| (node.address(), node.is_self)).collect();
        // "10.0.0.10_11800" < "10.0.0.2_1180" < "10.0.0.2_11800".
        assert_eq!(
            addresses,
            [
                ("10.0.0.10:11800".to_owned(), false),
                ("10.0.0.2:1180".to_owned(), false),
                ("10.0.0.2:11800".to_owned(), true)
            ]
        );
    }

    #[test]
    fn a_standalone_node_is_first_and_alone() {
        let membership = Membership::standalone("127.0.0.1", 11800);
        assert!(membership.is_standalone() && membership.is_first());
        assert_eq!(
            serde_json::to_value(&*membership.nodes()).expect("json"),
            serde_json::json!([
                { "host": "127.0.0.1", "port": 11800, "self": true }
            ])
        );
    }
}
