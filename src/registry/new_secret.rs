//! Making a client secret: 256 random bits, shown once, stored only as an argon2id hash with
//! OWASP's parameters. The CLI and the management API both make secrets here, and nowhere else:
//! a secret is never accepted from a caller.

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::{Argon2, Params};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::model::Secret;

/// OWASP's recommended argon2id parameters: 19 MiB, 2 passes, 1 lane. Verification reads the
/// parameters from each stored hash; these are the ones new hashes get.
pub fn hasher() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("constant parameters are valid");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// `n` bytes from the operating system's CSPRNG, base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    aws_lc_rs::rand::fill(&mut bytes).expect("the system CSPRNG is available");
    URL_SAFE_NO_PAD.encode(&*bytes)
}

/// A new client secret: 256 random bits, base64url (43 characters).
pub fn generate_secret() -> Zeroizing<String> {
    Zeroizing::new(random_token(32))
}

/// The argon2id PHC string of `secret`, with a fresh random salt. Slow on purpose (tens of
/// milliseconds of one core): never call it on the proxy's event loop.
pub fn hash_secret(secret: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2id hashing with valid parameters cannot fail")
        .to_string()
}

/// A fresh secret and the registry entry that stores only its hash: a new id, `description`
/// (default: `created <date>`), `expires`, created `now`.
pub fn new_secret(
    description: Option<String>,
    expires: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> (Zeroizing<String>, Secret) {
    let plain = generate_secret();
    let entry = Secret {
        id: Secret::new_id(),
        created: Some(now),
        description: description
            .unwrap_or_else(|| format!("created {}", &crate::timefmt::format_instant(now)[..10])),
        hash: hash_secret(&plain),
        expires,
    };
    (plain, entry)
}
