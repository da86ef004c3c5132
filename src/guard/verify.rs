//! Token verification: key lookup by `kid`, the key's pinned algorithm, signature, `typ`, `iss`
//! (the single issuer's, or the one of the organisation the token names in `org_id`), `aud`,
//! `exp` and `nbf`; verified tokens are cached so a repeated token costs one hash and
//! one cache lookup.
//!
//! The cache holds only what a signature check proved. Whether the token's client may still use
//! it (enabled, unexpired, not revoked) is asked of the registry on every request, cached or
//! not — see [`super::Guard`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{digest, SHA256};
use http::HeaderValue;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use moka::future::Cache;
use moka::Expiry;

use super::bearer::{b64token, MALFORMED};
use crate::config::{GuardConfig, IssuerConfig};
use crate::metrics::metrics;
use crate::oauth::claims::{AccessClaims, TOKEN_TYPE};
use crate::oauth::{Issuers, KeyStore, SigningAlgorithm};

/// What a verified token proves.
///
/// Everything but a token's times is the same for every token of one client with the same
/// scope, roles and key, so that part ([`Grantee`]) is shared: a cache of 100 000 tokens of a
/// few clients holds a few copies of those strings and header values, not 100 000 (about
/// 1.5 KiB a token otherwise).
#[derive(Debug)]
pub struct Identity {
    pub grantee: Arc<Grantee>,
    /// `iat`, which a revocation (`tokens_not_before`) is compared with.
    pub issued_at: i64,
    /// `exp`.
    pub expires_at: i64,
    /// How long this entry may stay cached.
    cache_for: Duration,
}

/// The client a token was granted to and what it was granted, with the upstream headers it
/// yields prepared once.
#[derive(Debug)]
pub struct Grantee {
    /// The organisation that issued the token (`None` under a single issuer).
    pub org_id: Option<String>,
    pub client_id: String,
    /// The `scope` claim as issued (space-separated).
    pub scope: String,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub headers: IdentityHeaders,
    /// The key that verified the tokens.
    kid: String,
}

/// Values of `x-credgate-client-id`, `x-credgate-scope`, `x-credgate-roles` and, with
/// organisations, `x-credgate-org-id`.
#[derive(Debug)]
pub struct IdentityHeaders {
    pub org_id: Option<HeaderValue>,
    pub client_id: HeaderValue,
    pub scope: HeaderValue,
    pub roles: HeaderValue,
}

/// Signature and claim checks with a bounded cache of verified tokens.
pub struct TokenVerifier {
    keys: Arc<KeyStore>,
    /// Whose `iss` a token may carry.
    issuers: Issuers,
    leeway: u64,
    validations: [(SigningAlgorithm, Validation); 3],
    cache: Cache<[u8; 32], Arc<Identity>>,
    cache_ttl: Duration,
    /// Grantees by key id, client id, scope and roles; bounded, since a forgotten grantee only
    /// costs one more copy.
    grantees: moka::sync::Cache<String, Arc<Grantee>>,
}

/// How many distinct grantees are shared at most.
const GRANTEES: u64 = 10_000;

/// Entries live as long as [`Identity::cache_for`] says.
struct UntilExpiry;

