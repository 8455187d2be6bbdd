//! Services, instances and endpoints (docs/reference/query-api.md §4, metadata-v2): read from the
//! traffic streams, one `Service` per name whatever its layers.

use std::collections::BTreeMap;

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use oap_model::{Layer, ids};
use oap_storage::builtin::traffic::{EndpointTraffic, InstanceTraffic, ServiceTraffic};

use super::common::{DurationInput, query_context, storage_error};

/// A service, merged over the layers it was seen in.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `base64(name).normal`.
    pub id: ID,
    /// Its name.
    pub name: String,
    /// The part of the name before `::`, or empty.
    pub group: String,
    /// The part after `::`, or the name.
    pub short_name: String,
    /// Every layer it was seen in.
    pub layers: Vec<String>,
    /// Whether it is a real (instrumented) service.
    pub normal: Option<bool>,
}

/// An instance's language, from its `language` property.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Not reported, or not one of these.
    Unknown,
    /// Java.
    Java,
    /// .NET.
    Dotnet,
    /// Node.js.
    Nodejs,
    /// Python.
    Python,
    /// Ruby.
    Ruby,
    /// Go.
    Go,
    /// Lua.
    Lua,
    /// PHP.
    Php,
}

impl Language {
    /// The language a `language` property names, case aside.
    pub fn of(name: &str) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "java" => Language::Java,
            "dotnet" => Language::Dotnet,
            "nodejs" => Language::Nodejs,
            "python" => Language::Python,
            "ruby" => Language::Ruby,
            "go" => Language::Go,
            "lua" => Language::Lua,
            "php" => Language::Php,
            _ => Language::Unknown,
        }
    }
}

/// One instance property.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The property's key.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// A service instance.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstance {
    /// `serviceId_base64(name)`.
    pub id: ID,
    /// Its name.
    pub name: String,
    /// Every reported property but `language`.
    pub attributes: Vec<Attribute>,
    /// From the `language` property.
    pub language: Language,
    /// The instance id again (SkyWalking's field).
    #[graphql(name = "instanceUUID")]
    pub instance_uuid: String,
}

impl ServiceInstance {
    fn from_traffic(traffic: InstanceTraffic) -> Self {
        let id = traffic.id();
        let mut language = Language::Unknown;
        let mut attributes = Vec::new();
        if let Ok(serde_json::Value::Object(properties)) = serde_json::from_str(&traffic.properties) {
            for (name, value) in properties {
                let value = match value {
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                };
                if name == "language" {
                    language = Language::of(&value);
                } else {
                    attributes.push(Attribute { name, value });
                }
            }
        }
        Self { id: ID(id.clone()), name: traffic.name, attributes, language, instance_uuid: id }
    }
}

/// An endpoint.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `serviceId_base64(name)`.
    pub id: ID,
    /// Its name.
    pub name: String,
}

impl From<EndpointTraffic> for Endpoint {
    fn from(traffic: EndpointTraffic) -> Self {
        Self { id: ID(traffic.id()), name: traffic.name }
    }
}

/// An endpoint with its service, decoded from its id.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The endpoint id.
    pub id: ID,
    /// Its name.
    pub name: String,
    /// Its service's id.
    pub service_id: ID,
    /// Its service's name.
    pub service_name: String,
}

/// One `Service` per name, layers merged, sorted by name.
pub fn merge_services(rows: Vec<ServiceTraffic>) -> Vec<Service> {
    let mut by_name: BTreeMap<String, Service> = BTreeMap::new();
    for row in rows {
        let layer = row.layer.name().to_owned();
        let service = by_name.entry(row.name.clone()).or_insert_with(|| {
            let (group, short_name) = row.group_and_short_name();
            let id = row.service_id();
            Service {
                normal: ids::parse_service_id(&id).map(|(_, normal)| normal),
                id: ID(id),
                name: row.name.clone(),
                group: group.to_owned(),
                short_name: short_name.to_owned(),
                layers: Vec::new(),
            }
        });
        if !service.layers.contains(&layer) {
            service.layers.push(layer);
        }
    }
    by_name.into_values().collect()
}

/// An id split into its service id and its decoded name (`serviceId_base64(name)`).
pub fn split_child_id(id: &str) -> Option<(&str, String)> {
    let (service_id, encoded) = id.split_once('_')?;
    ids::parse_service_id(service_id)?;
    Some((service_id, ids::decode(encoded)?))
}

/// Every stored service, merged by name.
pub async fn services(ctx: &Context<'_>) -> async_graphql::Result<Vec<Service>> {
    let rows = query_context(ctx).storage.list_services().await.map_err(storage_error)?;
    Ok(merge_services(rows))
}

/// The metadata queries.
#[derive(Default)]
pub struct MetadataQuery;

