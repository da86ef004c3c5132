//! What a cache-hit validation costs when every core validates at once, as at full load.
//!
//! `hot_paths` measures one thread; a gateway runs one per core, and state shared between them
//! (the validation cache's bookkeeping, reference counts, counters) costs more when two cores
//! take turns owning its cache lines. Each case runs on 1 thread and then on 2 at once (this
//! machine's cores), the same work per thread, and prints the time per operation and the ratio
//! of the two, both from this run. SHA-256 of the token shares nothing: its ratio is the
//! machine's own (frequency, a busy neighbour).
//!
//! Run: `cargo bench --bench contention`

mod support;

use std::sync::Arc;
use std::time::Instant;

use credgate::oauth::{KeyStore, SigningAlgorithm};
use support::{client, config, guard, keys, token};

/// Operations per thread and case.
const N: u32 = 1_000_000;

/// Nanoseconds per operation on each of `threads` threads running `work` (`N` operations)
/// at once.
fn per_op<F>(threads: usize, work: F) -> f64
where
    F: Fn() + Clone + Send + 'static,
{
    let start = Instant::now();
    let running: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(work.clone()))
        .collect();
    for thread in running {
        thread.join().unwrap();
    }
    start.elapsed().as_nanos() as f64 / f64::from(N)
}

fn report<F>(name: &str, work: F)
where
    F: Fn() + Clone + Send + 'static,
{
    let one = per_op(1, work.clone());
    let two = per_op(2, work);
    println!(
        "{name}: {one:.0} ns on 1 thread, {two:.0} ns on each of 2 ({:.2} x)",
        two / one
    );
}

/// Runs `N` times the future `op` makes, on a runtime of the calling thread (as a Pingora
/// worker thread runs its requests).
fn on_this_thread<Fut: std::future::Future>(op: impl Fn() -> Fut) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        for _ in 0..N {
            std::hint::black_box(op().await);
        }
    });
}

fn main() {
    let app = client("app");
    let (_dir, set) = keys(SigningAlgorithm::ES256);
    let config = config(100_000);
    let token = Arc::new(token(&set, &config, &app));
    let guard = Arc::new(guard(Arc::new(KeyStore::new(set)), &config, &app));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(guard.validate_token(token.as_bytes()))
        .expect("the token verifies");
    let cache: moka::future::Cache<[u8; 32], Arc<u64>> =
        moka::future::Cache::builder().max_capacity(100_000).build();
    runtime.block_on(cache.insert([7; 32], Arc::new(7)));

    let hashed = token.clone();
    report("sha256_token (shares nothing)", move || {
        for _ in 0..N {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, hashed.as_bytes());
            std::hint::black_box(digest);
        }
    });
    let (hit, hit_token) = (guard.clone(), token.clone());
    report("validate/cache_hit, one token", move || {
        on_this_thread(|| async { hit.validate_token(hit_token.as_bytes()).await.is_ok() })
    });
    let headed = guard.clone();
    let headed_token = token.clone();
    report(
        "validate/cache_hit + the identity header values cloned",
        move || {
            on_this_thread(|| async {
                let identity = headed
                    .validate_token(headed_token.as_bytes())
                    .await
                    .unwrap();
                let h = &identity.grantee.headers;
                (h.client_id.clone(), h.scope.clone(), h.roles.clone())
            })
        },
    );
    let route = Arc::new(credgate::metrics::metrics().route("/bench/", true));
    report(
        "a proxied request's metrics (outcome, status, duration)",
        move || {
            for _ in 0..N {
                route.auth("public");
                route.upstream(200);
                route.duration().observe(0.000_3);
            }
        },
    );
    report("moka get, one key (the cache alone)", move || {
        on_this_thread(|| cache.get(&[7; 32]))
    });
}
