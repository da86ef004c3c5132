//! The client registry: who may ask for tokens, with which secrets, scopes and lifetimes.
//!
//! A loaded registry is an immutable [`Registry`] snapshot. The running gateway reads it
//! through a [`Store`], so readers never lock and a reload swaps it whole.

pub mod atomic;
pub mod edit;
pub mod file;
pub mod model;
pub mod validate;

pub use model::{Client, Registry, Secret};

/// The live registry, replaced whole by a reload.
pub type Store = crate::live::Live<Registry>;
