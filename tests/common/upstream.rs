//! A real upstream for the tests: an HTTP/1.1 server on a free loopback port that records every
//! request it receives. `/slow...` paths answer after 2 s.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: http::HeaderMap,
}

pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts on `addr` (to come back on the same port after [`Upstream::stop`]).
    pub async fn start_on(addr: SocketAddr) -> Upstream {
        Self::serve(addr, None).await
    }

    /// An HTTPS upstream with a self-signed certificate for `names`; returns it and the
    /// certificate's PEM (the root to trust).
    pub async fn start_tls(names: &[&str]) -> (Upstream, String) {
        use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names).expect("a test certificate");
        let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("a TLS server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let upstream = Self::serve("127.0.0.1:0".parse().unwrap(), Some(acceptor)).await;
        (upstream, certified.cert.pem())
    }

    async fn serve(addr: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> Upstream {
        let listener = TcpListener::bind(addr).await.expect("bind the upstream");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let server = tokio::spawn(async move {
            // Connection tasks live in this set, so stopping the server closes them all.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(serve_connection(stream, tls.clone(), record.clone()));
            }
        });
        Upstream { addr, seen, server }
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Closes the listener and every open connection.
    pub fn stop(self) -> SocketAddr {
        self.server.abort();
        self.addr
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    record: Arc<Mutex<Vec<Seen>>>,
) {
    let service = hyper::service::service_fn(move |req| answer(req, record.clone()));
    let http = hyper::server::conn::http1::Builder::new();
    match tls {
        None => {
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        }
        Some(tls) => {
            if let Ok(stream) = tls.accept(stream).await {
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            }
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    record: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let target = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.to_string());
    record.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        target: target.clone(),
        headers: req.headers().clone(),
    });
    if target.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(Response::new(Full::new(Bytes::from_static(
        b"{\"upstream\":\"ok\"}",
    ))))
}
