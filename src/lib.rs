//! credgate: an OAuth 2.0 client-credentials edge gateway on Pingora.
//!
//! One binary issues signed JWT access tokens (RFC 9068) to API clients from a file-backed
//! registry, publishes its keys and metadata, and — in front of protected upstreams —
//! validates those tokens (RFC 6750) before Pingora proxies the request. It serves one issuer,
//! or one per customer organisation ([`registry::orgs`], [`oauth::issuer_url`]).
//!
//! # The layers, in the order a request meets them
//!
//! 1. [`serve`] is the process: it loads the [`config`], the [`registry`] and the signing keys
//!    ([`oauth::keys`]), builds the stores and services, binds the listeners, and reloads what
//!    it serves when the files change (registry, keys, certificate, config). Only `serve/`
//!    and [`cli`] construct stores and services.
//! 2. [`proxy`] holds the Pingora phases. `request_filter` checks the head ([`bounds`]),
//!    resolves the canonical path ([`path`]) and host through the [`routes`] table (which
//!    also finds the request's organisation), asks the one component concerned, and writes
//!    the one [`reply::Outcome`] it answers with.
//! 3. The components, each testable without Pingora:
//!    - [`issuer`], the token side: form parsing, client authentication (argon2id off the
//!      event loop), minting, discovery and introspection;
//!    - [`guard`], the resource side: bearer extraction, signature and claim verification with
//!      a cache, the registry's word on the client at every request, route policy;
//!    - [`manage`], the management API: organisations' administrators manage their clients
//!      with credgate's own tokens, through the same registry editor as the CLI.
//! 4. Below them, what both sides agree on: [`oauth`] (keys and JWKS, claims, scope syntax,
//!    well-known paths, and [`oauth::TokenCheck`], which the guard implements and
//!    introspection uses, so the two sides never import each other, and
//!    [`oauth::Issuers`], where each issuer lives), the [`registry`] of organisations and
//!    their clients, and the typed [`config`].
//! 5. The ground floor any layer may use: [`path`], [`bounds`], [`reply`], [`problems`],
//!    [`live`], [`timefmt`], [`metrics`]. Beside the proxy, pingora-free: [`forwarded`]
//!    (the headers credgate asserts upstream), [`resolve`] (upstream names, looked up when
//!    connecting), [`access_log`] (the request line) and [`log_writer`] (stderr, written
//!    off the event loop).
//!
//! `tests/architecture.rs` enforces these rules on the source. [`testing`] is the small
//! surface the integration tests, benchmarks and fuzz targets use beyond this one.

pub mod access_log;
pub mod bounds;
pub mod cli;
pub mod config;
pub mod forwarded;
pub mod guard;
pub mod issuer;
pub mod live;
pub mod log_writer;
pub mod manage;
pub mod metrics;
pub mod oauth;
pub mod path;
pub mod problems;
pub mod proxy;
pub mod registry;
pub mod reply;
pub mod resolve;
pub mod routes;
pub mod serve;
pub mod testing;
pub mod timefmt;
