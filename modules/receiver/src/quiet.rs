//! Receivers that accept and count what agents send, so the agents stay quiet, while what they
//! carry is not analysed yet: meters, logs, profiling, configuration discovery, events, and the
//! Java and .NET runtime metrics.
//!
//! Each is its own module, named as in SkyWalking (`receiver-meter`, `receiver-log`,
//! `receiver-profile`, `configuration-discovery`, `receiver-event`, `receiver-jvm`,
//! `receiver-clr`), so `application.yml` can turn each off. Every request message is decoded
//! to check it, timed in `<family>_in_latency` and, when malformed, rejected and counted in
//! `<family>_analysis_error_count`; every rpc answers an empty `Commands`, which tells the
//! agent there is no profiling task and no dynamic configuration. The JVM and CLR messages are
//! only counted: this build has no schema for them.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;
use axum::routing::post;
use oap_core::{GrpcServer, GrpcServerRef, HttpServerRef};
use oap_kernel::provider::deserialize_settings;
use oap_kernel::{ConfigError, ModuleContext, ModuleDefinition, ModuleError, ModuleProvider, ProviderFactory};
use oap_proto::v3::{
    ConfigurationSyncRequest, Event, GoProfileData, LogData, MeterData, MeterDataCollection, ProfileTaskCommandQuery,
    ProfileTaskFinishReport, ThreadSnapshot,
};
use oap_telemetry::{LogLimit, MetricsCreatorRef};
use prost::Message;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml_ng::Mapping;
use tonic::Status;
use tracing::warn;

use crate::grpc::names::{
    ClrCompat, ClrV3, ConfigurationDiscoveryV3, EventV3, JvmCompat, JvmV3, LogV3, MeterCompat, MeterV3, ProfileCompat,
    ProfileV3,
};
use crate::grpc::{AgentRpcs, AgentService, Arity};
use crate::http;
use crate::telemetry::{Protocol, ReceiverTelemetry};

/// One rpc of a quiet service: its name, how it sends, and how a request message is checked.
#[derive(Clone, Copy)]
pub struct QuietMethod {
    name: &'static str,
    arity: Arity,
    check: fn(&[u8]) -> Result<(), prost::DecodeError>,
}

impl QuietMethod {
    /// An rpc whose request messages must decode as `M`.
    pub const fn checked<M: Message + Default>(name: &'static str, arity: Arity) -> Self {
        Self { name, arity, check: decodes_as::<M> }
    }

    /// An rpc whose request messages are counted without a check.
    pub const fn unchecked(name: &'static str, arity: Arity) -> Self {
        Self { name, arity, check: |_| Ok(()) }
    }
}

fn decodes_as<M: Message + Default>(bytes: &[u8]) -> Result<(), prost::DecodeError> {
    M::decode(bytes).map(drop)
}

/// A quiet service: checks and counts every request message, answers empty `Commands`.
pub struct QuietRpcs {
    methods: &'static [QuietMethod],
    metrics: ReceiverTelemetry,
}

impl QuietRpcs {
    /// Serves `methods`, counting in `metrics`.
    pub fn new(methods: &'static [QuietMethod], metrics: ReceiverTelemetry) -> Self {
        Self { methods, metrics }
    }
}

impl AgentRpcs for QuietRpcs {
    type Method = usize;

    fn method(&self, name: &str) -> Option<(usize, Arity)> {
        self.methods.iter().position(|method| method.name == name).map(|index| (index, self.methods[index].arity))
    }

    fn handle(&self, method: usize, message: Bytes) -> Result<(), Status> {
        let metrics = self.metrics.of(Protocol::Grpc);
        let _timer = metrics.time();
        let method = &self.methods[method];
        (method.check)(&message).map_err(|error| {
            metrics.reject();
            static LOG: LogLimit = LogLimit::default_budget();
            if let Some(left_out) = LOG.admit() {
                warn!(method = method.name, %error, left_out, "malformed request message rejected");
            }
            Status::invalid_argument(format!("malformed `{}` request: {error}", method.name))
        })
    }

