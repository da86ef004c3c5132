//! Signing keys: the key set loaded from `keys_dir`, their `kid` (RFC 7638 thumbprint), which
//! one signs when, and the JWKS document.
//!
//! Every key carries the one algorithm its type allows (Ed25519 → EdDSA, P-256 → ES256,
//! RSA → RS256), so a token can never be verified with an algorithm its key was not made for.
//! Every key in the directory verifies and is published in the JWKS from the moment it is
//! seen. A key *signs* only once it is active: `key_activation_delay` after its creation time
//! (the UTC stamp that starts a generated key's name, else the file's modification time). Of
//! the active keys of the configured algorithm, the newest signs; before any is active (a
//! deployment's first key), the oldest does.
//!
//! The delay is what makes a rotation safe across instances: every instance reads the same
//! creation time, so they all switch at the same moment, and by then every instance has had
//! `key_activation_delay` to see the new key (a Kubernetes Secret update takes up to about a
//! minute) and accepts its tokens.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{DecodingKey, EncodingKey};

use super::algorithm::SigningAlgorithm;
use super::jws::{KeyPair, SignError};
use super::key_files::{created, generate, key_files};
use crate::problems::Problems;

/// One key pair loaded from `keys_dir`.
pub struct Key {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub file: PathBuf,
    /// When it may start signing: its creation time plus `key_activation_delay`.
    pub active_from: SystemTime,
    /// The private key, parsed once (see [`super::jws`]).
    pair: KeyPair,
    decoding: DecodingKey,
    /// The public key as published in the JWKS (with `kid`, `alg` and `use`).
    jwk: Jwk,
}

impl Key {
    /// `claims` as a JWT signed with this key, with `typ` and this key's `alg` and `kid` in
    /// its header.
    pub fn sign_jwt(&self, typ: &str, claims: &impl serde::Serialize) -> Result<String, SignError> {
        self.pair.sign_jwt(typ, &self.kid, claims)
    }

    pub fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// The live key set, replaced whole when `keys_dir` changes.
pub type KeyStore = crate::live::Live<KeySet>;

/// Every key of `keys_dir`, those that may sign, and the JWKS document built once at load.
pub struct KeySet {
    keys: Vec<Key>,
    /// Indexes of the keys of the configured algorithm, oldest first (never empty).
    signers: Vec<usize>,
    jwks: Vec<u8>,
}

impl KeySet {
    /// Loads every `*.pem` of `dir`; fails unless one of them is a key of `algorithm`. Each key
    /// becomes active `activation_delay` after its creation.
    pub fn load(
        dir: &Path,
        algorithm: SigningAlgorithm,
        activation_delay: Duration,
    ) -> Result<KeySet, Problems> {
        let mut problems = Problems::default();
        let mut keys: Vec<Key> = Vec::new();
        for file in key_files(dir).map_err(|e| Problems::one(dir, e))? {
            match read_key(&file, activation_delay) {
                Ok(key) if keys.iter().any(|k| k.kid == key.kid) => {
                    problems.push(&file, "", format!("duplicate of key {}", key.kid));
                }
                Ok(key) => keys.push(key),
                Err(e) => problems.push(&file, "", e),
            }
        }
        let signers: Vec<usize> = (0..keys.len())
            .filter(|&i| keys[i].algorithm == algorithm)
            .collect();
        if signers.is_empty() {
            problems.push(
                dir,
                "",
                format!(
                    "no {} key; run `credgate keys generate` (the server also makes one on first start)",
                    algorithm.name()
                ),
            );
            return Err(problems);
        }
        let jwks = jwks_document(&keys);
        problems.into_result(KeySet {
            keys,
            signers,
            jwks,
        })
    }

