//! The admin listener: Prometheus metrics, and liveness and readiness for load balancers and
//! Kubernetes probes.
//!
//! `/healthz` answers 200 while the process runs. `/readyz` answers 200 only while every
//! listener's address is held by a listening socket of this very process (read from the
//! kernel's socket table, so another program on the port never passes, and the probe sends
//! no traffic to the listeners) and no shutdown has begun. It also reports whether each
//! route's upstream name resolves, for the operator (an upstream that does not resolve fails
//! that route with 502, not the whole gateway, so it does not make it unready).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Map, Value};

use crate::metrics::metrics;
use crate::proxy::EdgeStore;
use crate::reply::{self, Reply};
use crate::resolve::Resolution;

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
        let addrs: Vec<SocketAddr> = self.listeners.iter().map(|(_, addr)| *addr).collect();
        let held = tokio::task::spawn_blocking(move || listening_here(&addrs))
            .await
            .unwrap_or_default();
        let mut listeners = Map::new();
        let mut all_up = true;
        for (i, (field, addr)) in self.listeners.iter().enumerate() {
            let up = held.get(i).copied().unwrap_or(false);
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

/// For each of `addrs`, whether this process holds a TCP socket listening on it: the kernel's
/// socket tables (`/proc/self/net/tcp`, `tcp6`) matched against this process's own file
/// descriptors.
fn listening_here(addrs: &[SocketAddr]) -> Vec<bool> {
    use procfs::net::TcpState;
    use procfs::process::{FDTarget, Process};
    let Ok(me) = Process::myself() else {
        return vec![false; addrs.len()];
    };
    let sockets: HashSet<u64> = me
        .fd()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| match fd.target {
            FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect();
    let listening: Vec<SocketAddr> = [me.tcp(), me.tcp6()]
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.state == TcpState::Listen && sockets.contains(&entry.inode))
        .map(|entry| entry.local_address)
        .collect();
    addrs.iter().map(|addr| listening.contains(addr)).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_listener_of_this_process_counts() {
        let ours = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = ours.local_addr().unwrap();
        // A port another program listens on is not ours, even though it accepts connections.
        let mut theirs = std::process::Command::new("python3")
            .args([
                "-c",
                "import socket,sys;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();print(s.getsockname()[1],flush=True);sys.stdin.read()",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut port = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(theirs.stdout.as_mut().unwrap()),
            &mut port,
        )
        .unwrap();
        let theirs_addr: SocketAddr = format!("127.0.0.1:{}", port.trim()).parse().unwrap();
        let nobody: SocketAddr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        assert_eq!(
            listening_here(&[ours, theirs_addr, nobody]),
            [true, false, false]
        );
        let _ = theirs.kill();
        let _ = theirs.wait();
    }
}
