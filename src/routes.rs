//! The route table: which endpoint answers a request path.
//!
//! Matching is exact and case-sensitive on the path without its query. Anything not listed is
//! a 404 and is never proxied.

use std::collections::HashMap;

use crate::config::IssuerConfig;
use crate::issuer::discovery::{JWKS, OAUTH_AUTHORIZATION_SERVER, OPENID_CONFIGURATION};

/// What answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Metadata,
    Jwks,
    NotFound,
}

pub struct RouteTable {
    exact: HashMap<String, Endpoint>,
}

impl RouteTable {
    pub fn new(issuer: &IssuerConfig) -> Self {
        let mut exact: HashMap<String, Endpoint> = issuer
            .token_paths
            .iter()
            .map(|p| (p.clone(), Endpoint::Token))
            .collect();
        exact.insert(OPENID_CONFIGURATION.into(), Endpoint::Metadata);
        exact.insert(OAUTH_AUTHORIZATION_SERVER.into(), Endpoint::Metadata);
        exact.insert(JWKS.into(), Endpoint::Jwks);
        RouteTable { exact }
    }

    pub fn resolve(&self, path: &str) -> Endpoint {
        self.exact.get(path).copied().unwrap_or(Endpoint::NotFound)
    }
}
