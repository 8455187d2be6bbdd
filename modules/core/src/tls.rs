//! TLS for the gRPC and REST ports, with rustls and its ring provider only.
//!
//! A server's identity is a PEM private key (PKCS#8, PKCS#1 or SEC1) and a PEM certificate
//! chain, leaf first, as SkyWalking's `gRPCSslKeyPath`/`gRPCSslCertChainPath` and
//! `restSSLKeyPath`/`restSSLCertChainPath` name them. Both are read once, at start: a missing or
//! unreadable file, one with no key or no certificate, or a key that does not fit the
//! certificate stops the start with an error naming the path. (SkyWalking reloads the files when
//! they change; this server needs a restart.)
//!
//! The REST port's handshakes run beside the accept loop ([`TlsListener`]), so a client that
//! connects and never says hello holds one slot for at most [`HANDSHAKE_TIMEOUT`] and blocks
//! nobody; the gRPC port's are tonic's, with the same timeout.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes the REST port runs at once at most; past it, new connections wait in the
/// listen backlog.
const MAX_HANDSHAKES: usize = 1024;

/// Why a key, certificate chain or CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read the {what} `{path}`: {source}")]
    Read {
        /// What the file is for: `private key`, `certificate chain`, `trusted CA certificates`.
        what: &'static str,
        /// The path as configured.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is read but holds nothing usable of its kind.
    #[error("the {what} `{path}` {reason}")]
    Content {
        /// What the file is for.
        what: &'static str,
        /// The path as configured.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key and the chain were read but rustls refuses them together (e.g. the key is not
    /// the certificate's).
    #[error("the private key `{key_path}` and the certificate chain `{cert_chain_path}` cannot serve TLS: {source}")]
    Refused {
        /// The key's path.
        key_path: String,
        /// The chain's path.
        cert_chain_path: String,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
}

/// The ring provider, the only one this build carries. rustls 0.23.48 deprecates it because it
/// has no post-quantum key exchange (X25519MLKEM768); the classical X25519 and ECDHE groups
/// remain. aws-lc-rs, which has it, needs a C build of its own that this project avoids.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &str, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(Path::new(path)).map_err(|source| TlsError::Read { what, path: path.to_owned(), source })
}

/// Every PEM certificate of `bytes`; at least one.
fn certificates(bytes: &[u8], path: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let content = |reason: String| TlsError::Content { what, path: path.to_owned(), reason };
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| content(format!("is not valid PEM: {error}")))?;
    if certificates.is_empty() {
        return Err(content("holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_owned()));
    }
    Ok(certificates)
}

/// A server's certificate chain and private key, read and checked.
#[derive(Clone)]
pub struct ServerIdentity {
    cert_chain_pem: Vec<u8>,
    key_pem: Vec<u8>,
    cert_chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity").field("certificates", &self.cert_chain.len()).finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Reads the PEM key at `key_path` and the PEM chain at `cert_chain_path`, and checks that
    /// rustls can serve with them.
    pub fn load(key_path: &str, cert_chain_path: &str) -> Result<Self, TlsError> {
        let key_pem = read(key_path, "private key")?;
        let cert_chain_pem = read(cert_chain_path, "certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::Content {
            what: "private key",
            path: key_path.to_owned(),
            reason: format!("holds no usable PEM private key: {error}"),
        })?;
        let cert_chain = certificates(&cert_chain_pem, cert_chain_path, "certificate chain")?;
        let identity = Self { cert_chain_pem, key_pem, cert_chain, key: Arc::new(key) };
        identity.server_config(&[]).map_err(|source| TlsError::Refused {
            key_path: key_path.to_owned(),
            cert_chain_path: cert_chain_path.to_owned(),
            source,
        })?;
        Ok(identity)
    }

    fn server_config(&self, alpn: &[&[u8]]) -> Result<ServerConfig, rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(config)
    }

    /// The identity as tonic's server takes it.
    pub fn tonic_identity(&self) -> tonic::transport::Identity {
        tonic::transport::Identity::from_pem(&self.cert_chain_pem, &self.key_pem)
    }

    /// An acceptor offering `alpn` (e.g. `http/1.1`).
    pub fn acceptor(&self, alpn: &[&[u8]]) -> Result<TlsAcceptor, rustls::Error> {
        Ok(TlsAcceptor::from(Arc::new(self.server_config(alpn)?)))
    }
}

