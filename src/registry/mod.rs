//! The client registry: who may ask for tokens, with which secrets, scopes and lifetimes.
//!
//! A loaded registry is an immutable [`Registry`] snapshot. The running gateway reads it
//! through a [`Store`] (an `ArcSwap`), so readers never lock and a reload swaps it whole.

pub mod edit;
pub mod file;
pub mod model;
pub mod reload;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

pub use model::{Client, Registry, Secret};

use crate::timefmt::format_duration;

/// The issuer's bounds on token lifetimes; a client's `token_lifetime` must lie within them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub min: Duration,
    pub max: Duration,
}

impl Limits {
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

/// The live registry: an atomically replaceable snapshot.
pub struct Store(ArcSwap<Registry>);

impl Store {
    pub fn new(registry: Registry) -> Self {
        Store(ArcSwap::from_pointee(registry))
    }

    /// The current snapshot; cheap, lock-free, and stable for as long as it is held.
    pub fn snapshot(&self) -> Arc<Registry> {
        self.0.load_full()
    }

    /// Replaces the snapshot whole; requests already holding the old one finish with it.
    pub fn replace(&self, registry: Registry) {
        self.0.store(Arc::new(registry));
    }
}
