//! Every error of the management API as RFC 9457 problem details
//! (`application/problem+json`): a `title` a person reads, a `detail` about this request, and
//! a stable `code` for programs.

use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use crate::registry::editor::EditError;
use crate::reply::{self, Reply};

/// One refusal: its status, stable code and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'static str,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            detail: detail.into(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// The reply: `application/problem+json`, never cached; a 401 carries the RFC 6750
    /// challenge.
    pub fn reply(&self) -> Reply {
        let body = Body {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
        };
        let mut reply = reply::no_store(reply::json(self.status, &body));
        let headers = reply.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"credgate\", error=\"invalid_token\""),
            );
        }
        reply
    }
}

impl From<EditError> for Problem {
    fn from(e: EditError) -> Self {
        match e {
            EditError::Missing(detail) => Problem::not_found(detail),
            EditError::Refused(detail) => Problem::new(StatusCode::CONFLICT, "conflict", detail),
            EditError::Invalid(problems) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("the change would make the organisation invalid: {}", problems.to_string().replace('\n', "; ")),
            ),
            EditError::Precondition(detail) => {
                Problem::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", detail)
            }
            EditError::Io(detail) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "registry_unwritable",
                format!("the registry cannot be changed from this instance ({detail}); on a read-only mount such as a ConfigMap, change the files where they are managed"),
            ),
        }
    }
}
