//! Complete HTTP replies built in memory (`http::Response<Vec<u8>>`), and the [`Outcome`] of
//! a request at the edge. The issuer, the guard's refusals, the admin service and the demo
//! echo all answer this way; the proxy writes a reply to its Pingora session in one go.

use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

pub type Reply = Response<Vec<u8>>;

/// What the edge does with one request, and the bounded label that says why (the request log's
/// `outcome` and the metrics' label values). Every component the edge asks — the head checks,
/// the issuer endpoints, the guard — answers with one, or with its own error type that turns
/// into one.
#[derive(Debug)]
pub struct Outcome {
    /// `issued`, `active`, `allowed`, `public`, an OAuth or RFC 6750 error code, …
    pub label: &'static str,
    /// The client credgate authenticated, when it did (never an id a client merely sent).
    pub client_id: Option<String>,
    pub action: Action,
}

/// Answer locally, or let Pingora forward the request to its route's upstream.
#[derive(Debug)]
pub enum Action {
    Answer(Reply),
    Forward,
}

impl Outcome {
    /// Answer with `reply`.
    pub fn answer(label: &'static str, reply: Reply) -> Self {
        Outcome {
            label,
            client_id: None,
            action: Action::Answer(reply),
        }
    }

    /// Forward to the route's upstream.
    pub fn forward(label: &'static str) -> Self {
        Outcome {
            label,
            client_id: None,
            action: Action::Forward,
        }
    }

    /// The same outcome, on behalf of the authenticated client `client_id`.
    pub fn by(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self
    }
}

/// A reply with a JSON body.
pub fn json(status: StatusCode, body: &impl Serialize) -> Reply {
    json_bytes(
        status,
        serde_json::to_vec(body).expect("reply bodies serialize"),
    )
}

/// A reply whose body is already serialized JSON.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut reply = Response::new(body);
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    reply
}

/// Marks a reply as never to be cached (token responses, RFC 6749 §5.1).
pub fn no_store(mut reply: Reply) -> Reply {
    let headers = reply.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    reply
}

/// A JSON error body `{"error": code, "error_description": description}`.
pub fn error(status: StatusCode, code: &str, description: &str) -> Reply {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
        error_description: &'a str,
    }
    json(
        status,
        &Body {
            error: code,
            error_description: description,
        },
    )
}

pub fn not_found() -> Reply {
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// 405 for a read-only document endpoint.
pub fn get_only() -> Reply {
    let mut reply = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint only answers GET and HEAD",
    );
    reply
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    reply
}
