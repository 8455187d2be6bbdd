//! A GraphQL client of the server's REST port, as the UI posts documents.

use serde_json::{Value, json};

/// Posts GraphQL documents to one server.
pub struct Client {
    pub http: reqwest::Client,
    pub port: u16,
}

impl Client {
    /// A client of the server on REST port `port`.
    pub fn new(port: u16) -> Self {
        Self { http: reqwest::Client::new(), port }
    }

    /// Posts a document; returns the whole response body.
    pub async fn post(&self, query: &str, variables: Value) -> Value {
        self.post_body(json!({ "query": query, "variables": variables }).to_string()).await
    }

    /// Posts a raw body (a document, a batch, anything); returns the parsed answer.
    pub async fn post_body(&self, body: String) -> Value {
        let response = self
            .http
            .post(format!("http://127.0.0.1:{}/graphql", self.port))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST /graphql");
        let text = response.text().await.expect("body");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {}", &text[..text.len().min(500)]))
    }

    /// Posts a document that must succeed; returns `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.post(query, variables).await;
        assert!(response.get("errors").is_none(), "{response}");
        response["data"].clone()
    }

    /// Posts a document until its `data` satisfies `ready` (the server has stored what the test
    /// sent), for at most a minute; returns that `data`.
    pub async fn poll(&self, what: &str, query: &str, variables: Value, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let response = self.post(query, variables.clone()).await;
            if response.get("errors").is_none() && ready(&response["data"]) {
                return response["data"].clone();
            }
            assert!(std::time::Instant::now() < deadline, "{what} within a minute; the last answer: {response}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    pub async fn get(&self, path: &str, accept: &str) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let response = self.http.get(url).header("accept", accept).send().await.expect("GET");
        response.text().await.expect("body")
    }
}

/// Runs every case of `tests/cases/graphql` (see its README) against `client`, a variable
/// `"$duration"` sent as `duration`; panics listing every case whose `data` differs.
pub async fn check_cases(client: &Client, duration: &Value) {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/cases/graphql"));
    let mut documents: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .expect("tests/cases/graphql")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "graphql"))
        .collect();
    documents.sort();
    assert!(!documents.is_empty(), "no cases in {}", dir.display());
    let mut failures = Vec::new();
    for document in &documents {
        let query = std::fs::read_to_string(document).expect("the document");
        let case: Value =
            serde_json::from_str(&std::fs::read_to_string(document.with_extension("json")).expect("the case's .json"))
                .unwrap_or_else(|error| panic!("{}: {error}", document.display()));
        let mut variables = case["variables"].clone();
        if let Some(variables) = variables.as_object_mut() {
            for value in variables.values_mut() {
                if value == "$duration" {
                    *value = duration.clone();
                }
            }
        }
        let answer = client.post(&query, variables).await;
        if answer.get("errors").is_some() || answer["data"] != case["data"] {
            failures.push(format!(
                "{}:\n  expected {}\n  answered {}",
                document.file_name().and_then(|name| name.to_str()).unwrap_or("?"),
                case["data"],
                answer
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} GraphQL cases differ:\n{}",
        failures.len(),
        documents.len(),
        failures.join("\n")
    );
}
