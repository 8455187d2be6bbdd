//! The entity a metric query is about, as the UI names it (`Entity`), and the owner of a value
//! in a ranked list (`Owner`). The UI never sends a scope: the id is built from the names for the
//! metric's own scope (docs/reference/analysis.md §11), and names the scope needs but the entity
//! lacks make no id at all, so the query reads nothing.

use async_graphql::{ID, InputObject, SimpleObject};
use oap_model::ids;

use crate::schema::common::Scope;

/// The names of an entity, and of the destination of a relation.
#[derive(InputObject, Debug, Clone, Default)]
pub struct Entity {
    /// Deprecated since SkyWalking 9.4.0: the metric's definition decides the scope.
    pub scope: Option<Scope>,
    /// The service, or the source service of a relation.
    pub service_name: Option<String>,
    /// Whether that service is a real one (an agent's) rather than conjectural.
    pub normal: Option<bool>,
    /// The instance (instance scopes).
    pub service_instance_name: Option<String>,
    /// The endpoint (endpoint scopes).
    pub endpoint_name: Option<String>,
    /// The process (process scopes; not produced by oap-rs).
    pub process_name: Option<String>,
    /// The destination service of a relation.
    pub dest_service_name: Option<String>,
    /// Whether the destination service is a real one.
    pub dest_normal: Option<bool>,
    /// The destination instance.
    pub dest_service_instance_name: Option<String>,
    /// The destination endpoint.
    pub dest_endpoint_name: Option<String>,
    /// The destination process.
    pub dest_process_name: Option<String>,
}

impl Entity {
    /// The id of the entity in `scope`; `None` when a name the scope needs is missing.
    pub fn id(&self, scope: Scope) -> Option<String> {
        let service = || Some(ids::service_id(self.service_name.as_deref()?, self.normal?));
        let dest_service = || Some(ids::service_id(self.dest_service_name.as_deref()?, self.dest_normal?));
        Some(match scope {
            Scope::Service => service()?,
            Scope::ServiceInstance => ids::instance_id(&service()?, self.service_instance_name.as_deref()?),
            Scope::Endpoint => ids::endpoint_id(&service()?, self.endpoint_name.as_deref()?),
            Scope::ServiceRelation => ids::relation_id(&service()?, &dest_service()?),
            Scope::ServiceInstanceRelation => ids::relation_id(
                &ids::instance_id(&service()?, self.service_instance_name.as_deref()?),
                &ids::instance_id(&dest_service()?, self.dest_service_instance_name.as_deref()?),
            ),
            Scope::EndpointRelation => ids::endpoint_relation_id(
                &service()?,
                self.endpoint_name.as_deref()?,
                &dest_service()?,
                self.dest_endpoint_name.as_deref()?,
            ),
            Scope::All | Scope::Process | Scope::ProcessRelation => return None,
        })
    }
}

/// Whose value a ranked-list entry is.
#[derive(SimpleObject, Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// The entity's scope.
    pub scope: Option<Scope>,
    /// The service (of an instance or endpoint, too).
    #[graphql(name = "serviceID")]
    pub service_id: Option<ID>,
    /// Its name.
    pub service_name: Option<String>,
    /// Whether it is a real service.
    pub normal: Option<bool>,
    /// The instance.
    #[graphql(name = "serviceInstanceID")]
    pub service_instance_id: Option<ID>,
    /// Its name.
    pub service_instance_name: Option<String>,
    /// The endpoint.
    #[graphql(name = "endpointID")]
    pub endpoint_id: Option<ID>,
    /// Its name.
    pub endpoint_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(service: &str, instance: Option<&str>, endpoint: Option<&str>) -> Entity {
        Entity {
            service_name: Some(service.to_owned()),
            normal: Some(true),
            service_instance_name: instance.map(str::to_owned),
            endpoint_name: endpoint.map(str::to_owned),
            ..Entity::default()
        }
    }

    #[test]
    fn ids_follow_the_scope_of_the_metric() {
        // base64("py-backend") = cHktYmFja2VuZA==, base64("/users") = L3VzZXJz.
        let entity = names("py-backend", None, Some("/users"));
        assert_eq!(entity.id(Scope::Service).as_deref(), Some("cHktYmFja2VuZA==.1"));
        assert_eq!(entity.id(Scope::Endpoint).as_deref(), Some("cHktYmFja2VuZA==.1_L3VzZXJz"));
        assert_eq!(entity.id(Scope::ServiceInstance), None, "no instance name");
        assert_eq!(entity.id(Scope::ServiceRelation), None, "no destination");
        let relation = Entity {
            dest_service_name: Some("mysql:3306".to_owned()),
            dest_normal: Some(false),
            ..names("py-backend", None, None)
        };
        // base64("mysql:3306") = bXlzcWw6MzMwNg==.
        assert_eq!(relation.id(Scope::ServiceRelation).as_deref(), Some("cHktYmFja2VuZA==.1-bXlzcWw6MzMwNg==.0"));
        let no_normal = Entity { normal: None, ..names("py-backend", None, None) };
        assert_eq!(no_normal.id(Scope::Service), None, "normal is required, as SkyWalking's Entity#isValid says");
    }
}
