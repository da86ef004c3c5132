//! Odd requests at the edge: header names a CGI-style upstream reads as credgate's own,
//! duplicate framing, absolute-form targets, and requests without one `Host`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::upstream::Upstream;
use common::{client_toml, json, Gateway, Setup};

const SECRET: &str = "edge-secret";

/// A real WSGI application served by Python's `wsgiref`: it answers with the CGI environment's
/// `HTTP_*` variables as JSON, exactly as a Flask or Django upstream would read them.
struct WsgiUpstream {
    child: Child,
    port: u16,
}

const WSGI_APP: &str = r#"
import json, sys
from wsgiref.simple_server import make_server, WSGIRequestHandler

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

def app(environ, start_response):
    headers = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    body = json.dumps(headers).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"#;

impl WsgiUpstream {
    fn start() -> WsgiUpstream {
        let mut child = Command::new("python3")
            .args(["-c", WSGI_APP])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the WSGI upstream");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the WSGI server's port");
        WsgiUpstream { child, port }
    }
}

impl Drop for WsgiUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut rest = String::new();
        let _ = self
            .child
            .stdout
            .take()
            .map(|mut o| o.read_to_string(&mut rest));
    }
}

fn wsgi_gateway(upstream: &WsgiUpstream, server: &str) -> Gateway {
    let registry = client_toml(
        "reader",
        SECRET,
        "scopes = [\"api.read\"]\nroles = [\"member\"]",
        "",
    );
    let port = upstream.port;
    Setup::new(registry)
        .server(server)
        .tables(&format!(
            "[[route]]\nprefix = \"/api/\"\nupstream = \"127.0.0.1:{port}\"\n\
             [[route]]\nprefix = \"/public/\"\nupstream = \"127.0.0.1:{port}\"\npublic = true\n"
        ))
        .start()
}