impl Expiry<[u8; 32], Arc<Identity>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        value: &Arc<Identity>,
        _: Instant,
    ) -> Option<Duration> {
        Some(value.cache_for)
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl TokenVerifier {
    pub fn new(keys: Arc<KeyStore>, issuer: &IssuerConfig, guard: &GuardConfig) -> Self {
        let validation = |algorithm: SigningAlgorithm| {
            let mut v = Validation::new(algorithm.jwt());
            v.leeway = guard.leeway.as_secs();
            v.validate_nbf = true;
            // `iss` depends on `org_id`: checked after decoding.
            v.set_audience(&[&issuer.audience]);
            v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
            (algorithm, v)
        };
        TokenVerifier {
            keys,
            issuers: issuer.issuers.clone(),
            leeway: guard.leeway.as_secs(),
            validations: [
                validation(SigningAlgorithm::EdDSA),
                validation(SigningAlgorithm::ES256),
                validation(SigningAlgorithm::RS256),
            ],
            cache: Cache::builder()
                .max_capacity(guard.cache_capacity)
                .expire_after(UntilExpiry)
                .build(),
            cache_ttl: guard.cache_ttl,
            grantees: moka::sync::Cache::new(GRANTEES),
        }
    }

    /// Verifies `token` (from the cache when it was verified before). Errors are fixed
    /// descriptions fit for the `WWW-Authenticate` challenge.
    ///
    /// Only a token missing from the cache is checked against RFC 6750's `b64token` grammar:
    /// the cache is keyed by SHA-256 of the exact bytes and holds only tokens that passed it.
    pub async fn verify(&self, token: &[u8]) -> Result<Arc<Identity>, &'static str> {
        let key: [u8; 32] = digest(&SHA256, token)
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let now = unix_now();
        if let Some(identity) = self.cache.get(&key).await {
            metrics().auth_cache_hits.inc();
            return self.still_valid(identity, now);
        }
        metrics().auth_cache_misses.inc();
        let token = b64token(token).ok_or(MALFORMED)?;
        let identity = Arc::new(self.verify_uncached(token, now)?);
        self.cache.insert(key, identity.clone()).await;
        Ok(identity)
    }

    /// Re-checks a cached verification against what may have changed since: the clock, and
    /// the key set (a key removed from `keys_dir` must stop verifying at once).
    fn still_valid(
        &self,
        identity: Arc<Identity>,
        now: i64,
    ) -> Result<Arc<Identity>, &'static str> {
        if now > identity.expires_at + self.leeway as i64 {
            Err("the token has expired")
        } else if self.keys.snapshot().find(&identity.grantee.kid).is_none() {
            Err("the token's key is unknown")
        } else {
            Ok(identity)
        }
    }

    fn verify_uncached(&self, token: &str, now: i64) -> Result<Identity, &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
        let kid = header
            .kid
            .as_deref()
            .ok_or("the token names no key (kid)")?;
        let keys = self.keys.snapshot();
        let key = keys.find(kid).ok_or("the token's key is unknown")?;
        if header.alg != key.algorithm.jwt() {
            return Err("the token's algorithm does not match its key");
        }
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err("the token is not an access token (typ at+jwt)");
        }
        let (_, validation) = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == key.algorithm)
            .expect("a validation exists for every algorithm");
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key.decoding(), validation)
            .map_err(|e| describe(e.kind()))?
            .claims;
        if self.issuers.issuer_of(claims.org_id.as_deref()).as_deref() != Some(&claims.iss) {
            return Err("the token is from another issuer");
        }
        let remaining = u64::try_from(claims.exp + self.leeway as i64 - now).unwrap_or(0);
        Ok(Identity {
            issued_at: claims.iat,
            expires_at: claims.exp,
            cache_for: self.cache_ttl.min(Duration::from_secs(remaining)),
            grantee: self.grantee(claims, kid)?,
        })
    }

    /// The shared grantee of a verified token's claims.
    fn grantee(&self, claims: AccessClaims, kid: &str) -> Result<Arc<Grantee>, &'static str> {
        let roles = claims.roles.join(" ");
        let org = claims.org_id.as_deref().unwrap_or("");
        let key = format!(
            "{kid}\n{org}\n{}\n{}\n{roles}",
            claims.client_id, claims.scope
        );
        if let Some(grantee) = self.grantees.get(&key) {
            return Ok(grantee);
        }
        let grantee = Arc::new(Grantee::new(claims, roles, kid)?);
        self.grantees.insert(key, grantee.clone());
        Ok(grantee)
    }
}

fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not yet valid",
        ErrorKind::InvalidIssuer => "the token is from another issuer",
        ErrorKind::InvalidAudience => "the token is for another audience",
        ErrorKind::InvalidSignature => "the token signature is invalid",
        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
        _ => "the token is invalid",
    }
}

impl Grantee {
    fn new(claims: AccessClaims, roles: String, kid: &str) -> Result<Self, &'static str> {
        let invalid = |_| "the token carries characters not allowed in headers";
        let headers = IdentityHeaders {
            org_id: claims
                .org_id
                .as_deref()
                .map(HeaderValue::from_str)
                .transpose()
                .map_err(invalid)?,
            client_id: HeaderValue::from_str(&claims.client_id).map_err(invalid)?,
            scope: HeaderValue::from_str(&claims.scope).map_err(invalid)?,
            roles: HeaderValue::from_str(&roles).map_err(invalid)?,
        };
        Ok(Grantee {
            scopes: claims
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            roles: claims.roles,
            headers,
            kid: kid.to_owned(),
            org_id: claims.org_id,
            client_id: claims.client_id,
            scope: claims.scope,
        })
    }
}