    fn reject(&self, _method: usize, status: &Status) {
        static LOG: LogLimit = LogLimit::default_budget();
        if let Some(left_out) = LOG.admit() {
            warn!(%status, left_out, "request refused by the transport");
        }
        self.metrics.of(Protocol::Grpc).reject();
    }
}

/// An HTTP route of a quiet receiver: a JSON array whose elements are checked one by one.
struct QuietRoute {
    path: &'static str,
    check: fn(&str) -> Result<(), String>,
}

fn parses_as<M: DeserializeOwned>(json: &str) -> Result<(), String> {
    serde_json::from_str::<M>(json).map(drop).map_err(|error| error.to_string())
}

fn event_with_layer(json: &str) -> Result<(), String> {
    let event: Event = serde_json::from_str(json).map_err(|error| error.to_string())?;
    if event.layer.is_empty() {
        return Err("an event needs a `layer`".to_owned());
    }
    Ok(())
}

/// What one quiet receiver module serves.
pub struct QuietReceiver {
    module: &'static str,
    family: &'static str,
    what: &'static str,
    methods: &'static [QuietMethod],
    /// Adds the service under each of its names.
    services: fn(&GrpcServer, Arc<QuietRpcs>) -> Result<(), ModuleError>,
    routes: &'static [QuietRoute],
}

impl QuietReceiver {
    /// The module's definition; it offers no service.
    pub fn module_definition(&self) -> ModuleDefinition {
        ModuleDefinition::new(self.module, Vec::new())
    }

    /// The module's `default` provider.
    pub fn provider_factory(&'static self) -> QuietProviderFactory {
        QuietProviderFactory(self)
    }
}

/// Every quiet receiver of this build.
pub static QUIET_RECEIVERS: &[QuietReceiver] = &[
    QuietReceiver {
        module: "receiver-meter",
        family: "meter",
        what: "meter",
        methods: &[
            QuietMethod::checked::<MeterData>("collect", Arity::ClientStream),
            QuietMethod::checked::<MeterDataCollection>("collectBatch", Arity::ClientStream),
        ],
        services: |grpc, rpcs| {
            grpc.add_service(AgentService::<_, MeterV3>::new(rpcs.clone(), grpc.max_message_size()))?;
            grpc.add_service(AgentService::<_, MeterCompat>::new(rpcs, grpc.max_message_size()))
        },
        routes: &[],
    },
    QuietReceiver {
        module: "receiver-log",
        family: "log",
        what: "log",
        methods: &[QuietMethod::checked::<LogData>("collect", Arity::ClientStream)],
        services: |grpc, rpcs| grpc.add_service(AgentService::<_, LogV3>::new(rpcs, grpc.max_message_size())),
        routes: &[QuietRoute { path: "/v3/logs", check: parses_as::<LogData> }],
    },
    QuietReceiver {
        module: "receiver-profile",
        family: "profile",
        what: "profile",
        methods: &[
            QuietMethod::checked::<ProfileTaskCommandQuery>("getProfileTaskCommands", Arity::Unary),
            QuietMethod::checked::<ThreadSnapshot>("collectSnapshot", Arity::ClientStream),
            QuietMethod::checked::<GoProfileData>("goProfileReport", Arity::ClientStream),
            QuietMethod::checked::<ProfileTaskFinishReport>("reportTaskFinish", Arity::Unary),
        ],
        services: |grpc, rpcs| {
            grpc.add_service(AgentService::<_, ProfileV3>::new(rpcs.clone(), grpc.max_message_size()))?;
            grpc.add_service(AgentService::<_, ProfileCompat>::new(rpcs, grpc.max_message_size()))
        },
        routes: &[],
    },
    QuietReceiver {
        module: "configuration-discovery",
        family: "configuration_discovery",
        what: "configuration discovery",
        methods: &[QuietMethod::checked::<ConfigurationSyncRequest>("fetchConfigurations", Arity::Unary)],
        services: |grpc, rpcs| {
            grpc.add_service(AgentService::<_, ConfigurationDiscoveryV3>::new(rpcs, grpc.max_message_size()))
        },
        routes: &[],
    },
    QuietReceiver {
        module: "receiver-event",
        family: "event",
        what: "event",
        methods: &[QuietMethod::checked::<Event>("collect", Arity::ClientStream)],
        services: |grpc, rpcs| grpc.add_service(AgentService::<_, EventV3>::new(rpcs, grpc.max_message_size())),
        routes: &[QuietRoute { path: "/v3/events", check: event_with_layer }],
    },
    QuietReceiver {
        module: "receiver-jvm",
        family: "jvm",
        what: "JVM metrics",
        methods: &[QuietMethod::unchecked("collect", Arity::ClientStream)],
        services: |grpc, rpcs| {
            grpc.add_service(AgentService::<_, JvmV3>::new(rpcs.clone(), grpc.max_message_size()))?;
            grpc.add_service(AgentService::<_, JvmCompat>::new(rpcs, grpc.max_message_size()))
        },
        routes: &[],
    },
    QuietReceiver {
        module: "receiver-clr",
        family: "clr",
        what: "CLR metrics",
        methods: &[QuietMethod::unchecked("collect", Arity::ClientStream)],
        services: |grpc, rpcs| {
            grpc.add_service(AgentService::<_, ClrV3>::new(rpcs.clone(), grpc.max_message_size()))?;
            grpc.add_service(AgentService::<_, ClrCompat>::new(rpcs, grpc.max_message_size()))
        },
        routes: &[],
    },
];

