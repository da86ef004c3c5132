//! The Pingora `ProxyHttp` implementation of the main listener: the phases, and nothing they
//! could delegate.
//!
//! `request_filter` checks the head, resolves the path, asks the one component concerned (an
//! issuer endpoint, the guard of a route) and writes the one [`Outcome`] it gets: an answer
//! goes out from there; a forward goes on to `upstream_peer` (where to send it) and
//! `upstream_request_filter` (the headers credgate asserts, see [`forwarded`]). `logging`
//! writes one structured line per request and records its duration.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::ErrorSource;

use crate::access_log;
use crate::bounds;
use crate::config::Config;
use crate::forwarded;
use crate::guard::verify::Identity;
use crate::guard::Guard;
use crate::issuer::error::OAuthError;
use crate::issuer::request::MAX_BODY_BYTES;
use crate::issuer::token::FormPost;
use crate::issuer::Issuer;
use crate::live::Live;
use crate::manage::{Manage, ManageRequest};
use crate::metrics::metrics;
use crate::registry::{Organization, Store};
use crate::reply::{self, Action, Outcome, Reply};
use crate::routes::{Endpoint, Route, RouteTable};

/// How long a client may stall while sending a token or introspection request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers only credgate sets (inbound look-alikes are removed: [`forwarded::refused_inbound`]),
/// as written upstream. A `&'static str` name costs Pingora's case-preserving insert no
/// allocation to title-case it (a `HeaderName` does, on every request).
const ORG_ID: &str = "X-Credgate-Org-Id";
const CLIENT_ID: &str = "X-Credgate-Client-Id";
const SCOPE: &str = "X-Credgate-Scope";
const ROLES: &str = "X-Credgate-Roles";
const FORWARDED_FOR: &str = "X-Forwarded-For";
const FORWARDED_PROTO: &str = "X-Forwarded-Proto";

pub struct Gateway {
    edge: Arc<EdgeStore>,
    /// The organisations and their clients: the route table finds a request's organisation.
    orgs: Arc<Store>,
    issuer: Arc<Issuer>,
    guard: Arc<Guard>,
    /// The management API, when `[manage]` is configured.
    manage: Option<Arc<Manage>>,
}

/// What the config says about handling requests, replaced whole when `credgate.toml` changes
/// while serving: the routes (upstreams, policies, timeouts) and the client-facing limits.
pub struct Edge {
    pub routes: RouteTable,
    /// How long a client may go silent (`server.client_timeout`).
    pub client_timeout: Duration,
    /// `server.drop_underscore_headers`.
    pub drop_underscore_headers: bool,
}

impl Edge {
    /// The edge `config` describes; the issuer's paths and the management API's prefix stay
    /// those of `running`, the config the process started with (the discovery documents
    /// advertise them; they change only with a restart).
    pub fn new(config: &Config, running: &Config) -> Self {
        let manage = running.manage.as_ref().map(|m| m.prefix.as_str());
        Edge {
            routes: RouteTable::new(&running.issuer, &config.routes, manage),
            client_timeout: config.server.client_timeout,
            drop_underscore_headers: config.server.drop_underscore_headers,
        }
    }
}

/// The edge in service.
pub type EdgeStore = Live<Edge>;

/// Requests being handled right now (SIGTERM waits for them, not for the whole grace period).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// How many requests are being handled right now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Acquire)
}

/// Per-request state: where the request went, who the caller is, and what came of it.
pub struct RequestCtx {
    started: Instant,
    /// The edge this request is handled by, start to end, even if a reload replaces it.
    edge: Arc<Edge>,
    /// The route being proxied to, if any.
    route: Option<Arc<Route>>,
    /// Who a verified token says the caller is.
    identity: Option<Arc<Identity>>,
    /// The endpoint label when no route applies (`token`, `jwks`, `not_found`, …).
    endpoint: &'static str,
    /// What came of the request (`issued`, `allowed`, an error code, …).
    outcome: &'static str,
    /// The client an issuer endpoint authenticated.
    client_id: Option<String>,
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RequestCtx {
    /// The bounded label of this request for the log (a route prefix or an endpoint name).
    fn label(&self) -> &str {
        self.route
            .as_ref()
            .map_or(self.endpoint, |r| r.prefix.as_str())
    }
}

impl Gateway {
    pub fn new(
        edge: Arc<EdgeStore>,
        orgs: Arc<Store>,
        issuer: Arc<Issuer>,
        guard: Arc<Guard>,
        manage: Option<Arc<Manage>>,
    ) -> Self {
        Gateway {
            edge,
            orgs,
            issuer,
            guard,
            manage,
        }
    }

