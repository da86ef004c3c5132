//! Scope tokens (RFC 6749 §3.3). Roles follow the same rule, because both travel
//! space-separated in claims and headers.

/// Whether `token` is an RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`.
pub fn is_valid_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// Why `token` is not a valid scope token (or role), for a problem report.
pub fn scope_token_problem(token: &str) -> String {
    format!("{token:?} must be printable ASCII without spaces, \" or \\")
}
