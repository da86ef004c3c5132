//! The resource side: bearer tokens in front of protected upstreams.
//!
//! A request passes in three steps: [`bearer::extract`] takes the token from the header,
//! [`verify::TokenVerifier`] proves its signature and claims (cached), and [`Guard::validate_token`]
//! asks the current registry snapshot whether its client may still use it — on every request,
//! so disabling a client or revoking its tokens takes effect at the next request.
//! [`policy::Policy`] then applies the route's scope and role rules.

pub mod bearer;
mod front;
pub mod policy;
pub mod verify;

use std::sync::Arc;

use http::HeaderMap;
use time::OffsetDateTime;

use crate::oauth::{ActiveToken, TokenCheck};
use crate::registry::{Organizations, Store};
use bearer::Denial;
use policy::Policy;
use verify::{Identity, TokenVerifier};

pub struct Guard {
    verifier: TokenVerifier,
    registry: Arc<Store>,
}

impl Guard {
    pub fn new(verifier: TokenVerifier, registry: Arc<Store>) -> Self {
        Guard { verifier, registry }
    }

    /// Authorizes a request to a route with `policy`: who the caller is, or the refusal. On an
    /// organisation's route (`org`), only that organisation's tokens are admitted.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        policy: &Policy,
        org: Option<&str>,
    ) -> Result<Arc<Identity>, Denial> {
        let token = bearer::extract(headers)?;
        let identity = self
            .validate_token(token)
            .await
            .map_err(Denial::InvalidToken)?;
        if org.is_some_and(|org| identity.grantee.org_id.as_deref() != Some(org)) {
            return Err(Denial::InvalidToken(
                "the token was issued by another organisation",
            ));
        }
        policy.check(&identity)?;
        Ok(identity)
    }

    /// Whether `token` is currently valid: verified, and its organisation and client still
    /// allowed to use it.
    pub async fn validate_token(&self, token: &[u8]) -> Result<Arc<Identity>, &'static str> {
        let identity = self.verifier.verify(token).await?;
        client_allows(&self.registry.read(), &identity)?;
        Ok(identity)
    }
}

#[async_trait::async_trait]
impl TokenCheck for Guard {
    async fn check_token(&self, token: &str) -> Result<ActiveToken, &'static str> {
        let identity = self.validate_token(token.as_bytes()).await?;
        Ok(ActiveToken {
            client_id: identity.grantee.client_id.clone(),
            scope: identity.grantee.scope.clone(),
            issued_at: identity.issued_at,
            expires_at: identity.expires_at,
            org_id: identity.grantee.org_id.clone(),
        })
    }
}

/// The registry's word on a verified token: its organisation exists and is enabled, its client
/// exists in it, is enabled and unexpired, and has not revoked tokens issued when this one was.
fn client_allows(orgs: &Organizations, identity: &Identity) -> Result<(), &'static str> {
    let org = orgs
        .get(identity.grantee.org_id.as_deref().unwrap_or(""))
        .ok_or("the token's organisation no longer exists")?;
    if !org.policy.enabled {
        return Err("the token's organisation is disabled");
    }
    let client = org
        .clients
        .get(&identity.grantee.client_id)
        .ok_or("the token's client no longer exists")?;
    if !client.enabled {
        return Err("the token's client is disabled");
    }
    if !client.is_active(OffsetDateTime::now_utc()) {
        return Err("the token's client has expired");
    }
    if client.revoked(identity.issued_at) {
        return Err("the token has been revoked");
    }
    Ok(())
}