/// The CGI environment the WSGI upstream saw for `path`, sent with `headers`.
async fn environ(gw: &Gateway, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Value {
    let mut request = gw.http.get(gw.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    json(response).await
}

const FORGED: [(&str, &str); 5] = [
    ("x_credgate_client_id", "ops-admin"),
    ("x_credgate_roles", "admin"),
    ("x-credgate_scope", "everything"),
    ("x_forwarded_for", "10.0.0.1"),
    ("x_forwarded_proto", "https"),
];

#[tokio::test]
async fn underscore_spellings_never_reach_a_wsgi_upstream_as_credgate_headers() {
    let upstream = WsgiUpstream::start();
    for server in ["", "drop_underscore_headers = false"] {
        let gw = wsgi_gateway(&upstream, server);
        let token = gw.access_token("reader", SECRET).await;
        let seen = environ(&gw, "/api/x", Some(&token), &FORGED).await;
        assert_eq!(
            seen["HTTP_X_CREDGATE_CLIENT_ID"], "reader",
            "{server}: {seen}"
        );
        assert_eq!(seen["HTTP_X_CREDGATE_ROLES"], "member", "{server}: {seen}");
        assert_eq!(
            seen["HTTP_X_CREDGATE_SCOPE"], "api.read",
            "{server}: {seen}"
        );
        assert_eq!(
            seen["HTTP_X_FORWARDED_FOR"], "127.0.0.1",
            "{server}: {seen}"
        );
        assert_eq!(seen["HTTP_X_FORWARDED_PROTO"], "http", "{server}: {seen}");

        let public = environ(&gw, "/public/x", None, &FORGED).await;
        for name in ["HTTP_X_CREDGATE_CLIENT_ID", "HTTP_X_CREDGATE_ROLES"] {
            assert!(public.get(name).is_none(), "{server}: {public}");
        }
        assert_eq!(
            public["HTTP_X_FORWARDED_FOR"], "127.0.0.1",
            "{server}: {public}"
        );
    }
}

#[tokio::test]
async fn other_underscore_headers_are_dropped_by_default_and_kept_on_request() {
    let upstream = WsgiUpstream::start();
    let dropping = wsgi_gateway(&upstream, "");
    let seen = environ(&dropping, "/public/x", None, &[("x_request_id", "7")]).await;
    assert!(seen.get("HTTP_X_REQUEST_ID").is_none(), "{seen}");
    let keeping = wsgi_gateway(&upstream, "drop_underscore_headers = false");
    let seen = environ(&keeping, "/public/x", None, &[("x_request_id", "7")]).await;
    assert_eq!(seen["HTTP_X_REQUEST_ID"], "7", "{seen}");
}

async fn proxying() -> (Gateway, Upstream) {
    let upstream = Upstream::start().await;
    let gw = Setup::new("")
        .tables(&format!(
            "[[route]]\nprefix = \"/public/\"\nupstream = \"{}\"\npublic = true\n",
            upstream.addr
        ))
        .start();
    (gw, upstream)
}

/// Sends `request` as raw bytes and returns the status line of the answer.
async fn raw_status(gw: &Gateway, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(gw.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or("").to_owned()
}

#[tokio::test]
async fn identical_duplicate_content_lengths_are_forwarded_as_one() {
    let (gw, upstream) = proxying().await;
    for framing in [
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5, 5\r\n",
    ] {
        let request = format!(
            "POST /public/x HTTP/1.1\r\nHost: a\r\n{framing}Connection: close\r\n\r\nhello"
        );
        let status = raw_status(&gw, request.as_bytes()).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{framing:?}: {status}");
    }
    for seen in upstream.seen() {
        let lengths: Vec<_> = seen.headers.get_all("content-length").iter().collect();
        assert_eq!(lengths, ["5"]);
    }
    assert_eq!(upstream.seen().len(), 2);
}

#[tokio::test]
async fn an_absolute_form_target_is_bounded_with_its_host() {
    let (gw, upstream) = proxying().await;
    let host = "h".repeat(20_000);
    let request = format!("GET http://{host}/public/x HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let status = raw_status(&gw, request.as_bytes()).await;
    assert!(status.starts_with("HTTP/1.1 414"), "{status}");
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn an_http11_request_without_exactly_one_host_is_400() {
    let (gw, upstream) = proxying().await;
    for head in [
        "GET /public/x HTTP/1.1\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let status = raw_status(&gw, head.as_bytes()).await;
        assert!(status.starts_with("HTTP/1.1 400"), "{head:?}: {status}");
    }
    assert!(upstream.seen().is_empty());
    let status = raw_status(&gw, b"GET /public/x HTTP/1.0\r\n\r\n").await;
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "HTTP/1.0 without Host: {status}"
    );
}

/// credgate answers an oversized head with 431 JSON up to Pingora's own parser limits; past
/// them (more than 256 fields, or a head over 1 048 575 bytes) Pingora answers a bare 400
/// before any credgate code runs. README documents both; this pins them, so an upgrade of
/// Pingora that changes either is noticed.
#[tokio::test]
async fn heads_over_pingoras_limits_get_pingoras_bare_400() {
    let (gw, upstream) = proxying().await;
    let head = |fields: usize| {
        let mut head = String::from("GET /public/x HTTP/1.1\r\nHost: a\r\n");
        for i in 0..fields {
            head.push_str(&format!("x-h{i}: v\r\n"));
        }
        head + "Connection: close\r\n\r\n"
    };
    assert!(raw_status(&gw, head(150).as_bytes())
        .await
        .starts_with("HTTP/1.1 431"));
    assert!(raw_status(&gw, head(300).as_bytes())
        .await
        .starts_with("HTTP/1.1 400"));
    let huge = format!(
        "GET /public/x HTTP/1.1\r\nHost: a\r\nx-big: {}\r\n\r\n",
        "v".repeat(1_100_000)
    );
    assert!(raw_status(&gw, huge.as_bytes())
        .await
        .starts_with("HTTP/1.1 400"));
    assert!(upstream.seen().is_empty());
}