/// The PEM certificates of `path`, as the CA a client trusts (`gRPCSslTrustedCAPath`).
pub fn trusted_ca(path: &str) -> Result<tonic::transport::Certificate, TlsError> {
    let what = "trusted CA certificates";
    let pem = read(path, what)?;
    certificates(&pem, path, what)?;
    Ok(tonic::transport::Certificate::from_pem(pem))
}

/// A TCP listener whose connections are served only once their TLS handshake is done; the
/// handshakes run concurrently, each within [`HANDSHAKE_TIMEOUT`].
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    /// Serves TLS with `acceptor` on `tcp`.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
        Self { tcp, acceptor, handshakes: JoinSet::new() }
    }

    fn start_handshake(&mut self, stream: TcpStream, peer: SocketAddr) {
        let acceptor = self.acceptor.clone();
        self.handshakes.spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => Some((stream, peer)),
                Ok(Err(error)) => {
                    debug!(%peer, %error, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    None
                }
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    /// Cancel-safe, as axum needs: both the TCP accept and the wait for a handshake are.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let room = self.handshakes.len() < MAX_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if room => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        self.start_handshake(stream, peer);
                    }
                    Err(error) => accept_failed(error).await,
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// As axum's own listener does: a connection that failed before it was accepted is skipped;
/// anything else (out of file descriptors) is logged and waited out.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    warn!(%error, "cannot accept a connection on the REST port; trying again in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: std::path::PathBuf,
    }

    impl Files {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("oap-core-tls-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("scratch dir");
            Self { dir }
        }

        fn write(&self, name: &str, text: &str) -> String {
            let path = self.dir.join(name);
            std::fs::write(&path, text).expect("write");
            path.display().to_string()
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn self_signed() -> (String, String) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    #[test]
    fn a_self_signed_identity_loads() {
        let files = Files::new("ok");
        let (cert, key) = self_signed();
        let identity = ServerIdentity::load(&files.write("key.pem", &key), &files.write("cert.pem", &cert))
            .expect("a usable identity");
        assert!(identity.acceptor(&[b"http/1.1"]).is_ok());
        assert!(trusted_ca(&files.write("ca.pem", &cert)).is_ok());
    }

    #[test]
    fn each_unusable_file_is_an_error_naming_its_path() {
        let files = Files::new("bad");
        let (cert, key) = self_signed();
        let (other_cert, _) = self_signed();
        let (key_path, cert_path) = (files.write("key.pem", &key), files.write("cert.pem", &cert));
        let missing = files.dir.join("missing.pem").display().to_string();

        let error = ServerIdentity::load(&missing, &cert_path).expect_err("no key file");
        assert!(error.to_string().starts_with(&format!("cannot read the private key `{missing}`")), "{error}");
        let error = ServerIdentity::load(&key_path, &missing).expect_err("no chain file");
        assert!(error.to_string().starts_with(&format!("cannot read the certificate chain `{missing}`")), "{error}");

        let error = ServerIdentity::load(&cert_path, &cert_path).expect_err("a certificate is no key");
        assert!(error.to_string().contains(&format!("private key `{cert_path}` holds no usable")), "{error}");
        let error = ServerIdentity::load(&key_path, &key_path).expect_err("a key is no certificate");
        assert!(error.to_string().contains(&format!("chain `{key_path}` holds no PEM certificate")), "{error}");

        let other_path = files.write("other.pem", &other_cert);
        let error = ServerIdentity::load(&key_path, &other_path).expect_err("the key is not the certificate's");
        assert!(error.to_string().contains("cannot serve TLS"), "{error}");

        let error = trusted_ca(&key_path).expect_err("a key is no CA");
        assert!(error.to_string().contains("holds no PEM certificate"), "{error}");
    }
}