    /// Like [`KeySet::load`], but first generates a key when `dir` has no key of `algorithm`
    /// and every key file in it can be read (a new deployment, or a change of algorithm). A
    /// key file that cannot be read is an error, never a reason to generate: in a keys
    /// directory shared by several instances, a generated key would be the newest and would
    /// take over signing on all of them.
    pub fn load_or_generate(
        dir: &Path,
        algorithm: SigningAlgorithm,
        activation_delay: Duration,
    ) -> Result<KeySet, Problems> {
        let files = key_files(dir).map_err(|e| Problems::one(dir, e))?;
        let mut unreadable = Problems::default();
        let mut has_key = false;
        for file in &files {
            match read_key(file, activation_delay) {
                Ok(key) => has_key |= key.algorithm == algorithm,
                Err(e) => unreadable.push(file, "", e),
            }
        }
        if !unreadable.is_empty() {
            return Err(unreadable);
        }
        if !has_key {
            let file = generate(dir, algorithm).map_err(|e| Problems::one(dir, e))?;
            tracing::info!(file = %file.display(), algorithm = algorithm.name(), "generated a signing key");
        }
        Self::load(dir, algorithm, activation_delay)
    }

    /// The key that signs now.
    pub fn signing_key(&self) -> &Key {
        self.signing_key_at(SystemTime::now())
    }

    /// The key that signs at `now`: the newest active key of the configured algorithm, or the
    /// oldest one when none is active yet.
    pub fn signing_key_at(&self, now: SystemTime) -> &Key {
        let active = self
            .signers
            .iter()
            .rev()
            .find(|&&i| self.keys[i].active_from <= now);
        &self.keys[*active.unwrap_or(&self.signers[0])]
    }

    /// The key that will sign next, and from when, if one is waiting for its activation.
    pub fn next_signing_key(&self, now: SystemTime) -> Option<&Key> {
        let current = &self.signing_key_at(now).kid;
        let newest = &self.keys[*self.signers.last()?];
        (newest.kid != *current && newest.active_from > now).then_some(newest)
    }

    pub fn find(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The RFC 7517 JWK Set of every public key, serialized.
    pub fn jwks_json(&self) -> &[u8] {
        &self.jwks
    }
}

/// The keys of `set` that can no longer verify a live token: they stopped signing (a newer key
/// became active) more than `max_token_age` ago. The signing key is never among them.
pub fn prunable(set: &KeySet, max_token_age: Duration, now: SystemTime) -> Vec<&Key> {
    let keys = set.keys();
    let signing = &set.signing_key_at(now).kid;
    keys.iter()
        .zip(keys.iter().skip(1))
        .filter(|(key, _)| key.kid != *signing)
        .filter(|(_, successor)| {
            now.duration_since(successor.active_from)
                .is_ok_and(|retired_for| retired_for > max_token_age)
        })
        .map(|(key, _)| key)
        .collect()
}

/// Reads a PKCS#8 private key and derives its algorithm, JWK, kid and activation time.
pub(super) fn read_key(file: &Path, activation_delay: Duration) -> Result<Key, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    let pair = KeyPair::from_pem(&pem)
        .ok_or("not a PKCS#8 PEM private key of type Ed25519, P-256 or RSA")?;
    let algorithm = pair.algorithm();
    let encoding = match algorithm {
        SigningAlgorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        SigningAlgorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        SigningAlgorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
    }
    .map_err(|e| format!("unusable {} key: {e}", algorithm.name()))?;
    let mut jwk = Jwk::from_encoding_key(&encoding, algorithm.jwt())
        .map_err(|e| format!("unusable {} key: {e}", algorithm.name()))?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| format!("cannot compute the key id: {e}"))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable public key: {e}"))?;
    let created = created(file).ok_or("cannot tell when the key was made")?;
    Ok(Key {
        kid,
        algorithm,
        file: file.to_path_buf(),
        active_from: created + activation_delay,
        pair,
        decoding,
        jwk,
    })
}

