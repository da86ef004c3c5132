//! The verified-secret cache: after a successful argon2id verification, remember which secret
//! of which client the presented secret matched, so an integration that asks for a token every
//! few minutes pays argon2 once per TTL instead of every time.
//!
//! Entries are keyed by client id and an HMAC-SHA256 of the presented secret under a key drawn
//! at start and never stored: the secret itself is never kept, and a dump of the cache reveals
//! nothing that can be replayed or brute-forced offline. An entry also holds the client as the
//! registry described it at verification time, and only counts while the current registry still
//! describes that client identically — any change to it (secret rotated or removed, client
//! disabled, scopes edited) makes the entry worthless at the next request.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use moka::sync::Cache;

use crate::registry::Client;

/// How many verified (client, secret) pairs are remembered at most.
const CAPACITY: u64 = 100_000;

/// (organisation id, client id, HMAC of the presented secret) → (the client as verified, index
/// of its secret). The same client id in two organisations names two clients.
type Entries = Cache<(String, String, [u8; 32]), (Arc<Client>, usize)>;

pub struct VerifiedSecrets {
    key: hmac::Key,
    /// `None` when disabled (TTL of zero).
    cache: Option<Entries>,
}

impl VerifiedSecrets {
    pub fn new(ttl: Duration) -> Self {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).expect("the system CSPRNG is available");
        VerifiedSecrets {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            cache: (!ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(CAPACITY)
                    .time_to_live(ttl)
                    .build()
            }),
        }
    }

    fn entry_key(&self, org: &str, client: &Client, secret: &str) -> (String, String, [u8; 32]) {
        let tag = hmac::sign(&self.key, secret.as_bytes());
        let tag: [u8; 32] = tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes");
        (org.to_owned(), client.id.clone(), tag)
    }

    /// The index of the secret of `client` that `secret` was verified against, if that happened
    /// within the TTL and `client` is described exactly as it was then.
    pub fn lookup(&self, org: &str, client: &Arc<Client>, secret: &str) -> Option<usize> {
        let cache = self.cache.as_ref()?;
        let key = self.entry_key(org, client, secret);
        let (then, index) = cache.get(&key)?;
        if Arc::ptr_eq(&then, client) || *then == **client {
            Some(index)
        } else {
            cache.invalidate(&key);
            None
        }
    }

    /// Remembers that `secret` matched secret `index` of `client`.
    pub fn remember(&self, org: &str, client: &Arc<Client>, secret: &str, index: usize) {
        if let Some(cache) = &self.cache {
            cache.insert(self.entry_key(org, client, secret), (client.clone(), index));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(description: &str) -> Arc<Client> {
        Arc::new(Client {
            id: "c".into(),
            name: "C".into(),
            scopes: vec![],
            roles: vec![],
            token_lifetime: None,
            expires: None,
            enabled: true,
            tokens_not_before: None,
            secrets: vec![crate::registry::Secret {
                id: "s".into(),
                description: description.into(),
                hash: "h".into(),
                expires: None,
                created: None,
            }],
        })
    }

    #[test]
    fn a_remembered_secret_is_found_only_for_the_same_client_description() {
        let cache = VerifiedSecrets::new(Duration::from_secs(60));
        let before = client("one");
        cache.remember("", &before, "s3cret", 0);
        assert_eq!(cache.lookup("", &before, "s3cret"), Some(0));
        assert_eq!(
            cache.lookup("", &client("one"), "s3cret"),
            Some(0),
            "an identical reload keeps it"
        );
        assert_eq!(cache.lookup("", &before, "other"), None);
        assert_eq!(
            cache.lookup("", &client("two"), "s3cret"),
            None,
            "a changed client drops it"
        );
        assert_eq!(
            cache.lookup("", &before, "s3cret"),
            None,
            "and it stays dropped"
        );
    }

    #[test]
    fn the_same_client_in_another_organisation_is_another_entry() {
        let cache = VerifiedSecrets::new(Duration::from_secs(60));
        let c = client("one");
        cache.remember("acme", &c, "s", 0);
        assert_eq!(cache.lookup("acme", &c, "s"), Some(0));
        assert_eq!(cache.lookup("globex", &c, "s"), None);
    }

    #[test]
    fn a_zero_ttl_disables_it() {
        let cache = VerifiedSecrets::new(Duration::ZERO);
        let c = client("one");
        cache.remember("", &c, "s", 0);
        assert_eq!(cache.lookup("", &c, "s"), None);
    }
}