/// A quiet receiver's `default` provider takes no settings.
#[derive(Debug, Default, Deserialize)]
struct NoSettings {}

/// Builds the `default` provider of one quiet receiver module.
pub struct QuietProviderFactory(&'static QuietReceiver);

impl ProviderFactory for QuietProviderFactory {
    fn module(&self) -> &'static str {
        self.0.module
    }

    fn name(&self) -> &'static str {
        "default"
    }

    fn requires(&self) -> &'static [&'static str] {
        &[oap_core::MODULE_NAME, oap_telemetry::MODULE_NAME]
    }

    fn build(&self, settings: &Mapping) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        deserialize_settings::<NoSettings>(settings, &format!("{}.default", self.0.module))?;
        Ok(Box::new(QuietProvider(self.0)))
    }
}

struct QuietProvider(&'static QuietReceiver);

#[async_trait]
impl ModuleProvider for QuietProvider {
    async fn prepare(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        Ok(())
    }

    async fn start(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let spec = self.0;
        let grpc = ctx.service::<GrpcServerRef>()?;
        let metrics = ctx.service::<MetricsCreatorRef>()?;
        let metrics = ReceiverTelemetry::new(metrics.as_ref(), spec.family, spec.what)?;
        (spec.services)(&grpc, Arc::new(QuietRpcs::new(spec.methods, metrics.clone())))?;
        if spec.routes.is_empty() {
            return Ok(());
        }
        let mut router = Router::new();
        for route in spec.routes {
            let (metrics, check) = (metrics.clone(), route.check);
            router = router.route(
                route.path,
                post(move |body: Result<Bytes, BytesRejection>| async move { accept_array(&metrics, check, body) }),
            );
        }
        ctx.service::<HttpServerRef>()?.add_routes_with_body_limit(router, grpc.max_message_size())
    }
}

/// Checks and counts each element of a JSON array body.
fn accept_array(
    metrics: &ReceiverTelemetry,
    check: fn(&str) -> Result<(), String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let metrics = metrics.of(Protocol::Http);
    http::reply_array(
        body,
        "messages",
        || metrics.reject(),
        |element| {
            let _timer = metrics.time();
            check(element).inspect_err(|_| metrics.reject())
        },
    )
}
