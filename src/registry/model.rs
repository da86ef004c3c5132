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
    pub description: String,
    /// PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    pub hash: String,
    pub expires: Option<OffsetDateTime>,
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

    /// A short, stable, non-secret name for this secret: the start of its random salt.
    /// `credgate client show` prints it and `credgate secret remove` takes it.
    pub fn reference(&self) -> &str {
        secret_reference(&self.hash)
    }
}

/// See [`Secret::reference`]: the first 8 characters of the salt of a PHC hash string.
pub fn secret_reference(hash: &str) -> &str {
    let salt = hash.split('$').nth(4).unwrap_or("");
    &salt[..salt.len().min(8)]
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
}
