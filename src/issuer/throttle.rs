//! Brute-force limits on client authentication.
//!
//! Every failed attempt to prove a client secret is counted twice: under the client id that was
//! presented (existing or not) and under the caller's IP address. Once either count reaches its
//! limit within the window, further attempts under that id or from that address are refused
//! with `slow_down` before argon2 runs, until the window that began with the first failure
//! ends. Successes are not counted and reset nothing, so an attacker holding one valid client
//! cannot launder its failures on another.
//!
//! A client whose secret was verified recently (the verified-secret cache) is admitted without
//! being looked up here: that costs no argon2 and proves the secret, so an attacker hammering
//! a client's id cannot lock out the integration that really owns it.
//!
//! Both tables are bounded moka caches, so a spray of random ids or addresses costs bounded
//! memory; what falls out of them is forgotten, which only ever helps the caller.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::ops::metrics::metrics;

/// How many ids and how many addresses are tracked at most.
const CAPACITY: u64 = 100_000;

/// The failure limits of the token and introspection endpoints (`[issuer] failure_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    /// Failures per client id per window; 0 turns the limit off.
    pub per_client: u32,
    /// Failures per source address per window; 0 turns the limit off (for instances behind a
    /// proxy that hides the callers' addresses).
    pub per_ip: u32,
    pub window: Duration,
}

/// Failures counted since `started`.
#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// One failure table: a key (client id or address) → its current window.
struct Counter<K> {
    limit: u32,
    window: Duration,
    label: &'static str,
    windows: Cache<K, Arc<Mutex<Window>>>,
}

impl<K> Counter<K>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    fn new(limit: u32, window: Duration, label: &'static str) -> Self {
        Counter {
            limit,
            window,
            label,
            windows: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(window)
                .build(),
        }
    }

    /// How long `key` must still wait, if it has used up its failures.
    fn blocked<Q>(&self, key: &Q, now: Instant) -> Option<Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        if self.limit == 0 {
            return None;
        }
        let window = self.windows.get(key)?;
        let window = window.lock().expect("a throttle window is never poisoned");
        let ends = window.started + self.window;
        (window.failures >= self.limit && now < ends).then(|| ends - now)
    }

    fn record(&self, key: K, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let window = self.windows.get_with(key, || {
            Arc::new(Mutex::new(Window {
                started: now,
                failures: 0,
            }))
        });
        let mut window = window.lock().expect("a throttle window is never poisoned");
        if now >= window.started + self.window {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }
}

/// The per-client-id and per-address failure counts.
pub struct Throttle {
    by_client: Counter<String>,
    by_ip: Counter<IpAddr>,
}

impl Throttle {
    pub fn new(limits: FailureLimits) -> Self {
        Throttle {
            by_client: Counter::new(limits.per_client, limits.window, "client"),
            by_ip: Counter::new(limits.per_ip, limits.window, "ip"),
        }
    }

    /// How long the caller must wait before trying a secret again, if it must; counts the
    /// refusal in `credgate_auth_throttled_total`.
    pub fn check(&self, client_id: &str, ip: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let (wait, counter) = match self.by_client.blocked(client_id, now) {
            Some(wait) => (wait, self.by_client.label),
            None => (self.by_ip.blocked(&ip?, now)?, self.by_ip.label),
        };
        metrics().auth_throttled.with_label_values(&[counter]).inc();
        Some(wait)
    }

    /// Counts one failed attempt to prove a secret of `client_id` from `ip`.
    pub fn record_failure(&self, client_id: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        self.by_client.record(client_id.to_owned(), now);
        if let Some(ip) = ip {
            self.by_ip.record(ip, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_client: u32, per_ip: u32) -> Throttle {
        Throttle::new(FailureLimits {
            per_client,
            per_ip,
            window: Duration::from_secs(60),
        })
    }

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));

    #[test]
    fn the_limit_th_failure_of_an_id_blocks_it_from_every_address() {
        let t = throttle(3, 0);
        for _ in 0..2 {
            t.record_failure("app", A);
            assert_eq!(t.check("app", A), None);
        }
        t.record_failure("app", A);
        let wait = t.check("app", B).expect("blocked from another address too");
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(60));
        assert_eq!(t.check("other", A), None, "other ids are not affected");
    }

    #[test]
    fn the_limit_th_failure_from_an_address_blocks_every_id_from_it() {
        let t = throttle(0, 2);
        t.record_failure("one", A);
        t.record_failure("two", A);
        assert!(t.check("three", A).is_some());
        assert_eq!(
            t.check("three", B),
            None,
            "other addresses are not affected"
        );
        assert_eq!(
            t.check("three", None),
            None,
            "no address, no per-address limit"
        );
    }

    #[test]
    fn a_zero_limit_never_blocks() {
        let t = throttle(0, 0);
        for _ in 0..100 {
            t.record_failure("app", A);
        }
        assert_eq!(t.check("app", A), None);
    }

    #[test]
    fn a_window_that_ended_starts_counting_afresh() {
        let counter = Counter::new(2, Duration::from_secs(60), "client");
        let start = Instant::now();
        counter.record("app", start);
        counter.record("app", start);
        assert!(counter.blocked(&"app", start).is_some());
        let later = start + Duration::from_secs(61);
        assert_eq!(counter.blocked(&"app", later), None, "the window ended");
        counter.record("app", later);
        assert_eq!(
            counter.blocked(&"app", later),
            None,
            "one failure of a new window"
        );
    }
}
