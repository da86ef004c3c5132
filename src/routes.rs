//! The route table: which endpoint answers a request, for which organisation.
//!
//! Resolution works on the canonical path (see [`crate::path`]); a path that is not canonical
//! is refused before any route is considered. The issuer's own endpoints match exactly and win
//! over routes; otherwise the longest `[[route]]` prefix covering the path wins (prefixes match
//! on segment boundaries, case-sensitively). Anything else is a 404 and is never proxied.
//!
//! The management API's prefix (`[manage] prefix`) comes first, on any host.
//!
//! With `[organizations]`, the issuer template says where each organisation's base is (its path,
//! or its host). Below a known organisation's base, its issuer endpoints come first, then the
//! `org = "path"` routes; routes without `org` are matched on the whole path after that, on any
//! host. A host that names an organisation that does not exist, or is not a valid id, gets a
//! 404 before anything else (host mode); in path mode such a path is matched against the routes
//! without `org` only. RFC 8414 §3.1's path-inserted metadata
//! (`/.well-known/oauth-authorization-server/<base>`) is answered for every organisation.

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::upstreams::peer::HttpPeer;

use crate::config::{IssuerConfig, RouteConfig};
use crate::guard::policy::Policy;
use crate::metrics::{metrics, RouteMetrics};
use crate::oauth::issuer_url::Located;
use crate::oauth::well_known::{
    INTROSPECTION, JWKS, OAUTH_AUTHORIZATION_SERVER, OPENID_CONFIGURATION,
};
use crate::oauth::Issuers;
use crate::path::{canonicalize, under, PathError};
use crate::registry::{Organization, Organizations};
use crate::resolve::Resolver;

/// What answers a request, and for which organisation.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Token(Arc<Organization>),
    Introspect(Arc<Organization>),
    Metadata(Arc<Organization>),
    Jwks,
    /// The management API (`[manage] prefix`).
    Manage,
    /// A `[[route]]`: the guard decides, then Pingora proxies. `org` is the organisation of an
    /// `org = "path"` route, whose tokens alone it admits.
    Route {
        route: Arc<Route>,
        org: Option<Arc<Organization>>,
    },
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
    /// `org = "path"`: under each organisation's base, for that organisation's tokens only.
    pub per_org: bool,
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
            per_org: config.per_org,
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
    issuers: Issuers,
    /// `[manage] prefix`, matched before anything else.
    manage: Option<String>,
    /// The issuer endpoints, by their exact path below an issuer's base: a handful, compared
    /// in turn, which costs a request less than hashing its path (config validation keeps the
    /// paths distinct).
    local: Vec<(String, Local)>,
    /// Every route, longest prefix first.
    routes: Vec<Arc<Route>>,
}

impl Local {
    fn endpoint(self, org: &Arc<Organization>) -> Endpoint {
        let org = org.clone();
        match self {
            Local::Token => Endpoint::Token(org),
            Local::Introspect => Endpoint::Introspect(org),
            Local::Metadata => Endpoint::Metadata(org),
            Local::Jwks => Endpoint::Jwks,
        }
    }
}

impl RouteTable {
    pub fn new(issuer: &IssuerConfig, routes: &[RouteConfig], manage: Option<&str>) -> Self {
        let fixed = [
            (INTROSPECTION, Local::Introspect),
            (OPENID_CONFIGURATION, Local::Metadata),
            (OAUTH_AUTHORIZATION_SERVER, Local::Metadata),
            (JWKS, Local::Jwks),
        ];
        let tokens = issuer
            .token_paths
            .iter()
            .map(|p| (p.as_str(), Local::Token));
        let local = tokens
            .chain(fixed)
            .map(|(path, local)| (path.to_owned(), local))
            .collect();
        let mut routes: Vec<Arc<Route>> = routes.iter().map(|r| Arc::new(Route::new(r))).collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        RouteTable {
            issuers: issuer.issuers.clone(),
            manage: manage.map(str::to_owned),
            local,
            routes,
        }
    }

    /// Every route, longest prefix first.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Resolves a request for the raw path (without query) on `host` (the `Host` value),
    /// against the organisations of `orgs`.
    pub fn resolve(
        &self,
        host: &str,
        raw_path: &str,
        orgs: &Organizations,
    ) -> Result<Endpoint, PathError> {
        let path = canonicalize(raw_path)?;
        if self.manage.as_deref().is_some_and(|p| under(&path, p)) {
            return Ok(Endpoint::Manage);
        }
        let template = match &self.issuers {
            Issuers::Single(_) => {
                let single = orgs.get("");
                if let (Some(local), Some(org)) = (self.local(&path), single) {
                    return Ok(local.endpoint(org));
                }
                return Ok(self.route(&path, None));
            }
            Issuers::PerOrg(template) => template,
        };
        let inserted = path
            .strip_prefix(OAUTH_AUTHORIZATION_SERVER)
            .filter(|base| base.starts_with('/'));
        if let Some(Located::Org { org, rest: "" }) = inserted.map(|b| template.locate(host, b)) {
            return Ok(orgs
                .get(org)
                .map_or(Endpoint::NotFound, |org| Endpoint::Metadata(org.clone())));
        }
        match template.locate(host, &path) {
            Located::Org { org, rest } => match orgs.get(org) {
                Some(org) => {
                    if let Some(local) = self.local(rest) {
                        return Ok(local.endpoint(org));
                    }
                    if let Endpoint::Route { route, .. } = self.route(rest, Some(org)) {
                        return Ok(Endpoint::Route {
                            route,
                            org: Some(org.clone()),
                        });
                    }
                }
                None if template.host_mode() => return Ok(Endpoint::NotFound),
                None => {}
            },
            Located::Malformed if template.host_mode() => return Ok(Endpoint::NotFound),
            Located::Malformed | Located::Outside => {}
        }
        Ok(self.route(&path, None))
    }

    /// The issuer endpoint at exactly `path` (below an issuer's base).
    fn local(&self, path: &str) -> Option<Local> {
        self.local
            .iter()
            .find_map(|(p, local)| (p == path).then_some(*local))
    }

    /// The longest route covering `path`: among the `org = "path"` routes when below the base
    /// of `org`, among the others when `org` is `None`.
    fn route(&self, path: &str, org: Option<&Arc<Organization>>) -> Endpoint {
        self.routes
            .iter()
            .find(|r| r.per_org == org.is_some() && under(path, &r.prefix))
            .map_or(Endpoint::NotFound, |r| Endpoint::Route {
                route: r.clone(),
                org: None,
            })
    }
}
