//! The route table: which endpoint answers a request path.
//!
//! Resolution works on the canonical path (see [`crate::path`]); a path that is not canonical
//! is refused before any route is considered. The issuer's own endpoints match exactly and win
//! over routes; otherwise the longest `[[route]]` prefix covering the path wins (prefixes match
//! on segment boundaries, case-sensitively). Anything else is a 404 and is never proxied.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use pingora::upstreams::peer::HttpPeer;

use crate::config::{IssuerConfig, RouteConfig};
use crate::guard::policy::Policy;
use crate::metrics::{metrics, RouteMetrics};
use crate::oauth::well_known::{
    INTROSPECTION, JWKS, OAUTH_AUTHORIZATION_SERVER, OPENID_CONFIGURATION,
};
use crate::path::{canonicalize, under, PathError};
use crate::resolve::Resolver;

/// What answers a request.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Token,
    Introspect,
    Metadata,
    Jwks,
    /// A `[[route]]`: the guard decides, then Pingora proxies.
    Route(Arc<Route>),
    NotFound,
}

/// The issuer endpoints, by exact path.
#[derive(Debug, Clone, Copy)]
enum Local {
    Token,
    Introspect,
    Metadata,
    Jwks,
}

/// A `[[route]]` ready to serve: its policy, its upstream, and a prepared peer.
#[derive(Debug)]
pub struct Route {
    pub prefix: String,
    pub policy: Policy,
    pub keep_authorization: bool,
    pub metrics: RouteMetrics,
    pub upstream: Resolver,
    /// Every setting of the upstream connection but its address, which is resolved per request.
    peer: HttpPeer,
}

impl Route {
    fn new(config: &RouteConfig) -> Self {
        let unresolved = SocketAddr::from(([0, 0, 0, 0], config.upstream.port));
        let mut peer = HttpPeer::new(unresolved, config.tls, config.sni.clone());
        peer.options.connection_timeout = Some(config.connect_timeout);
        peer.options.read_timeout = Some(config.read_timeout);
        Route {
            prefix: config.prefix.clone(),
            policy: Policy::new(config),
            keep_authorization: config.keep_authorization,
            metrics: metrics().route(&config.prefix, config.public),
            upstream: Resolver::new(config.upstream.clone()),
            peer,
        }
    }

    /// A fresh peer for one upstream request, at the upstream's current address.
    pub async fn peer(&self) -> Result<Box<HttpPeer>, String> {
        let mut peer = Box::new(self.peer.clone());
        peer._address = self.upstream.address().await?.into();
        Ok(peer)
    }
}

pub struct RouteTable {
    local: HashMap<String, Local>,
    /// Longest prefix first.
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn new(issuer: &IssuerConfig, routes: &[RouteConfig]) -> Self {
        let mut local: HashMap<String, Local> = issuer
            .token_paths
            .iter()
            .map(|p| (p.clone(), Local::Token))
            .collect();
        local.insert(INTROSPECTION.into(), Local::Introspect);
        local.insert(OPENID_CONFIGURATION.into(), Local::Metadata);
        local.insert(OAUTH_AUTHORIZATION_SERVER.into(), Local::Metadata);
        local.insert(JWKS.into(), Local::Jwks);
        let mut routes: Vec<Arc<Route>> = routes.iter().map(|r| Arc::new(Route::new(r))).collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        RouteTable { local, routes }
    }

    /// Every route, longest prefix first.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Resolves a raw request path (without query).
    pub fn resolve(&self, raw_path: &str) -> Result<Endpoint, PathError> {
        let path = canonicalize(raw_path)?;
        if let Some(local) = self.local.get(path.as_ref()) {
            return Ok(match local {
                Local::Token => Endpoint::Token,
                Local::Introspect => Endpoint::Introspect,
                Local::Metadata => Endpoint::Metadata,
                Local::Jwks => Endpoint::Jwks,
            });
        }
        Ok(self
            .routes
            .iter()
            .find(|r| under(&path, &r.prefix))
            .map_or(Endpoint::NotFound, |r| Endpoint::Route(r.clone())))
    }
}
