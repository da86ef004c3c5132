//! Signing keys: PKCS#8 PEM files in `keys_dir`, their `kid` (RFC 7638 thumbprint), the JWKS
//! document, and key generation.
//!
//! Every key carries the one algorithm its type allows (Ed25519 → EdDSA, P-256 → ES256,
//! RSA → RS256), so a token can never be verified with an algorithm its key was not made for.
//! The signing key is the last file in name order among keys of the configured algorithm;
//! generated files are named by creation time, so the newest key signs. Every key in the
//! directory verifies and is published in the JWKS.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::problems::Problems;

/// The JWS algorithms credgate signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[allow(clippy::upper_case_acronyms)]
pub enum SigningAlgorithm {
    #[default]
    #[value(name = "EdDSA")]
    EdDSA,
    #[value(name = "ES256")]
    ES256,
    #[value(name = "RS256")]
    RS256,
}

impl SigningAlgorithm {
    pub fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::EdDSA => Algorithm::EdDSA,
            SigningAlgorithm::ES256 => Algorithm::ES256,
            SigningAlgorithm::RS256 => Algorithm::RS256,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::EdDSA => "EdDSA",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::RS256 => "RS256",
        }
    }

    /// A fresh private key of this algorithm, as PKCS#8 v1 DER.
    fn generate_pkcs8(self) -> Result<Vec<u8>, String> {
        use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let failed = |_| format!("could not generate a {} key", self.name());
        Ok(match self {
            SigningAlgorithm::EdDSA => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            SigningAlgorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            SigningAlgorithm::RS256 => {
                let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(failed)?;
                let der: Pkcs8V1Der = key.as_der().map_err(failed)?;
                der.as_ref().to_vec()
            }
        })
    }
}

/// One key pair loaded from `keys_dir`.
pub struct Key {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub file: PathBuf,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public key as published in the JWKS (with `kid`, `alg` and `use`).
    jwk: Jwk,
}

impl Key {
    pub fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// The live key set, replaced whole when `keys_dir` changes.
pub type KeyStore = crate::live::Live<KeySet>;

/// Every key of `keys_dir`, the one that signs, and the JWKS document built once at load.
pub struct KeySet {
    keys: Vec<Key>,
    signing: usize,
    jwks: Vec<u8>,
}

impl KeySet {
    /// Loads every `*.pem` of `dir`; fails unless one of them is a key of `algorithm`.
    pub fn load(dir: &Path, algorithm: SigningAlgorithm) -> Result<KeySet, Problems> {
        let mut problems = Problems::default();
        let mut keys: Vec<Key> = Vec::new();
        for file in key_files(dir).map_err(|e| Problems::one(dir, e))? {
            match read_key(&file) {
                Ok(key) if keys.iter().any(|k| k.kid == key.kid) => {
                    problems.push(&file, "", format!("duplicate of key {}", key.kid));
                }
                Ok(key) => keys.push(key),
                Err(e) => problems.push(&file, "", e),
            }
        }
        let Some(signing) = keys.iter().rposition(|k| k.algorithm == algorithm) else {
            problems.push(
                dir,
                "",
                format!(
                    "no {} key; run `credgate keys generate` (the server also makes one on first start)",
                    algorithm.name()
                ),
            );
            return Err(problems);
        };
        let jwks = jwks_document(&keys);
        problems.into_result(KeySet {
            keys,
            signing,
            jwks,
        })
    }

    /// Like [`KeySet::load`], but first generates a key when `dir` has none of `algorithm`
    /// (the first start of a new deployment).
    pub fn load_or_generate(dir: &Path, algorithm: SigningAlgorithm) -> Result<KeySet, Problems> {
        let has_key = key_files(dir)
            .unwrap_or_default()
            .iter()
            .any(|f| read_key(f).is_ok_and(|k| k.algorithm == algorithm));
        if !has_key {
            let file = generate(dir, algorithm).map_err(|e| Problems::one(dir, e))?;
            tracing::info!(file = %file.display(), algorithm = algorithm.name(), "generated a signing key");
        }
        Self::load(dir, algorithm)
    }

