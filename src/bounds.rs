//! Bounds on a request head, and the rules of RFC 9112 it must meet, checked before anything
//! of it is interpreted.
//!
//! Pingora's own HTTP/1 parser stops at 256 headers and 1 MiB of head; a gateway in front of
//! customers' APIs needs far less, and a tighter bound keeps every later step (routing, bearer
//! extraction, identity headers, the upstream's own parser) working on small inputs.

use http::StatusCode;
use pingora::http::RequestHeader;

use crate::reply::{self, Outcome};

/// The longest request target accepted, as sent: path and query, plus scheme and authority
/// when the target is in absolute form (`GET http://host/path`, RFC 9112 §3.2.2).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header fields accepted.
pub const MAX_HEADERS: usize = 100;
/// The most bytes of header names and values, all fields together, accepted.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The refusal of a head whose target or headers exceed the bounds; `None` when it is fine.
pub fn oversized(head: &RequestHeader) -> Option<Outcome> {
    if target_len(head) > MAX_URI_BYTES {
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

/// The length of the request target as the client sent it (Pingora keeps an absolute-form
/// target verbatim, and forwards it so).
fn target_len(head: &RequestHeader) -> usize {
    head.raw_path().len()
}

/// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a `Host` field, and
/// to any request with more than one. Without this, a request with no `Host` reaches the
/// upstream with none, and two `Host` lines can be read differently by credgate and by it.
pub fn host_rule(head: &RequestHeader) -> Option<Outcome> {
    let hosts = head.headers.get_all(http::header::HOST).iter().count();
    let missing = hosts == 0 && head.version == http::Version::HTTP_11;
    if missing || hosts > 1 {
        let description = if missing {
            "an HTTP/1.1 request needs a Host header"
        } else {
            "more than one Host header"
        };
        return Some(refuse(StatusCode::BAD_REQUEST, "invalid_host", description));
    }
    None
}

fn refuse(status: StatusCode, label: &'static str, description: &str) -> Outcome {
    Outcome::answer(label, reply::error(status, "invalid_request", description))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Action;

    fn head(target: &str, headers: &[(String, String)]) -> RequestHeader {
        let mut head = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        head.append_header("host", "h").unwrap();
        for (name, value) in headers {
            head.append_header(name.clone(), value.as_str()).unwrap();
        }
        head
    }

    fn outcome(head: &RequestHeader) -> Option<(u16, &'static str)> {
        oversized(head)
            .or_else(|| host_rule(head))
            .map(|o| match o.action {
                Action::Answer(reply) => (reply.status().as_u16(), o.label),
                Action::Forward => panic!("a refusal forwards nothing"),
            })
    }

    #[test]
    fn a_target_at_the_bound_passes_and_one_byte_more_is_414() {
        let at = format!("/{}", "a".repeat(MAX_URI_BYTES - 1));
        assert_eq!(outcome(&head(&at, &[])), None);
        let over = format!("/?{}", "a".repeat(MAX_URI_BYTES - 1));
        assert_eq!(outcome(&head(&over, &[])), Some((414, "uri_too_long")));
    }

    #[test]
    fn an_absolute_target_counts_its_host() {
        let host = "h".repeat(MAX_URI_BYTES);
        let target = format!("http://{host}/public/x");
        assert_eq!(outcome(&head(&target, &[])), Some((414, "uri_too_long")));
        assert_eq!(outcome(&head("http://example.com/public/x", &[])), None);
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        let mut none = RequestHeader::build("GET", b"/", None).unwrap();
        assert_eq!(outcome(&none), Some((400, "invalid_host")));
        none.set_version(http::Version::HTTP_10);
        assert_eq!(outcome(&none), None, "HTTP/1.0 may omit Host");
        let two = head("/", &[("host".into(), "other".into())]);
        assert_eq!(outcome(&two), Some((400, "invalid_host")));
    }

    #[test]
    fn too_many_header_fields_are_431() {
        let fields = |n: usize| -> Vec<(String, String)> {
            (0..n).map(|i| (format!("x-h{i}"), "v".into())).collect()
        };
        assert_eq!(outcome(&head("/", &fields(MAX_HEADERS - 1))), None);
        assert_eq!(
            outcome(&head("/", &fields(MAX_HEADERS))),
            Some((431, "headers_too_large"))
        );
    }

    #[test]
    fn too_many_header_bytes_are_431() {
        let big = |n: usize| vec![("x-big".to_owned(), "v".repeat(n))];
        // "host" + "h" take 5 of the bytes.
        assert_eq!(outcome(&head("/", &big(MAX_HEADER_BYTES - 10))), None);
        assert_eq!(
            outcome(&head("/", &big(MAX_HEADER_BYTES - 9))),
            Some((431, "headers_too_large"))
        );
    }
}
