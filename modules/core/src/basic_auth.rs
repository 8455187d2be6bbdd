//! Optional HTTP basic authentication for routes a module mounts on the REST port (the query
//! API uses it for GraphQL and `/status`): a request without the right `Authorization: Basic`
//! credentials is answered 401 with a `WWW-Authenticate` challenge, so a browser asks for them.
//!
//! The password crosses the network in clear unless the REST port has TLS (`restSSLEnabled`).

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::authentication::equal_in_constant_time;

/// The challenge a 401 carries.
const CHALLENGE: &str = r#"Basic realm="oap-server", charset="UTF-8""#;

/// Requires `user` and `password` on every route of `routes`; with an empty `user`, `routes`
/// are left open.
pub fn require(routes: Router, user: &str, password: &str) -> Router {
    if user.is_empty() {
        return routes;
    }
    let expected: Arc<[u8]> = format!("{user}:{password}").into_bytes().into();
    routes.layer(middleware::from_fn(move |request: Request, next: Next| {
        let expected = expected.clone();
        async move { if authorized(request.headers(), &expected) { next.run(request).await } else { unauthorized() } }
    }))
}

/// Whether the `Authorization` header carries `user:password` as `expected`.
fn authorized(headers: &HeaderMap, expected: &[u8]) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let Some((scheme, credentials)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    STANDARD.decode(credentials.trim()).is_ok_and(|decoded| equal_in_constant_time(&decoded, expected))
}

fn unauthorized() -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, "credentials required (HTTP basic authentication)").into_response();
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).expect("header"));
        headers
    }

    #[test]
    fn only_the_configured_credentials_pass() {
        let expected = b"admin:pa:ss";
        let basic = |credentials: &str| format!("Basic {}", STANDARD.encode(credentials));
        assert!(authorized(&headers(&basic("admin:pa:ss")), expected));
        assert!(authorized(&headers(&basic("admin:pa:ss").replace("Basic", "basic")), expected));
        assert!(!authorized(&HeaderMap::new(), expected));
        for wrong in ["admin:pa:s", "admin:", "Admin:pa:ss", ""] {
            assert!(!authorized(&headers(&basic(wrong)), expected), "{wrong}");
        }
        assert!(!authorized(&headers(&format!("Bearer {}", STANDARD.encode("admin:pa:ss"))), expected));
        assert!(!authorized(&headers("Basic not*base64"), expected));
    }

    #[test]
    fn a_refusal_carries_the_challenge() {
        let response = unauthorized();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], CHALLENGE);
    }
}
