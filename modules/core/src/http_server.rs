//! The shared HTTP server: modules add axum routes, the core provider serves them.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use axum::Router;
use oap_kernel::ModuleError;

/// The HTTP server on `restPort`, shared by the HTTP receivers, GraphQL and `/status`.
pub struct HttpServer {
    context_path: String,
    /// Routes added so far; `None` once serving has begun.
    router: Mutex<Option<Router>>,
    local_addr: OnceLock<SocketAddr>,
}

impl HttpServer {
    pub(crate) fn new(context_path: &str) -> Self {
        Self {
            context_path: context_path.to_owned(),
            router: Mutex::new(Some(Router::new())),
            local_addr: OnceLock::new(),
        }
    }

    /// Adds routes (paths relative to `restContextPath`). Routes must be added during `prepare`
    /// or `start`; a path added twice is an error.
    pub fn add_routes(&self, routes: Router) -> Result<(), ModuleError> {
        let mut router = self.router.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(current) = router.take() else {
            return Err(ModuleError::Other(
                "cannot add HTTP routes: the server is already serving; add routes in prepare or start".to_owned(),
            ));
        };
        // axum panics on overlapping routes; turn that into an error of the module that added them.
        let merged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| current.clone().merge(routes)));
        match merged {
            Ok(merged) => {
                *router = Some(merged);
                Ok(())
            }
            Err(panic) => {
                *router = Some(current);
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                    .unwrap_or_else(|| "overlapping routes".to_owned());
                Err(ModuleError::Other(format!("cannot add HTTP routes: {reason}")))
            }
        }
    }

    /// The address the server is bound to, once the core module has started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr.get().copied()
    }

    pub(crate) fn set_local_addr(&self, address: SocketAddr) {
        let _ = self.local_addr.set(address);
    }

    /// Closes the registration and returns the routes under the context path.
    pub(crate) fn take_router(&self) -> Router {
        let mut router = self.router.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let routes = router.take().unwrap_or_default();
        match self.context_path.trim_end_matches('/') {
            "" => routes,
            prefix => Router::new().nest(prefix, routes),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    #[test]
    fn overlapping_routes_are_an_error_not_a_panic() {
        let server = HttpServer::new("/");
        server.add_routes(Router::new().route("/v3/segment", get(|| async { "a" }))).expect("first");
        let error = server.add_routes(Router::new().route("/v3/segment", get(|| async { "b" }))).expect_err("overlap");
        assert!(error.to_string().starts_with("cannot add HTTP routes"), "{error}");
        server.add_routes(Router::new().route("/v3/segments", get(|| async { "c" }))).expect("distinct path");
    }

    #[test]
    fn routes_are_closed_once_serving() {
        let server = HttpServer::new("/oap");
        let _ = server.take_router();
        assert!(server.add_routes(Router::new()).is_err());
    }
}
