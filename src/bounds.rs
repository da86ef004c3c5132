//! Bounds on a request head, checked before anything of it is interpreted.
//!
//! Pingora's own HTTP/1 parser stops at 256 headers and 1 MiB of head; a gateway in front of
//! customers' APIs needs far less, and a tighter bound keeps every later step (routing, bearer
//! extraction, identity headers, the upstream's own parser) working on small inputs.

use http::StatusCode;
use pingora::http::RequestHeader;

use crate::reply::{self, Reply};

/// The longest request target (path and query) accepted.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header fields accepted.
pub const MAX_HEADERS: usize = 100;
/// The most bytes of header names and values, all fields together, accepted.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Why a request head was refused, and the reply that says so.
pub struct Refusal {
    /// The log and metrics outcome.
    pub outcome: &'static str,
    pub reply: Reply,
}

/// The refusal of a head whose target or headers exceed the bounds; `None` when it is fine.
pub fn check(head: &RequestHeader) -> Option<Refusal> {
    let uri = head
        .uri
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri > MAX_URI_BYTES {
        return Some(refuse(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request target exceeds {MAX_URI_BYTES} bytes"),
        ));
    }
    if head.headers.len() > MAX_HEADERS {
        return Some(refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &format!("more than {MAX_HEADERS} header fields"),
        ));
    }
    let bytes: usize = head
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Some(refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &format!("the header fields exceed {MAX_HEADER_BYTES} bytes"),
        ));
    }
    None
}

fn refuse(status: StatusCode, outcome: &'static str, description: &str) -> Refusal {
    Refusal {
        outcome,
        reply: reply::error(status, "invalid_request", description),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: &str, headers: &[(String, String)]) -> RequestHeader {
        let mut head = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        for (name, value) in headers {
            head.append_header(name.clone(), value.as_str()).unwrap();
        }
        head
    }

    fn outcome(head: &RequestHeader) -> Option<(u16, &'static str)> {
        check(head).map(|r| (r.reply.status().as_u16(), r.outcome))
    }

    #[test]
    fn a_target_at_the_bound_passes_and_one_byte_more_is_414() {
        let at = format!("/{}", "a".repeat(MAX_URI_BYTES - 1));
        assert_eq!(outcome(&head(&at, &[])), None);
        let over = format!("/?{}", "a".repeat(MAX_URI_BYTES - 1));
        assert_eq!(outcome(&head(&over, &[])), Some((414, "uri_too_long")));
    }

    #[test]
    fn too_many_header_fields_are_431() {
        let fields = |n: usize| -> Vec<(String, String)> {
            (0..n).map(|i| (format!("x-h{i}"), "v".into())).collect()
        };
        assert_eq!(outcome(&head("/", &fields(MAX_HEADERS))), None);
        assert_eq!(
            outcome(&head("/", &fields(MAX_HEADERS + 1))),
            Some((431, "headers_too_large"))
        );
    }

    #[test]
    fn too_many_header_bytes_are_431() {
        let big = |n: usize| vec![("x-big".to_owned(), "v".repeat(n))];
        assert_eq!(outcome(&head("/", &big(MAX_HEADER_BYTES - 5))), None);
        assert_eq!(
            outcome(&head("/", &big(MAX_HEADER_BYTES - 4))),
            Some((431, "headers_too_large"))
        );
    }
}
