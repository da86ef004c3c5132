//! The paths credgate serves as an authorization server, besides its token paths.

/// OpenID discovery, served with the same RFC 8414 metadata.
pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
/// RFC 8414 §3 authorization-server metadata.
pub const OAUTH_AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
/// RFC 7517 JWK Set.
pub const JWKS: &str = "/.well-known/jwks.json";
/// RFC 7662 token introspection.
pub const INTROSPECTION: &str = "/connect/introspect";

/// Every path above: a token path may not shadow them.
pub const RESERVED_PATHS: [&str; 4] = [
    INTROSPECTION,
    OPENID_CONFIGURATION,
    OAUTH_AUTHORIZATION_SERVER,
    JWKS,
];
