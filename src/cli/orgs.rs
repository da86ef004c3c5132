//! `credgate org …`: organisation files in `[organizations] dir`, created, listed, shown,
//! disabled, enabled and removed. Every write is validated first and atomic, so a running
//! gateway applies it at once (disabling kills the organisation's live tokens at the edge).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::Subcommand;

use super::clients::record;
use crate::config::Limits;
use crate::oauth::issuer_url::org_id_problem;
use crate::registry::audit::AuditLog;
use crate::registry::edit::RegistryDocument;
use crate::registry::editor::{EditError, Editor};
use crate::registry::file::Source;
use crate::registry::org_file::{read_org, read_orgs, OrgRead};
use crate::registry::OrgPolicy;
use crate::timefmt::{format_duration, parse_duration};

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organisation (its file `<ID>.toml`, with no clients yet).
    Add {
        /// Lower-case letters, digits and inner hyphens (a DNS label); goes into URLs.
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// A scope its clients may be granted (repeat for more).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// A role every token of the organisation carries (repeat for more).
        #[arg(long = "default-role", value_name = "ROLE")]
        default_roles: Vec<String>,
        /// Refuse tokens to clients with no role beyond the default ones.
        #[arg(long)]
        require_role: bool,
        /// Narrows the issuer's max_token_lifetime (e.g. 30m).
        #[arg(long, value_name = "DURATION")]
        max_token_lifetime: Option<String>,
    },
    /// List every organisation.
    List,
    /// Show one organisation: its policy and clients.
    Show { id: String },
    /// Stop an organisation: no tokens, and its live tokens die at the edge.
    Disable { id: String },
    /// Let a disabled organisation get tokens again.
    Enable { id: String },
    /// Delete an organisation; refused while it has clients, unless `--force`.
    Remove {
        id: String,
        /// Remove it with its clients.
        #[arg(long)]
        force: bool,
    },
}

pub fn org(
    dir: &Path,
    limits: &Limits,
    audit: Option<&AuditLog>,
    command: OrgCommand,
) -> anyhow::Result<()> {
    match command {
        OrgCommand::Add {
            id,
            name,
            scopes,
            default_roles,
            require_role,
            max_token_lifetime,
        } => {
            let policy = OrgPolicy {
                name,
                enabled: true,
                scopes: Some(scopes),
                default_roles,
                require_role,
                max_token_lifetime: max_token_lifetime
                    .as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|e| anyhow!("--max-token-lifetime: {e}"))?,
            };
            add(dir, limits, audit, &id, &policy)
        }
        OrgCommand::List => list(dir, limits),
        OrgCommand::Show { id } => show(dir, limits, &id),
        OrgCommand::Disable { id } => {
            edit(dir, limits, audit, &id, |doc| {
                doc.set_organization_enabled(false)
            })?;
            println!("Disabled organisation {id:?}: no tokens, and its live tokens are refused.");
            Ok(())
        }
        OrgCommand::Enable { id } => {
            edit(dir, limits, audit, &id, |doc| {
                doc.set_organization_enabled(true)
            })?;
            println!("Enabled organisation {id:?}.");
            Ok(())
        }
        OrgCommand::Remove { id, force } => remove(dir, limits, audit, &id, force),
    }
}

/// The file of organisation `id`; the id must be valid.
fn file_of(dir: &Path, id: &str) -> anyhow::Result<PathBuf> {
    if let Some(problem) = org_id_problem(id) {
        bail!("{problem}");
    }
    Ok(dir.join(format!("{id}.toml")))
}

/// The file of an existing organisation and its text.
fn existing(dir: &Path, id: &str) -> anyhow::Result<Source> {
    let path = file_of(dir, id)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow!("no organisation {id:?} ({}: {e})", path.display()))?;
    Ok(Source { path, text })
}

/// The editor of organisation `id`'s file (which the CLI and the API share).
fn editor(dir: &Path, limits: &Limits, id: &str) -> anyhow::Result<Editor> {
    Ok(Editor {
        path: file_of(dir, id)?,
        limits: *limits,
        may_create: false,
        org: Some(id.to_owned()),
    })
}