    /// Bounds how long the client may go silent. Pingora waits 60 s per read of a request body
    /// and keeps an HTTP/1.1 connection idle between requests forever, which lets a few
    /// thousand idle or trickling connections pin the process's sockets.
    fn bound_client_silence(session: &mut Session, client_timeout: Duration) {
        session.set_read_timeout(Some(client_timeout));
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(client_timeout.as_secs().max(1)));
        }
    }

    /// What to do with the request, and its endpoint label for the request metrics: the head
    /// checks first, then the one component the path resolves to.
    async fn decide(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<(&'static str, Outcome)> {
        let head = session.req_header();
        let refused_head = bounds::oversized(head)
            .map(|o| ("too_large", o))
            .or_else(|| bounds::host_rule(head).map(|o| ("invalid_head", o)));
        if let Some(refused) = refused_head {
            session.set_keepalive(None);
            return Ok(refused);
        }
        let method = &head.method;
        let read_only = method == http::Method::GET || method == http::Method::HEAD;
        let document = |label, reply: &dyn Fn() -> Reply| {
            let outcome = if read_only {
                Outcome::answer("served", reply())
            } else {
                Outcome::answer("method_not_allowed", reply::get_only())
            };
            (label, outcome)
        };
        // One Host (`bounds::host_rule`); Pingora has refused an absolute-form target whose
        // authority disagrees with it (RFC 9112 §3.2.2), so this is the host the client named.
        let host = head
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        // The organisations are only looked at here (what `resolve` returns holds its own
        // references), so they are read without touching the reference count every core
        // would share.
        let resolved = ctx
            .edge
            .routes
            .resolve(host, head.uri.path(), &self.orgs.read());
        Ok(match resolved {
            Err(e) => {
                let raw = head.uri.path();
                // The management API speaks RFC 9457 even about a path it cannot read.
                let reply = match &self.manage {
                    Some(manage) if raw.starts_with(manage.prefix()) => {
                        crate::manage::problem::Problem::bad_request(e.0).reply()
                    }
                    _ => reply::error(StatusCode::BAD_REQUEST, "invalid_request", e.0),
                };
                ("invalid_path", Outcome::answer("invalid_path", reply))
            }
            // The issuer's and the management API's futures are boxed: held inline, their
            // state would enlarge the future of every request, which is moved when created.
            Ok(Endpoint::Token(org)) => (
                "token",
                Box::pin(self.form_endpoint(session, &org, false)).await?,
            ),
            Ok(Endpoint::Introspect(org)) => (
                "introspect",
                Box::pin(self.form_endpoint(session, &org, true)).await?,
            ),
            Ok(Endpoint::Metadata(org)) => document("metadata", &|| self.issuer.metadata(&org)),
            Ok(Endpoint::Jwks) => document("jwks", &|| self.issuer.jwks()),
            Ok(Endpoint::Manage) => match &self.manage {
                Some(manage) => (
                    "manage",
                    Box::pin(self.manage_endpoint(session, manage)).await?,
                ),
                None => (
                    "not_found",
                    Outcome::answer("not_found", reply::not_found()),
                ),
            },
            Ok(Endpoint::NotFound) => (
                "not_found",
                Outcome::answer("not_found", reply::not_found()),
            ),
            Ok(Endpoint::Route { route, org }) => {
                let org = org.as_ref().map(|o| o.id.as_str());
                let outcome = self.guard_route(session, &route, org, ctx).await;
                route.metrics.auth(outcome.label);
                ctx.route = Some(route);
                ("-", outcome)
            }
        })
    }

    /// Answers a token or introspection request to `org`'s issuer: both are small bounded
    /// form POSTs.
    async fn form_endpoint(
        &self,
        session: &mut Session,
        org: &Organization,
        introspect: bool,
    ) -> Result<Outcome> {
        let body = match read_body(session, MAX_BODY_BYTES).await? {
            Ok(body) => body,
            Err(too_large) => return Ok(too_large),
        };
        let req = session.req_header();
        let request = FormPost {
            method: &req.method,
            content_type: req.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            authorization: req.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
            body: &body,
            peer: session
                .client_addr()
                .and_then(|addr| addr.as_inet())
                .map(|addr| addr.ip()),
        };
        Ok(if introspect {
            self.issuer
                .introspect(request, org, self.guard.as_ref())
                .await
        } else {
            self.issuer.token(request, org).await
        })
    }

    /// Answers a management API request (a bounded JSON body).
    async fn manage_endpoint(
        &self,
        session: &mut Session,
        manage: &Arc<Manage>,
    ) -> Result<Outcome> {
        let body = match read_body(session, crate::manage::MAX_BODY_BYTES).await? {
            Ok(body) => body,
            Err(too_large) => return Ok(too_large),
        };
        let req = session.req_header();
        let header = |name| req.headers.get(name).map(|v| v.as_bytes());
        let path = crate::path::canonicalize(req.uri.path()).unwrap_or_default();
        let request = ManageRequest {
            method: &req.method,
            path: &path,
            query: req.uri.query(),
            authorization: header(header::AUTHORIZATION),
            if_match: header(header::IF_MATCH),
            content_type: header(header::CONTENT_TYPE),
            body: &body,
        };
        Ok(manage.handle(request).await)
    }

    /// The guard's decision on a request to `route` (of organisation `org`, for an
    /// `org = "path"` route): forward (a public route, or a token that passes, whose identity
    /// goes into `ctx`) or the refusal.
    async fn guard_route(
        &self,
        session: &Session,
        route: &Route,
        org: Option<&str>,
        ctx: &mut RequestCtx,
    ) -> Outcome {
        if route.policy.public {
            return Outcome::forward("public");
        }
        let headers = &session.req_header().headers;
        match self.guard.authorize(headers, &route.policy, org).await {
            Ok(identity) => {
                ctx.identity = Some(identity);
                Outcome::forward("allowed")
            }
            Err(denial) => denial.into_outcome(),
        }
    }
}

