//! The admin listener: Prometheus metrics, and liveness and readiness for load balancers and
//! Kubernetes probes.
//!
//! `/healthz` answers 200 while the process runs. `/readyz` answers 200 only while every
//! listener of the gateway accepts connections and no shutdown has begun; it also reports
//! whether each route's upstream name resolves, for the operator (an upstream that does not
//! resolve fails that route with 502, not the whole gateway, so it does not make it unready).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::StatusCode;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Map, Value};

use crate::metrics::metrics;
use crate::proxy::EdgeStore;
use crate::reply::{self, Reply};
use crate::resolve::Resolution;

/// How long a readiness probe waits for a listener to accept.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What `/readyz` checks.
pub struct Readiness {
    /// The gateway's listeners, by config field: each must accept connections.
    listeners: Vec<(&'static str, SocketAddr)>,
    edge: Arc<EdgeStore>,
    draining: AtomicBool,
}

impl Readiness {
    pub fn new(listeners: Vec<(&'static str, SocketAddr)>, edge: Arc<EdgeStore>) -> Self {
        Readiness {
            listeners,
            edge,
            draining: AtomicBool::new(false),
        }
    }

    /// From now on `/readyz` answers 503: the gateway is shutting down.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    async fn report(&self) -> (StatusCode, Value) {
        let mut listeners = Map::new();
        let mut all_up = true;
        for (field, addr) in &self.listeners {
            let up = accepts(*addr).await;
            all_up &= up;
            listeners.insert(
                format!("{field} {addr}"),
                json!(if up { "up" } else { "down" }),
            );
        }
        let mut upstreams = Map::new();
        for route in self.edge.snapshot().routes.routes() {
            let state = match route.upstream.resolution() {
                Resolution::Resolved => "resolved",
                Resolution::Pending => "not looked up yet",
                Resolution::Unresolved => "does not resolve",
            };
            let key = format!("{} {}", route.prefix, route.upstream.upstream());
            upstreams.insert(key, json!(state));
        }
        let (status, word) = if self.draining.load(Ordering::Acquire) {
            (StatusCode::SERVICE_UNAVAILABLE, "draining")
        } else if !all_up {
            (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
        } else {
            (StatusCode::OK, "ok")
        };
        let body = json!({"status": word, "listeners": listeners, "upstreams": upstreams});
        (status, body)
    }
}

/// Whether something accepts TCP connections at `addr` (a wildcard address is probed on
/// loopback).
async fn accepts(addr: SocketAddr) -> bool {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let connect = tokio::net::TcpStream::connect(SocketAddr::new(ip, addr.port()));
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, connect).await,
        Ok(Ok(_))
    )
}

pub struct AdminApp {
    readiness: Arc<Readiness>,
}

impl AdminApp {
    pub fn new(readiness: Arc<Readiness>) -> Self {
        AdminApp { readiness }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Reply {
        match session.req_header().uri.path() {
            "/healthz" => reply::json(StatusCode::OK, &json!({"status": "ok"})),
            "/readyz" => {
                let (status, body) = self.readiness.report().await;
                reply::json(status, &body)
            }
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
