//! What the benchmarks share: a config, a client, a fresh key set, a minted token, a guard.

#![allow(dead_code)] // each bench uses a different part

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use credgate::config::Config;
use credgate::guard::verify::TokenVerifier;
use credgate::guard::Guard;
use credgate::oauth::{key_files, KeySet, KeyStore, SigningAlgorithm};
use credgate::registry::{Client, Organizations, Registry, Secret, Store};
use credgate::testing::{mint, Grant, MINIMAL_CONFIG};

pub fn config(cache_capacity: u64) -> Config {
    let text = format!("{MINIMAL_CONFIG}[guard]\ncache_capacity = {cache_capacity}\n");
    Config::parse(Path::new("bench.toml"), &text).expect("a valid bench config")
}

pub fn client(id: &str) -> Client {
    Client {
        id: id.into(),
        name: id.into(),
        scopes: vec!["api.read".into(), "api.write".into()],
        roles: vec!["member".into()],
        token_lifetime: Some(Duration::from_secs(900)),
        expires: None,
        enabled: true,
        tokens_not_before: None,
        secrets: vec![Secret {
            id: "s".into(),
            description: String::new(),
            hash: String::new(),
            expires: None,
            created: None,
        }],
    }
}

/// A key set with one fresh key of `algorithm` (kept in a temp dir for the run).
pub fn keys(algorithm: SigningAlgorithm) -> (tempfile::TempDir, KeySet) {
    let dir = tempfile::tempdir().unwrap();
    key_files::generate(dir.path(), algorithm).unwrap();
    let set = KeySet::load(dir.path(), algorithm, std::time::Duration::ZERO).unwrap();
    (dir, set)
}

pub fn token(set: &KeySet, config: &Config, client: &Client) -> String {
    let issuer = config
        .issuer
        .issuers
        .issuer_of(None)
        .expect("a single issuer");
    let orgs = Organizations::single(&issuer, Registry::default());
    let grant = Grant {
        org: orgs.get("").expect("the single issuer"),
        audience: &config.issuer.audience,
        client,
        scope: "api.read api.write".into(),
        lifetime: Duration::from_secs(900),
    };
    mint(&grant, set.signing_key(), time::OffsetDateTime::now_utc())
        .unwrap()
        .token
}

/// A guard verifying with `keys` under `config`, whose registry holds `client` alone.
pub fn guard(keys: Arc<KeyStore>, config: &Config, client: &Client) -> Guard {
    let issuer = config
        .issuer
        .issuers
        .issuer_of(None)
        .expect("a single issuer");
    let registry = Arc::new(Store::new(Organizations::single(
        &issuer,
        Registry::new([client.clone()]),
    )));
    Guard::new(
        TokenVerifier::new(keys, &config.issuer, &config.guard),
        registry,
    )
}
