//! The claims of an access token (RFC 9068 §2.2) and its JWT `typ`: what the issuer signs and
//! the guard verifies.

use serde::{Deserialize, Serialize};

/// The JWT `typ` of access tokens (RFC 9068 §2.1).
pub const TOKEN_TYPE: &str = "at+jwt";

/// The claims of every access token credgate issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The client id: in client credentials the client is the subject.
    pub sub: String,
    pub client_id: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// 128 random bits, base64url.
    pub jti: String,
    /// Space-separated granted scopes; omitted when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The organisation whose issuer signed it; absent under a single issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}
