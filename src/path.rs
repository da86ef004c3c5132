//! Canonical request paths: the one form routing decisions are made on.
//!
//! The gateway authorises a request by its path and then forwards the raw path unchanged, so the
//! upstream must read the raw path exactly as the router did. We therefore accept only paths
//! whose meaning no server can dispute, and reject (400) everything else:
//!
//! * encoded `/`, `\` or `%` (`%2F`, `%5C`, `%25`): servers disagree on decoding them, and `%25`
//!   invites double decoding;
//! * `.` and `..` segments, raw or encoded (`%2e`), also with `;parameters` (`..;`);
//! * empty segments (`//`), raw `\`, NUL and other control characters, raw or encoded;
//! * malformed percent-escapes and bytes that do not decode to UTF-8 (overlong forms such as
//!   `%c0%af` are invalid UTF-8).
//!
//! What remains is decoded once; that decoded form is the canonical path. Matching on it is
//! case-sensitive.

use std::borrow::Cow;

/// Why a path was refused; shown to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathError(pub &'static str);

/// The decoded, canonical form of a raw request path (without query), or why it is refused.
pub fn canonicalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError("the path must start with /"));
    }
    let decoded = decode(raw)?;
    // Walked in place, not collected: every proxied request comes through here.
    let mut segments = decoded[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment.is_empty() && segments.peek().is_some() {
            return Err(PathError("empty path segments (//) are not allowed"));
        }
        let name = segment.split_once(';').map_or(segment, |(name, _)| name);
        if name == "." || name == ".." {
            return Err(PathError("dot segments (. and ..) are not allowed"));
        }
    }
    Ok(decoded)
}

/// Percent-decodes `raw`, refusing escapes and characters that make a path ambiguous.
fn decode(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if raw.bytes().any(forbidden_byte) {
        return Err(PathError(
            "the path contains a backslash or a control character",
        ));
    }
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let byte = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .ok_or(PathError("malformed percent-escape"))?;
        if matches!(byte, b'/' | b'%') || forbidden_byte(byte) {
            return Err(PathError(
                "encoded /, \\, % or control characters are not allowed",
            ));
        }
        out.push(byte);
        i += 3;
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| PathError("the path does not decode to UTF-8"))
}

fn forbidden_byte(b: u8) -> bool {
    b == b'\\' || b < 0x20 || b == 0x7f
}

/// Whether canonical `path` lies under route `prefix`, on segment boundaries: `/api` covers
/// `/api` and `/api/x` but not `/apix`; `/api/` covers `/api/` and `/api/x`.
pub fn under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_harmlessly_encoded_paths_pass() {
        assert_eq!(canonicalize("/api/x").unwrap(), "/api/x");
        assert_eq!(canonicalize("/").unwrap(), "/");
        assert_eq!(canonicalize("/api/").unwrap(), "/api/");
        assert_eq!(canonicalize("/%61pi/x").unwrap(), "/api/x");
        assert_eq!(canonicalize("/api/caf%C3%A9").unwrap(), "/api/café");
        assert_eq!(
            canonicalize("/api/a.b/..c/x;v=1").unwrap(),
            "/api/a.b/..c/x;v=1"
        );
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for raw in [
            "/public/../api/x",
            "/public/./api",
            "/public/%2e%2e/api/x",
            "/public/%2E/api/x",
            "/public/.%2e/api/x",
            "/public/..%2fapi/x",
            "/api%2fx",
            "/api%2Fx",
            "/public%5Capi",
            "/public\\api",
            "/api/%00",
            "/api/x\0",
            "//api/x",
            "/public//api",
            "/api/%c0%af",
            "/api/%e0%80%af",
            "/api/%ff",
            "/api/%2",
            "/api/%zz",
            "/api/%252e%252e",
            "/public/..;/api/x",
            "/api/x/..",
            "api/x",
            "",
            "*",
        ] {
            assert!(canonicalize(raw).is_err(), "{raw:?} should be refused");
        }
    }

    #[test]
    fn canonical_paths_are_fixed_points() {
        for raw in ["/api/x", "/%61pi/%62", "/a;b/c", "/caf%C3%A9/"] {
            let once = canonicalize(raw).unwrap().into_owned();
            assert_eq!(canonicalize(&once).unwrap(), once);
        }
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(under("/api", "/api"));
        assert!(under("/api/x", "/api"));
        assert!(!under("/apix", "/api"));
        assert!(under("/api/x", "/api/"));
        assert!(!under("/api", "/api/"));
        assert!(under("/anything", "/"));
    }
}
