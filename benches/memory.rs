//! Memory of the bearer-validation path: heap allocations per cache-hit validation, and the
//! process's RSS while a million distinct valid tokens go through the guard (whose cache is
//! bounded by `guard.cache_capacity`, 100 000 by default).
//!
//! Run: `cargo bench --bench memory` (about a minute on 2 cores). It prints figures; it asserts
//! nothing, since these machines are shared.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use credgate::oauth::{KeyStore, SigningAlgorithm};
use support::{client, config, guard, keys, token};

/// The system allocator, counting allocations and bytes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const DISTINCT_TOKENS: usize = 1_000_000;
const THREADS: usize = 2;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    let app = client("app");
    let (_dir, set) = keys(SigningAlgorithm::EdDSA);
    let config = config(100_000);
    let sample = token(&set, &config, &app);
    let keys = Arc::new(KeyStore::new(set));
    let guard = Arc::new(guard(keys.clone(), &config, &app));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    // Allocations of a cache hit: the token was verified once, every later check is a hit.
    runtime
        .block_on(guard.validate_token(sample.as_bytes()))
        .unwrap();
    let n = 100_000u64;
    let (allocs, bytes) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..n {
        runtime
            .block_on(guard.validate_token(sample.as_bytes()))
            .unwrap();
    }
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - allocs;
    let bytes = BYTES.load(Ordering::Relaxed) - bytes;
    println!(
        "cache hit: {:.2} allocations and {:.0} bytes per validation ({n} validations)",
        allocs as f64 / n as f64,
        bytes as f64 / n as f64
    );

    // RSS under a million distinct tokens, minted and verified on THREADS threads.
    let start_rss = rss_mib();
    println!("RSS before: {start_rss:.1} MiB; {DISTINCT_TOKENS} distinct tokens follow");
    let started = Instant::now();
    let keys_set = keys.snapshot();
    let peak = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (guard, keys_set, config, app) = (&guard, &keys_set, &config, &app);
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    let mut peak: f64 = 0.0;
                    for i in 0..DISTINCT_TOKENS / THREADS {
                        let token = token(keys_set, config, app);
                        runtime
                            .block_on(guard.validate_token(token.as_bytes()))
                            .unwrap();
                        let done = i * THREADS + t + 1;
                        if t == 0 && done % (DISTINCT_TOKENS / 10) < THREADS {
                            let rss = rss_mib();
                            peak = peak.max(rss);
                            println!(
                                "  {:>9} tokens  RSS {rss:6.1} MiB  ({:.0} s)",
                                done,
                                started.elapsed().as_secs_f64()
                            );
                        }
                    }
                    peak
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold(0.0, f64::max)
    });
    println!(
        "RSS after {DISTINCT_TOKENS} distinct tokens: {:.1} MiB (peak sampled {peak:.1} MiB, \
         cache capacity {}); {:.0} s",
        rss_mib(),
        config.guard.cache_capacity,
        started.elapsed().as_secs_f64()
    );
}
