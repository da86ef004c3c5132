//! Token introspection (RFC 7662): an authenticated client asks whether a token is currently
//! valid. The answer is the guard's own verdict, registry checks included.

use http::StatusCode;
use serde::Serialize;

use super::error::OAuthError;
use super::request;
use super::token::TokenHttpRequest;
use super::Issuer;
use crate::guard::Guard;
use crate::reply::{self, Reply};

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
    pub async fn introspect(&self, req: TokenHttpRequest<'_>, guard: &Guard) -> Reply {
        if req.method != http::Method::POST {
            return OAuthError::method_not_allowed().into_reply();
        }
        let parsed =
            match request::parse_introspection(req.content_type, req.authorization, req.body) {
                Ok(parsed) => parsed,
                Err(e) => return e.into_reply(),
            };
        if let Err(e) = self.authenticate(parsed.credentials).await {
            return e.into_reply();
        }
        let body = match guard.authenticate(&parsed.token).await {
            Ok(identity) => {
                let claims = &identity.claims;
                serde_json::to_vec(&Active {
                    active: true,
                    client_id: &claims.client_id,
                    sub: &claims.sub,
                    scope: &claims.scope,
                    exp: claims.exp,
                    iat: claims.iat,
                    iss: &claims.iss,
                    aud: &claims.aud,
                    token_type: "Bearer",
                })
                .expect("introspection serializes")
            }
            Err(_) => br#"{"active":false}"#.to_vec(),
        };
        reply::no_store(reply::json_bytes(StatusCode::OK, body))
    }
}
