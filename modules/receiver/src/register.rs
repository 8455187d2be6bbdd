//! The `receiver-register` module: `ManagementService` over gRPC
//! (`reportInstanceProperties`, `keepAlive`, under the `skywalking.v3` and compat names) and
//! HTTP (`POST /v3/management/reportProperties`, `POST /v3/management/keepAlive`).
//!
//! As docs/reference/analysis.md §8 says: reported properties become a `ServiceInstanceUpdate`
//! whose properties are a JSON object of every property but `ipv4`, plus `ipv4s`, the `ipv4` values
//! joined by `,` (the `language` property is how the query API tells the instance's language); a
//! heartbeat becomes a `ServiceInstanceUpdate` without properties (the instance's last ping) and a
//! `ServiceMeta` in the requested layer (`GENERAL` when empty). Both are stamped with the current
//! minute. Requests are timed in `management_in_latency`; rejected ones are counted in
//! `management_analysis_error_count`.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;
use axum::routing::post;
use oap_core::{GrpcServerRef, HttpServerRef, SourceDispatcherRef, TimeBuckets};
use oap_kernel::{ConfigError, ModuleContext, ModuleDefinition, ModuleError, ModuleProvider, TypedProviderFactory};
use oap_model::source::{ServiceInstanceUpdate, ServiceMeta, Source};
use oap_model::{Layer, NamingControl};
use oap_proto::v3::{InstancePingPkg, InstanceProperties};
use oap_telemetry::{LogLimit, MetricsCreatorRef};
use prost::Message;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tonic::Status;
use tracing::warn;

use crate::grpc::names::{ManagementCompat, ManagementV3};
use crate::grpc::{AgentRpcs, AgentService, Arity};
use crate::http;
use crate::telemetry::{Protocol, ReceiverTelemetry};

/// The module's name in `application.yml`.
pub const MODULE_NAME: &str = "receiver-register";

/// The module's definition; it offers no service.
pub fn module_definition() -> ModuleDefinition {
    ModuleDefinition::new(MODULE_NAME, Vec::new())
}

/// The property whose values are folded into `ipv4s`.
const IPV4: &str = "ipv4";
/// The property that holds every `ipv4` value, joined by `,`.
const IPV4S: &str = "ipv4s";

/// Why a management request was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ManagementRejection {
    /// The bytes are not the request message.
    #[error("malformed {message}: {error}")]
    Malformed {
        /// The message expected.
        message: &'static str,
        /// What the decoder said.
        error: prost::DecodeError,
    },
    /// The JSON is not the request message.
    #[error("invalid {message} JSON: {error}")]
    Json {
        /// The message expected.
        message: &'static str,
        /// What the parser said.
        error: serde_json::Error,
    },
    /// A field the request needs is empty.
    #[error("{message} has an empty `{field}`")]
    Missing {
        /// The message.
        message: &'static str,
        /// The empty field.
        field: &'static str,
    },
}

/// A management request, in either encoding.
#[derive(Debug, Clone, Copy)]
pub enum Encoded<'a> {
    /// Protobuf, as gRPC delivers it.
    Protobuf(&'a [u8]),
    /// The proto3 JSON mapping, as HTTP delivers it.
    Json(&'a [u8]),
}

impl Encoded<'_> {
    fn protocol(self) -> Protocol {
        match self {
            Encoded::Protobuf(_) => Protocol::Grpc,
            Encoded::Json(_) => Protocol::Http,
        }
    }

    fn decode<M: Message + Default + DeserializeOwned>(self, message: &'static str) -> Result<M, ManagementRejection> {
        match self {
            Encoded::Protobuf(bytes) => {
                M::decode(bytes).map_err(|error| ManagementRejection::Malformed { message, error })
            }
            Encoded::Json(bytes) => {
                serde_json::from_slice(bytes).map_err(|error| ManagementRejection::Json { message, error })
            }
        }
    }
}

/// Turns management requests into instance and service metadata sources.
pub struct ManagementReceiver {
    dispatcher: SourceDispatcherRef,
    buckets: TimeBuckets,
    naming: NamingControl,
    metrics: ReceiverTelemetry,
}

