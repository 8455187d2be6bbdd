//! The Elasticsearch-API server the tests run against: osmem-server (installed by
//! `tests/setup-elasticsearch.sh`; `$OAP_ES_BIN` names another binary), started on a free
//! loopback port and stopped when the handle is dropped — or when the test process dies, since
//! the server exits once its standard input closes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running test server.
pub struct TestServer {
    child: Child,
    /// Held open: the server stops when it closes.
    _stdin: Option<ChildStdin>,
    /// Its base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
}

impl TestServer {
    /// Starts a server and waits until it listens.
    pub fn start() -> Result<Self, String> {
        let binary = std::env::var_os("OAP_ES_BIN").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps/elasticsearch/osmem-server")
        });
        let mut child = Command::new(&binary)
            .args(["-addr", "127.0.0.1:0", "-no-ja"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| {
                format!("cannot start {} ({error}); run tests/setup-elasticsearch.sh first", binary.display())
            })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // The first line announces the address: {"url":"http://127.0.0.1:PORT",…}.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|error| format!("no announcement: {error}"))?;
        let url = line
            .split("\"url\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .filter(|url| url.starts_with("http://"))
            .ok_or_else(|| format!("unexpected first line: {line}"))?
            .to_owned();
        Ok(Self { child, _stdin: stdin, url })
    }

    /// `host:port`, as `clusterNodes` takes it.
    pub fn node(&self) -> &str {
        self.url.trim_start_matches("http://")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
