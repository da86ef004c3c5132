//! The token side: the token endpoint, signing keys and discovery documents.

pub mod discovery;
pub mod error;
mod introspect;
pub mod low_priority;
pub(crate) mod mint;
pub mod request;
pub mod secret_cache;
pub mod secrets;
pub mod throttle;
pub mod token;

use std::sync::Arc;

use http::StatusCode;

use crate::config::IssuerConfig;
use crate::oauth::KeyStore;
use crate::registry::Organization;
use crate::reply::{self, Reply};
use secret_cache::VerifiedSecrets;
use secrets::SecretVerifier;
use throttle::Throttle;

/// Everything the issuer endpoints need, shared by all requests. The organisation a request is
/// for, with its clients, comes with the request (the route table found it).
pub struct Issuer {
    config: IssuerConfig,
    keys: Arc<KeyStore>,
    verifier: SecretVerifier,
    verified: VerifiedSecrets,
    throttle: Throttle,
}

impl Issuer {
    pub fn new(config: IssuerConfig, keys: Arc<KeyStore>) -> Self {
        let verifier =
            SecretVerifier::new(config.secret_verify_concurrency, config.secret_verify_queue);
        let verified = VerifiedSecrets::new(config.secret_cache_ttl);
        let throttle = Throttle::new(config.failures);
        Issuer {
            config,
            keys,
            verifier,
            verified,
            throttle,
        }
    }

    pub fn config(&self) -> &IssuerConfig {
        &self.config
    }

    /// RFC 8414 metadata of `org`'s issuer, listing the scopes its clients may hold.
    pub fn metadata(&self, org: &Organization) -> Reply {
        let body = discovery::metadata(&self.config, org);
        reply::json_bytes(StatusCode::OK, body)
    }

    /// The JWK Set of every key that may still verify a token. Resource servers may cache it
    /// for a fifth of `key_activation_delay`: a new key is then in their copy well before it
    /// signs its first token.
    pub fn jwks(&self) -> Reply {
        let mut reply =
            reply::json_bytes(StatusCode::OK, self.keys.snapshot().jwks_json().to_vec());
        let max_age = self.config.key_activation_delay.as_secs() / 5;
        let cache = format!("public, max-age={max_age}");
        reply.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_str(&cache).expect("digits and ASCII"),
        );
        reply
    }
}
