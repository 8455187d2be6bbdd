//! The real `oap-server` binary's doors, tried as agents, users and careless clients would:
//! the agent token on every agent gRPC service (and not on health, nor on the HTTP receivers,
//! as in SkyWalking), TLS on the gRPC port with a CA made by the test, HTTPS on the REST port
//! with basic authentication on the query API, and the REST port's body limit. Refusals are
//! read back from `/metrics` and the server's log.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::agent::{RawSegmentCollection, Scrape, segment_bytes, segment_json};
use common::tls::{TestCa, TlsConnection};
use common::{OapProcess, Ports, scratch_dir};
use oap_loadgen::codec::RawCodec;
use prost::Message;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const TOKEN: &str = "s3cret-t0ken";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("test runtime")
}

fn start(name: &str, extra: Vec<(&'static str, String)>) -> (OapProcess, Ports) {
    OapProcess::start(scratch_dir(name), &extra, &[])
}

#[derive(Debug, Clone, Copy)]
enum Arity {
    Unary,
    Stream,
}

/// Every agent rpc this server serves: each service under each of its names, with one of its
/// methods.
const AGENT_RPCS: &[(&str, Arity)] = &[
    ("/skywalking.v3.TraceSegmentReportService/collect", Arity::Stream),
    ("/skywalking.v3.TraceSegmentReportService/collectInSync", Arity::Unary),
    ("/TraceSegmentReportService/collect", Arity::Stream),
    ("/skywalking.v3.SpanAttachedEventReportService/collect", Arity::Stream),
    ("/skywalking.v3.ManagementService/keepAlive", Arity::Unary),
    ("/ManagementService/reportInstanceProperties", Arity::Unary),
    ("/skywalking.v3.MeterReportService/collect", Arity::Stream),
    ("/MeterReportService/collectBatch", Arity::Stream),
    ("/skywalking.v3.LogReportService/collect", Arity::Stream),
    ("/skywalking.v3.ProfileTask/getProfileTaskCommands", Arity::Unary),
    ("/ProfileTask/collectSnapshot", Arity::Stream),
    ("/skywalking.v3.ConfigurationDiscoveryService/fetchConfigurations", Arity::Unary),
    ("/skywalking.v3.EventService/collect", Arity::Stream),
    ("/skywalking.v3.JVMMetricReportService/collect", Arity::Stream),
    ("/JVMMetricReportService/collect", Arity::Stream),
    ("/skywalking.v3.CLRMetricReportService/collect", Arity::Stream),
    ("/CLRMetricReportService/collect", Arity::Stream),
];

/// Calls `path` with `messages`, carrying `token` as the `authentication` metadata if given.
async fn call(
    channel: &Channel,
    path: &'static str,
    arity: Arity,
    messages: Vec<Vec<u8>>,
    token: Option<&str>,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.map_err(|error| Status::unavailable(error.to_string()))?;
    let path = PathAndQuery::from_static(path);
    let mut messages = messages.into_iter().map(Bytes::from);
    match arity {
        Arity::Unary => {
            let request = with_token(Request::new(messages.next().unwrap_or_default()), token);
            grpc.unary(request, path, RawCodec).await.map(drop)
        }
        Arity::Stream => {
            let request = with_token(Request::new(tokio_stream::iter(messages.collect::<Vec<_>>())), token);
            grpc.client_streaming(request, path, RawCodec).await.map(drop)
        }
    }
}

fn with_token<T>(mut request: Request<T>, token: Option<&str>) -> Request<T> {
    if let Some(token) = token {
        let token: MetadataValue<_> = token.parse().expect("an ASCII token");
        request.metadata_mut().insert("authentication", token);
    }
    request
}

async fn plain_channel(port: u16) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{port}")).expect("uri").connect().await.expect("connect")
}

async fn health(channel: &Channel) -> Result<ServingStatus, Status> {
    let reply = HealthClient::new(channel.clone()).check(HealthCheckRequest { service: String::new() }).await?;
    Ok(reply.into_inner().status())
}

