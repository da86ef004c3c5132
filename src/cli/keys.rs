//! `credgate keys …`: signing keys in `keys_dir`.

use std::path::Path;
use std::time::SystemTime;

use clap::Subcommand;

use crate::config::Config;
use crate::oauth::key_files;
use crate::oauth::keys::prunable;
use crate::oauth::{KeySet, SigningAlgorithm};
use crate::timefmt::{format_duration, format_instant};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a new key: published at once, it signs once `issuer.key_activation_delay` has
    /// passed (the newest active key signs).
    Generate {
        /// Default: the issuer's configured algorithm.
        #[arg(long, value_name = "EdDSA|ES256|RS256")]
        algorithm: Option<SigningAlgorithm>,
    },
    /// List the keys, their ids, which one signs, and when a new one takes over.
    List,
    /// Generate a new signing key, then prune: the previous key keeps signing until the new one
    /// is active and verifying until every token it signed has expired. Running gateways pick
    /// the new key up by themselves.
    Rotate,
    /// Delete keys that stopped signing longer ago than a token can live.
    Prune,
}

pub fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let dir = &config.issuer.keys_dir;
    match command {
        KeysCommand::Generate { algorithm } => {
            let algorithm = algorithm.unwrap_or(config.issuer.algorithm);
            let file = key_files::generate(dir, algorithm).map_err(anyhow::Error::msg)?;
            println!("Generated a {} key: {}", algorithm.name(), file.display());
            announce_takeover(config, &file)
        }
        KeysCommand::Rotate => {
            let file =
                key_files::generate(dir, config.issuer.algorithm).map_err(anyhow::Error::msg)?;
            println!(
                "New {} signing key: {}",
                config.issuer.algorithm.name(),
                file.display()
            );
            announce_takeover(config, &file)?;
            prune(config)
        }
        KeysCommand::Prune => prune(config),
        KeysCommand::List => list(config),
    }
}

fn load(config: &Config) -> anyhow::Result<KeySet> {
    let issuer = &config.issuer;
    Ok(KeySet::load(
        &issuer.keys_dir,
        issuer.algorithm,
        issuer.key_activation_delay,
    )?)
}

/// Says when the key in `file` starts signing.
fn announce_takeover(config: &Config, file: &Path) -> anyhow::Result<()> {
    let set = load(config)?;
    let Some(key) = set.keys().iter().find(|k| k.file == file) else {
        return Ok(());
    };
    if key.algorithm != config.issuer.algorithm {
        println!(
            "It is published and verifies; it signs only if issuer.algorithm becomes {}.",
            key.algorithm.name()
        );
        return Ok(());
    }
    println!(
        "Published now (JWKS, verification); it signs from {} (issuer.key_activation_delay = {}).",
        format_instant(key.active_from.into()),
        format_duration(config.issuer.key_activation_delay)
    );
    Ok(())
}

fn list(config: &Config) -> anyhow::Result<()> {
    let set = load(config)?;
    let now = SystemTime::now();
    let signing = &set.signing_key_at(now).kid;
    let next = set.next_signing_key(now).map(|k| &k.kid);
    println!(
        "{:<44} {:<6} {:<22} {:<21} FILE",
        "KID", "ALG", "SIGNS", "ACTIVE FROM"
    );
    for key in set.keys() {
        let signs = if &key.kid == signing {
            "yes".to_owned()
        } else if Some(&key.kid) == next {
            "next".to_owned()
        } else {
            String::new()
        };
        println!(
            "{:<44} {:<6} {:<22} {:<21} {}",
            key.kid,
            key.algorithm.name(),
            signs,
            format_instant(key.active_from.into()),
            key.file.display()
        );
    }
    Ok(())
}

/// Deletes the keys no live token can need: retired longer ago than the longest token lifetime
/// plus the guard's clock-skew leeway.
fn prune(config: &Config) -> anyhow::Result<()> {
    let set = load(config)?;
    let max_age = config.issuer.lifetimes.max + config.guard.leeway;
    let stale = prunable(&set, max_age, SystemTime::now());
    for key in &stale {
        std::fs::remove_file(&key.file)?;
        println!("Pruned key {} ({})", key.kid, key.file.display());
    }
    if stale.is_empty() {
        println!("No key to prune.");
    }
    Ok(())
}