impl ManagementReceiver {
    /// A receiver feeding `dispatcher`; names are cut to `naming`, minutes taken in `buckets`.
    pub fn new(
        dispatcher: SourceDispatcherRef,
        buckets: TimeBuckets,
        naming: NamingControl,
        metrics: ReceiverTelemetry,
    ) -> Self {
        Self { dispatcher, buckets, naming, metrics }
    }

    /// `reportInstanceProperties`: the instance's properties.
    pub fn report_properties(&self, request: Encoded<'_>) -> Result<(), ManagementRejection> {
        self.receive(request, |receiver| {
            let properties: InstanceProperties = request.decode("InstanceProperties")?;
            let (service, instance) =
                receiver.names("InstanceProperties", &properties.service, &properties.service_instance)?;
            receiver.dispatcher.dispatch(&Source::ServiceInstanceUpdate(ServiceInstanceUpdate {
                service_name: Cow::Borrowed(service),
                name: Cow::Borrowed(instance),
                properties: Some(properties_json(&properties)),
                time_bucket: receiver.current_minute(),
            }));
            Ok(())
        })
    }

    /// `keepAlive`: the instance's heartbeat, and its service's layer.
    pub fn keep_alive(&self, request: Encoded<'_>) -> Result<(), ManagementRejection> {
        self.receive(request, |receiver| {
            let ping: InstancePingPkg = request.decode("InstancePingPkg")?;
            let (service, instance) = receiver.names("InstancePingPkg", &ping.service, &ping.service_instance)?;
            let time_bucket = receiver.current_minute();
            receiver.dispatcher.dispatch(&Source::ServiceInstanceUpdate(ServiceInstanceUpdate {
                service_name: Cow::Borrowed(service),
                name: Cow::Borrowed(instance),
                properties: None,
                time_bucket,
            }));
            receiver.dispatcher.dispatch(&Source::ServiceMeta(ServiceMeta {
                name: Cow::Borrowed(service),
                layer: Layer::from_request_name(&ping.layer),
                time_bucket,
            }));
            Ok(())
        })
    }

    /// Counts a request that could not be read at all.
    pub fn reject_unreadable(&self, protocol: Protocol) {
        self.metrics.of(protocol).reject();
    }

    fn receive(
        &self,
        request: Encoded<'_>,
        handle: impl FnOnce(&Self) -> Result<(), ManagementRejection>,
    ) -> Result<(), ManagementRejection> {
        let metrics = self.metrics.of(request.protocol());
        let _timer = metrics.time();
        handle(self).inspect_err(|rejection| {
            metrics.reject();
            static LOG: LogLimit = LogLimit::default_budget();
            if let Some(left_out) = LOG.admit() {
                warn!(%rejection, left_out, "management request rejected");
            }
        })
    }

    fn names<'a>(
        &self,
        message: &'static str,
        service: &'a str,
        instance: &'a str,
    ) -> Result<(&'a str, &'a str), ManagementRejection> {
        if service.is_empty() {
            return Err(ManagementRejection::Missing { message, field: "service" });
        }
        if instance.is_empty() {
            return Err(ManagementRejection::Missing { message, field: "serviceInstance" });
        }
        let service = self.naming.service(service);
        Ok((service, self.naming.instance(service, instance)))
    }

    fn current_minute(&self) -> i64 {
        self.buckets.minute(oap_model::now_ms()).unwrap_or_default()
    }
}

/// The properties as SkyWalking stores them: a JSON object of every property but `ipv4` (a
/// repeated key keeps its last value), plus `ipv4s`.
fn properties_json(request: &InstanceProperties) -> String {
    let mut properties = serde_json::Map::new();
    let mut ipv4s: Vec<&str> = Vec::new();
    for property in &request.properties {
        if property.key == IPV4 {
            ipv4s.push(&property.value);
        } else {
            properties.insert(property.key.clone(), property.value.clone().into());
        }
    }
    properties.insert(IPV4S.to_owned(), ipv4s.join(",").into());
    serde_json::Value::Object(properties).to_string()
}

/// The gRPC face of the receiver.
struct ManagementRpcs(Arc<ManagementReceiver>);

#[derive(Debug, Clone, Copy)]
enum ManagementMethod {
    ReportInstanceProperties,
    KeepAlive,
}

impl AgentRpcs for ManagementRpcs {
    type Method = ManagementMethod;

