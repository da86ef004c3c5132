//! Signing a JWT in the JWS compact serialization (RFC 7515 §7.1) with a private key parsed
//! once, when the key set loads.
//!
//! `jsonwebtoken::encode` takes the private key as DER and parses it again for every token.
//! With aws-lc that parse checks the key pair: for P-256 and Ed25519 it derives the public key
//! (a scalar multiplication, as dear as the signature), for RSA it validates the whole key. A
//! token paid for its key twice. Here the pair is parsed at load and a token costs its JSON,
//! its base64url and one signature; `benches/hot_paths.rs` (`mint/*`) measures it. Verifying
//! stays with `jsonwebtoken` ([`crate::guard`]), which checks what this writes in every test.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use super::algorithm::SigningAlgorithm;

/// A private key ready to sign, of one of the three types credgate signs with.
pub enum KeyPair {
    EdDSA(Ed25519KeyPair),
    ES256(EcdsaKeyPair),
    RS256(RsaKeyPair),
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the claims do not serialize: {0}")]
    Claims(#[from] serde_json::Error),
    #[error("the signature failed")]
    Signature,
}

/// The JOSE header credgate writes (RFC 7515 §4.1), in this order: `typ`, `alg`, `kid`.
#[derive(Serialize)]
struct Header<'a> {
    typ: &'a str,
    alg: &'static str,
    kid: &'a str,
}

impl KeyPair {
    /// Parses a PEM private key: PKCS#8 (`PRIVATE KEY`) of each type in turn, whose type
    /// decides the algorithm, or an RSA key as PKCS#1 (`RSA PRIVATE KEY`).
    pub fn from_pem(text: &[u8]) -> Option<KeyPair> {
        let pem = pem::parse(text).ok()?;
        let der = pem.contents();
        match pem.tag() {
            "PRIVATE KEY" => {
                if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
                    return Some(KeyPair::EdDSA(pair));
                }
                if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
                    return Some(KeyPair::ES256(pair));
                }
                RsaKeyPair::from_pkcs8(der).ok().map(KeyPair::RS256)
            }
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(der).ok().map(KeyPair::RS256),
            _ => None,
        }
    }

    /// The one algorithm this key signs with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        match self {
            KeyPair::EdDSA(_) => SigningAlgorithm::EdDSA,
            KeyPair::ES256(_) => SigningAlgorithm::ES256,
            KeyPair::RS256(_) => SigningAlgorithm::RS256,
        }
    }

    /// The JWT `<header>.<claims>.<signature>` of `claims`, with `typ` and `kid` in its header.
    pub fn sign_jwt(
        &self,
        typ: &str,
        kid: &str,
        claims: &impl Serialize,
    ) -> Result<String, SignError> {
        let header = Header {
            typ,
            alg: self.algorithm().name(),
            kid,
        };
        let mut jwt = encode_part(&header)?;
        jwt.push('.');
        jwt.push_str(&encode_part(claims)?);
        let signature = self.sign(jwt.as_bytes())?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
        Ok(jwt)
    }

    /// The signature of the JWS signing input (RFC 7515 §5.1 step 5).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        match self {
            KeyPair::EdDSA(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            KeyPair::ES256(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Signature),
            KeyPair::RS256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(|_| SignError::Signature)?;
                Ok(signature)
            }
        }
    }
}

fn encode_part(value: &impl Serialize) -> Result<String, SignError> {
    Ok(URL_SAFE_NO_PAD.encode(serde_json::to_vec(value)?))
}
