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
    /// `Retry-After`, in seconds (429).
    pub retry_after: Option<u64>,
}

/// An RFC 9457 problem details object, as every error of the API is written.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProblemDetails {
    /// Always `about:blank`: `title` is the HTTP status's phrase.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong with this request, in words a person reads.
    pub detail: String,
    /// A stable, machine-readable name of the problem (`not_found`, `precondition_failed`, ...).
    pub code: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
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
        let body = ProblemDetails {
            kind: "about:blank".into(),
            title: self.status.canonical_reason().unwrap_or("Error").into(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.into(),
        };
        let mut reply = reply::no_store(reply::json(self.status, &body));
        let headers = reply.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"credgate\", error=\"invalid_token\""),
            );
        }
        reply
    }
}

/// `problems` for a caller of the API: each with its field and line, but only the file's
/// name, never where the server keeps it.
pub fn described(problems: &crate::problems::Problems) -> String {
    problems
        .0
        .iter()
        .map(|p| {
            let file = p
                .file
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            let line = p.line.map(|l| format!(":{l}")).unwrap_or_default();
            let field = if p.field.is_empty() {
                String::new()
            } else {
                format!(" {}:", p.field)
            };
            format!("{file}{line}:{field} {}", p.message)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<EditError> for Problem {
    fn from(e: EditError) -> Self {
        let code = e.code();
        let (status, detail) = match e {
            EditError::Missing(detail) => (StatusCode::NOT_FOUND, detail),
            EditError::Refused(detail) => (StatusCode::CONFLICT, detail),
            EditError::Invalid(problems) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the change would make the organisation invalid: {}",
                    described(&problems)
                ),
            ),
            EditError::Precondition(detail) => (StatusCode::PRECONDITION_FAILED, detail),
            EditError::Io(detail) => {
                // The detail names the server's files: the log has it, the caller does not.
                tracing::warn!(problem = %detail, "management API: the registry cannot be written");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the registry cannot be changed from this instance (on a read-only mount such as a ConfigMap, change the files where they are managed); the gateway log says why".to_owned(),
                )
            }
        };
        Problem::new(status, code, detail)
    }
}
