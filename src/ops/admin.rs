//! The admin listener: Prometheus metrics, and liveness and readiness for load balancers and
//! Kubernetes probes.
//!
//! The server only starts once the registry and keys are loaded, so answering at all means
//! both are in place.

use async_trait::async_trait;
use http::StatusCode;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::ops::metrics::metrics;
use crate::reply::{self, Reply};

pub struct AdminApp;

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Reply {
        match session.req_header().uri.path() {
            "/healthz" | "/readyz" => reply::json(StatusCode::OK, &json!({"status": "ok"})),
            "/metrics" => {
                let mut reply = Reply::new(metrics().render());
                reply.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                reply
            }
            _ => reply::not_found(),
        }
    }
}
