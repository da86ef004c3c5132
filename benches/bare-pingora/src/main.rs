//! The baseline of `benches/e2e/run.py` and `benches/instructions.py`, not part of credgate:
//! Pingora proxying every request to one upstream and doing nothing else, built from the same
//! Pingora version, with the same features and the same allocator as credgate, so the
//! difference between the two is what credgate itself costs a request.
//!
//!     bare-pingora LISTEN UPSTREAM [THREADS] [--forwarding]   # e.g. 127.0.0.1:8090 127.0.0.1:8081 2
//!
//! With `--forwarding` it also does the two things every proxied request of credgate's must,
//! through the same Pingora calls and credgate's own `forwarded::forwarded_for`: it sets credgate's default upstream timeouts (5 s to
//! connect, 60 s per read, so a stuck upstream becomes an error) and writes `X-Forwarded-For`
//! and `X-Forwarded-Proto`. Against that row, what is left is credgate's own work (routing,
//! checks, metrics, the request log), apart from what any gateway with those duties pays.

use async_trait::async_trait;
use credgate::config::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT};
use credgate::forwarded::forwarded_for;
use http::HeaderValue;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct PassThrough {
    upstream: std::net::SocketAddr,
    forwarding: bool,
}

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = Box::new(HttpPeer::new(self.upstream, false, String::new()));
        if self.forwarding {
            peer.options.connection_timeout = Some(DEFAULT_CONNECT_TIMEOUT);
            peer.options.read_timeout = Some(DEFAULT_READ_TIMEOUT);
        }
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        if self.forwarding {
            // As credgate's `upstream_request_filter` does: the client's chain, if any, with
            // the peer appended, and a static scheme value.
            if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
                let earlier = upstream.headers.get("X-Forwarded-For");
                let value = forwarded_for(earlier.and_then(|v| v.to_str().ok()), addr.ip());
                upstream.insert_header("X-Forwarded-For", value)?;
            }
            upstream.insert_header("X-Forwarded-Proto", HeaderValue::from_static("http"))?;
        }
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let forwarding = args.iter().any(|a| a == "--forwarding");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--forwarding").collect();
    let [listen, upstream, rest @ ..] = args.as_slice() else {
        eprintln!("usage: bare-pingora LISTEN UPSTREAM [THREADS] [--forwarding]");
        std::process::exit(2);
    };
    let threads = rest.first().and_then(|t| t.parse().ok()).unwrap_or(2);
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let upstream = upstream.parse().expect("UPSTREAM is ip:port");
    let service = PassThrough {
        upstream,
        forwarding,
    };
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, service);
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever();
}