#[test]
fn every_agent_service_asks_for_the_token_and_health_does_not() {
    let (server, ports) = start("agent-token", vec![("SW_AUTHENTICATION", TOKEN.to_owned())]);
    let refused = runtime().block_on(async {
        let channel = plain_channel(ports.grpc).await;
        let mut refused = 0;
        for &(path, arity) in AGENT_RPCS {
            for token in [None, Some("wrong"), Some(&TOKEN[1..]), Some("s3cret-t0ken ")] {
                let status = call(&channel, path, arity, Vec::new(), token).await.expect_err("refused");
                assert_eq!(status.code(), Code::Unauthenticated, "{path} with {token:?}: {status:?}");
                refused += 1;
            }
            // With the token the call reaches the receiver, which answers as it would (an empty
            // management message is refused by the receiver itself, for its empty names).
            if let Err(status) = call(&channel, path, arity, Vec::new(), Some(TOKEN)).await {
                assert_ne!(status.code(), Code::Unauthenticated, "{path} with the token: {status:?}");
            }
        }

        // An agent's segments with the token are taken, and what was refused was never read.
        let batch =
            RawSegmentCollection { segments: vec![segment_bytes("py-frontend-0"), segment_bytes("py-backend-0")] };
        let path = "/skywalking.v3.TraceSegmentReportService/collectInSync";
        call(&channel, path, Arity::Unary, vec![batch.encode_to_vec()], Some(TOKEN)).await.expect("taken");
        let segments = vec![segment_bytes("py-frontend-1")];
        let path = "/skywalking.v3.TraceSegmentReportService/collect";
        let status = call(&channel, path, Arity::Stream, segments, None).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated);
        refused += 1;

        // Health is asked of no one for a token, as in SkyWalking.
        assert_eq!(health(&channel).await.expect("health answers"), ServingStatus::Serving);
        // Nor are the HTTP receivers.
        let response = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/v3/segment", ports.rest))
            .body(segment_json(3))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::OK);

        let scrape = Scrape::from_port(ports.telemetry).await;
        assert_eq!(scrape.value("grpc_authentication_failure_count"), refused as f64);
        // The 2 segments of the batch, and none of the refused stream.
        assert_eq!(scrape.value(r#"trace_in_latency_count{protocol="grpc"}"#), 2.0);
        refused
    });
    // Every refusal counted, but only a few logged.
    let log = server.log();
    let logged = log.lines().filter(|line| line.contains("agent call refused")).count();
    assert!((1..=3).contains(&logged), "{logged} lines for {refused} refusals:\n{log}");
    assert!(!log.contains(TOKEN), "the token is never logged");
}

