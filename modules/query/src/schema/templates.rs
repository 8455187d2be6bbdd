//! The UI's dashboards (`getAllTemplates`, `getTemplate`): oap-rs's own templates for the
//! GENERAL layer — the root (services, rankings, topology, traces), service, instance,
//! endpoint and the three relation dashboards — each a JSON file of `templates/` in booster-ui's
//! export format, with the expressions MQE evaluates. Templates are read-only: they are not
//! stored, so the mutations that edit them are not offered.

use std::sync::LazyLock;

use async_graphql::{Object, SimpleObject};

/// A dashboard.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct DashboardConfiguration {
    /// Its id.
    pub id: String,
    /// Its configuration, as the UI exports it (JSON text).
    pub configuration: String,
}

/// The template files, in the order the UI is given them.
const FILES: [(&str, &str); 7] = [
    ("general-root", include_str!("../../templates/general-root.json")),
    ("general-service", include_str!("../../templates/general-service.json")),
    ("general-instance", include_str!("../../templates/general-instance.json")),
    ("general-endpoint", include_str!("../../templates/general-endpoint.json")),
    ("general-service-relation", include_str!("../../templates/general-service-relation.json")),
    ("general-instance-relation", include_str!("../../templates/general-instance-relation.json")),
    ("general-endpoint-relation", include_str!("../../templates/general-endpoint-relation.json")),
];

/// Every template; a file that is not `{"id", "configuration"}` is a build mistake the tests catch.
static TEMPLATES: LazyLock<Vec<DashboardConfiguration>> = LazyLock::new(|| {
    FILES
        .iter()
        .filter_map(|(name, text)| {
            let file: serde_json::Value = serde_json::from_str(text).ok()?;
            let id = file["id"].as_str()?.to_owned();
            let configuration = file.get("configuration")?.to_string();
            tracing::trace!(template = name, "template loaded");
            Some(DashboardConfiguration { id, configuration })
        })
        .collect()
});

/// The template queries.
#[derive(Default)]
pub struct TemplateQuery;

#[Object]
impl TemplateQuery {
    /// Every dashboard template.
    async fn get_all_templates(&self) -> Vec<DashboardConfiguration> {
        TEMPLATES.clone()
    }

    /// One template by id.
    async fn get_template(&self, id: String) -> Option<DashboardConfiguration> {
        TEMPLATES.iter().find(|template| template.id == id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricInfo;
    use crate::mqe::{Expr, parse};

    /// Every expression of a widget, of a tab's widgets and of a topology's nodes and links.
    fn expressions(widget: &serde_json::Value, out: &mut Vec<String>) {
        for key in
            ["expressions", "subExpressions", "nodeExpressions", "linkServerExpressions", "linkClientExpressions"]
        {
            for expression in widget[key].as_array().into_iter().flatten() {
                out.push(expression.as_str().expect("an expression is text").to_owned());
            }
        }
        for child in widget["children"].as_array().into_iter().flatten() {
            expressions(child, out);
        }
    }

    fn metrics(expr: &Expr, out: &mut Vec<String>) {
        match expr {
            Expr::Metric { name, .. } | Expr::TopN { metric: name, .. } => out.push(name.clone()),
            Expr::Scalar(_) => {}
            Expr::Binary { lhs, rhs, .. } => {
                metrics(lhs, out);
                metrics(rhs, out);
            }
            Expr::Aggregate { expr, .. }
            | Expr::Math { expr, .. }
            | Expr::Round { expr, .. }
            | Expr::Relabels { expr, .. } => metrics(expr, out),
        }
    }

    #[test]
    fn every_template_is_a_dashboard_of_the_general_layer_whose_expressions_name_shipped_metrics() {
        assert_eq!(TEMPLATES.len(), FILES.len(), "every file is a template");
        let definitions = oap_oal::load("core.oal", oap_oal::CORE_OAL).expect("core.oal");
        let catalog = oap_oal::Catalog::new(definitions, oap_oal::ApdexThresholds::default()).expect("catalog");
        let mut names = Vec::new();
        for template in TEMPLATES.iter() {
            let configuration: serde_json::Value = serde_json::from_str(&template.configuration).expect("JSON");
            assert_eq!(configuration["layer"], "GENERAL");
            assert_eq!(configuration["id"].as_str(), Some(template.id.as_str()));
            names.push(configuration["name"].as_str().expect("a name").to_owned());
            let mut found = Vec::new();
            for widget in configuration["children"].as_array().expect("widgets") {
                expressions(widget, &mut found);
            }
            assert!(!found.is_empty(), "{} has charts", template.id);
            for expression in found {
                let expr = parse(&expression).unwrap_or_else(|error| panic!("{expression}: {error}"));
                let mut used = Vec::new();
                metrics(&expr, &mut used);
                for name in used {
                    assert!(MetricInfo::lookup(&catalog, &name).is_some(), "{}: {name} is not shipped", template.id);
                }
            }
        }
        // Lists and topology link to dashboards by name: they must exist.
        for text in FILES.iter().map(|(_, text)| text) {
            for link in ["General-Service", "General-Instance", "General-Endpoint", "General-Service-Relation"] {
                if text.contains(&format!("\"{link}\"")) {
                    assert!(names.iter().any(|name| name == link), "{link} exists");
                }
            }
        }
        assert_eq!(TEMPLATES.iter().filter(|t| t.configuration.contains("\"isRoot\":true")).count(), 1, "one root");
    }
}
