//! `credgate keys …`: signing keys in `keys_dir`.

use clap::Subcommand;

use crate::config::Config;
use crate::issuer::keys::{self, KeySet, SigningAlgorithm};

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
