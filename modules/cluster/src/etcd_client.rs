//! The calls the `etcd` coordinator makes, through etcd's v3 JSON gateway (`POST /v3/...`,
//! keys and values in base64; served by etcd 3.4 and later on its client port): grant a lease,
//! keep it alive, put a key under it, read a prefix, revoke the lease. Each call tries the
//! configured endpoints in turn.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// Why a call to etcd failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered.
    #[error("no etcd endpoint answered: {0}")]
    Unreachable(String),
    /// etcd answered with an error.
    #[error("etcd answered {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The answer.
        body: String,
    },
}

/// A client of the etcd endpoints (`host:port`, http).
#[derive(Debug, Clone)]
pub struct EtcdClient {
    http: reqwest::Client,
    endpoints: Vec<String>,
    auth: Option<(String, String)>,
}

/// The end of the key range holding every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl EtcdClient {
    /// A client of `endpoints`, with `user` and `password` when authentication is on.
    pub fn new(endpoints: Vec<String>, auth: Option<(String, String)>, timeout: std::time::Duration) -> Self {
        let http = reqwest::Client::builder().timeout(timeout).build().unwrap_or_default();
        Self { http, endpoints, auth }
    }

    async fn token(&self, endpoint: &str) -> Result<Option<String>, EtcdError> {
        let Some((user, password)) = &self.auth else { return Ok(None) };
        let answer = self
            .post_to(endpoint, "/v3/auth/authenticate", &json!({ "name": user, "password": password }), None)
            .await?;
        Ok(answer["token"].as_str().map(str::to_owned))
    }

    async fn post_to(&self, endpoint: &str, path: &str, body: &Value, token: Option<&str>) -> Result<Value, EtcdError> {
        let mut request = self.http.post(format!("http://{endpoint}{path}")).body(body.to_string());
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        let response = request.send().await.map_err(|error| EtcdError::Unreachable(error.to_string()))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|error| EtcdError::Unreachable(error.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(EtcdError::Refused { status, body: text });
        }
        serde_json::from_str(&text).map_err(|error| EtcdError::Refused { status, body: format!("{error}: {text}") })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        let mut last = String::from("no endpoint configured");
        for endpoint in &self.endpoints {
            let token = match self.token(endpoint).await {
                Ok(token) => token,
                Err(EtcdError::Unreachable(reason)) => {
                    last = format!("{endpoint}: {reason}");
                    continue;
                }
                Err(error) => return Err(error),
            };
            match self.post_to(endpoint, path, &body, token.as_deref()).await {
                Err(EtcdError::Unreachable(reason)) => last = format!("{endpoint}: {reason}"),
                other => return other,
            }
        }
        Err(EtcdError::Unreachable(last))
    }

    /// Grants a lease of `ttl_seconds`; returns its id.
    pub async fn grant(&self, ttl_seconds: u64) -> Result<i64, EtcdError> {
        let answer = self.post("/v3/lease/grant", json!({ "TTL": ttl_seconds })).await?;
        lease_id(&answer["ID"]).ok_or_else(|| EtcdError::Refused { status: 200, body: answer.to_string() })
    }

    /// Keeps lease `id` alive; `false` when it has expired (etcd no longer knows it).
    pub async fn keep_alive(&self, id: i64) -> Result<bool, EtcdError> {
        let answer = self.post("/v3/lease/keepalive", json!({ "ID": id.to_string() })).await?;
        let ttl = answer["result"]["TTL"].as_str().and_then(|ttl| ttl.parse::<i64>().ok()).unwrap_or(0);
        Ok(ttl > 0)
    }

    /// Revokes lease `id`, deleting the keys under it.
    pub async fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.post("/v3/lease/revoke", json!({ "ID": id.to_string() })).await.map(|_| ())
    }

    /// Puts `key` = `value` under lease `lease`.
    pub async fn put(&self, key: &str, value: &str, lease: i64) -> Result<(), EtcdError> {
        let body = json!({ "key": BASE64.encode(key), "value": BASE64.encode(value), "lease": lease.to_string() });
        self.post("/v3/kv/put", body).await.map(|_| ())
    }

    /// The values of every key starting with `prefix`.
    pub async fn values_with_prefix(&self, prefix: &str) -> Result<Vec<String>, EtcdError> {
        let body = json!({ "key": BASE64.encode(prefix), "range_end": BASE64.encode(prefix_end(prefix.as_bytes())) });
        let answer = self.post("/v3/kv/range", body).await?;
        let values = answer["kvs"].as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(values
            .iter()
            .filter_map(|kv| kv["value"].as_str())
            .filter_map(|value| BASE64.decode(value).ok())
            .filter_map(|value| String::from_utf8(value).ok())
            .collect())
    }
}

/// A lease id, which the gateway writes as a string (int64 in proto3 JSON).
fn lease_id(json: &Value) -> Option<i64> {
    json.as_str().and_then(|id| id.parse().ok()).or_else(|| json.as_i64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_after_every_key_of_the_prefix() {
        assert_eq!(prefix_end(b"/skywalking/"), b"/skywalking0");
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
        assert_eq!(prefix_end(&[0xff]), [0]);
        assert_eq!(lease_id(&json!("2324035527869434117")), Some(2_324_035_527_869_434_117));
    }
}
