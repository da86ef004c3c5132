//! The demo upstream: answers every request with a JSON description of what it received, so a
//! newcomer can see exactly what credgate forwards.

use std::collections::BTreeMap;

use async_trait::async_trait;
use http::StatusCode;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;

use crate::reply::{self, Reply};

/// The echo reads at most this much of a request body.
const MAX_ECHO_BODY: usize = 64 * 1024;

pub struct EchoApp;

#[derive(Serialize)]
struct Echo<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: BTreeMap<&'a str, String>,
    body_bytes: usize,
}

#[async_trait]
impl ServeHttp for EchoApp {
    async fn response(&self, session: &mut ServerSession) -> Reply {
        let mut body_bytes = 0;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            body_bytes += chunk.len();
            if body_bytes > MAX_ECHO_BODY {
                return reply::error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "body too large");
            }
        }
        let req = session.req_header();
        let mut headers: BTreeMap<&str, String> = BTreeMap::new();
        for (name, value) in &req.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        let echo = Echo {
            method: req.method.as_str(),
            path: req.uri.path(),
            query: req.uri.query(),
            headers,
            body_bytes,
        };
        reply::json(StatusCode::OK, &echo)
    }
}
