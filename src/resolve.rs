//! Upstream addresses: `host:port` as configured, resolved when connecting rather than once at
//! start.
//!
//! In Kubernetes an upstream is a Service name that may not resolve yet when the gateway
//! starts, and whose address can change while it runs. So a name is looked up on the way to a
//! connection and the answer kept for [`RESOLVE_TTL`]; an IP address is used as it is. A name
//! that stops resolving keeps its last address for [`STALE_FOR`] (a DNS blip is not an
//! outage), after which requests to it fail with 502 until it resolves again. Nothing here ever
//! stops the gateway from starting.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

/// How long a resolved address is used before the name is looked up again.
pub const RESOLVE_TTL: Duration = Duration::from_secs(5);
/// How long the last address of a name that no longer resolves is still used.
pub const STALE_FOR: Duration = Duration::from_secs(60);

/// An upstream as configured: a host (IP address or DNS name) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddr {
    /// Without brackets for IPv6.
    pub host: String,
    pub port: u16,
}

impl UpstreamAddr {
    /// Parses `host:port` (`[v6]:port` for IPv6); checks syntax only, never DNS.
    pub fn parse(text: &str) -> Result<UpstreamAddr, String> {
        let invalid = || format!("{text:?} is not a host:port address");
        let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').ok_or_else(invalid)?,
            None if host.contains(':') => return Err(invalid()),
            None => host,
        };
        let valid_name = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if port == 0 || !(valid_name || host.parse::<IpAddr>().is_ok()) {
            return Err(invalid());
        }
        Ok(UpstreamAddr {
            host: host.to_owned(),
            port,
        })
    }

    /// The address when the host is an IP literal: no lookup needed.
    pub fn literal(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The address of one upstream, looked up when needed.
#[derive(Debug)]
pub struct Resolver {
    upstream: UpstreamAddr,
    literal: Option<SocketAddr>,
    last: ArcSwapOption<Resolved>,
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
        }
    }

    pub fn upstream(&self) -> &UpstreamAddr {
        &self.upstream
    }

    /// The address to connect to: the literal, a cached answer younger than [`RESOLVE_TTL`],
    /// or a fresh lookup (falling back to an address confirmed within [`STALE_FOR`]).
    pub async fn address(&self) -> Result<SocketAddr, String> {
        if let Some(addr) = self.literal {
            return Ok(addr);
        }
        let now = Instant::now();
        let last = self.last.load_full();
        if let Some(last) = last.as_deref().filter(|l| now - l.at < RESOLVE_TTL) {
            return last
                .addr
                .ok_or_else(|| format!("{} does not resolve", self.upstream));
        }
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
                crate::ops::metrics::metrics()
                    .upstream_resolve_failures
                    .inc();
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

    #[test]
    fn addresses_are_parsed_without_dns() {
        let named = UpstreamAddr::parse("orders.svc.cluster.local:8080").unwrap();
        assert_eq!(
            (named.host.as_str(), named.port),
            ("orders.svc.cluster.local", 8080)
        );
        assert_eq!(named.literal(), None);
        let v6 = UpstreamAddr::parse("[::1]:80").unwrap();
        assert_eq!(v6.literal(), Some("[::1]:80".parse().unwrap()));
        assert_eq!(v6.to_string(), "[::1]:80");
        for bad in [
            "nowhere",
            "host:",
            ":80",
            "host:0",
            "::1:80",
            "a b:80",
            "host:99999",
        ] {
            assert!(UpstreamAddr::parse(bad).is_err(), "{bad}");
        }
    }

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
}
