//! Signing an access token (RFC 9068 JWT profile) for a grant.

use std::time::Duration;

use time::OffsetDateTime;

use crate::oauth::claims::{AccessClaims, TOKEN_TYPE};
use crate::oauth::jws::SignError;
use crate::oauth::Key;
use crate::registry::new_secret::random_token;
use crate::registry::{Client, Organization};

/// What the issuer decided to put in a token, before signing.
pub struct Grant<'a> {
    /// The organisation whose issuer signs (its `iss`, its `org_id`).
    pub org: &'a Organization,
    pub audience: &'a str,
    pub client: &'a Client,
    pub scope: String,
    pub lifetime: Duration,
}

/// A signed token and how long it lives.
pub struct Minted {
    pub token: String,
    pub expires_in: u64,
}

/// Signs `grant` with `key`. The token never outlives its client: a client that expires in
/// five minutes gets a token that expires in five minutes.
pub fn mint(grant: &Grant<'_>, key: &Key, now: OffsetDateTime) -> Result<Minted, SignError> {
    let iat = now.unix_timestamp();
    let mut exp = iat + i64::try_from(grant.lifetime.as_secs()).unwrap_or(i64::MAX - iat);
    if let Some(client_expiry) = grant.client.expires {
        exp = exp.min(client_expiry.unix_timestamp());
    }
    let claims = AccessClaims {
        iss: grant.org.issuer.clone(),
        sub: grant.client.id.clone(),
        client_id: grant.client.id.clone(),
        aud: grant.audience.to_owned(),
        iat,
        nbf: iat,
        exp,
        jti: random_token(16),
        scope: grant.scope.clone(),
        roles: grant.org.roles_of(grant.client),
        org_id: grant.org.claim().map(str::to_owned),
    };
    let token = key.sign_jwt(TOKEN_TYPE, &claims)?;
    Ok(Minted {
        token,
        expires_in: u64::try_from(exp - iat).unwrap_or(0),
    })
}
