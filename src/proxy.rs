//! The Pingora `ProxyHttp` implementation of the main listener: every request is resolved by
//! the route table and answered in `request_filter`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::header;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

use crate::issuer::error::OAuthError;
use crate::issuer::request::MAX_BODY_BYTES;
use crate::issuer::Issuer;
use crate::reply::{self, Reply};
use crate::routes::{Endpoint, RouteTable};

/// How long a client may take to send the token request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Gateway {
    routes: RouteTable,
    issuer: Arc<Issuer>,
}

impl Gateway {
    pub fn new(issuer: Arc<Issuer>) -> Self {
        Gateway {
            routes: RouteTable::new(issuer.config()),
            issuer,
        }
    }

    async fn token(&self, session: &mut Session) -> Result<Reply> {
        let body = match read_body(session, MAX_BODY_BYTES).await? {
            Ok(body) => body,
            Err(too_large) => return Ok(too_large),
        };
        let req = session.req_header();
        let request = crate::issuer::token::TokenHttpRequest {
            method: &req.method,
            content_type: req.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            authorization: req.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
            body: &body,
        };
        Ok(self.issuer.token(request).await)
    }
}

/// Reads the request body up to `limit` bytes. A larger body (announced or sent) is answered
/// with 413 and the connection is not reused, since the rest of the body is left unread.
async fn read_body(
    session: &mut Session,
    limit: usize,
) -> Result<std::result::Result<Vec<u8>, Reply>> {
    let too_large = |session: &mut Session| {
        session.set_keepalive(None);
        Ok(Err(OAuthError::body_too_large(limit).into_reply()))
    };
    let announced = session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return too_large(session);
    }
    session.set_read_timeout(Some(BODY_READ_TIMEOUT));
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return too_large(session);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut Self::CTX) -> Result<bool> {
        let endpoint = self.routes.resolve(session.req_header().uri.path());
        let is_get = session.req_header().method == http::Method::GET;
        let reply = match endpoint {
            Endpoint::Token => self.token(session).await?,
            Endpoint::Metadata if is_get => self.issuer.metadata(),
            Endpoint::Jwks if is_get => self.issuer.jwks(),
            Endpoint::Metadata | Endpoint::Jwks => reply::get_only(),
            Endpoint::NotFound => reply::not_found(),
        };
        reply::write(session, reply).await?;
        Ok(true)
    }

    /// Nothing is proxied yet: `request_filter` answers every request itself.
    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Error::e_explain(ErrorType::InternalError, "no upstream is configured")
    }
}
