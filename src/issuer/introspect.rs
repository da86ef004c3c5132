//! Token introspection (RFC 7662): an authenticated client asks whether a token is currently
//! valid. The answer is the guard's own verdict, registry checks included.

use http::StatusCode;
use serde::Serialize;

use super::error::OAuthError;
use super::request;
use super::token::TokenHttpRequest;
use super::{Answer, Issuer};
use crate::guard::Guard;
use crate::reply;

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
}

impl Issuer {
    /// Answers one introspection request. Any token that is not currently valid — malformed,
    /// forged, expired, revoked, of a disabled client — is simply `{"active": false}`.
    pub async fn introspect(&self, req: TokenHttpRequest<'_>, guard: &Guard) -> Answer {
        if req.method != http::Method::POST {
            return Answer::refused(OAuthError::method_not_allowed());
        }
        let parsed =
            match request::parse_introspection(req.content_type, req.authorization, req.body) {
                Ok(parsed) => parsed,
                Err(e) => return Answer::refused(e),
            };
        let caller = match self.authenticate(parsed.credentials, req.peer).await {
            Ok(caller) => caller,
            Err(e) => return Answer::refused(e),
        };
        let verdict = guard.authenticate(&parsed.token).await;
        let outcome = if verdict.is_ok() {
            "active"
        } else {
            "inactive"
        };
        let body = match verdict {
            Ok(identity) => {
                // iss and aud were checked to be ours; sub is the client id (RFC 9068 §2.2
                // for client credentials).
                let grantee = &identity.grantee;
                serde_json::to_vec(&Active {
                    active: true,
                    client_id: &grantee.client_id,
                    sub: &grantee.client_id,
                    scope: &grantee.scope,
                    exp: identity.expires_at,
                    iat: identity.issued_at,
                    iss: &self.config.issuer,
                    aud: &self.config.audience,
                    token_type: "Bearer",
                })
                .expect("introspection serializes")
            }
            Err(_) => br#"{"active":false}"#.to_vec(),
        };
        Answer {
            reply: reply::no_store(reply::json_bytes(StatusCode::OK, body)),
            outcome,
            client_id: Some(caller.id.clone()),
        }
    }
}
