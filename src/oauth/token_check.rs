//! The resource side's verdict on a token, as introspection (RFC 7662) asks for it: the token
//! side needs the answer, not the validator, so it depends on this trait and the guard
//! implements it.

use async_trait::async_trait;

/// What an active token says, for an introspection answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveToken {
    pub client_id: String,
    /// Space-separated granted scopes.
    pub scope: String,
    pub issued_at: i64,
    pub expires_at: i64,
    /// The organisation that issued it (`None` under a single issuer).
    pub org_id: Option<String>,
}

/// Decides whether a token is currently valid: signature, claims, and the registry's word on
/// its organisation (exists, enabled) and its client (exists, enabled, unexpired, not revoked).
#[async_trait]
pub trait TokenCheck: Send + Sync {
    /// The active token, or why it is not (a fixed description, never the token).
    async fn check_token(&self, token: &str) -> Result<ActiveToken, &'static str>;
}
