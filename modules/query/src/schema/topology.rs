//! Service topology (docs/reference/query-api.md §7): the calls seen from the server and the client
//! side in a duration, as nodes and edges with detect points, component names and node types.

use std::collections::{BTreeMap, HashMap};

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use oap_model::ids;
use oap_storage::builtin::relation::{EndpointRelation, InstanceRelation, ServiceRelation};
use oap_storage::dao::Side;

use super::common::{DurationInput, query_context, request_budget, storage_error};
use super::metadata::{Service, services, split_child_id};
use crate::components::Components;

/// The name of the node of requests no agent saw the caller of.
const USER: &str = "User";

/// Which side saw a call.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DetectPoint {
    /// The caller.
    Client,
    /// The callee.
    Server,
    /// A proxy between them.
    Proxy,
}

/// A service in a topology.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The service id.
    pub id: ID,
    /// Its name.
    pub name: String,
    /// What it is: `USER`, a server component name, or the component that served it.
    #[graphql(name = "type")]
    pub node_type: Option<String>,
    /// Whether an agent reports it.
    pub is_real: bool,
    /// Its layers, `UNDEFINED` when unknown.
    pub layers: Vec<String>,
}

/// A call between two services.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The caller's id.
    pub source: ID,
    /// Components the caller used.
    pub source_components: Vec<ID>,
    /// The callee's id.
    pub target: ID,
    /// Components the callee served with.
    pub target_components: Vec<ID>,
    /// `source-target`.
    pub id: ID,
    /// The sides that saw it.
    pub detect_points: Vec<DetectPoint>,
}

/// A service topology.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Every service of a call.
    pub nodes: Vec<Node>,
    /// The calls.
    pub calls: Vec<Call>,
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Builds the topology from client-side and server-side rows and the known layers per service id.
pub fn build(
    client: &[ServiceRelation],
    server: &[ServiceRelation],
    layers: &HashMap<String, Vec<String>>,
    components: &Components,
) -> Topology {
    let mut calls: BTreeMap<(String, String), Call> = BTreeMap::new();
    // Per node: (component, priority) of server-side rows, and server names of client-side ones.
    let mut served: HashMap<String, Vec<i32>> = HashMap::new();
    let mut called_as: HashMap<String, Vec<i32>> = HashMap::new();
    let sides =
        client.iter().map(|row| (row, DetectPoint::Client)).chain(server.iter().map(|row| (row, DetectPoint::Server)));
    for (row, side) in sides {
        let key = (row.source_service_id.clone(), row.dest_service_id.clone());
        let call = calls.entry(key).or_insert_with(|| Call {
            source: ID(row.source_service_id.clone()),
            source_components: Vec::new(),
            target: ID(row.dest_service_id.clone()),
            target_components: Vec::new(),
            id: ID(ids::relation_id(&row.source_service_id, &row.dest_service_id)),
            detect_points: Vec::new(),
        });
        push_unique(&mut call.detect_points, side);
        for &component in &row.component_ids {
            let name = ID(components.name(component).to_owned());
            match side {
                DetectPoint::Client => {
                    push_unique(&mut call.source_components, name);
                    push_unique(called_as.entry(row.dest_service_id.clone()).or_default(), component);
                }
                _ => {
                    push_unique(&mut call.target_components, name);
                    push_unique(served.entry(row.dest_service_id.clone()).or_default(), component);
                }
            }
        }
    }
    let mut node_ids: Vec<&String> = calls.keys().flat_map(|(source, target)| [source, target]).collect();
    node_ids.sort();
    node_ids.dedup();
    let nodes = node_ids
        .into_iter()
        .map(|id| {
            let (name, is_real) = ids::parse_service_id(id).unwrap_or_else(|| (id.clone(), false));
            let node_type = if !is_real && name == USER {
                Some("USER".to_owned())
            } else if is_real {
                served.get(id).and_then(|served| {
                    served
                        .iter()
                        .max_by_key(|&&component| components.priority(component))
                        .map(|&c| components.name(c).to_owned())
                })
            } else {
                called_as.get(id).and_then(|used| used.first()).map(|&c| components.server_name(c).to_owned())
            };
            Node {
                id: ID(id.clone()),
                name,
                node_type,
                is_real,
                layers: layers.get(id).cloned().unwrap_or_else(|| vec!["UNDEFINED".to_owned()]),
            }
        })
        .collect();
    Topology { nodes, calls: calls.into_values().collect() }
}

/// The fields an instance node and an endpoint node share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildFields {
    id: ID,
    name: String,
    service_id: ID,
    service_name: String,
    is_real: bool,
}

