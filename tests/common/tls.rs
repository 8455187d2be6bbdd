//! A throwaway certificate authority for a test: a CA, and a server certificate it signed for
//! `localhost` and `127.0.0.1`, written as PEM files a server is pointed at; and clients (gRPC,
//! HTTP/1.1 over TLS) that trust this CA and nothing else.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// The CA and the server's files.
pub struct TestCa {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// Where the CA certificate is.
    pub ca_path: PathBuf,
    /// The server's private key.
    pub key_path: PathBuf,
    /// The server's certificate chain (its certificate only; the CA is the trust anchor).
    pub cert_path: PathBuf,
}

impl TestCa {
    /// A new CA and server certificate, written into `dir`.
    pub fn new(dir: &Path) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "oap-rs test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA certificate");

        let server_key = KeyPair::generate().expect("server key");
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("server params");
        server_params.distinguished_name.push(DnType::CommonName, "oap-server");
        let server = server_params.signed_by(&server_key, &ca).expect("server certificate");

        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write a PEM file");
            path
        };
        Self {
            ca_pem: ca.pem(),
            ca_path: write("ca.pem", &ca.pem()),
            key_path: write("server-key.pem", &server_key.serialize_pem()),
            cert_path: write("server-cert.pem", &server.pem()),
        }
    }

    /// The environment that turns TLS on for the gRPC port with these files.
    pub fn grpc_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SW_CORE_GRPC_SSL_ENABLED", "true".to_owned()),
            ("SW_CORE_GRPC_SSL_KEY_PATH", self.key_path.display().to_string()),
            ("SW_CORE_GRPC_SSL_CERT_CHAIN_PATH", self.cert_path.display().to_string()),
        ]
    }

    /// The environment that turns TLS on for the REST port with these files.
    pub fn rest_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SW_CORE_REST_SSL_ENABLED", "true".to_owned()),
            ("SW_CORE_REST_SSL_KEY_PATH", self.key_path.display().to_string()),
            ("SW_CORE_REST_SSL_CERT_CHAIN_PATH", self.cert_path.display().to_string()),
        ]
    }

    /// tonic's client TLS, trusting this CA only.
    pub fn grpc_client_tls(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .domain_name("localhost")
    }

    /// A rustls client configuration (ring), trusting this CA only.
    pub fn rustls_client(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("the CA certificate");
        roots.add(ca).expect("a trust anchor");
        #[allow(deprecated)] // ring has no post-quantum key exchange; the server uses ring too
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    }

    /// A TLS connection to `port` on loopback, as `localhost`, trusting this CA only.
    pub async fn connect(&self, port: u16) -> TlsConnection {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.rustls_client()));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("a server name");
        connector.connect(name, tcp).await.expect("TLS handshake")
    }

    /// One HTTP/1.1 request over TLS to `port` (the tests' HTTP client has no TLS): `method`
    /// `path` with `headers` and `body`; the whole response once the server closes.
    pub async fn https(&self, port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut connection = self.connect(port).await;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        connection.write_all(head.as_bytes()).await.expect("send the head");
        connection.write_all(body).await.expect("send the body");
        let mut response = Vec::new();
        // The server may close without a TLS close_notify: the end either way.
        let _ = tokio::time::timeout(Duration::from_secs(15), connection.read_to_end(&mut response)).await;
        Response::parse(&response)
    }
}

/// A client's TLS connection.
pub type TlsConnection = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// An HTTP response, as read off the wire.
#[derive(Debug)]
pub struct Response {
    /// The status code (0 if there was no status line).
    pub status: u16,
    /// The head, status line and headers, lowercase.
    pub head: String,
    /// The body, as it came (no chunked decoding).
    pub body: String,
}

impl Response {
    fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        Self { status, head: head.to_ascii_lowercase(), body: body.to_owned() }
    }
}