fn jwks_document(keys: &[Key]) -> Vec<u8> {
    let keys = keys.iter().map(|k| k.jwk.clone()).collect();
    serde_json::to_vec(&JwkSet { keys }).expect("a JWK set serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_loads_and_publishes() {
        for algorithm in [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let file = generate(dir.path(), algorithm).unwrap();
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
            let keys = KeySet::load(dir.path(), algorithm, Duration::ZERO).unwrap();
            let key = keys.signing_key();
            assert_eq!(key.algorithm, algorithm);
            assert_eq!(key.kid.len(), 43, "base64url SHA-256 thumbprint");
            let jwks: serde_json::Value = serde_json::from_slice(keys.jwks_json()).unwrap();
            assert_eq!(jwks["keys"][0]["kid"], key.kid.as_str());
            assert_eq!(jwks["keys"][0]["alg"], algorithm.name());
            assert_eq!(jwks["keys"][0]["use"], "sig");
            assert!(
                jwks["keys"][0].get("d").is_none(),
                "no private part in the JWKS"
            );
        }
    }

    #[test]
    fn every_algorithm_signs_what_its_published_key_verifies() {
        let claims = serde_json::json!({"sub": "app", "aud": "api", "exp": 4_102_444_800_i64});
        for algorithm in [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
        ] {
            let dir = tempfile::tempdir().unwrap();
            generate(dir.path(), algorithm).unwrap();
            let keys = KeySet::load(dir.path(), algorithm, Duration::ZERO).unwrap();
            let key = keys.signing_key();
            let jwt = key.sign_jwt("at+jwt", &claims).unwrap();
            let header = jwt.split('.').next().unwrap();
            assert_eq!(
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                    .unwrap(),
                format!(
                    r#"{{"typ":"at+jwt","alg":"{}","kid":"{}"}}"#,
                    algorithm.name(),
                    key.kid
                )
                .as_bytes()
            );
            // What a resource server does: the key from the published JWKS, jsonwebtoken's checks.
            let jwks: JwkSet = serde_json::from_slice(keys.jwks_json()).unwrap();
            let published = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
            let mut validation = jsonwebtoken::Validation::new(algorithm.jwt());
            validation.set_audience(&["api"]);
            let decoded =
                jsonwebtoken::decode::<serde_json::Value>(&jwt, &published, &validation).unwrap();
            assert_eq!(decoded.claims, claims);
            let (signed, signature) = jwt.rsplit_once('.').unwrap();
            let flipped = if signature.starts_with('A') { "B" } else { "A" };
            let forged = format!("{signed}.{flipped}{}", &signature[1..]);
            assert!(
                jsonwebtoken::decode::<serde_json::Value>(&forged, &published, &validation)
                    .is_err()
            );
        }
    }

    #[test]
    fn an_rsa_key_in_pkcs1_form_loads_and_other_curves_do_not() {
        use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
        let dir = tempfile::tempdir().unwrap();
        let pkcs8 = SigningAlgorithm::RS256.generate_pkcs8().unwrap();
        // PKCS#8 of an RSA key: version, the rsaEncryption identifier, then an OCTET STRING
        // (04 82 len len) holding the PKCS#1 RSAPrivateKey: what `openssl genrsa` wrote before 3.0.
        assert_eq!(pkcs8[22..24], [0x04, 0x82]);
        let pkcs1 = pem::encode(&pem::Pem::new("RSA PRIVATE KEY", &pkcs8[26..]));
        std::fs::write(dir.path().join("legacy.pem"), pkcs1).unwrap();
        let keys = KeySet::load(dir.path(), SigningAlgorithm::RS256, Duration::ZERO).unwrap();
        assert_eq!(keys.signing_key().algorithm, SigningAlgorithm::RS256);

        let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let der = p384.to_pkcs8v1().unwrap();
        std::fs::write(
            dir.path().join("p384.pem"),
            pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref())),
        )
        .unwrap();
        let err = KeySet::load(dir.path(), SigningAlgorithm::RS256, Duration::ZERO)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("p384.pem: not a PKCS#8 PEM private key"),
            "{err}"
        );
    }

    #[test]
    fn the_newest_key_of_the_configured_algorithm_signs() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), SigningAlgorithm::EdDSA).unwrap();
        let second = dir.path().join("zzz-later.pem");
        let other = generate(dir.path(), SigningAlgorithm::ES256).unwrap();
        std::fs::copy(
            generate(tempfile::tempdir().unwrap().path(), SigningAlgorithm::EdDSA).unwrap(),
            &second,
        )
        .unwrap();
        let keys = KeySet::load(dir.path(), SigningAlgorithm::EdDSA, Duration::ZERO).unwrap();
        assert_eq!(keys.keys().len(), 3);
        assert_eq!(keys.signing_key().file, second);
        assert!(keys
            .find(&read_key(&first, Duration::ZERO).unwrap().kid)
            .is_some());
        assert!(keys
            .find(&read_key(&other, Duration::ZERO).unwrap().kid)
            .is_some());
    }

    #[test]
    fn keys_retired_longer_than_a_token_lives_are_prunable() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        for name in [
            "20200101T000000Z-EdDSA-old.pem",
            "20200102T000000Z-EdDSA-mid.pem",
            "20200103T000000Z-EdDSA-new.pem",
        ] {
            let file = generate(scratch.path(), SigningAlgorithm::EdDSA).unwrap();
            std::fs::rename(file, dir.path().join(name)).unwrap();
        }
        let set = KeySet::load(dir.path(), SigningAlgorithm::EdDSA, Duration::ZERO).unwrap();
        let day = Duration::from_secs(86_400);
        let at = |y, m, d| {
            SystemTime::from(
                time::Date::from_calendar_date(y, m, d)
                    .unwrap()
                    .midnight()
                    .assume_utc(),
            )
        };
        let names = |keys: Vec<&Key>| -> Vec<String> {
            keys.iter()
                .map(|k| k.file.file_name().unwrap().to_string_lossy()[23..26].to_string())
                .collect()
        };
        // On Jan 3rd, 12:00 + 1 h lifetime: "old" stopped signing Jan 2nd, "mid" only at midnight.
        let noon = at(2020, time::Month::January, 3) + day / 2;
        assert_eq!(
            names(prunable(&set, Duration::from_secs(3600), noon)),
            ["old", "mid"]
        );
        assert_eq!(names(prunable(&set, day, noon)), ["old"]);
        assert!(prunable(&set, day * 30, noon).is_empty());
    }

    #[test]
    fn missing_or_wrong_keys_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let err = KeySet::load(dir.path(), SigningAlgorithm::EdDSA, Duration::ZERO)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no EdDSA key"), "{err}");
        std::fs::write(
            dir.path().join("junk.pem"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = KeySet::load_or_generate(dir.path(), SigningAlgorithm::EdDSA, Duration::ZERO)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("junk.pem: not a PKCS#8 PEM private key"),
            "{err}"
        );
    }

    #[test]
    fn a_new_key_is_published_at_once_and_signs_after_the_activation_delay() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        for name in [
            "20260101T000000Z-EdDSA-a.pem",
            "20260101T001000Z-EdDSA-b.pem",
        ] {
            let file = generate(scratch.path(), SigningAlgorithm::EdDSA).unwrap();
            std::fs::rename(file, dir.path().join(name)).unwrap();
        }
        let delay = Duration::from_secs(300);
        let set = KeySet::load(dir.path(), SigningAlgorithm::EdDSA, delay).unwrap();
        let at = |minute: u8| {
            SystemTime::from(
                time::macros::datetime!(2026-01-01 0:00 UTC)
                    + time::Duration::minutes(minute.into()),
            )
        };
        let name = |key: &Key| key.file.file_name().unwrap().to_string_lossy()[23..24].to_string();
        // Before anything is active the oldest key signs; "a" is active from 00:05.
        assert_eq!(name(set.signing_key_at(at(1))), "a");
        assert_eq!(
            name(set.signing_key_at(at(12))),
            "a",
            "b is published but not active"
        );
        assert_eq!(name(set.next_signing_key(at(12)).unwrap()), "b");
        assert_eq!(name(set.signing_key_at(at(15))), "b");
        assert!(set.next_signing_key(at(15)).is_none());
        assert!(set.find(&set.signing_key_at(at(15)).kid).is_some());
    }

    #[test]
    fn an_unreadable_key_file_is_an_error_and_no_key_is_generated() {
        let dir = tempfile::tempdir().unwrap();
        // A symlink to nowhere fails to read for root too.
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("a.pem")).unwrap();
        std::fs::write(dir.path().join("b.pem"), "not a key").unwrap();
        let err = KeySet::load_or_generate(dir.path(), SigningAlgorithm::EdDSA, Duration::ZERO)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("b.pem: not a PKCS#8 PEM private key"), "{err}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "nothing generated"
        );
    }
}
