//! The JWS algorithms credgate signs with, each pinned to the one key type that allows it.

use std::str::FromStr;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

/// The JWS algorithms credgate signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum SigningAlgorithm {
    #[default]
    EdDSA,
    ES256,
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
    pub(super) fn generate_pkcs8(self) -> Result<Vec<u8>, String> {
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

impl FromStr for SigningAlgorithm {
    type Err = String;

    /// The names the config and the command line use: `EdDSA`, `ES256`, `RS256`.
    fn from_str(text: &str) -> Result<Self, String> {
        [Self::EdDSA, Self::ES256, Self::RS256]
            .into_iter()
            .find(|a| a.name() == text)
            .ok_or_else(|| format!("{text:?} is not one of EdDSA, ES256, RS256"))
    }
}
