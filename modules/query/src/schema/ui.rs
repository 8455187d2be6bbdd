//! The UI's menu (docs/reference/query-api.md §3): oap-rs's own menu of the layers it serves, each
//! leaf active once a service of its layer exists, a group when any of its leaves is.

use async_graphql::{Context, Object, SimpleObject};
use oap_model::Layer;

use super::common::{query_context, storage_error};

/// One entry of the menu.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct MenuItem {
    /// The text shown.
    pub title: String,
    /// The icon's name (groups only).
    pub icon: Option<String>,
    /// The layer a leaf lists; empty for a group.
    pub layer: String,
    /// Whether there is anything to show.
    pub activate: bool,
    /// A group's leaves; empty for a leaf.
    pub sub_items: Vec<MenuItem>,
    /// What it shows.
    pub description: Option<String>,
    /// Where to read more.
    pub document_link: Option<String>,
    /// The UI's translation key.
    #[graphql(name = "i18nKey")]
    pub i18n_key: Option<String>,
}

/// The menu's groups: (title, icon, i18n key, description, leaves of (title, layer, i18n key)).
type Group = (&'static str, &'static str, &'static str, &'static str, &'static [(&'static str, Layer, &'static str)]);

const MENU: &[Group] = &[(
    "General Service",
    "general_service",
    "general_service",
    "Services instrumented by SkyWalking agents, and the databases, caches and message queues they call.",
    &[
        ("Services", Layer::GENERAL, "general_service_services"),
        ("Virtual Database", Layer::VIRTUAL_DATABASE, "virtual_database"),
        ("Virtual Cache", Layer::VIRTUAL_CACHE, "virtual_cache"),
        ("Virtual MQ", Layer::VIRTUAL_MQ, "virtual_mq"),
    ],
)];

/// The menu, given the layers that have services.
pub fn menu(active: &[Layer]) -> Vec<MenuItem> {
    MENU.iter()
        .map(|(title, icon, key, description, leaves)| {
            let sub_items: Vec<MenuItem> = leaves
                .iter()
                .map(|(title, layer, key)| MenuItem {
                    title: (*title).to_owned(),
                    icon: None,
                    layer: layer.name().to_owned(),
                    activate: active.contains(layer),
                    sub_items: Vec::new(),
                    description: None,
                    document_link: None,
                    i18n_key: Some((*key).to_owned()),
                })
                .collect();
            MenuItem {
                title: (*title).to_owned(),
                icon: Some((*icon).to_owned()),
                layer: String::new(),
                activate: sub_items.iter().any(|item| item.activate),
                sub_items,
                description: Some((*description).to_owned()),
                document_link: None,
                i18n_key: Some((*key).to_owned()),
            }
        })
        .collect()
}

/// The UI queries.
#[derive(Default)]
pub struct UiQuery;

#[Object]
impl UiQuery {
    /// The menu.
    async fn get_menu_items(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<MenuItem>> {
        let services = query_context(ctx).storage.list_services().await.map_err(storage_error)?;
        let active: Vec<Layer> = services.iter().map(|service| service.layer).collect();
        Ok(menu(&active))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_is_active_with_a_service_of_its_layer_and_a_group_with_an_active_leaf() {
        let idle = menu(&[]);
        assert!(!idle[0].activate && idle[0].sub_items.iter().all(|item| !item.activate));
        let general = menu(&[Layer::GENERAL]);
        assert!(general[0].activate);
        let states: Vec<(&str, bool)> =
            general[0].sub_items.iter().map(|item| (item.layer.as_str(), item.activate)).collect();
        assert_eq!(
            states,
            [("GENERAL", true), ("VIRTUAL_DATABASE", false), ("VIRTUAL_CACHE", false), ("VIRTUAL_MQ", false)]
        );
        assert_eq!((general[0].layer.as_str(), general[0].sub_items[0].sub_items.len()), ("", 0));
    }
}
