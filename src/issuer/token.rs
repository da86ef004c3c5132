//! The token endpoint (RFC 6749 §4.4): authenticate the client, settle the scope, mint.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;

use super::error::OAuthError;
use super::mint::{mint, Grant};
use super::request::{self, AuthMethod, Credentials, TokenRequest};
use super::Issuer;
use crate::metrics::metrics;
use crate::registry::{Client, Organization};
use crate::reply::{self, Outcome, Reply};

/// A form POST to the token or the introspection endpoint: the parts of the HTTP request
/// either looks at.
pub struct FormPost<'a> {
    pub method: &'a http::Method,
    pub content_type: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
    pub body: &'a [u8],
    /// The caller's address, for the per-address failure limit.
    pub peer: Option<IpAddr>,
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
}

impl Issuer {
    /// Answers one token request to `org`'s token endpoint: `issued` with the token, or the
    /// OAuth error.
    pub async fn token(&self, req: FormPost<'_>, org: &Organization) -> Outcome {
        let started = Instant::now();
        let outcome = match self.issue(req, org).await {
            Ok((reply, client)) => Outcome::answer("issued", reply).by(&client.id),
            Err(e) => e.into_outcome(),
        };
        let metrics = metrics();
        metrics
            .token_requests
            .with_label_values(&[outcome.label])
            .inc();
        metrics
            .token_issue_seconds
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    async fn issue(
        &self,
        req: FormPost<'_>,
        org: &Organization,
    ) -> Result<(Reply, Arc<Client>), OAuthError> {
        if req.method != http::Method::POST {
            return Err(OAuthError::method_not_allowed());
        }
        let parsed = request::parse(req.content_type, req.authorization, req.body)?;
        self.grant(parsed, req.peer, org).await
    }

    /// Authenticates a client of `org` by its secret: the client must exist in `org`, be
    /// enabled and unexpired, the secret must match one of its unexpired secrets, and the
    /// organisation must be enabled.
    pub(super) async fn authenticate_client(
        &self,
        credentials: Credentials,
        peer: Option<IpAddr>,
        org: &Organization,
    ) -> Result<Arc<Client>, OAuthError> {
        let basic = credentials.method == AuthMethod::Basic;
        let client = org.clients.get(&credentials.client_id);
        let matched = match self.remembered(org, client, &credentials.secret) {
            hit @ Some(_) => hit,
            None => self.check_secret(org, client, credentials, peer).await?,
        };
        let refused = |why| Err(OAuthError::invalid_client(why, basic));
        let (Some(client), Some(index)) = (client, matched) else {
            return refused("client authentication failed");
        };
        // From here on the caller has proved it holds a secret of this client, so telling it
        // precisely what is wrong leaks nothing.
        let now = OffsetDateTime::now_utc();
        if !client.secrets[index].is_valid_at(now) {
            return refused("the client secret has expired");
        }
        if !client.enabled {
            return refused("the client is disabled");
        }
        if !client.is_active(now) {
            return refused("the client has expired");
        }
        if !org.policy.enabled {
            return refused("the organisation is disabled");
        }
        Ok(client.clone())
    }

    /// Runs argon2id against `client`'s secrets (a dummy hash when there is no such client),
    /// unless the caller has used up its attempts or another request verified the same secret
    /// while this one waited for a thread; counts a failure, remembers a match. An overloaded
    /// verifier (503) counts as neither.
    async fn check_secret(
        &self,
        org: &Organization,
        client: Option<&Arc<Client>>,
        credentials: Credentials,
        peer: Option<IpAddr>,
    ) -> Result<Option<usize>, OAuthError> {
        // The same id in two organisations names two clients, counted apart.
        let counted_as = match org.claim() {
            Some(org) => format!("{org}/{}", credentials.client_id),
            None => credentials.client_id.clone(),
        };
        let attempt = self
            .throttle
            .begin(&counted_as, peer)
            .map_err(OAuthError::slow_down)?;
        let hashes = client.map_or_else(Vec::new, |c| {
            c.secrets.iter().map(|s| s.hash.clone()).collect()
        });
        let secret = credentials.secret.clone();
        let verdict = self
            .verifier
            .find_match(hashes, credentials.secret, || {
                self.remembered(org, client, &secret)
            })
            .await
            .map_err(|_| OAuthError::temporarily_unavailable())?;
        match (client, verdict.matched) {
            // A verdict from the cache is remembered already: inserting it again would only
            // restart its TTL.
            (Some(client), Some(index)) if verdict.hashed => {
                self.verified.remember(&org.id, client, &secret, index)
            }
            (Some(_), Some(_)) => {}
            _ => attempt.failed(),
        }
        // Only now, with the match remembered, may the next request waiting for a thread look.
        let matched = verdict.matched;
        drop(verdict);
        Ok(matched)
    }

    /// The index of the secret of `client` that `secret` was verified against within the
    /// secret cache's TTL, counted as a cache hit.
    fn remembered(
        &self,
        org: &Organization,
        client: Option<&Arc<Client>>,
        secret: &str,
    ) -> Option<usize> {
        let index = self.verified.lookup(&org.id, client?, secret)?;
        metrics().secret_cache_hits.inc();
        Some(index)
    }

    async fn grant(
        &self,
        req: TokenRequest,
        peer: Option<IpAddr>,
        org: &Organization,
    ) -> Result<(Reply, Arc<Client>), OAuthError> {
        let basic = req.credentials.method == AuthMethod::Basic;
        let client = &self.authenticate_client(req.credentials, peer, org).await?;
        if org.policy.require_role && !org.has_own_role(client) {
            return Err(OAuthError::invalid_client(
                "the organisation requires a role and this client has none beyond the defaults; an administrator must assign one",
                basic,
            ));
        }
        let now = OffsetDateTime::now_utc();
        let scope = granted_scope(client, req.scope)?;
        let keys = self.keys.snapshot();
        let lifetime = client
            .token_lifetime
            .unwrap_or(self.config.default_token_lifetime);
        let grant = Grant {
            org,
            audience: &self.config.audience,
            client,
            scope,
            lifetime: org
                .policy
                .max_token_lifetime
                .map_or(lifetime, |max| lifetime.min(max)),
        };
        let minted = mint(&grant, keys.signing_key(), now).map_err(|e| {
            tracing::error!(error = %e, "signing a token failed");
            OAuthError::server_error("the token could not be signed")
        })?;
        let body = TokenResponse {
            access_token: &minted.token,
            token_type: "Bearer",
            expires_in: minted.expires_in,
            scope: &grant.scope,
        };
        let reply = reply::no_store(reply::json(StatusCode::OK, &body));
        Ok((reply, client.clone()))
    }
}

/// The requested scopes if the client may have all of them; all of the client's scopes when
/// none were requested.
fn granted_scope(client: &Client, requested: Option<Vec<String>>) -> Result<String, OAuthError> {
    let Some(mut requested) = requested else {
        return Ok(client.scopes.join(" "));
    };
    if let Some(denied) = requested.iter().find(|s| !client.scopes.contains(s)) {
        return Err(OAuthError::invalid_scope(format!(
            "scope {denied:?} is not granted to this client"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    requested.retain(|s| seen.insert(s.clone()));
    Ok(requested.join(" "))
}
