//! Brute-force limits on client authentication.
//!
//! Every failed attempt to prove a client secret is counted twice: under the client id that was
//! presented (existing or not) and under the caller's IP address. Once either count reaches its
//! limit within the window, further attempts under that id or from that address are refused
//! with `slow_down` before argon2 runs, until the window that began with the first failure
//! ends. Attempts still being verified count too, so concurrent guesses cannot overrun the
//! limit. Successes are not counted and reset nothing, so an attacker holding one valid client
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

use crate::config::FailureLimits;

use moka::sync::Cache;

use crate::metrics::metrics;

/// How many ids and how many addresses are tracked at most.
const CAPACITY: u64 = 100_000;

/// Failures counted since `started`, and attempts still being verified.
#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
    /// Attempts admitted whose verification has not finished. They count against the limit
    /// too: otherwise a burst of concurrent guesses would all be admitted before the first
    /// failure is recorded.
    in_flight: u32,
}

type Shared = Arc<Mutex<Window>>;

fn lock(window: &Shared) -> std::sync::MutexGuard<'_, Window> {
    window.lock().expect("a throttle window is never poisoned")
}

/// One failure table: a key (client id or address) → its current window.
struct Counter<K> {
    limit: u32,
    window: Duration,
    label: &'static str,
    windows: Cache<K, Shared>,
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

    /// Admits one attempt under `key`, or says how long to wait: until the window ends when
    /// its failures reached the limit, a second when attempts in flight fill what is left.
    fn begin(&self, key: K, now: Instant) -> Result<Option<Shared>, Duration> {
        if self.limit == 0 {
            return Ok(None);
        }
        let shared = self.windows.get_with(key, || {
            Arc::new(Mutex::new(Window {
                started: now,
                failures: 0,
                in_flight: 0,
            }))
        });
        let mut window = lock(&shared);
        let ends = window.started + self.window;
        if now >= ends {
            (window.started, window.failures) = (now, 0);
        } else if window.failures >= self.limit {
            return Err(ends - now);
        }
        if window.failures + window.in_flight >= self.limit {
            return Err(Duration::from_secs(1));
        }
        window.in_flight += 1;
        drop(window);
        Ok(Some(shared))
    }
}

/// The per-client-id and per-address failure counts.
pub struct Throttle {
    by_client: Counter<String>,
    by_ip: Counter<IpAddr>,
}

/// One admitted attempt to prove a secret. Dropping it ends the attempt; [`Attempt::failed`]
/// ends it as a failure.
pub struct Attempt {
    windows: [Option<Shared>; 2],
    failed: bool,
}

impl Attempt {
    pub fn failed(mut self) {
        self.failed = true;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        for shared in self.windows.iter().flatten() {
            let mut window = lock(shared);
            window.in_flight -= 1;
            if self.failed {
                window.failures = window.failures.saturating_add(1);
            }
        }
    }
}

impl Throttle {
    pub fn new(limits: FailureLimits) -> Self {
        Throttle {
            by_client: Counter::new(limits.per_client, limits.window, "client"),
            by_ip: Counter::new(limits.per_ip, limits.window, "ip"),
        }
    }

    /// Admits an attempt to prove a secret of `client_id` from `ip`, or says how long the
    /// caller must wait, counting the refusal in `credgate_auth_throttled_total`.
    pub fn begin(&self, client_id: &str, ip: Option<IpAddr>) -> Result<Attempt, Duration> {
        let now = Instant::now();
        let mut attempt = Attempt {
            windows: [None, None],
            failed: false,
        };
        // On a refusal, dropping `attempt` releases what was already admitted.
        let refused = |counter: &'static str, wait| {
            metrics().auth_throttled.with_label_values(&[counter]).inc();
            wait
        };
        attempt.windows[0] = self
            .by_client
            .begin(client_id.to_owned(), now)
            .map_err(|wait| refused(self.by_client.label, wait))?;
        if let Some(ip) = ip {
            attempt.windows[1] = self
                .by_ip
                .begin(ip, now)
                .map_err(|wait| refused(self.by_ip.label, wait))?;
        }
        Ok(attempt)
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

    /// One attempt that fails.
    fn fail(t: &Throttle, id: &str, ip: Option<IpAddr>) {
        t.begin(id, ip).expect("admitted").failed();
    }

    #[test]
    fn the_limit_th_failure_of_an_id_blocks_it_from_every_address() {
        let t = throttle(3, 0);
        for _ in 0..3 {
            fail(&t, "app", A);
        }
        let wait = t
            .begin("app", B)
            .err()
            .expect("blocked from another address too");
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(60));
        assert!(t.begin("other", A).is_ok(), "other ids are not affected");
    }

    #[test]
    fn the_limit_th_failure_from_an_address_blocks_every_id_from_it() {
        let t = throttle(0, 2);
        fail(&t, "one", A);
        fail(&t, "two", A);
        assert!(t.begin("three", A).is_err());
        assert!(
            t.begin("three", B).is_ok(),
            "other addresses are not affected"
        );
        assert!(
            t.begin("three", None).is_ok(),
            "no address, no per-address limit"
        );
    }

    #[test]
    fn successes_do_not_count() {
        let t = throttle(2, 2);
        for _ in 0..10 {
            drop(t.begin("app", A).expect("admitted"));
        }
        fail(&t, "app", A);
        assert!(t.begin("app", A).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let t = throttle(2, 0);
        let first = t.begin("app", A).unwrap();
        let second = t.begin("app", A).unwrap();
        let wait = t
            .begin("app", A)
            .err()
            .expect("a third concurrent guess is refused");
        assert_eq!(wait, Duration::from_secs(1));
        drop(first); // a success
        second.failed();
        assert!(t.begin("app", A).is_ok(), "one failure of two");
    }

    #[test]
    fn a_refusal_by_address_releases_the_id_it_admitted() {
        let t = throttle(1, 1);
        fail(&t, "spent", A);
        assert!(t.begin("fresh", A).is_err(), "the address is spent");
        assert!(
            t.begin("fresh", B).is_ok(),
            "\"fresh\" was not left in flight"
        );
    }

    #[test]
    fn a_zero_limit_never_blocks() {
        let t = throttle(0, 0);
        for _ in 0..100 {
            fail(&t, "app", A);
        }
        assert!(t.begin("app", A).is_ok());
    }

    #[test]
    fn a_window_that_ended_starts_counting_afresh() {
        let counter = Counter::new(2, Duration::from_secs(60), "client");
        let start = Instant::now();
        for _ in 0..2 {
            let shared = counter.begin("app", start).unwrap().unwrap();
            let mut window = lock(&shared);
            (window.in_flight, window.failures) = (window.in_flight - 1, window.failures + 1);
        }
        assert!(counter.begin("app", start).is_err());
        let later = start + Duration::from_secs(61);
        assert!(counter.begin("app", later).is_ok(), "the window ended");
    }
}
