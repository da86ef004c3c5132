//! What credgate asserts to an upstream, and the removal of every inbound header that could pose
//! as it.
//!
//! credgate owns the identity headers (`x-credgate-*`) and the forwarding headers
//! (`x-forwarded-for`, `x-forwarded-proto`). A client must never be able to set them, under any
//! spelling an upstream might read as the same name: CGI (RFC 3875 §4.1.18) and everything built
//! on it — WSGI, PHP, Rack — map `-` and `_` to the same `HTTP_*` variable, so
//! `x_credgate_client_id` reaches a Python or PHP upstream as `HTTP_X_CREDGATE_CLIENT_ID`, and
//! read first, before the value credgate adds. Header names are already lower case in the
//! `http` crate; comparing with `_` folded to `-` closes the rest.

use std::fmt::Write;
use std::net::IpAddr;

use http::{header, HeaderMap, HeaderName, HeaderValue};

/// The prefix of credgate's identity headers: every inbound one is removed.
const OWNED_PREFIX: &str = "x-credgate-";
/// Forwarding headers credgate writes itself: `x-forwarded-for` is appended to (proxies chain
/// it) and `x-forwarded-proto` replaced, so only their look-alike spellings are removed.
const OWNED_NAMES: [&str; 2] = ["x-forwarded-for", "x-forwarded-proto"];

/// Whether an inbound header `name` (lower case, as the `http` crate keeps it) must not reach
/// the upstream: any spelling of an identity header, or an `_` spelling of a forwarding header
/// that a CGI-style upstream would read as the real one.
pub fn poses_as_owned(name: &str) -> bool {
    let folded = |b: u8| if b == b'_' { b'-' } else { b };
    let starts_with = |prefix: &str| {
        name.len() >= prefix.len()
            && name
                .bytes()
                .zip(prefix.bytes())
                .all(|(a, b)| folded(a) == b)
    };
    starts_with(OWNED_PREFIX)
        || (name.contains('_')
            && OWNED_NAMES
                .iter()
                .any(|owned| name.len() == owned.len() && starts_with(owned)))
}

/// The inbound headers a client may not send on to the upstream: those that pose as credgate's
/// own, and — when `drop_underscores` (the default, as nginx's `underscores_in_headers off`) —
/// every name with an `_`, which CGI-style upstreams cannot tell from its `-` twin.
pub fn refused_inbound(headers: &HeaderMap, drop_underscores: bool) -> Vec<HeaderName> {
    headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            poses_as_owned(name) || (drop_underscores && name.contains('_'))
        })
        .cloned()
        .collect()
}

/// The one `Content-Length` value to forward where the client sent identical duplicates
/// (`5, 5`, or two `Content-Length: 5` lines); `None` when there is nothing to reconcile.
/// RFC 9110 §8.6 lets a recipient accept those as one value but requires it to send one: an
/// upstream that reads the first and a cache that reads the last must never be able to
/// disagree. Pingora has already refused differing values.
pub fn reconciled_content_length(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let (first, second) = (values.next()?, values.next());
    if second.is_none() && !first.as_bytes().contains(&b',') {
        return None;
    }
    let single = first.to_str().ok()?.split(',').next()?.trim();
    HeaderValue::from_str(single).ok()
}

/// The `X-Forwarded-For` value to send upstream: the chain the client sent (`earlier`), if
/// any, with the address credgate received the request from appended, as every proxy in a
/// chain does (the de-facto header RFC 7239 §4 later standardised as `for=`).
pub fn forwarded_for(earlier: Option<&str>, peer: IpAddr) -> String {
    let mut value = String::with_capacity(earlier.map_or(0, |e| e.len() + 2) + 15);
    if let Some(earlier) = earlier {
        value.push_str(earlier);
        value.push_str(", ");
    }
    push_ip(&mut value, peer);
    value
}

/// Appends `ip` as text. An IPv4 address, the common case, is written octet by octet with
/// `itoa`: std's `Display` goes through the formatting machinery, which cost about 1 300
/// instructions per proxied request (benches/instructions.py); IPv6 keeps `Display` (RFC 5952
/// compression is not worth writing twice).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(digits.format(octet));
            }
        }
        IpAddr::V6(v6) => {
            // Writing to a String cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_an_owned_name_is_caught() {
        for name in [
            "x-credgate-client-id",
            "x_credgate_client_id",
            "x-credgate_roles",
            "x_credgate-anything",
            "x_forwarded_for",
            "x-forwarded_proto",
        ] {
            assert!(poses_as_owned(name), "{name}");
        }
        for name in [
            "x-credgate",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-for-real",
            "x-forwarded-host",
            "accept",
            "x_request_id",
        ] {
            assert!(!poses_as_owned(name), "{name}");
        }
    }

    fn head(headers: &[(&str, &str)]) -> HeaderMap {
        let mut head = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            head.append(name, HeaderValue::from_str(value).unwrap());
        }
        head
    }

    #[test]
    fn underscored_names_go_unless_kept() {
        let headers = head(&[
            ("x_request_id", "1"),
            ("x_credgate_roles", "admin"),
            ("a", "b"),
        ]);
        assert_eq!(
            refused_inbound(&headers, true),
            ["x_request_id", "x_credgate_roles"]
        );
        assert_eq!(refused_inbound(&headers, false), ["x_credgate_roles"]);
    }

    #[test]
    fn forwarded_for_writes_the_address_as_display_does_and_chains() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "192.168.100.255",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(forwarded_for(None, ip), ip.to_string());
        }
        let peer = "198.51.100.7".parse().unwrap();
        assert_eq!(
            forwarded_for(Some("203.0.113.1, 10.0.0.2"), peer),
            "203.0.113.1, 10.0.0.2, 198.51.100.7"
        );
    }

    #[test]
    fn identical_content_lengths_become_one() {
        for sent in [
            &[("content-length", "5, 5")][..],
            &[("content-length", "5"); 2],
        ] {
            assert_eq!(reconciled_content_length(&head(sent)).unwrap(), "5");
        }
        let single = head(&[("content-length", "7")]);
        assert_eq!(reconciled_content_length(&single), None);
    }
}
