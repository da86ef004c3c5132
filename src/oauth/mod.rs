//! What the token side ([`crate::issuer`]) and the resource side ([`crate::guard`]) agree on,
//! so that neither needs the other: the signing keys and their JWKS, the claims of an access
//! token (RFC 9068), the syntax of scope tokens (RFC 6749 §3.3), the well-known paths, where
//! each issuer lives ([`Issuers`]: one, or one per organisation), and
//! [`TokenCheck`], the one question introspection asks of the resource side.
//!
//! This floor imports only the ground floor.

pub mod algorithm;
pub mod claims;
pub mod issuer_url;
pub mod jws;
pub mod key_files;
pub mod keys;
pub mod scope;
pub mod token_check;
pub mod well_known;

pub use algorithm::SigningAlgorithm;
pub use issuer_url::{IssuerTemplate, Issuers};
pub use keys::{Key, KeySet, KeyStore};
pub use token_check::{ActiveToken, TokenCheck};
