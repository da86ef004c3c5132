//! Criterion benchmarks of the per-request hot paths.
//!
//! Machines here are shared and noisy, so absolute times mean little; every group also measures
//! `baseline/sha256_token` (hashing one access token, the least any validation must do) in the
//! same run, and `benches/ratios.py` prints each result as a multiple of it.
//!
//! Run: `cargo bench --bench hot_paths && python3 benches/ratios.py`

mod support;

use std::sync::Arc;
use std::time::Duration;

use credgate::config::Config;
use credgate::guard::verify::TokenVerifier;
use credgate::guard::Guard;
use credgate::oauth::{KeyStore, SigningAlgorithm};
use credgate::registry::{Organizations, Registry, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use support::{client, config, keys, token};

const ALGORITHMS: [SigningAlgorithm; 3] = [
    SigningAlgorithm::EdDSA,
    SigningAlgorithm::ES256,
    SigningAlgorithm::RS256,
];

fn baseline(c: &mut Criterion, token: &str) {
    c.bench_function("baseline/sha256_token", |b| {
        b.iter(|| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()))
    });
}

fn validation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let app = client("app");
    for algorithm in ALGORITHMS {
        let (_dir, set) = keys(algorithm);
        let hit_config = config(100_000);
        let token = token(&set, &hit_config, &app);
        if algorithm == SigningAlgorithm::EdDSA {
            baseline(c, &token);
        }
        let keys = Arc::new(KeyStore::new(set));
        let registry = Arc::new(Store::new(Organizations::single(
            &hit_config.issuer.issuers.issuer_of(None).unwrap(),
            Registry::new([app.clone()]),
        )));
        let guard = |config: &Config| {
            let verifier = TokenVerifier::new(keys.clone(), &config.issuer, &config.guard);
            Guard::new(verifier, registry.clone())
        };
        let cached = guard(&hit_config);
        runtime
            .block_on(cached.validate_token(token.as_bytes()))
            .expect("the token verifies");
        if algorithm == SigningAlgorithm::EdDSA {
            c.bench_function("validate/cache_hit", |b| {
                b.to_async(&runtime)
                    .iter(|| cached.validate_token(token.as_bytes()))
            });
        }
        let uncached = guard(&config(0));
        c.bench_with_input(
            BenchmarkId::new("validate/cache_miss", algorithm.name()),
            &token,
            |b, token| {
                b.to_async(&runtime)
                    .iter(|| uncached.validate_token(token.as_bytes()))
            },
        );
    }
}

fn minting(c: &mut Criterion) {
    let config = config(0);
    let app = client("app");
    for algorithm in ALGORITHMS {
        let (_dir, set) = keys(algorithm);
        c.bench_function(&format!("mint/{}", algorithm.name()), |b| {
            b.iter(|| token(&set, &config, &app))
        });
    }
}

fn registry_lookup(c: &mut Criterion) {
    let ids: Vec<String> = (0..100_000).map(|i| format!("client-{i:06}")).collect();
    let registry = Registry::new(ids.iter().map(|id| client(id)));
    c.bench_function("registry/lookup_in_100k", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % ids.len();
            registry.get(&ids[i]).is_some()
        })
    });
}

fn argon2_verify(c: &mut Criterion) {
    use argon2::{PasswordHash, PasswordVerifier};
    let hash = credgate::testing::hash_secret("a-client-secret");
    let parsed = PasswordHash::new(&hash).unwrap();
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    group.bench_function("verify", |b| {
        b.iter(|| {
            argon2::Argon2::default()
                .verify_password(b"a-client-secret", &parsed)
                .is_ok()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = validation, minting, registry_lookup, argon2_verify
}
criterion_main!(benches);