#[test]
fn grpc_over_tls_serves_clients_that_trust_the_ca_and_no_one_else() {
    let dir = scratch_dir("grpc-tls-files");
    let ca = TestCa::new(&dir);
    let (_server, ports) = start("grpc-tls", ca.grpc_env());
    runtime().block_on(async {
        let address = format!("https://127.0.0.1:{}", ports.grpc);
        let endpoint = Channel::from_shared(address.clone()).expect("uri");
        let channel = endpoint.tls_config(ca.grpc_client_tls()).expect("TLS").connect().await.expect("TLS connect");
        assert_eq!(health(&channel).await.expect("health over TLS"), ServingStatus::Serving);
        let batch =
            RawSegmentCollection { segments: vec![segment_bytes("py-frontend-0"), segment_bytes("py-backend-0")] };
        let path = "/skywalking.v3.TraceSegmentReportService/collectInSync";
        call(&channel, path, Arity::Unary, vec![batch.encode_to_vec()], None).await.expect("segments over TLS");
        let scrape = Scrape::from_port(ports.telemetry).await;
        assert_eq!(scrape.value(r#"trace_in_latency_count{protocol="grpc"}"#), 2.0);

        // A plain-text client gets no answer: the port speaks TLS only.
        let plain = async {
            let channel = Channel::from_shared(format!("http://127.0.0.1:{}", ports.grpc))
                .expect("uri")
                .connect_timeout(Duration::from_secs(5))
                .connect()
                .await
                .map_err(|error| Status::unavailable(error.to_string()))?;
            health(&channel).await
        };
        let refused = tokio::time::timeout(Duration::from_secs(15), plain).await.expect("refused, not hung");
        assert!(refused.is_err(), "plain text was served: {refused:?}");
        // Nor does a client that does not trust the CA.
        let untrusting = tonic::transport::ClientTlsConfig::new().domain_name("localhost");
        let endpoint = Channel::from_shared(address).expect("uri").tls_config(untrusting).expect("TLS");
        let untrusted = async {
            let channel = endpoint.connect().await.map_err(|error| Status::unavailable(error.to_string()))?;
            health(&channel).await
        };
        let refused = tokio::time::timeout(Duration::from_secs(15), untrusted).await.expect("refused, not hung");
        assert!(refused.is_err(), "a client that does not trust the CA was served: {refused:?}");

        // The server goes on serving the client that trusts it.
        assert_eq!(health(&channel).await.expect("health over TLS"), ServingStatus::Serving);
    });
}

#[test]
fn an_unusable_tls_file_stops_the_start_and_names_it() {
    let dir = scratch_dir("tls-missing-files");
    let ca = TestCa::new(&dir);
    let missing = dir.join("no-such-key.pem").display().to_string();
    let grpc_env = vec![
        ("SW_CORE_GRPC_SSL_ENABLED", "true".to_owned()),
        ("SW_CORE_GRPC_SSL_KEY_PATH", missing.clone()),
        ("SW_CORE_GRPC_SSL_CERT_CHAIN_PATH", ca.cert_path.display().to_string()),
    ];
    let ca_path = ca.ca_path.display().to_string();
    let rest_env = vec![
        ("SW_CORE_REST_SSL_ENABLED", "true".to_owned()),
        // A certificate where the key should be.
        ("SW_CORE_REST_SSL_KEY_PATH", ca_path.clone()),
        ("SW_CORE_REST_SSL_CERT_CHAIN_PATH", ca.cert_path.display().to_string()),
    ];
    for (name, extra, expected) in [
        ("grpc-tls-missing", grpc_env, format!("cannot read the private key `{missing}`")),
        ("rest-tls-not-a-key", rest_env, format!("the private key `{ca_path}` holds no usable PEM private key")),
    ] {
        let mut env = Ports::any().env();
        env.extend(extra);
        let mut server = OapProcess::spawn(scratch_dir(name), &env, &[]);
        let status = server.wait_exit(READY_TIMEOUT).expect("the server stops");
        assert!(!status.success(), "{name}: {status}");
        let log = server.log();
        assert!(log.contains(&expected), "{name}: expected `{expected}` in:\n{log}");
    }
}

#[test]
fn the_query_api_over_https_asks_for_credentials_and_bounds_bodies() {
    let dir = scratch_dir("rest-tls-files");
    let ca = TestCa::new(&dir);
    let mut extra = ca.rest_env();
    extra.push(("SW_QUERY_BASIC_AUTH_USER", "admin".to_owned()));
    extra.push(("SW_QUERY_BASIC_AUTH_PASSWORD", "pa:ss word".to_owned()));
    let (_server, ports) = start("rest-tls", extra);
    runtime().block_on(async {
        let basic = |credentials: &str| format!("Basic {}", base64(credentials));
        let graphql = |authorization: Option<String>| {
            let ca = &ca;
            async move {
                let mut headers = vec![("content-type", "application/json".to_owned())];
                headers.extend(authorization.map(|value| ("authorization", value)));
                let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
                ca.https(ports.rest, "POST", "/graphql", &headers, br#"{"query": "{ version }"}"#).await
            }
        };

        // Without credentials, or with wrong ones: 401 and a challenge.
        for authorization in [None, Some(basic("admin:pa:ss")), Some(basic("root:pa:ss word"))] {
            let response = graphql(authorization.clone()).await;
            assert_eq!(response.status, 401, "{authorization:?}: {response:?}");
            assert!(response.head.contains("www-authenticate: basic realm="), "{response:?}");
        }
        let response = ca.https(ports.rest, "GET", "/status/config/ttl", &[], b"").await;
        assert_eq!(response.status, 401, "{response:?}");

        // With them, over HTTPS, the query answers.
        let response = graphql(Some(basic("admin:pa:ss word"))).await;
        assert_eq!(response.status, 200, "{response:?}");
        assert!(response.body.contains(r#"{"data":{"version":"#), "{response:?}");
        let credentials = basic("admin:pa:ss word");
        let response =
            ca.https(ports.rest, "GET", "/status/config/ttl", &[("authorization", credentials.as_str())], b"").await;
        assert_eq!(response.status, 200, "{response:?}");

        // The HTTP receivers share the port and its TLS, but not the query API's credentials.
        let segment = segment_json(1);
        let response = ca.https(ports.rest, "POST", "/v3/segment", &[], segment.as_bytes()).await;
        assert_eq!((response.status, response.body.as_str()), (200, "{}"), "{response:?}");

        // Plain HTTP to the HTTPS port is not served.
        let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/status/config/ttl", ports.rest));
        let plain = tokio::time::timeout(Duration::from_secs(15), plain.send()).await.expect("refused, not hung");
        assert!(plain.is_err(), "plain HTTP was served: {plain:?}");

        // A 300 MB GraphQL body is refused on its declared length, before any of it is sent...
        let head = "POST /graphql HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
                    content-length: 314572800\r\n\r\n";
        let mut connection = ca.connect(ports.rest).await;
        connection.write_all(head.as_bytes()).await.expect("send the head");
        let response = read_head(&mut connection).await;
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");

        // ... and one sent without a length is refused once 2 MiB of it has been read; the
        // client gets the 413 while it is still sending, long before 300 MB.
        let (sent, response) = stream_chunked_body(ca.connect(ports.rest).await, 300 << 20).await;
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");
        eprintln!("{sent} bytes of the chunked body sent before the 413");
        assert!(sent < 64 << 20, "{sent} bytes sent before the refusal");

        // The server goes on.
        assert_eq!(graphql(Some(basic("admin:pa:ss word"))).await.status, 200);
    });
}

/// Base64 of `text`, as basic authentication sends credentials.
fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Reads up to the end of a response's head (or the end of the connection), within 15 s.
async fn read_head<R: tokio::io::AsyncRead + Unpin>(reader: &mut R) -> String {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(15);
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(read)) => head.extend_from_slice(&buffer[..read]),
            Err(_) => panic!("no response within 15 s; got {:?}", String::from_utf8_lossy(&head)),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Posts a chunked body of up to `total` bytes to `/graphql`, 1 MiB a chunk, while reading
/// the response; stops sending once the response came or the server stopped taking bytes.
/// Returns the bytes sent and the response head.
async fn stream_chunked_body(connection: TlsConnection, total: usize) -> (usize, String) {
    let (mut reader, mut writer) = tokio::io::split(connection);
    let head = "POST /graphql HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\n\r\n";
    writer.write_all(head.as_bytes()).await.expect("send the head");
    let response = tokio::spawn(async move { read_head(&mut reader).await });
    let chunk = [format!("{:x}\r\n", 1 << 20).into_bytes(), vec![b' '; 1 << 20], b"\r\n".to_vec()].concat();
    let mut sent = 0;
    while sent < total && !response.is_finished() {
        match tokio::time::timeout(Duration::from_secs(5), writer.write_all(&chunk)).await {
            Ok(Ok(())) => sent += 1 << 20,
            // The server closed the connection, or stopped reading it.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    (sent, response.await.expect("the reader"))
}
