//! A bound on how fast one organisation changes its registry through the API: every change
//! rewrites a file, wakes every instance's watcher and is fsync'd into the audit log, so a
//! runaway script (or a stolen administrator token) must not turn that into a storm.
//! A fixed one-minute window per organisation, in a bounded cache.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use moka::sync::Cache;

/// Organisations tracked at most.
const CAPACITY: u64 = 100_000;
const WINDOW: Duration = Duration::from_secs(60);

pub struct WriteRate {
    /// Writes per minute; 0 = no bound.
    limit: u32,
    windows: Cache<String, std::sync::Arc<Mutex<(Instant, u32)>>>,
}

impl WriteRate {
    pub fn new(limit: u32) -> Self {
        WriteRate {
            limit,
            windows: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_idle(WINDOW)
                .build(),
        }
    }

    /// Counts one write of `org`; `Err(wait)` when its window is full.
    pub fn admit(&self, org: &str) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let window = self
            .windows
            .get_with(org.to_owned(), || std::sync::Arc::new(Mutex::new((now, 0))));
        let mut window = window.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(window.0) >= WINDOW {
            *window = (now, 0);
        }
        if window.1 >= self.limit {
            return Err(WINDOW.saturating_sub(now.duration_since(window.0)));
        }
        window.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_organisation_has_its_own_window() {
        let rate = WriteRate::new(2);
        assert!(rate.admit("acme").is_ok() && rate.admit("acme").is_ok());
        let wait = rate.admit("acme").unwrap_err();
        assert!(wait > Duration::from_secs(58) && wait <= WINDOW);
        assert!(rate.admit("globex").is_ok());
        assert!(WriteRate::new(0).admit("acme").is_ok());
    }
}
