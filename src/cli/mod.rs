//! The `credgate` command line: serve, check, and the admin commands that edit the registry
//! and the keys directory.

mod clients;
mod keys;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogConfig, LogFormat, DEFAULT_CONFIG_PATH};
use crate::issuer::keys::KeySet;
use crate::registry;

#[derive(Parser)]
#[command(
    name = "credgate",
    version,
    about = "OAuth 2.0 client-credentials gateway"
)]
struct Cli {
    /// The gateway configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// The client registry (file or directory); default: `registry.path` of the config.
    #[arg(long, global = true)]
    registry: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Validate the config, the registry and the keys; print every problem.
    Check,
    /// Manage API clients.
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Manage client secrets.
    #[command(subcommand)]
    Secret(clients::SecretCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// Runs the command line; the process exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, as text or one JSON object per line; `RUST_LOG` overrides the level.
///
/// Pingora's own debug output dumps whole request heads (query strings, `Authorization`), so its
/// crates are capped at `info` whatever the level: no setting may put a token in the logs.
fn init_logging(config: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("pingora=info".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(&cli.config)?;
    init_logging(&config.log);
    if let Some(path) = cli.registry {
        config.registry.path = path;
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Ok(crate::server::serve(config)?),
        Command::Check => check(&cli.config, &config),
        Command::Client(command) => clients::client(&config, command),
        Command::Secret(command) => clients::secret(&config, command),
        Command::Keys(command) => keys::keys(&config, command),
    }
}

/// `credgate check`: everything `serve` would load, without serving or generating anything.
fn check(config_path: &Path, config: &Config) -> anyhow::Result<()> {
    let registry = registry::file::load(&config.registry.path, &config.issuer.lifetimes);
    let keys_dir = &config.issuer.keys_dir;
    let keys = if crate::issuer::keys::has_no_keys(keys_dir) {
        Ok(None)
    } else {
        KeySet::load(keys_dir, config.issuer.algorithm).map(Some)
    };
    let mut problems = crate::problems::Problems::default();
    if let Err(e) = &registry {
        problems.0.extend(e.0.iter().cloned());
    }
    if let Err(e) = &keys {
        problems.0.extend(e.0.iter().cloned());
    }
    if !problems.is_empty() {
        anyhow::bail!("{} problem(s) found:\n{problems}", problems.0.len());
    }
    println!("{}: ok", config_path.display());
    if let Ok(registry) = registry {
        println!(
            "{}: ok, {} client(s)",
            config.registry.path.display(),
            registry.len()
        );
    }
    match keys {
        Ok(Some(keys)) => println!(
            "{}: ok, {} key(s), signing with {} ({})",
            keys_dir.display(),
            keys.keys().len(),
            keys.signing_key().kid,
            keys.signing_key().algorithm.name()
        ),
        _ => println!(
            "{}: no keys yet; `credgate serve` generates a {} key on first start",
            keys_dir.display(),
            config.issuer.algorithm.name()
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
