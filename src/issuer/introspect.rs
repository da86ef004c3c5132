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
}

impl Issuer {
    /// Answers one introspection request. Any token that is not currently valid — malformed,
    /// forged, expired, revoked, of a disabled client — is simply `{"active": false}`.
    pub async fn introspect(&self, req: FormPost<'_>, tokens: &dyn TokenCheck) -> Outcome {
        if req.method != http::Method::POST {
            return OAuthError::method_not_allowed().into_outcome();
        }
        let parsed =
            match request::parse_introspection(req.content_type, req.authorization, req.body) {
                Ok(parsed) => parsed,
                Err(e) => return e.into_outcome(),
            };
        let caller = match self.authenticate_client(parsed.credentials, req.peer).await {
            Ok(caller) => caller,
            Err(e) => return e.into_outcome(),
        };
        let (label, body) = match tokens.check_token(&parsed.token).await {
            Ok(token) => {
                // iss and aud were checked to be ours; sub is the client id (RFC 9068 §2.2
                // for client credentials).
                let active = serde_json::to_vec(&Active {
                    active: true,
                    client_id: &token.client_id,
                    sub: &token.client_id,
                    scope: &token.scope,
                    exp: token.expires_at,
                    iat: token.issued_at,
                    iss: &self.config.issuer,
                    aud: &self.config.audience,
                    token_type: "Bearer",
                })
                .expect("introspection serializes");
                ("active", active)
            }
            Err(_) => ("inactive", br#"{"active":false}"#.to_vec()),
        };
        let reply = reply::no_store(reply::json_bytes(StatusCode::OK, body));
        Outcome::answer(label, reply).by(&caller.id)
    }
}
