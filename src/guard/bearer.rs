//! RFC 6750: taking the bearer token from the `Authorization` header (§2.1, the only method
//! accepted) and answering refusals with the matching `WWW-Authenticate` challenge (§3).

use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::reply::{self, Outcome, Reply};

/// Longest token accepted; ours are well under 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

const REALM: &str = "credgate";

/// Why a request to a protected route is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No bearer credentials at all (§3.1: the challenge carries no error code).
    Missing,
    /// The request is malformed (several Authorization headers).
    InvalidRequest(&'static str),
    /// Malformed, unverifiable, expired or revoked token.
    InvalidToken(&'static str),
    /// A valid token without the route's scopes or roles; `scope` is what the route requires.
    InsufficientScope {
        description: &'static str,
        scope: String,
    },
}

impl Denial {
    pub fn status(&self) -> StatusCode {
        match self {
            Denial::Missing | Denial::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Denial::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Denial::InsufficientScope { .. } => StatusCode::FORBIDDEN,
        }
    }

    /// A short label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Denial::Missing => "missing_token",
            Denial::InvalidRequest(_) => "invalid_request",
            Denial::InvalidToken(_) => "invalid_token",
            Denial::InsufficientScope { .. } => "insufficient_scope",
        }
    }

    /// The JSON error reply with its challenge. Descriptions are fixed texts and scopes come
    /// from the config (validated scope tokens), so nothing needs escaping and the token is
    /// never echoed.
    /// The refusal as the edge's outcome, labelled with [`Denial::code`].
    pub fn into_outcome(self) -> Outcome {
        Outcome::answer(self.code(), self.into_reply())
    }

    fn into_reply(self) -> Reply {
        let (challenge, description) = match &self {
            Denial::Missing => (
                format!("Bearer realm=\"{REALM}\""),
                "a bearer token is required",
            ),
            Denial::InvalidRequest(d) | Denial::InvalidToken(d) => (
                format!(
                    "Bearer realm=\"{REALM}\", error=\"{}\", error_description=\"{d}\"",
                    self.code()
                ),
                *d,
            ),
            Denial::InsufficientScope { description, scope } => (
                format!(
                    "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", error_description=\"{description}\", scope=\"{scope}\""
                ),
                *description,
            ),
        };
        let mut reply = reply::error(self.status(), self.code(), description);
        let value = HeaderValue::from_str(&challenge).expect("challenges are plain ASCII");
        reply.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        reply
    }
}

/// The bearer credentials of a request, bounded but not yet syntax-checked: [`b64token`] is
/// asked only of a token the verification cache does not hold (a cached token passed it when it
/// was verified, and the cache key is its SHA-256), so a repeated token is not scanned twice.
pub fn extract(headers: &HeaderMap) -> Result<&[u8], Denial> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Denial::Missing);
    };
    if values.next().is_some() {
        return Err(Denial::InvalidRequest("more than one Authorization header"));
    }
    let value = value.as_bytes();
    let (scheme, token) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(Denial::Missing);
    }
    let spaces = token.iter().take_while(|&&b| b == b' ').count();
    let token = &token[spaces..];
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(Denial::InvalidToken(MALFORMED));
    }
    Ok(token)
}

/// Why a token that is not a `b64token` is refused.
pub const MALFORMED: &str = "malformed bearer token";

/// The token as text if it is a `b64token` (RFC 6750 §2.1):
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
///
/// It looks each byte up in a table and folds without branching, 16 bytes at a time, rather
/// than testing each byte against the grammar's alternatives.
pub fn b64token(token: &[u8]) -> Option<&str> {
    let body = &token[..token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1)];
    let valid = !body.is_empty()
        && body
            .chunks(16)
            .all(|chunk| chunk.iter().fold(true, |ok, &b| ok & B64TOKEN[b as usize]));
    // Every byte the grammar allows is ASCII, so the token is valid UTF-8.
    valid.then(|| std::str::from_utf8(token).ok()).flatten()
}

/// Which bytes `b64token` allows before its `=` padding.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn a_bearer_token_is_extracted() {
        assert_eq!(
            extract(&headers(&["Bearer abc.def-_~+/="])),
            Ok(&b"abc.def-_~+/="[..])
        );
        assert_eq!(extract(&headers(&["bearer  abc"])), Ok(&b"abc"[..]));
    }

    #[test]
    fn bad_credentials_are_classified() {
        assert_eq!(extract(&headers(&[])), Err(Denial::Missing));
        assert_eq!(extract(&headers(&["Basic abc"])), Err(Denial::Missing));
        assert_eq!(extract(&headers(&["Bearer\tabc"])), Err(Denial::Missing));
        let malformed = Err(Denial::InvalidToken(MALFORMED));
        assert_eq!(extract(&headers(&["Bearer"])), malformed);
        assert_eq!(extract(&headers(&["Bearer   "])), malformed);
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(extract(&headers(&[&long])), malformed);
        assert!(extract(&headers(&[&long[..long.len() - 1]])).is_ok());
        assert!(matches!(
            extract(&headers(&["Bearer a", "Bearer b"])),
            Err(Denial::InvalidRequest(_))
        ));
    }

    #[test]
    fn b64token_allows_exactly_its_grammar() {
        for byte in 0..=255u8 {
            let grammar = byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte);
            let token = [[b'a'; 40].as_slice(), &[byte], b"bbb"].concat();
            let expected = grammar.then(|| std::str::from_utf8(&token).unwrap());
            assert_eq!(b64token(&token), expected, "byte {byte:#04x}");
        }
        assert_eq!(b64token(b"ab=="), Some("ab=="));
        for malformed in [
            &b"a=b"[..],
            b"==",
            b"a b",
            b"a\"b",
            b"a\tb",
            b"\xc3\xa9",
            b"",
        ] {
            assert_eq!(b64token(malformed), None, "{malformed:?}");
        }
    }

    #[test]
    fn challenges_follow_rfc6750() {
        let missing = Denial::Missing.into_reply();
        assert_eq!(missing.status(), 401);
        assert_eq!(
            missing.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"credgate\""
        );
        let scope = Denial::InsufficientScope {
            description: "d",
            scope: "a b".into(),
        }
        .into_reply();
        assert_eq!(scope.status(), 403);
        assert_eq!(
            scope.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"credgate\", error=\"insufficient_scope\", error_description=\"d\", scope=\"a b\""
        );
    }
}
