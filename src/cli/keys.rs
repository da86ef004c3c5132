//! `credgate keys …`: signing keys in `keys_dir`.

use clap::Subcommand;

use crate::config::Config;
use std::time::SystemTime;

use crate::issuer::keys::{self, KeySet, SigningAlgorithm};

/// Deletes the keys no live token can need: retired longer ago than the longest token lifetime
/// plus the guard's clock-skew leeway.
fn prune(config: &Config) -> anyhow::Result<()> {
    let set = KeySet::load(&config.issuer.keys_dir, config.issuer.algorithm)?;
    let max_age = config.issuer.lifetimes.max + config.guard.leeway;
    let stale = keys::prunable(&set, max_age, SystemTime::now());
    for key in &stale {
        std::fs::remove_file(&key.file)?;
        println!("Pruned key {} ({})", key.kid, key.file.display());
    }
    if stale.is_empty() {
        println!("No key to prune.");
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a new key; it signs from the next start on (the newest key signs).
    Generate {
        /// Default: the issuer's configured algorithm.
        #[arg(long)]
        algorithm: Option<SigningAlgorithm>,
    },
    /// List the keys, their ids and which one signs.
    List,
    /// Generate a new signing key, then prune: the previous key keeps verifying until every
    /// token it signed has expired. A running gateway picks the new key up by itself.
    Rotate,
    /// Delete keys that stopped signing longer ago than a token can live.
    Prune,
}

pub fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let dir = &config.issuer.keys_dir;
    match command {
        KeysCommand::Generate { algorithm } => {
            let algorithm = algorithm.unwrap_or(config.issuer.algorithm);
            let file = keys::generate(dir, algorithm).map_err(anyhow::Error::msg)?;
            println!("Generated a {} key: {}", algorithm.name(), file.display());
            Ok(())
        }
        KeysCommand::Rotate => {
            let file = keys::generate(dir, config.issuer.algorithm).map_err(anyhow::Error::msg)?;
            println!(
                "New {} signing key: {}",
                config.issuer.algorithm.name(),
                file.display()
            );
            prune(config)
        }
        KeysCommand::Prune => prune(config),
        KeysCommand::List => {
            let set = KeySet::load(dir, config.issuer.algorithm)?;
            let signing = &set.signing_key().kid;
            println!("{:<44} {:<6} {:<8} FILE", "KID", "ALG", "SIGNS");
            for key in set.keys() {
                let signs = if &key.kid == signing { "yes" } else { "" };
                println!(
                    "{:<44} {:<6} {:<8} {}",
                    key.kid,
                    key.algorithm.name(),
                    signs,
                    key.file.display()
                );
            }
            Ok(())
        }
    }
}