    fn method(&self, name: &str) -> Option<(ManagementMethod, Arity)> {
        match name {
            "reportInstanceProperties" => Some((ManagementMethod::ReportInstanceProperties, Arity::Unary)),
            "keepAlive" => Some((ManagementMethod::KeepAlive, Arity::Unary)),
            _ => None,
        }
    }

    fn handle(&self, method: ManagementMethod, message: Bytes) -> Result<(), Status> {
        let request = Encoded::Protobuf(&message);
        match method {
            ManagementMethod::ReportInstanceProperties => self.0.report_properties(request),
            ManagementMethod::KeepAlive => self.0.keep_alive(request),
        }
        .map_err(|rejection| Status::invalid_argument(rejection.to_string()))
    }

    fn reject(&self, _method: ManagementMethod, status: &Status) {
        static LOG: LogLimit = LogLimit::default_budget();
        if let Some(left_out) = LOG.admit() {
            warn!(%status, left_out, "management request refused by the transport");
        }
        self.0.reject_unreadable(Protocol::Grpc);
    }
}

type Handler = fn(&ManagementReceiver, Encoded<'_>) -> Result<(), ManagementRejection>;

fn http_reply(receiver: &ManagementReceiver, body: Result<Bytes, BytesRejection>, handler: Handler) -> Response {
    http::reply_one(body, || receiver.reject_unreadable(Protocol::Http), |json| handler(receiver, Encoded::Json(json)))
}

async fn post_report_properties(
    State(receiver): State<Arc<ManagementReceiver>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    http_reply(&receiver, body, ManagementReceiver::report_properties)
}

async fn post_keep_alive(
    State(receiver): State<Arc<ManagementReceiver>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    http_reply(&receiver, body, ManagementReceiver::keep_alive)
}

/// `receiver-register.default` takes no settings.
#[derive(Debug, Default, Deserialize)]
pub struct RegisterReceiverConfig {}

/// Builds the `default` provider of `receiver-register`.
pub struct RegisterReceiverProviderFactory;

impl TypedProviderFactory for RegisterReceiverProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "default";
    const REQUIRES: &'static [&'static str] = &[oap_core::MODULE_NAME, oap_telemetry::MODULE_NAME];
    type Config = RegisterReceiverConfig;

    fn build(&self, _config: RegisterReceiverConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        Ok(Box::new(RegisterReceiverProvider))
    }
}

struct RegisterReceiverProvider;

#[async_trait]
impl ModuleProvider for RegisterReceiverProvider {
    async fn prepare(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        Ok(())
    }