fn add(
    dir: &Path,
    limits: &Limits,
    audit: Option<&AuditLog>,
    id: &str,
    policy: &OrgPolicy,
) -> anyhow::Result<()> {
    if !dir.is_dir() {
        bail!(
            "{} is not a directory{}; create it, or fix organizations.dir",
            dir.display(),
            crate::problems::relative_to_cwd(dir)
        );
    }
    let editor = editor(dir, limits, id)?;
    let created = editor.create_organization(&RegistryDocument::new_organization(policy));
    record(audit, "org.create", id, None, &created)?;
    created?;
    println!("Created organisation {id:?} in {}.", editor.path.display());
    println!("Add its clients with `credgate client add --org {id} --name NAME`.");
    Ok(())
}

fn edit(
    dir: &Path,
    limits: &Limits,
    audit: Option<&AuditLog>,
    id: &str,
    change: impl FnOnce(&mut RegistryDocument) -> Result<(), String>,
) -> anyhow::Result<()> {
    let edited = editor(dir, limits, id)?.edit_organization(change);
    record(audit, "org.update", id, None, &edited)?;
    Ok(edited?)
}

fn remove(
    dir: &Path,
    limits: &Limits,
    audit: Option<&AuditLog>,
    id: &str,
    force: bool,
) -> anyhow::Result<()> {
    let removed = editor(dir, limits, id)?.remove_organization(force);
    record(audit, "org.delete", id, None, &removed)?;
    let clients = removed.map_err(|e| match e {
        EditError::Refused(m) => anyhow!("{m} (--force)"),
        e => e.into(),
    })?;
    println!("Removed organisation {id:?} ({clients} client(s)).");
    Ok(())
}

fn list(dir: &Path, limits: &Limits) -> anyhow::Result<()> {
    if !dir.is_dir() {
        bail!("{} is not a directory of organisation files", dir.display());
    }
    let (reads, problems) = read_orgs(dir, limits);
    println!(
        "{:<24} {:<10} {:<8} {:<32} NAME",
        "ID", "STATUS", "CLIENTS", "SCOPES"
    );
    for read in &reads {
        let id = read.id.as_deref().unwrap_or("?");
        let (status, scopes, name) = match &read.policy {
            Some(p) => (
                state(p, read),
                p.scopes
                    .iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
                p.name.as_str(),
            ),
            None => ("invalid", String::new(), ""),
        };
        println!(
            "{id:<24} {status:<10} {:<8} {scopes:<32} {name}",
            read.clients.len()
        );
    }
    if !problems.is_empty() {
        eprintln!("{problems}");
    }
    Ok(())
}

fn state(policy: &OrgPolicy, read: &OrgRead) -> &'static str {
    if !read.problems.is_empty() {
        "invalid"
    } else if policy.enabled {
        "enabled"
    } else {
        "disabled"
    }
}

fn show(dir: &Path, limits: &Limits, id: &str) -> anyhow::Result<()> {
    let read = read_org(&existing(dir, id)?, limits);
    let Some(policy) = &read.policy else {
        bail!("organisation {id:?} does not load:\n{}", read.problems);
    };
    println!("id:                 {id}");
    println!("name:               {}", policy.name);
    println!("status:             {}", state(policy, &read));
    let scopes = policy.scopes.iter().flatten().cloned().collect::<Vec<_>>();
    println!("scopes:             {}", scopes.join(" "));
    println!("default_roles:      {}", policy.default_roles.join(" "));
    println!("require_role:       {}", policy.require_role);
    println!(
        "max_token_lifetime: {}",
        policy
            .max_token_lifetime
            .map_or_else(|| "issuer's".into(), format_duration)
    );
    println!("clients:            {}", read.clients.len());
    for client in read.clients.sorted() {
        println!("  {:<32} {}", client.id, client.name);
    }
    if !read.problems.is_empty() {
        println!("problems:\n{}", read.problems);
    }
    Ok(())
}
