//! Organisations and their clients: who may ask for tokens, with which secrets, scopes and
//! lifetimes, under which organisation's policy.
//!
//! A loaded registry is an immutable [`Organizations`] snapshot. The running gateway reads it
//! through a [`Store`], so readers never lock and a reload swaps it whole. Without
//! `[organizations]` the snapshot holds one organisation, the single issuer (see [`orgs`]).

pub mod atomic;
pub mod audit;
pub mod edit;
pub mod editor;
pub mod file;
pub mod model;
pub mod new_secret;
pub mod org_file;
pub mod orgs;
pub mod validate;

use std::path::Path;

pub use model::{Client, Registry, Secret};
pub use orgs::{OrgPolicy, Organization, Organizations};

use crate::config::Limits;
use crate::oauth::Issuers;
use crate::problems::Problems;

/// The live registry, replaced whole by a reload.
pub type Store = crate::live::Live<Organizations>;

/// Loads every organisation: the single issuer's registry at `path` (a file or a directory),
/// or with a template, every organisation file in the directory `path`.
pub fn load(issuers: &Issuers, path: &Path, limits: &Limits) -> Result<Organizations, Problems> {
    match issuers {
        Issuers::Single(issuer) => Ok(Organizations::single(issuer, file::load(path, limits)?)),
        Issuers::PerOrg(template) => org_file::load_orgs(path, template, limits),
    }
}
