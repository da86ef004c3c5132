//! Registry types: clients, their secrets, and the snapshot that holds them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

/// An API client as the registry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    /// Display only.
    pub name: String,
    /// The scopes it may request; a request without `scope` gets all of them.
    pub scopes: Vec<String>,
    /// Copied into every token as the `roles` claim.
    pub roles: Vec<String>,
    /// Overrides the issuer's default token lifetime.
    pub token_lifetime: Option<Duration>,
    /// After this instant the client can no longer get tokens; `None` = never expires.
    pub expires: Option<OffsetDateTime>,
    pub enabled: bool,
    /// Tokens issued before this instant are revoked (`credgate client revoke-tokens`).
    pub tokens_not_before: Option<OffsetDateTime>,
    /// Several secrets may be valid at once, so a rotation needs no downtime.
    pub secrets: Vec<Secret>,
}

/// One secret of a client; only its argon2id hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// A stable, non-secret name: `[[client.secret]] id`, generated for new secrets; a
    /// secret written without one is named by [`secret_reference`] of its hash, which never
    /// changes either. The CLI and the management API remove secrets by it.
    pub id: String,
    pub description: String,
    /// PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    pub hash: String,
    pub expires: Option<OffsetDateTime>,
    /// When it was made, for those who manage it; `None` for secrets written without it.
    pub created: Option<OffsetDateTime>,
}

impl Client {
    /// Whether the client may get tokens at `now` (enabled and not expired).
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.enabled && self.expires.is_none_or(|e| now < e)
    }

    /// Whether a token issued at `iat` (unix seconds) predates a `revoke-tokens`.
    pub fn revoked(&self, iat: i64) -> bool {
        self.tokens_not_before
            .is_some_and(|t| iat < t.unix_timestamp())
    }
}

impl Secret {
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.expires.is_none_or(|e| now < e)
    }

    /// A new id for a secret: 72 random bits, base64url (12 characters).
    pub fn new_id() -> String {
        use base64::Engine;
        let mut bytes = [0u8; 9];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system CSPRNG is available");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// The id of a secret written without one: the first 8 characters of the salt of its PHC
/// hash string (random, and fixed for the life of the secret), in base64url (`+` → `-`,
/// `/` → `_`) so that it fits in a URL.
pub fn secret_reference(hash: &str) -> String {
    let salt = hash.split('$').nth(4).unwrap_or("");
    salt.chars()
        .take(8)
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

/// An immutable snapshot of every client, indexed by id.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    clients: HashMap<String, Arc<Client>>,
    /// Every scope some client may request, sorted; computed once per snapshot.
    scopes: Vec<String>,
}

impl Registry {
    pub fn new(clients: impl IntoIterator<Item = Client>) -> Self {
        let clients: HashMap<String, Arc<Client>> = clients
            .into_iter()
            .map(|c| (c.id.clone(), Arc::new(c)))
            .collect();
        let mut scopes: Vec<String> = clients
            .values()
            .flat_map(|c| c.scopes.iter().cloned())
            .collect();
        scopes.sort();
        scopes.dedup();
        Registry { clients, scopes }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Client>> {
        self.clients.get(id)
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Every client, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.clients.values()
    }

    /// Clients sorted by id, for stable listings.
    pub fn sorted(&self) -> Vec<&Arc<Client>> {
        let mut clients: Vec<_> = self.clients.values().collect();
        clients.sort_by(|a, b| a.id.cmp(&b.id));
        clients
    }

    /// Every scope some client may request, sorted (the discovery documents list them).
    pub fn all_scopes(&self) -> &[String] {
        &self.scopes
    }

    /// What may stay in service when files that replace this registry are refused: only what
    /// both this registry and `readable` (the clients the refused files still define validly)
    /// grant. A client the files no longer define, or define with a problem, is out; one they
    /// narrow is narrowed. Nothing is widened or added until the files are valid again, so a
    /// refused reload never keeps a removed or disabled client working.
    pub fn restrict(&self, readable: &Registry) -> Registry {
        Registry::new(
            self.clients
                .values()
                .filter_map(|old| readable.get(&old.id).map(|new| old.narrowed_by(new))),
        )
    }
}

impl Client {
    /// This client with no more access than `other` (the same id) gives it.
    fn narrowed_by(&self, other: &Client) -> Client {
        let common = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|x| b.contains(x)).cloned().collect()
        };
        let earliest = |a: Option<OffsetDateTime>, b: Option<OffsetDateTime>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let secrets = self
            .secrets
            .iter()
            .filter_map(|mine| {
                let theirs = other.secrets.iter().find(|s| s.hash == mine.hash)?;
                Some(Secret {
                    expires: earliest(mine.expires, theirs.expires),
                    ..mine.clone()
                })
            })
            .collect();
        Client {
            id: self.id.clone(),
            name: other.name.clone(),
            scopes: common(&self.scopes, &other.scopes),
            roles: common(&self.roles, &other.roles),
            token_lifetime: match (self.token_lifetime, other.token_lifetime) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            expires: earliest(self.expires, other.expires),
            enabled: self.enabled && other.enabled,
            tokens_not_before: self.tokens_not_before.max(other.tokens_not_before),
            secrets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn client(id: &str) -> Client {
        Client {
            id: id.into(),
            name: id.into(),
            scopes: vec!["a".into(), "b".into()],
            roles: vec!["r".into()],
            token_lifetime: None,
            expires: None,
            enabled: true,
            tokens_not_before: None,
            secrets: vec![
                Secret {
                    id: "one".into(),
                    description: "one".into(),
                    hash: "h1".into(),
                    expires: None,
                    created: None,
                },
                Secret {
                    id: "two".into(),
                    description: "two".into(),
                    hash: "h2".into(),
                    expires: None,
                    created: None,
                },
            ],
        }
    }

    #[test]
    fn a_restriction_keeps_only_what_both_grant() {
        let old = Registry::new([client("kept"), client("removed"), client("narrowed")]);
        let mut narrowed = client("narrowed");
        narrowed.scopes = vec!["b".into(), "c".into()];
        narrowed.enabled = false;
        narrowed.expires = Some(datetime!(2030-01-01 0:00 UTC));
        narrowed.tokens_not_before = Some(datetime!(2026-01-01 0:00 UTC));
        narrowed.secrets.remove(0);
        narrowed.secrets[0].expires = Some(datetime!(2029-01-01 0:00 UTC));
        let mut widened = client("kept");
        widened.scopes.push("admin".into());
        let readable = Registry::new([widened, narrowed, client("added")]);

        let restricted = old.restrict(&readable);
        assert_eq!(restricted.len(), 2);
        assert!(restricted.get("removed").is_none() && restricted.get("added").is_none());
        assert_eq!(restricted.get("kept").unwrap().scopes, ["a", "b"]);
        let n = restricted.get("narrowed").unwrap();
        assert_eq!(n.scopes, ["b"]);
        assert!(!n.enabled);
        assert_eq!(n.expires, Some(datetime!(2030-01-01 0:00 UTC)));
        assert_eq!(n.tokens_not_before, Some(datetime!(2026-01-01 0:00 UTC)));
        assert_eq!(n.secrets.len(), 1);
        assert_eq!(n.secrets[0].hash, "h2");
        assert_eq!(n.secrets[0].expires, Some(datetime!(2029-01-01 0:00 UTC)));
    }
}