    pub fn signing_key(&self) -> &Key {
        &self.keys[self.signing]
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
/// exists) more than `max_token_age` ago. A key stops signing when the next newer key is
/// created; the signing key is never among them.
pub fn prunable(set: &KeySet, max_token_age: Duration, now: SystemTime) -> Vec<&Key> {
    let keys = set.keys();
    keys.iter()
        .zip(keys.iter().skip(1))
        .filter(|(key, _)| key.kid != set.signing_key().kid)
        .filter(|(_, successor)| {
            created(&successor.file)
                .and_then(|at| now.duration_since(at).ok())
                .is_some_and(|retired_for| retired_for > max_token_age)
        })
        .map(|(key, _)| key)
        .collect()
}

/// When a key file was made: the UTC stamp that starts generated names
/// (`20261123T095624Z-…`), else the file's modification time.
fn created(file: &Path) -> Option<SystemTime> {
    let name = file.file_name()?.to_str()?;
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    name.get(..16)
        .and_then(|stamp| time::PrimitiveDateTime::parse(stamp, &format).ok())
        .map(|t| SystemTime::from(t.assume_utc()))
        .or_else(|| std::fs::metadata(file).and_then(|m| m.modified()).ok())
}

/// Whether `dir` holds no `*.pem` file at all (a fresh deployment; `serve` will generate one).
pub fn has_no_keys(dir: &Path) -> bool {
    key_files(dir).is_ok_and(|files| files.is_empty())
}

/// The `*.pem` files of `dir` in name order; a missing directory has none.
fn key_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list the keys directory: {e}")),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Reads a PKCS#8 private key and derives its algorithm, JWK and kid.
fn read_key(file: &Path) -> Result<Key, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    let (algorithm, encoding) = [
        (SigningAlgorithm::EdDSA, EncodingKey::from_ed_pem(&pem)),
        (SigningAlgorithm::ES256, EncodingKey::from_ec_pem(&pem)),
        (SigningAlgorithm::RS256, EncodingKey::from_rsa_pem(&pem)),
    ]
    .into_iter()
    .find_map(|(alg, key)| key.ok().map(|k| (alg, k)))
    .ok_or("not a PKCS#8 PEM private key of type Ed25519, P-256 or RSA")?;
    let mut jwk = Jwk::from_encoding_key(&encoding, algorithm.jwt())
        .map_err(|e| format!("unusable {} key: {e}", algorithm.name()))?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| format!("cannot compute the key id: {e}"))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable public key: {e}"))?;
    Ok(Key {
        kid,
        algorithm,
        file: file.to_path_buf(),
        encoding,
        decoding,
        jwk,
    })
}

fn jwks_document(keys: &[Key]) -> Vec<u8> {
    let keys = keys.iter().map(|k| k.jwk.clone()).collect();
    serde_json::to_vec(&JwkSet { keys }).expect("a JWK set serializes")
}

/// Generates a key of `algorithm` into `dir` (created 0700 if missing) as a 0600 PEM file
/// named `<UTC time>-<nanoseconds>-<alg>-<kid prefix>.pem`, and returns its path.
pub fn generate(dir: &Path, algorithm: SigningAlgorithm) -> Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create the keys directory: {e}"))?;
    let der = algorithm.generate_pkcs8()?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
    let now = OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let staged = dir.join(format!(".{stamp}-{}.pem.tmp", algorithm.name()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .map_err(|e| format!("cannot write {}: {e}", staged.display()))?;
    file.write_all(pem.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", staged.display()))?;
    let kid = read_key(&staged)?.kid;
    // Nanoseconds keep two keys made within one second in creation order.
    let nanos = now.nanosecond();
    let target = dir.join(format!(
        "{stamp}-{nanos:09}-{}-{}.pem",
        algorithm.name(),
        &kid[..8]
    ));
    std::fs::rename(&staged, &target)
        .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    Ok(target)
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
            let keys = KeySet::load(dir.path(), algorithm).unwrap();
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
        let keys = KeySet::load(dir.path(), SigningAlgorithm::EdDSA).unwrap();
        assert_eq!(keys.keys().len(), 3);
        assert_eq!(keys.signing_key().file, second);
        assert!(keys.find(&read_key(&first).unwrap().kid).is_some());
        assert!(keys.find(&read_key(&other).unwrap().kid).is_some());
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
        let set = KeySet::load(dir.path(), SigningAlgorithm::EdDSA).unwrap();
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
        let err = KeySet::load(dir.path(), SigningAlgorithm::EdDSA)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no EdDSA key"), "{err}");
        std::fs::write(
            dir.path().join("junk.pem"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = KeySet::load_or_generate(dir.path(), SigningAlgorithm::EdDSA)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("junk.pem: not a PKCS#8 PEM private key"),
            "{err}"
        );
    }
}
