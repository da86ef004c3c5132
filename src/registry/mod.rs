//! The client registry: who may ask for tokens, with which secrets, scopes and lifetimes.
//!
//! A loaded registry is an immutable [`Registry`] snapshot. The running gateway reads it
//! through a [`Store`], so readers never lock and a reload swaps it whole.

pub mod atomic;
pub mod edit;
pub mod file;
pub mod model;
pub mod reload;

use std::time::Duration;

pub use model::{Client, Registry, Secret};

use crate::timefmt::format_duration;

/// The issuer's bounds on token lifetimes; a client's `token_lifetime` must lie within them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub min: Duration,
    pub max: Duration,
}

impl Limits {
    /// The issuer's defaults (`min_token_lifetime = "1m"`, `max_token_lifetime = "1h"`),
    /// which registry commands apply when they read no gateway config.
    pub const DEFAULT: Limits = Limits {
        min: Duration::from_secs(60),
        max: Duration::from_secs(3600),
    };

    /// Explains why `lifetime` is out of bounds, if it is.
    pub fn check(&self, lifetime: Duration) -> Result<(), String> {
        if lifetime < self.min {
            Err(format!(
                "{} is shorter than the issuer's min_token_lifetime ({})",
                format_duration(lifetime),
                format_duration(self.min)
            ))
        } else if lifetime > self.max {
            Err(format!(
                "{} is longer than the issuer's max_token_lifetime ({})",
                format_duration(lifetime),
                format_duration(self.max)
            ))
        } else {
            Ok(())
        }
    }
}

/// The live registry, replaced whole by a reload.
pub type Store = crate::live::Live<Registry>;