    async fn start(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let grpc = ctx.service::<GrpcServerRef>()?;
        let metrics = ctx.service::<MetricsCreatorRef>()?;
        let receiver = Arc::new(ManagementReceiver::new(
            ctx.service::<SourceDispatcherRef>()?,
            ctx.service::<TimeBuckets>()?,
            ctx.service::<NamingControl>()?,
            ReceiverTelemetry::new(metrics.as_ref(), "management", "management")?,
        ));
        let max = grpc.max_message_size();
        let rpcs = Arc::new(ManagementRpcs(receiver.clone()));
        grpc.add_service(AgentService::<_, ManagementV3>::new(rpcs.clone(), max))?;
        grpc.add_service(AgentService::<_, ManagementCompat>::new(rpcs, max))?;
        ctx.service::<HttpServerRef>()?.add_routes_with_body_limit(
            Router::new()
                .route("/v3/management/reportProperties", post(post_report_properties))
                .route("/v3/management/keepAlive", post(post_keep_alive))
                .with_state(receiver),
            max,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use oap_core::{SourceConsumer, SourceDispatcher};
    use oap_proto::v3::KeyStringValuePair;

    use super::*;

    /// Records what it is handed: a line per source, and the properties reported.
    #[derive(Default)]
    struct Recorder {
        lines: Mutex<Vec<String>>,
        properties: Mutex<Vec<String>>,
    }

    impl SourceConsumer for Recorder {
        fn accept(&self, source: &Source<'_>) {
            let line = match source {
                Source::ServiceInstanceUpdate(update) => {
                    if let Some(properties) = &update.properties {
                        self.properties.lock().expect("lock").push(properties.clone());
                    }
                    format!(
                        "instance {}/{} properties={}",
                        update.service_name,
                        update.name,
                        update.properties.is_some()
                    )
                }
                Source::ServiceMeta(meta) => format!("service {} {}", meta.name, meta.layer),
                other => format!("unexpected {}", other.scope_name()),
            };
            self.lines.lock().expect("lock").push(line);
        }
    }

    fn receiver(naming: NamingControl) -> (ManagementReceiver, Arc<Recorder>) {
        let dispatcher = Arc::new(SourceDispatcher::new());
        let recorder = Arc::new(Recorder::default());
        dispatcher.subscribe(recorder.clone()).expect("before dispatch");
        let metrics = oap_telemetry::MetricsRegistry::new();
        let metrics = ReceiverTelemetry::new(&metrics, "management", "management").expect("metrics");
        (ManagementReceiver::new(dispatcher, TimeBuckets::utc(), naming, metrics), recorder)
    }

    fn pair(key: &str, value: &str) -> KeyStringValuePair {
        KeyStringValuePair { key: key.to_owned(), value: value.to_owned() }
    }

    #[test]
    fn properties_fold_every_ipv4_into_ipv4s() {
        let (receiver, recorder) = receiver(NamingControl::default());
        let request = InstanceProperties {
            service: "py-backend".to_owned(),
            service_instance: "py-backend-1@127.0.0.1".to_owned(),
            properties: vec![
                pair("language", "python"),
                pair("ipv4", "127.0.0.1"),
                pair("hostname", "host-1"),
                pair("ipv4", "10.0.0.7"),
            ],
            layer: String::new(),
        };
        receiver.report_properties(Encoded::Protobuf(&request.encode_to_vec())).expect("accepted");
        assert_eq!(
            *recorder.lines.lock().expect("lock"),
            ["instance py-backend/py-backend-1@127.0.0.1 properties=true"]
        );
        let properties = recorder.properties.lock().expect("lock");
        let properties: serde_json::Value = serde_json::from_str(&properties[0]).expect("a JSON object");
        assert_eq!(
            properties,
            serde_json::json!({"language": "python", "hostname": "host-1", "ipv4s": "127.0.0.1,10.0.0.7"})
        );
    }

    #[test]
    fn keep_alive_is_a_heartbeat_and_a_service_in_its_layer() {
        let (receiver, recorder) = receiver(NamingControl::default());
        let json = br#"{"service": "node-frontend", "serviceInstance": "i-1", "layer": ""}"#;
        receiver.keep_alive(Encoded::Json(json)).expect("accepted");
        let mesh = InstancePingPkg {
            service: "mesh-svc".to_owned(),
            service_instance: "pod-1".to_owned(),
            layer: "MESH".to_owned(),
        };
        receiver.keep_alive(Encoded::Protobuf(&mesh.encode_to_vec())).expect("accepted");
        let odd = br#"{"service": "s", "serviceInstance": "i", "layer": "NO_SUCH_LAYER"}"#;
        receiver.keep_alive(Encoded::Json(odd)).expect("accepted");
        assert_eq!(
            *recorder.lines.lock().expect("lock"),
            [
                "instance node-frontend/i-1 properties=false",
                "service node-frontend GENERAL",
                "instance mesh-svc/pod-1 properties=false",
                "service mesh-svc MESH",
                "instance s/i properties=false",
                "service s UNDEFINED",
            ]
        );
    }

    #[test]
    fn names_are_cut_to_the_limits_and_empty_names_rejected() {
        let naming = NamingControl::new(4, 3, 150);
        let (receiver, recorder) = receiver(naming);
        receiver
            .keep_alive(Encoded::Json(br#"{"service": "frontend", "serviceInstance": "instance"}"#))
            .expect("accepted");
        let missing = receiver.keep_alive(Encoded::Json(br#"{"service": "", "serviceInstance": "i"}"#));
        assert!(matches!(missing, Err(ManagementRejection::Missing { field: "service", .. })), "{missing:?}");
        let garbage = receiver.report_properties(Encoded::Protobuf(&[0xff, 0xff, 0xff]));
        assert!(matches!(garbage, Err(ManagementRejection::Malformed { .. })), "{garbage:?}");
        assert_eq!(
            *recorder.lines.lock().expect("lock"),
            ["instance fron/ins properties=false", "service fron GENERAL"]
        );
    }
}
