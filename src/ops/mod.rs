//! Operational services beside the main listener.

pub mod admin;
pub mod demo;
pub mod logging;
pub mod metrics;