macro_rules! child_node {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A", $what, " in a topology.")]
        #[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// Its id.
            pub id: ID,
            /// Its name.
            pub name: String,
            /// Its service's id.
            pub service_id: ID,
            /// Its service's name.
            pub service_name: String,
            /// What it is (no component is recorded per instance or endpoint).
            #[graphql(name = "type")]
            pub node_type: Option<String>,
            /// Whether its service is real.
            pub is_real: bool,
        }

        impl From<ChildFields> for $name {
            fn from(fields: ChildFields) -> Self {
                Self {
                    id: fields.id,
                    name: fields.name,
                    service_id: fields.service_id,
                    service_name: fields.service_name,
                    node_type: None,
                    is_real: fields.is_real,
                }
            }
        }
    };
}

child_node!(ServiceInstanceNode, "n instance");
child_node!(EndpointNode, "n endpoint");

/// The instance topology between two services.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstanceTopology {
    /// The instances of a call.
    pub nodes: Vec<ServiceInstanceNode>,
    /// The calls.
    pub calls: Vec<Call>,
}

/// The endpoints an endpoint calls and is called by.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct EndpointTopology {
    /// The endpoints of a call.
    pub nodes: Vec<EndpointNode>,
    /// The calls.
    pub calls: Vec<Call>,
}

/// Calls between children (instances or endpoints), each with its relation id and the sides
/// that saw it, and their nodes.
fn child_topology(edges: impl Iterator<Item = (String, String, DetectPoint, String)>) -> (Vec<ChildFields>, Vec<Call>) {
    let mut calls: BTreeMap<(String, String), Call> = BTreeMap::new();
    for (source, target, side, id) in edges {
        let call = calls.entry((source.clone(), target.clone())).or_insert_with(|| Call {
            id: ID(id),
            source: ID(source),
            source_components: Vec::new(),
            target: ID(target),
            target_components: Vec::new(),
            detect_points: Vec::new(),
        });
        push_unique(&mut call.detect_points, side);
    }
    let mut ids: Vec<&String> = calls.keys().flat_map(|(source, target)| [source, target]).collect();
    ids.sort();
    ids.dedup();
    let nodes = ids
        .into_iter()
        .map(|id| {
            let (service_id, name) = split_child_id(id).map_or((String::new(), id.clone()), |(s, n)| (s.to_owned(), n));
            let (service_name, is_real) = ids::parse_service_id(&service_id).unwrap_or_default();
            ChildFields { id: ID(id.clone()), name, service_id: ID(service_id), service_name, is_real }
        })
        .collect();
    (nodes, calls.into_values().collect())
}

/// The instance topology from client- and server-side rows.
pub fn build_instances(client: &[InstanceRelation], server: &[InstanceRelation]) -> ServiceInstanceTopology {
    let edges = client
        .iter()
        .map(|row| (row, DetectPoint::Client))
        .chain(server.iter().map(|row| (row, DetectPoint::Server)))
        .map(|(row, side)| {
            let id = ids::relation_id(&row.source_instance_id, &row.dest_instance_id);
            (row.source_instance_id.clone(), row.dest_instance_id.clone(), side, id)
        });
    let (nodes, calls) = child_topology(edges);
    ServiceInstanceTopology { nodes: nodes.into_iter().map(Into::into).collect(), calls }
}

/// The endpoint dependencies from server-side rows.
pub fn build_endpoints(rows: &[EndpointRelation]) -> EndpointTopology {
    let edges = rows.iter().map(|row| {
        (row.source_endpoint.clone(), row.dest_endpoint.clone(), DetectPoint::Server, row.entity_id.clone())
    });
    let (nodes, calls) = child_topology(edges);
    EndpointTopology { nodes: nodes.into_iter().map(Into::into).collect(), calls }
}

/// The topology queries.
#[derive(Default)]
pub struct TopologyQuery;

impl TopologyQuery {
    /// The calls touching `service_ids` (all calls when empty); `services` gives the layers.
    async fn topology(
        ctx: &Context<'_>,
        duration: DurationInput,
        service_ids: Vec<String>,
        services: Vec<Service>,
    ) -> async_graphql::Result<Topology> {
        let query = query_context(ctx);
        let range = duration.resolve(query)?.bucket_range();
        let budget = request_budget(ctx)?;
        budget.hold_heavy_permit().await?;
        let storage = &query.storage;
        let client = storage.service_relations(Side::Client, range, &service_ids).await.map_err(storage_error)?;
        let server = storage.service_relations(Side::Server, range, &service_ids).await.map_err(storage_error)?;
        budget.charge(client.len() + server.len())?;
        let layers = services.into_iter().map(|service| (service.id.0, service.layers)).collect();
        Ok(build(&client, &server, &layers, Components::shipped()))
    }
}

