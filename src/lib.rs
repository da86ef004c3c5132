//! credgate: an OAuth 2.0 client-credentials edge gateway on Pingora.
//!
//! One binary issues signed JWT access tokens to API clients from a file-backed registry
//! (`/connect/token`), publishes its keys and metadata, and — in front of protected upstreams —
//! validates those tokens before proxying. See `DESIGN.md` for the contract.

pub mod bounds;
pub mod cli;
pub mod config;
pub mod forwarded;
pub mod guard;
pub mod issuer;
pub mod live;
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
