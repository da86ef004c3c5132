//! Token verification: key lookup by `kid`, the key's pinned algorithm, signature, `typ`, `iss`
//! (the single issuer's, or the one of the organisation the token names in `org_id`), `aud`,
//! `exp` and `nbf`; verified tokens are cached so a repeated token costs a comparison with
//! this thread's entry for it (`guard/front.rs`), or else one hash and one shared-cache lookup.
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
use super::front::Front;
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
#[derive(Debug, Clone)]
pub struct Identity {
    pub grantee: Arc<Grantee>,
    /// `iat`, which a revocation (`tokens_not_before`) is compared with.
    pub issued_at: i64,
    /// `exp`.
    pub expires_at: i64,
    /// How long this entry may stay cached.
    cache_for: Duration,
    /// When that ends, for the per-thread tables ([`super::front`]).
    pub(super) cached_until: Instant,
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
    /// Each thread's own few entries of `cache`, looked at first; `None` when caching is off
    /// (`cache_capacity = 0`), and then neither cache is asked.
    front: Option<Front>,
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

/// The shared cache's key for `token`: SHA-256 of its exact bytes, so that a token that
/// differs in any byte is another key, and the cache holds no token.
fn cache_key(token: &[u8]) -> [u8; 32] {
    digest(&SHA256, token)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
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
            front: (guard.cache_capacity > 0).then(Front::new),
            cache_ttl: guard.cache_ttl,
            grantees: moka::sync::Cache::new(GRANTEES),
        }
    }

    /// Verifies `token` (from the cache when it was verified before). Errors are fixed
    /// descriptions fit for the `WWW-Authenticate` challenge.
    ///
    /// Only a token missing from the cache is checked against RFC 6750's `b64token` grammar:
    /// both caches find a token by its exact bytes (the shared one by their SHA-256) and hold
    /// only tokens that passed it.
    pub async fn verify(&self, token: &[u8]) -> Result<Arc<Identity>, &'static str> {
        let now = unix_now();
        let Some(front) = &self.front else {
            return self.verify_now(token, now);
        };
        if let Some(identity) = front.get(token) {
            return self.hit(identity, now);
        }
        let key = cache_key(token);
        if let Some(identity) = self.cache.get(&key).await {
            return self.hit(front.put(token, &identity), now);
        }
        let identity = self.verify_now(token, now)?;
        self.cache.insert(key, identity.clone()).await;
        Ok(front.put(token, &identity))
    }

    /// A verification found in a cache, re-checked.
    fn hit(&self, identity: Arc<Identity>, now: i64) -> Result<Arc<Identity>, &'static str> {
        metrics().auth_cache_hits.inc();
        self.still_valid(identity, now)
    }

    /// A verification from nothing: the token's grammar, then its signature and claims.
    fn verify_now(&self, token: &[u8], now: i64) -> Result<Arc<Identity>, &'static str> {
        metrics().auth_cache_misses.inc();
        let token = b64token(token).ok_or(MALFORMED)?;
        Ok(Arc::new(self.verify_uncached(token, now)?))
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
        } else if self.keys.read().find(&identity.grantee.kid).is_none() {
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
        let cache_for = self.cache_ttl.min(Duration::from_secs(remaining));
        Ok(Identity {
            issued_at: claims.iat,
            expires_at: claims.exp,
            cache_for,
            cached_until: Instant::now() + cache_for,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::oauth::{key_files, KeySet};
    use crate::registry::{Client, Organizations, Registry};
    use crate::testing::{mint, Grant, MINIMAL_CONFIG};

    /// A verifier with `guard` as its `[guard]` table and audience `audience`, and a token of
    /// its key for audience `api`.
    fn verifier(guard: &str, audience: &str) -> (tempfile::TempDir, TokenVerifier, String) {
        let text = format!("{MINIMAL_CONFIG}[guard]\n{guard}\n")
            .replace("audience = \"api\"", &format!("audience = \"{audience}\""));
        let config = Config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        key_files::generate(dir.path(), SigningAlgorithm::EdDSA).unwrap();
        let keys = KeySet::load(dir.path(), SigningAlgorithm::EdDSA, Duration::ZERO).unwrap();
        let client = Client {
            id: "app".into(),
            name: "app".into(),
            scopes: vec!["api.read".into()],
            roles: vec![],
            token_lifetime: None,
            expires: None,
            enabled: true,
            tokens_not_before: None,
            secrets: vec![],
        };
        let issuer = config.issuer.issuers.issuer_of(None).unwrap();
        let orgs = Organizations::single(&issuer, Registry::default());
        let grant = Grant {
            org: orgs.get("").unwrap(),
            audience: "api",
            client: &client,
            scope: "api.read".into(),
            lifetime: Duration::from_secs(900),
        };
        let now = time::OffsetDateTime::now_utc();
        let token = mint(&grant, keys.signing_key(), now).unwrap().token;
        let verifier =
            TokenVerifier::new(Arc::new(KeyStore::new(keys)), &config.issuer, &config.guard);
        (dir, verifier, token)
    }

    fn verify(verifier: &TokenVerifier, token: &str) -> Result<Arc<Identity>, &'static str> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(verifier.verify(token.as_bytes()))
    }

    #[test]
    fn a_repeated_token_is_answered_from_the_cache() {
        let (_dir, verifier, token) = verifier("", "api");
        let first = verify(&verifier, &token).unwrap();
        for _ in 0..3 {
            assert!(Arc::ptr_eq(&first, &verify(&verifier, &token).unwrap()));
        }
    }

    #[test]
    fn with_the_cache_off_every_request_verifies_again() {
        let (_dir, verifier, token) = verifier("cache_capacity = 0", "api");
        let first = verify(&verifier, &token).unwrap();
        assert!(!Arc::ptr_eq(&first, &verify(&verifier, &token).unwrap()));
    }

    #[test]
    fn no_cache_keeps_a_verification_past_its_ttl() {
        let (_dir, verifier, token) = verifier("cache_ttl = \"50ms\"", "api");
        let first = verify(&verifier, &token).unwrap();
        assert!(Arc::ptr_eq(&first, &verify(&verifier, &token).unwrap()));
        std::thread::sleep(Duration::from_millis(120));
        assert!(!Arc::ptr_eq(&first, &verify(&verifier, &token).unwrap()));
    }

    /// `token` with its byte at `at` replaced by another base64url character: the same length
    /// and last bytes, so the same slot of a thread's table.
    fn tampered(token: &str, at: usize) -> String {
        let mut bytes = token.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    /// A thread's table compares whole tokens: one that differs from a cached token in any
    /// byte, where the slot is the same, is verified itself (and its signature fails).
    #[test]
    fn a_token_differing_from_a_cached_one_in_one_byte_is_verified_itself() {
        let (_dir, verifier, token) = verifier("", "api");
        assert!(verify(&verifier, &token).is_ok());
        let payload = token.find('.').unwrap() + 3;
        for at in [0, payload, token.len() - 9] {
            let forged = tampered(&token, at);
            assert!(verify(&verifier, &forged).is_err(), "byte {at} changed");
            assert!(verify(&verifier, &token).is_ok());
        }
    }

    /// A token longer than `MAX_TOKEN` is not held by a thread's table (the shared cache still
    /// holds it), so a table's memory stays bounded.
    #[test]
    fn a_thread_table_holds_no_token_past_its_bound() {
        let (_dir, verifier, token) = verifier("", "api");
        let identity = verify(&verifier, &token).unwrap();
        let front = Front::new();
        let longest = vec![b'a'; super::super::front::MAX_TOKEN];
        front.put(&longest, &identity);
        assert!(front.get(&longest).is_some());
        let longer = vec![b'b'; longest.len() + 1];
        front.put(&longer, &identity);
        assert!(front.get(&longer).is_none());
    }

    /// Two verifiers on one thread (another audience, say) never answer from each other's
    /// entries, though the thread's table is shared.
    #[test]
    fn a_verifier_never_answers_from_another_ones_entries() {
        let (_dir, accepting, token) = verifier("", "api");
        assert!(verify(&accepting, &token).is_ok());
        let (_other, refusing, _) = verifier("", "another-api");
        // The same keys are needed for the token to get as far as its audience.
        let refusing = TokenVerifier {
            keys: accepting.keys.clone(),
            ..refusing
        };
        assert_eq!(
            verify(&refusing, &token).unwrap_err(),
            "the token is for another audience"
        );
    }
}
