//! Token introspection (RFC 7662): an authenticated client asks whether a token is currently
//! valid. The answer is the resource side's own verdict ([`TokenCheck`]), registry checks
//! included.

use http::StatusCode;
use serde::Serialize;

use super::error::OAuthError;
use super::request;
use super::token::FormPost;
use super::Issuer;
use crate::oauth::TokenCheck;
use crate::registry::Organization;
use crate::reply::{self, Outcome};

#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    client_id: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    exp: i64,
    iat: i64,
    iss: &'a str,
    aud: &'a str,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<&'a str>,
}

impl Issuer {
    /// Answers one introspection request at `org`'s endpoint. Any token that is not currently
    /// valid — malformed, forged, expired, revoked, of a disabled client, or issued by another
    /// organisation — is simply `{"active": false}`.
    pub async fn introspect(
        &self,
        req: FormPost<'_>,
        org: &Organization,
        tokens: &dyn TokenCheck,
    ) -> Outcome {
        if req.method != http::Method::POST {
            return OAuthError::method_not_allowed().into_outcome();
        }
        let parsed =
            match request::parse_introspection(req.content_type, req.authorization, req.body) {
                Ok(parsed) => parsed,
                Err(e) => return e.into_outcome(),
            };
        let caller = match self
            .authenticate_client(parsed.credentials, req.peer, org)
            .await
        {
            Ok(caller) => caller,
            Err(e) => return e.into_outcome(),
        };
        let checked = tokens.check_token(&parsed.token).await;
        let (label, body) = match checked.ok().filter(|t| t.org_id.as_deref() == org.claim()) {
            Some(token) => {
                // iss and aud were checked to be ours; sub is the client id (RFC 9068 §2.2
                // for client credentials).
                let active = serde_json::to_vec(&Active {
                    active: true,
                    client_id: &token.client_id,
                    sub: &token.client_id,
                    scope: &token.scope,
                    exp: token.expires_at,
                    iat: token.issued_at,
                    iss: &org.issuer,
                    aud: &self.config.audience,
                    token_type: "Bearer",
                    org_id: org.claim(),
                })
                .expect("introspection serializes");
                ("active", active)
            }
            None => ("inactive", br#"{"active":false}"#.to_vec()),
        };
        let reply = reply::no_store(reply::json_bytes(StatusCode::OK, body));
        Outcome::answer(label, reply).by(&caller.id)
    }
}