#[Object]
impl TopologyQuery {
    /// Every call in the duration, or those touching the services of a layer.
    async fn get_global_topology(
        &self,
        ctx: &Context<'_>,
        duration: DurationInput,
        layer: Option<String>,
        #[graphql(desc = "Accepted; no debugging trace is recorded.")] debug: Option<bool>,
    ) -> async_graphql::Result<Topology> {
        let _ = debug;
        let services = services(ctx).await?;
        let Some(layer) = layer.filter(|layer| !layer.is_empty()) else {
            return Self::topology(ctx, duration, Vec::new(), services).await;
        };
        let ids: Vec<String> = services
            .iter()
            .filter(|service| service.layers.contains(&layer))
            .map(|service| service.id.0.clone())
            .collect();
        if ids.is_empty() {
            return Ok(Topology { nodes: Vec::new(), calls: Vec::new() });
        }
        Self::topology(ctx, duration, ids, services).await
    }

    /// The calls touching any of the services.
    async fn get_services_topology(
        &self,
        ctx: &Context<'_>,
        service_ids: Vec<ID>,
        duration: DurationInput,
        #[graphql(desc = "Accepted; no debugging trace is recorded.")] debug: Option<bool>,
    ) -> async_graphql::Result<Topology> {
        let _ = debug;
        if service_ids.is_empty() {
            return Ok(Topology { nodes: Vec::new(), calls: Vec::new() });
        }
        let ids = service_ids.into_iter().map(|id| id.0).collect();
        Self::topology(ctx, duration, ids, services(ctx).await?).await
    }

    /// The instance calls between two services, either direction.
    async fn get_service_instance_topology(
        &self,
        ctx: &Context<'_>,
        client_service_id: ID,
        server_service_id: ID,
        duration: DurationInput,
        #[graphql(desc = "Accepted; no debugging trace is recorded.")] debug: Option<bool>,
    ) -> async_graphql::Result<ServiceInstanceTopology> {
        let _ = debug;
        let query = query_context(ctx);
        let range = duration.resolve(query)?.bucket_range();
        let (a, b) = (client_service_id.as_str(), server_service_id.as_str());
        let budget = request_budget(ctx)?;
        budget.hold_heavy_permit().await?;
        let client = query.storage.instance_relations(Side::Client, range, a, b).await.map_err(storage_error)?;
        let server = query.storage.instance_relations(Side::Server, range, a, b).await.map_err(storage_error)?;
        budget.charge(client.len() + server.len())?;
        Ok(build_instances(&client, &server))
    }

    /// The endpoints an endpoint calls and is called by.
    async fn get_endpoint_dependencies(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
        duration: DurationInput,
        #[graphql(desc = "Accepted; no debugging trace is recorded.")] debug: Option<bool>,
    ) -> async_graphql::Result<EndpointTopology> {
        let _ = debug;
        let query = query_context(ctx);
        let range = duration.resolve(query)?.bucket_range();
        let budget = request_budget(ctx)?;
        budget.hold_heavy_permit().await?;
        let rows = query.storage.endpoint_relations(range, &endpoint_id).await.map_err(storage_error)?;
        budget.charge(rows.len())?;
        Ok(build_endpoints(&rows))
    }

    /// The calls touching one service.
    async fn get_service_topology(
        &self,
        ctx: &Context<'_>,
        service_id: ID,
        duration: DurationInput,
        #[graphql(desc = "Accepted; no debugging trace is recorded.")] debug: Option<bool>,
    ) -> async_graphql::Result<Topology> {
        let _ = debug;
        Self::topology(ctx, duration, vec![service_id.0], services(ctx).await?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(source: &str, dest: &str, components: &[i32]) -> ServiceRelation {
        ServiceRelation {
            source_service_id: source.to_owned(),
            dest_service_id: dest.to_owned(),
            component_ids: components.to_vec(),
            time_bucket: 202_611_211_230,
        }
    }

    #[test]
    fn node_types_come_from_the_components_that_served_or_called_them() {
        let shop = ids::service_id("shop", true);
        let db = ids::service_id("mysql:3306", false);
        // The shop was served by Tomcat (priority 50) and SpringMVC (60); it calls the database
        // with mysql-connector-java (33), whose server is Mysql.
        let server = [row(&ids::service_id("User", false), &shop, &[1, 14])];
        let client = [row(&shop, &db, &[33])];
        let layers = HashMap::from([(shop.clone(), vec!["GENERAL".to_owned()])]);
        let topology = build(&client, &server, &layers, Components::shipped());
        let types: Vec<(&str, Option<&str>, bool)> =
            topology.nodes.iter().map(|node| (node.name.as_str(), node.node_type.as_deref(), node.is_real)).collect();
        assert_eq!(
            types,
            [("User", Some("USER"), false), ("mysql:3306", Some("Mysql"), false), ("shop", Some("SpringMVC"), true)]
        );
        assert_eq!(topology.nodes[1].layers, ["UNDEFINED"], "no metadata for the database here");
        let db_call = topology.calls.iter().find(|call| call.target.as_str() == db).expect("the database call");
        assert_eq!(db_call.detect_points, [DetectPoint::Client]);
        assert_eq!(db_call.source_components, [ID("mysql-connector-java".to_owned())]);
        assert!(db_call.target_components.is_empty());
    }
}
