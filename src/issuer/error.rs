//! OAuth 2.0 error responses (RFC 6749 §5.2) of the token endpoint.

use std::borrow::Cow;

use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use crate::reply::{self, Outcome, Reply};

/// The `WWW-Authenticate` challenge sent with 401 `invalid_client`.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"credgate\"";

/// An error answer of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: Cow<'static, str>,
    /// Extra response header (a challenge, `Allow`, `Retry-After`).
    pub header: Option<(header::HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl OAuthError {
    fn new(
        status: StatusCode,
        code: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        OAuthError {
            status,
            code,
            description: description.into(),
            header: None,
        }
    }

    fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.header = Some((name, value));
        self
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 401 `invalid_client`; `challenge` adds `WWW-Authenticate: Basic`, which RFC 6749 requires
    /// when the client tried (or may try) the Authorization header.
    pub fn invalid_client(description: impl Into<Cow<'static, str>>, challenge: bool) -> Self {
        let error = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description);
        if challenge {
            error.with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BASIC_CHALLENGE),
            )
        } else {
            error
        }
    }

    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    pub fn unsupported_grant_type(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            description,
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "the token endpoint only accepts POST",
        )
        .with_header(header::ALLOW, HeaderValue::from_static("POST"))
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("the request body exceeds {limit} bytes"),
        )
    }

    pub fn temporarily_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "too many token requests are waiting; retry shortly",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    /// 429 `slow_down` (the RFC 8628 code for "poll less often"): too many failed client
    /// authentications; `wait` becomes `Retry-After`, in whole seconds rounded up.
    pub fn slow_down(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "too many failed client authentications; retry later",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    pub fn server_error(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            description,
        )
    }

    /// The refusal as the edge's outcome, labelled with the error code.
    pub fn into_outcome(self) -> Outcome {
        Outcome::answer(self.code, self.into_reply())
    }

    fn into_reply(self) -> Reply {
        let body = Body {
            error: self.code,
            error_description: &self.description,
        };
        let mut reply = reply::no_store(reply::json(self.status, &body));
        if let Some((name, value)) = self.header {
            reply.headers_mut().insert(name, value);
        }
        reply
    }
}
