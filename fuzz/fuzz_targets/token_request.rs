//! Token and introspection request parsing: the form body and the Basic header together.
//!
//! Input: `content-type \n authorization \n body`. Beyond not panicking, whatever is accepted
//! must respect the documented bounds.
#![no_main]

use credgate::issuer::request::{self, Credentials, MAX_SCOPES};
use libfuzzer_sys::fuzz_target;

fn split(data: &[u8]) -> (Option<&[u8]>, Option<&[u8]>, &[u8]) {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let content_type = parts.next().filter(|p| !p.is_empty());
    let authorization = parts.next().filter(|p| !p.is_empty());
    (
        content_type,
        authorization,
        parts.next().unwrap_or_default(),
    )
}

fn check_bounds(credentials: &Credentials) {
    assert!(!credentials.client_id.is_empty() && credentials.client_id.len() <= 128);
    assert!(credentials.secret.len() <= 512);
}

fuzz_target!(|data: &[u8]| {
    let (content_type, authorization, body) = split(data);
    if let Ok(parsed) = request::parse(content_type, authorization, body) {
        check_bounds(&parsed.credentials);
        if let Some(scopes) = &parsed.scope {
            assert!(!scopes.is_empty() && scopes.len() <= MAX_SCOPES);
            assert!(scopes.iter().all(|s| !s.is_empty() && !s.contains(' ')));
        }
    }
    if let Ok(parsed) = request::parse_introspection(content_type, authorization, body) {
        check_bounds(&parsed.credentials);
    }
});
