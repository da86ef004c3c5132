//! Upstream addresses: `host:port` as configured, resolved when connecting rather than once at
//! start.
//!
//! In Kubernetes an upstream is a Service name that may not resolve yet when the gateway
//! starts, and whose address can change while it runs. So a name is looked up on the way to a
//! connection and the answer kept for [`RESOLVE_TTL`]; an IP address is used as it is. A name
//! that stops resolving keeps its last address for [`STALE_FOR`] (a DNS blip is not an
//! outage), after which requests to it fail with 502 until it resolves again. One lookup per
//! name runs at a time: while it does, requests keep using the address they have, so a busy
//! route that outlives its cached answer sends one query, not one per request. Nothing here
//! ever stops the gateway from starting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::config::UpstreamAddr;

/// How long a resolved address is used before the name is looked up again.
pub const RESOLVE_TTL: Duration = Duration::from_secs(5);
/// How long the last address of a name that no longer resolves is still used.
pub const STALE_FOR: Duration = Duration::from_secs(60);

/// The address of one upstream, looked up when needed.
#[derive(Debug)]
pub struct Resolver {
    upstream: UpstreamAddr,
    literal: Option<SocketAddr>,
    last: ArcSwapOption<Resolved>,
    /// Held by the one lookup under way.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Resolved {
    /// The address to use: the last one a lookup gave, while not older than [`STALE_FOR`].
    addr: Option<SocketAddr>,
    /// When `addr` was given by a lookup.
    confirmed: Instant,
    /// When this answer was made.
    at: Instant,
    /// Whether the lookup made at `at` succeeded.
    ok: bool,
}

/// Whether an upstream's name resolves, as last seen (for `/readyz` and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// An IP address, or a name whose last lookup succeeded.
    Resolved,
    /// Never looked up yet.
    Pending,
    /// The last lookup failed.
    Unresolved,
}

impl Resolver {
    pub fn new(upstream: UpstreamAddr) -> Self {
        Resolver {
            literal: upstream.literal(),
            upstream,
            last: ArcSwapOption::empty(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn upstream(&self) -> &UpstreamAddr {
        &self.upstream
    }

    /// The address to connect to: the literal, a cached answer younger than [`RESOLVE_TTL`],
    /// or a fresh lookup (falling back to an address confirmed within [`STALE_FOR`]). While
    /// another request's lookup is under way, the address in hand is used; only the first
    /// requests of a name wait for its first answer.
    pub async fn address(&self) -> Result<SocketAddr, String> {
        if let Some(addr) = self.literal {
            return Ok(addr);
        }
        if let Some(answer) = self.cached() {
            return answer;
        }
        let _lookup = match self.refreshing.try_lock() {
            Ok(lookup) => lookup,
            Err(_) => {
                if let Some(addr) = self.last.load().as_deref().and_then(|l| l.addr) {
                    return Ok(addr);
                }
                let lookup = self.refreshing.lock().await;
                if let Some(answer) = self.cached() {
                    return answer;
                }
                lookup
            }
        };
        self.look_up().await
    }

    /// The cached answer, while younger than [`RESOLVE_TTL`].
    fn cached(&self) -> Option<Result<SocketAddr, String>> {
        let last = self.last.load();
        let last = last.as_deref().filter(|l| l.at.elapsed() < RESOLVE_TTL)?;
        Some(
            last.addr
                .ok_or_else(|| format!("{} does not resolve", self.upstream)),
        )
    }

    /// Looks the name up and records the answer.
    async fn look_up(&self) -> Result<SocketAddr, String> {
        let now = Instant::now();
        let last = self.last.load_full();
        crate::metrics::metrics().upstream_lookups.inc();
        let looked_up = tokio::net::lookup_host((self.upstream.host.as_str(), self.upstream.port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next());
        let resolved = match (looked_up, last.as_deref()) {
            (Some(addr), _) => Resolved {
                addr: Some(addr),
                confirmed: now,
                at: now,
                ok: true,
            },
            (None, previous) => {
                crate::metrics::metrics().upstream_resolve_failures.inc();
                let stale = previous.filter(|p| now - p.confirmed < STALE_FOR);
                Resolved {
                    addr: stale.and_then(|p| p.addr),
                    confirmed: stale.map_or(now, |p| p.confirmed),
                    at: now,
                    ok: false,
                }
            }
        };
        let addr = resolved.addr;
        self.last.store(Some(Arc::new(resolved)));
        addr.ok_or_else(|| format!("{} does not resolve", self.upstream))
    }

    /// Whether the name resolved at its last lookup.
    pub fn resolution(&self) -> Resolution {
        if self.literal.is_some() {
            return Resolution::Resolved;
        }
        match self.last.load().as_deref() {
            None => Resolution::Pending,
            Some(last) if last.ok => Resolution::Resolved,
            Some(_) => Resolution::Unresolved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_is_looked_up_and_an_unknown_one_fails_without_panicking() {
        let local = Resolver::new(UpstreamAddr::parse("localhost:81").unwrap());
        assert_eq!(local.resolution(), Resolution::Pending);
        let addr = local.address().await.unwrap();
        assert!(addr.ip().is_loopback() && addr.port() == 81);
        assert_eq!(local.resolution(), Resolution::Resolved);
        let unknown = Resolver::new(UpstreamAddr::parse("no-such-host.invalid:80").unwrap());
        let error = unknown.address().await.unwrap_err();
        assert_eq!(error, "no-such-host.invalid:80 does not resolve");
        assert_eq!(unknown.resolution(), Resolution::Unresolved);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_lookup() {
        let lookups = || crate::metrics::metrics().upstream_lookups.get();
        let before = lookups();
        let resolver = Arc::new(Resolver::new(UpstreamAddr::parse("localhost:81").unwrap()));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let resolver = resolver.clone();
                tokio::spawn(async move { resolver.address().await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().port(), 81);
        }
        assert_eq!(
            lookups() - before,
            1,
            "one query for 32 concurrent requests"
        );
    }
}
