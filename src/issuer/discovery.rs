//! Authorization-server metadata (RFC 8414), also served as OpenID discovery.

use serde::Serialize;

use crate::config::IssuerConfig;
use crate::oauth::well_known::{INTROSPECTION, JWKS};
use crate::registry::Organization;

const AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];

#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    token_endpoint: String,
    jwks_uri: String,
    introspection_endpoint: String,
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    grant_types_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 2],
    scopes_supported: &'a [String],
    response_types_supported: [&'static str; 0],
}

/// The metadata document of `org`'s issuer: its own URLs, and the scopes its clients may hold.
pub fn metadata(config: &IssuerConfig, org: &Organization) -> Vec<u8> {
    let issuer = &org.issuer;
    let metadata = Metadata {
        issuer,
        token_endpoint: format!("{issuer}{}", config.token_paths[0]),
        jwks_uri: format!("{issuer}{JWKS}"),
        introspection_endpoint: format!("{issuer}{INTROSPECTION}"),
        introspection_endpoint_auth_methods_supported: AUTH_METHODS,
        grant_types_supported: ["client_credentials"],
        token_endpoint_auth_methods_supported: AUTH_METHODS,
        scopes_supported: org.scopes_supported(),
        response_types_supported: [],
    };
    serde_json::to_vec(&metadata).expect("metadata serializes")
}
