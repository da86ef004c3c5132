//! The `credgate` command line: serve, check, and the admin commands that edit the registry
//! and the keys directory.

mod clients;
mod keys;
mod orgs;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{Config, LogConfig, DEFAULT_CONFIG_PATH};
use crate::oauth::KeySet;
use crate::registry;

#[derive(Parser)]
#[command(
    name = "credgate",
    version,
    about = "OAuth 2.0 client-credentials gateway"
)]
struct Cli {
    /// The gateway configuration file [default: config/credgate.toml].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The client registry (file or directory); default: `registry.path` of the config. With
    /// it, registry commands need no config (they read one only for the token-lifetime bounds).
    #[arg(long, global = true)]
    registry: Option<PathBuf>,
    /// Let a registry command create the `--registry` file when it does not exist yet.
    #[arg(long, global = true)]
    create: bool,
    /// The organisation whose clients a `client` or `secret` command manages (with
    /// `[organizations]`, required).
    #[arg(long, global = true, value_name = "ID")]
    org: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Validate the config, the registry and the keys; print every problem.
    Check,
    /// Manage organisations (with `[organizations]`).
    #[command(subcommand)]
    Org(orgs::OrgCommand),
    /// Manage API clients.
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Manage client secrets.
    #[command(subcommand)]
    Secret(clients::SecretCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Manpage,
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

fn run(cli: Cli) -> anyhow::Result<()> {
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let command = cli.command.unwrap_or(Command::Serve);
    match command {
        Command::Completions { shell } => {
            let mut definition = Cli::command();
            clap_complete::generate(shell, &mut definition, "credgate", &mut std::io::stdout());
            return Ok(());
        }
        Command::Manpage => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(());
        }
        _ => {}
    }
    if let Command::Client(_) | Command::Secret(_) = command {
        crate::serve::logging::init(&LogConfig::default());
        let (target, audit_log) =
            registry_target(cli.config.as_deref(), cli.registry, cli.org, cli.create)?;
        let audit = open_audit(audit_log)?;
        let registry = clients::Audited {
            editor: &target,
            audit: audit.as_ref(),
        };
        return match command {
            Command::Client(command) => clients::client(&registry, command),
            Command::Secret(command) => clients::secret(&registry, command),
            _ => unreachable!("only registry commands get here"),
        };
    }
    if let Command::Org(command) = command {
        crate::serve::logging::init(&LogConfig::default());
        let (dir, limits, audit_log) = orgs_dir(cli.config.as_deref(), cli.registry)?;
        let audit = open_audit(audit_log)?;
        return orgs::org(&dir, &limits, audit.as_ref(), command);
    }
    if let Command::Check = command {
        return check(&config_path, cli.registry);
    }
    let mut config = Config::load(&config_path)?;
    crate::serve::logging::init(&config.log);
    if let Some(path) = cli.registry {
        config.registry.path = path;
    }
    match command {
        Command::Serve => Ok(crate::serve::serve(config, &config_path)?),
        Command::Keys(command) => keys::keys(&config, command),
        Command::Check
        | Command::Org(_)
        | Command::Client(_)
        | Command::Secret(_)
        | Command::Completions { .. }
        | Command::Manpage => unreachable!("handled above"),
    }
}

/// The registry a `client` or `secret` command edits, and the bounds it checks lifetimes
/// against. Without `--registry` it is the config's. With it, the config is read only when
/// given or present at the default path, for its token-lifetime bounds; never for anything else
/// (a config whose upstreams do not resolve here must not stop a registry edit).
///
/// With `--org`, the target is that organisation's file in the organisations' directory (the
/// config's `organizations.dir`, or `--registry`).
fn registry_target(
    config: Option<&Path>,
    registry: Option<PathBuf>,
    org: Option<String>,
    create: bool,
) -> anyhow::Result<(crate::registry::editor::Editor, Option<PathBuf>)> {
    let target = registry_files(config, registry, create)?;
    let audit_log = target.audit_log.clone();
    match (org, target.org_mode) {
        (None, Some(true)) => anyhow::bail!(
            "this gateway serves organisations ([organizations] in its config): name one with --org ID"
        ),
        (Some(_), Some(false)) => {
            anyhow::bail!("--org needs a gateway config with an [organizations] section")
        }
        (Some(org), _) => {
            if let Some(problem) = crate::oauth::issuer_url::org_id_problem(&org) {
                anyhow::bail!("--org: {problem}");
            }
            let editor = crate::registry::editor::Editor {
                path: target.path.join(format!("{org}.toml")),
                limits: target.limits,
                may_create: false,
                org: Some(org),
            };
            Ok((editor, audit_log))
        }
        (None, _) => {
            let editor = crate::registry::editor::Editor {
                path: target.path,
                limits: target.limits,
                may_create: target.may_create,
                org: None,
            };
            Ok((editor, audit_log))
        }
    }
}

/// The directory of organisation files, the issuer's lifetime bounds and the audit log, for
/// `credgate org`.
fn orgs_dir(
    config: Option<&Path>,
    registry: Option<PathBuf>,
) -> anyhow::Result<(PathBuf, crate::config::Limits, Option<PathBuf>)> {
    let target = registry_files(config, registry, false)?;
    if target.org_mode == Some(false) {
        anyhow::bail!("`credgate org` needs a gateway config with an [organizations] section");
    }
    Ok((target.path, target.limits, target.audit_log))
}

/// The audit log registry edits are appended to (`[manage] audit_log`), if the config names one.
fn open_audit(path: Option<PathBuf>) -> anyhow::Result<Option<crate::registry::audit::AuditLog>> {
    path.map(|path| {
        crate::registry::audit::AuditLog::open(&path)
            .map_err(|e| anyhow::anyhow!("manage.audit_log {}: {e}", path.display()))
    })
    .transpose()
}

/// Where the registry is, as the config (if one is read) and `--registry` say.
struct RegistryFiles {
    path: PathBuf,
    limits: crate::config::Limits,
    may_create: bool,
    /// Whether the config read has `[organizations]`; `None` when no config was read.
    org_mode: Option<bool>,
    /// `[manage] audit_log` of the config read: registry edits are audited there too.
    audit_log: Option<PathBuf>,
}

fn registry_files(
    config: Option<&Path>,
    registry: Option<PathBuf>,
    create: bool,
) -> anyhow::Result<RegistryFiles> {
    let default = Path::new(DEFAULT_CONFIG_PATH);
    let org_mode =
        |config: &Config| matches!(config.issuer.issuers, crate::oauth::Issuers::PerOrg(_));
    let Some(path) = registry else {
        let config = Config::load(config.unwrap_or(default))?;
        return Ok(RegistryFiles {
            org_mode: Some(org_mode(&config)),
            audit_log: config.manage.as_ref().map(|m| m.audit_log.clone()),
            path: config.registry.path,
            limits: config.issuer.lifetimes,
            may_create: true,
        });
    };
    let loaded = match config {
        Some(config) => Some(Config::load(config)?),
        None if default.exists() => Config::load(default)
            .map_err(|problems| {
                eprintln!(
                    "note: {} does not load ({} problem(s)); ignoring it",
                    default.display(),
                    problems.0.len()
                )
            })
            .ok(),
        None => None,
    };
    let (limits, names_it) = match &loaded {
        Some(config) => (config.issuer.lifetimes, config.registry.path == path),
        None => {
            let limits = crate::config::Limits::DEFAULT;
            eprintln!(
                "note: no gateway config read; token lifetimes are checked against the default bounds {}..{} (pass --config to use the issuer's)",
                crate::timefmt::format_duration(limits.min),
                crate::timefmt::format_duration(limits.max)
            );
            (limits, false)
        }
    };
    Ok(RegistryFiles {
        path,
        limits,
        may_create: create || names_it,
        org_mode: loaded.as_ref().map(org_mode),
        audit_log: loaded
            .as_ref()
            .and_then(|c| c.manage.as_ref())
            .map(|m| m.audit_log.clone()),
    })
}

/// `credgate check`: everything `serve` would load, without serving or generating anything.
/// Every problem is printed: those of the config, and those of the registry and keys it names
/// even when the config has problems of its own.
fn check(config_path: &Path, registry_path: Option<PathBuf>) -> anyhow::Result<()> {
    crate::serve::logging::init(&LogConfig::default());
    let text = std::fs::read_to_string(config_path).map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot read the config file{}: {e}",
            config_path.display(),
            crate::problems::relative_to_cwd(config_path)
        )
    })?;
    let (config, mut problems) = Config::check(config_path, &text);
    let mut report = Vec::new();
    if let Some(mut config) = config {
        if let Some(path) = registry_path {
            config.registry.path = path;
        }
        let issuer = &config.issuer;
        if !config.registry.path.as_os_str().is_empty() {
            match registry::load(&issuer.issuers, &config.registry.path, &issuer.lifetimes) {
                Ok(orgs) if matches!(issuer.issuers, crate::oauth::Issuers::PerOrg(_)) => report
                    .push(format!(
                        "{}: ok, {} organisation(s), {} client(s)",
                        config.registry.path.display(),
                        orgs.len(),
                        orgs.client_count()
                    )),
                Ok(orgs) => report.push(format!(
                    "{}: ok, {} client(s)",
                    config.registry.path.display(),
                    orgs.client_count()
                )),
                Err(found) => problems.0.extend(found.0),
            }
        }
        if let Some(manage) = &config.manage {
            let log = &manage.audit_log;
            match crate::registry::audit::AuditLog::check_appendable(log) {
                Ok(()) => report.push(format!(
                    "{}: ok, the audit log can be appended to",
                    log.display()
                )),
                Err(why) => problems.push(
                    config_path,
                    "manage.audit_log",
                    format!("{}: {why}", log.display()),
                ),
            }
        }
        let keys_dir = &issuer.keys_dir;
        let keys_named = !keys_dir.as_os_str().is_empty();
        if keys_named && crate::oauth::key_files::has_no_keys(keys_dir) {
            report.push(format!(
                "{}: no keys yet; `credgate serve` generates a {} key on first start",
                keys_dir.display(),
                issuer.algorithm.name()
            ));
        } else if keys_named {
            match KeySet::load(keys_dir, issuer.algorithm, issuer.key_activation_delay) {
                Ok(keys) => report.push(format!(
                    "{}: ok, {} key(s), signing with {} ({})",
                    keys_dir.display(),
                    keys.keys().len(),
                    keys.signing_key().kid,
                    keys.signing_key().algorithm.name()
                )),
                Err(found) => problems.0.extend(found.0),
            }
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("{} problem(s) found:\n{problems}", problems.0.len());
    }
    println!("{}: ok", config_path.display());
    for line in report {
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn the_default_lifetime_bounds_are_the_issuers_defaults() {
        let minimal = crate::testing::MINIMAL_CONFIG;
        let config = crate::config::Config::parse(std::path::Path::new("c"), minimal).unwrap();
        assert_eq!(config.issuer.lifetimes, crate::config::Limits::DEFAULT);
    }
}
