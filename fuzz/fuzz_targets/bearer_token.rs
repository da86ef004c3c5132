//! Bearer extraction and JWT verification.
//!
//! An even first byte: the rest is an `Authorization` header value; what `extract` accepts is
//! verified, and nothing the fuzzer writes can carry a valid signature. An odd first byte: the
//! rest, if JSON, is signed with the gateway's key as a token's claims, so header and claims
//! validation run on arbitrary claims; what verifies must name our issuer and audience, and
//! report the client and expiry its claims say.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use credgate::config::Config;
use credgate::guard::bearer;
use credgate::guard::verify::TokenVerifier;
use credgate::oauth::{key_files, KeySet, KeyStore, SigningAlgorithm};
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "http://127.0.0.1:1";
const AUDIENCE: &str = "api";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    verifier: TokenVerifier,
    keys: Arc<KeyStore>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n[issuer]\nissuer = \"{ISSUER}\"\nkeys_dir = \"k\"\n\
             audience = \"{AUDIENCE}\"\n[registry]\npath = \"r\"\n[guard]\ncache_capacity = 0\n"
        );
        let config = Config::parse(Path::new("fuzz.toml"), &text).expect("valid config");
        let dir = tempfile::tempdir().unwrap();
        key_files::generate(dir.path(), SigningAlgorithm::EdDSA).unwrap();
        let set = KeySet::load(dir.path(), SigningAlgorithm::EdDSA, std::time::Duration::ZERO).unwrap();
        let keys = Arc::new(KeyStore::new(set));
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread().build().unwrap(),
            verifier: TokenVerifier::new(keys.clone(), &config.issuer, &config.guard),
            keys,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    if mode % 2 == 0 {
        let Ok(value) = http::HeaderValue::from_bytes(rest) else {
            return;
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        if let Ok(token) = bearer::extract(&headers) {
            assert!(token.len() <= bearer::MAX_TOKEN_BYTES);
            let verdict = f.runtime.block_on(f.verifier.verify(token));
            assert!(verdict.is_err(), "an unsigned token verified");
        }
        return;
    }
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let token = f
        .keys
        .snapshot()
        .signing_key()
        .sign_jwt("at+jwt", &claims)
        .unwrap();
    if let Ok(identity) = f.runtime.block_on(f.verifier.verify(token.as_bytes())) {
        assert_eq!(claims["iss"], ISSUER);
        let aud = &claims["aud"];
        assert!(aud == AUDIENCE || aud.as_array().is_some_and(|a| a.contains(&AUDIENCE.into())));
        assert_eq!(claims["client_id"], identity.grantee.client_id.as_str());
        assert_eq!(claims["exp"], identity.expires_at);
    }
});