#[Object]
impl MetadataQuery {
    /// Every layer name.
    async fn list_layers(&self) -> Vec<&'static str> {
        Layer::ALL.iter().filter(|layer| layer.number() > 0).map(|layer| layer.name()).collect()
    }

    /// The services of a layer, or all of them.
    async fn list_services(&self, ctx: &Context<'_>, layer: Option<String>) -> async_graphql::Result<Vec<Service>> {
        let services = services(ctx).await?;
        Ok(match layer.filter(|layer| !layer.is_empty()) {
            Some(layer) => services.into_iter().filter(|service| service.layers.contains(&layer)).collect(),
            None => services,
        })
    }

    /// One service by id.
    async fn get_service(&self, ctx: &Context<'_>, service_id: String) -> async_graphql::Result<Option<Service>> {
        Ok(services(ctx).await?.into_iter().find(|service| *service.id == service_id))
    }

    /// One service by name.
    async fn find_service(&self, ctx: &Context<'_>, service_name: String) -> async_graphql::Result<Option<Service>> {
        Ok(services(ctx).await?.into_iter().find(|service| service.name == service_name))
    }

    /// The instances of a service seen in the duration.
    async fn list_instances(
        &self,
        ctx: &Context<'_>,
        duration: DurationInput,
        service_id: ID,
    ) -> async_graphql::Result<Vec<ServiceInstance>> {
        let query = query_context(ctx);
        let (start, end) = duration.resolve(query)?.minute_range();
        let rows = query.storage.list_instances(&service_id, start, end).await.map_err(storage_error)?;
        Ok(rows.into_iter().map(ServiceInstance::from_traffic).collect())
    }

    /// One instance by id.
    async fn get_instance(
        &self,
        ctx: &Context<'_>,
        instance_id: String,
    ) -> async_graphql::Result<Option<ServiceInstance>> {
        let row = query_context(ctx).storage.instance(&instance_id).await.map_err(storage_error)?;
        Ok(row.map(ServiceInstance::from_traffic))
    }

    /// The endpoints of a service whose name holds the keyword, newest first.
    async fn find_endpoint(
        &self,
        ctx: &Context<'_>,
        keyword: Option<String>,
        service_id: ID,
        limit: i32,
        duration: Option<DurationInput>,
    ) -> async_graphql::Result<Vec<Endpoint>> {
        let query = query_context(ctx);
        let minutes =
            duration.map(|duration| duration.resolve(query)).transpose()?.map(|duration| duration.minute_range());
        let limit = usize::try_from(limit.clamp(1, super::common::MAX_PAGE_SIZE)).unwrap_or(1);
        let rows = query
            .storage
            .find_endpoints(&service_id, keyword.as_deref(), minutes, limit)
            .await
            .map_err(storage_error)?;
        Ok(rows.into_iter().map(Endpoint::from).collect())
    }

    /// An endpoint's names, decoded from its id.
    async fn get_endpoint_info(&self, endpoint_id: ID) -> async_graphql::Result<Option<EndpointInfo>> {
        let Some((service_id, name)) = split_child_id(&endpoint_id) else {
            return Err(format!("`{}` is not an endpoint id", endpoint_id.as_str()).into());
        };
        let service_name = ids::parse_service_id(service_id).map(|(name, _)| name).unwrap_or_default();
        Ok(Some(EndpointInfo { id: endpoint_id.clone(), name, service_id: ID(service_id.to_owned()), service_name }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_seen_in_two_layers_is_one_service_with_both() {
        let rows = vec![
            ServiceTraffic { name: "shop::cart".to_owned(), layer: Layer::GENERAL, time_bucket: 1 },
            ServiceTraffic { name: "mysql:3306".to_owned(), layer: Layer::VIRTUAL_DATABASE, time_bucket: 1 },
            ServiceTraffic { name: "shop::cart".to_owned(), layer: Layer::MESH, time_bucket: 2 },
        ];
        let services = merge_services(rows);
        assert_eq!(services.len(), 2);
        // base64("mysql:3306") = "bXlzcWw6MzMwNg==", a virtual database is not normal.
        assert_eq!(services[0].id.as_str(), "bXlzcWw6MzMwNg==.0");
        assert_eq!(services[0].normal, Some(false));
        assert_eq!((services[1].group.as_str(), services[1].short_name.as_str()), ("shop", "cart"));
        assert_eq!(services[1].layers, ["GENERAL", "MESH"]);
        assert_eq!(services[1].normal, Some(true));
    }

    #[test]
    fn properties_become_attributes_and_the_language() {
        let instance = ServiceInstance::from_traffic(InstanceTraffic {
            service_id: "cHk=.1".to_owned(),
            name: "i1".to_owned(),
            last_ping: 1,
            properties: r#"{"language":"python","ipv4s":"127.0.0.1"}"#.to_owned(),
            time_bucket: 1,
        });
        assert_eq!(instance.language, Language::Python);
        assert_eq!(instance.attributes, [Attribute { name: "ipv4s".to_owned(), value: "127.0.0.1".to_owned() }]);
        // base64("i1") = "aTE=".
        assert_eq!(instance.instance_uuid, "cHk=.1_aTE=");
    }

    #[test]
    fn an_endpoint_id_names_its_service_and_itself() {
        // base64("py-backend") and base64("/work").
        let (service_id, name) = split_child_id("cHktYmFja2VuZA==.1_L3dvcms=").expect("an endpoint id");
        assert_eq!((service_id, name.as_str()), ("cHktYmFja2VuZA==.1", "/work"));
        assert!(split_child_id("nonsense").is_none());
    }
}