/// Reads the request body up to `limit` bytes. A larger body (announced or sent) is refused
/// with 413 and the connection is not reused, since the rest of the body is left unread.
async fn read_body(
    session: &mut Session,
    limit: usize,
) -> Result<std::result::Result<Vec<u8>, Outcome>> {
    let too_large = |session: &mut Session| {
        session.set_keepalive(None);
        let mut refused = OAuthError::body_too_large(limit).into_outcome();
        refused.label = "body_too_large";
        Ok(Err(refused))
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
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        RequestCtx {
            started: Instant::now(),
            edge: self.edge.snapshot(),
            route: None,
            identity: None,
            endpoint: "-",
            outcome: "-",
            client_id: None,
        }
    }

    /// Resolves the request, gets the one outcome of the component concerned, and writes it:
    /// an answer goes out from here, a forward goes on to `upstream_peer`.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        Self::bound_client_silence(session, ctx.edge.client_timeout);
        let (endpoint, outcome) = self.decide(session, ctx).await?;
        ctx.endpoint = endpoint;
        ctx.outcome = outcome.label;
        ctx.client_id = outcome.client_id;
        match outcome.action {
            Action::Forward => Ok(false),
            Action::Answer(reply) => {
                write_reply(session, reply).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(route) = &ctx.route else {
            return Error::e_explain(ErrorType::InternalError, "no route was resolved");
        };
        route.peer().await.map_err(|unresolved| {
            Error::create(
                ErrorType::ConnectNoRoute,
                ErrorSource::Upstream,
                Some(unresolved.into()),
                None,
            )
        })
    }

    /// Connection failures are not retried: the request goes to one upstream once.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        e.set_retry(false);
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let drop_underscores = ctx.edge.drop_underscore_headers;
        for refused in forwarded::refused_inbound(&upstream.headers, drop_underscores) {
            upstream.remove_header(&refused);
        }
        if let Some(length) = forwarded::reconciled_content_length(&upstream.headers) {
            upstream.insert_header(header::CONTENT_LENGTH, length)?;
        }
        if !ctx.route.as_ref().is_some_and(|r| r.keep_authorization) {
            upstream.remove_header(&header::AUTHORIZATION);
        }
        if let Some(identity) = &ctx.identity {
            if let Some(org) = &identity.grantee.headers.org_id {
                upstream.insert_header(ORG_ID, org.clone())?;
            }
            upstream.insert_header(CLIENT_ID, identity.grantee.headers.client_id.clone())?;
            upstream.insert_header(SCOPE, identity.grantee.headers.scope.clone())?;
            upstream.insert_header(ROLES, identity.grantee.headers.roles.clone())?;
        }
        if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
            let earlier = upstream.headers.get(FORWARDED_FOR);
            let forwarded =
                forwarded::forwarded_for(earlier.and_then(|v| v.to_str().ok()), addr.ip());
            upstream.insert_header(FORWARDED_FOR, forwarded)?;
        }
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
        upstream.insert_header(FORWARDED_PROTO, proto)?;
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(route) = &ctx.route {
            route.metrics.upstream(response.status.as_u16());
        }
        Ok(())
    }

    /// Upstream failures become JSON 502 (refused, reset, bad answer) or 504 (timed out); the
    /// client never sees Pingora's internals.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (status, code, description) = match (e.esource(), e.etype()) {
            (_, ErrorType::HTTPStatus(status)) => (*status, "error", "the request failed"),
            (
                ErrorSource::Upstream,
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ) => (
                504,
                "upstream_timeout",
                "the upstream did not answer in time",
            ),
            (ErrorSource::Upstream, _) => (502, "bad_gateway", "the upstream is unavailable"),
            (
                ErrorSource::Downstream,
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
            ) => (0, "client_gone", ""),
            (ErrorSource::Downstream, _) => {
                (400, "invalid_request", "the request could not be read")
            }
            _ => (500, "server_error", "internal error"),
        };
        if *e.esource() == ErrorSource::Upstream {
            if let Some(route) = &ctx.route {
                route.metrics.upstream_failed();
            }
            tracing::warn!(route = ctx.label(), status, error = %e, "proxying failed");
        }
        ctx.outcome = code;
        if status > 0 && session.response_written().is_none() {
            // Pingora closes this connection after a failed proxy attempt; say so, or the
            // client would send its next request into a closed socket.
            session.set_keepalive(None);
            let reply = reply::error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                code,
                description,
            );
            if let Err(write_error) = write_reply(session, reply).await {
                tracing::debug!(error = %write_error, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Pingora logs every failed request at ERROR. A client that goes away or sends what cannot
    /// be read is ordinary client behaviour, in the request log already; an upstream failure
    /// was logged at WARN by `fail_to_proxy`. Only what is left (credgate's own failures) keeps
    /// Pingora's ERROR line.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        matches!(
            error.esource(),
            ErrorSource::Downstream | ErrorSource::Upstream
        )
    }

    /// What Pingora's own error lines name the request by. Its default carries the raw target,
    /// query string included, where a client may have put a secret or a token.
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }

    /// One line per request: never a query string, header, secret or token; the client id only
    /// once verified.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let elapsed = ctx.started.elapsed();
        let seconds = elapsed.as_secs_f64();
        match &ctx.route {
            Some(route) => route.metrics.duration().observe(seconds),
            None => metrics()
                .request_duration
                .series(ctx.endpoint)
                .observe(seconds),
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let client_id = ctx
            .identity
            .as_ref()
            .map(|i| i.grantee.client_id.as_str())
            .or(ctx.client_id.as_deref())
            .unwrap_or("-");
        let req = session.req_header();
        access_log::write(&access_log::Line {
            method: req.method.as_str(),
            path: req.uri.path(),
            route: ctx.label(),
            client_id,
            status,
            latency: elapsed,
            outcome: ctx.outcome,
        });
    }
}

/// Writes `reply` as the whole response of `session`; to a HEAD request, without the body but
/// with the length it would have (RFC 9110 §9.3.2).
async fn write_reply(session: &mut Session, reply: Reply) -> Result<()> {
    let head = session.req_header().method == http::Method::HEAD;
    let (parts, body) = reply.into_parts();
    let mut header = ResponseHeader::build(parts.status, Some(parts.headers.len() + 1))?;
    for (name, value) in &parts.headers {
        header.append_header(name.clone(), value.clone())?;
    }
    header.insert_header(header::CONTENT_LENGTH, body.len())?;
    session
        .write_response_header(Box::new(header), head)
        .await?;
    if head {
        return Ok(());
    }
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
}
