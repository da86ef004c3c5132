//! `credgate client …` and `credgate secret …`: registry edits that validate the whole registry
//! before writing, write atomically, and show a new secret exactly once.
//!
//! Every id argument takes `allow_hyphen_values`: a client id may start with `-` (RFC 3986
//! unreserved characters) and so does one random base64url secret id in 64.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use time::OffsetDateTime;

use crate::registry::audit::{AuditLog, Entry};
use crate::registry::edit::RegistryDocument;
use crate::registry::editor::{EditError, Editor};
use crate::registry::validate::{self, is_valid_client_id};
use crate::registry::{Client, Secret};
use crate::timefmt::{format_duration, format_instant, parse_duration, parse_expiry};

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Create a client and print its secret once.
    Add(AddArgs),
    /// List every client (never prints secrets).
    List,
    /// Show one client and its secrets' ids (never the secrets).
    Show {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Stop a client from getting tokens.
    Disable {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Let a disabled client get tokens again.
    Enable {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Delete a client.
    Remove {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Invalidate every token issued to the client until now (at the gateway's next reload).
    RevokeTokens {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Args)]
pub struct AddArgs {
    /// Display name.
    #[arg(long)]
    name: String,
    /// Client id; default: derived from the name (`Hire New Employees` → `hire-new-employees`).
    #[arg(long, allow_hyphen_values = true)]
    id: Option<String>,
    /// A scope the client may request (repeat for more).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// A role copied into its tokens (repeat for more).
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Lifetime of its tokens (e.g. 15m); default: the issuer's default_token_lifetime.
    #[arg(long, value_name = "DURATION")]
    token_lifetime: Option<String>,
    /// When the client stops working: a date, a duration from now, or `never`.
    #[arg(long, default_value = "never", value_name = "DATE|never")]
    expires: String,
    #[command(flatten)]
    secret: SecretArgs,
}

#[derive(Args)]
pub struct SecretArgs {
    /// When the secret stops working: a date, a duration from now (1y), or `never`.
    #[arg(long, default_value = crate::timefmt::DEFAULT_SECRET_EXPIRY, value_name = "DATE|DURATION|never")]
    secret_expires: String,
    /// A note to recognise the secret by; default: `created <date>`.
    #[arg(long, value_name = "TEXT")]
    secret_description: Option<String>,
    /// Print exactly one JSON object {"client_id", "client_secret"} on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Add a secret beside the existing ones (overlap for a zero-downtime rotation).
    Add {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[command(flatten)]
        secret: SecretArgs,
    },
    /// Remove one secret, named by the id `credgate client show` prints.
    Remove {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(allow_hyphen_values = true)]
        secret_id: String,
    },
    /// Replace every secret of the client with a new one.
    Rotate {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[command(flatten)]
        secret: SecretArgs,
    },
}

pub fn client(registry: &Audited<'_>, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Add(args) => add(registry, args),
        ClientCommand::List => list(registry),
        ClientCommand::Show { id } => show(registry, &id),
        ClientCommand::Disable { id } => {
            registry.edit_client("client.update", &id, None, |doc| {
                doc.set_enabled(&id, false)
            })?;
            println!("Disabled client {id:?}.");
            Ok(())
        }
        ClientCommand::Enable { id } => {
            registry.edit_client("client.update", &id, None, |doc| doc.set_enabled(&id, true))?;
            println!("Enabled client {id:?}.");
            Ok(())
        }
        ClientCommand::RevokeTokens { id } => {
            // Tokens carry whole seconds: revoke up to the start of the next second, so a token
            // minted earlier in this second cannot slip through.
            let now = OffsetDateTime::now_utc();
            let cutoff = now.replace_nanosecond(0).unwrap_or(now) + time::Duration::SECOND;
            registry.edit_client("client.revoke_tokens", &id, None, |doc| {
                doc.set_tokens_not_before(&id, cutoff)
            })?;
            println!(
                "Tokens issued to {id:?} before {} are revoked.",
                format_instant(cutoff)
            );
            Ok(())
        }
        ClientCommand::Remove { id } => {
            registry.edit_client("client.delete", &id, None, |doc| doc.remove_client(&id))?;
            println!("Removed client {id:?}.");
            Ok(())
        }
    }
}

pub fn secret(registry: &Audited<'_>, command: SecretCommand) -> anyhow::Result<()> {
    match command {
        SecretCommand::Add { id, secret } => {
            let (plain, entry) = new_secret(&secret)?;
            registry.edit_client("secret.add", &id, Some(&entry.id), |doc| {
                doc.add_secret(&id, &entry)
            })?;
            print_secret(&id, &entry.id, &plain, secret.json, "Added a secret to");
            Ok(())
        }
        SecretCommand::Remove { id, secret_id } => {
            registry.edit_client("secret.remove", &id, Some(&secret_id), |doc| {
                doc.remove_secret(&id, &secret_id)
            })?;
            println!("Removed secret {secret_id} of client {id:?}.");
            Ok(())
        }
        SecretCommand::Rotate { id, secret } => {
            let (plain, entry) = new_secret(&secret)?;
            registry.edit_client("secret.regenerate", &id, Some(&entry.id), |doc| {
                doc.replace_secrets(&id, &entry)
            })?;
            print_secret(
                &id,
                &entry.id,
                &plain,
                secret.json,
                "Replaced every secret of",
            );
            Ok(())
        }
    }
}

fn add(registry: &Audited<'_>, args: AddArgs) -> anyhow::Result<()> {
    let id = match args.id {
        Some(id) => id,
        None => validate::client_id_from_name(&args.name)
            .ok_or_else(|| anyhow!("cannot derive an id from {:?}; pass --id", args.name))?,
    };
    if !is_valid_client_id(&id) {
        bail!("{id:?} is not a valid client id: use 1 to 128 of A-Z a-z 0-9 . _ ~ -");
    }
    let now = OffsetDateTime::now_utc();
    let token_lifetime = args
        .token_lifetime
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| anyhow!("--token-lifetime: {e}"))?;
    let expires = parse_expiry(&args.expires, now).map_err(|e| anyhow!("--expires: {e}"))?;
    let (plain, secret) = new_secret(&args.secret)?;
    let client = Client {
        id: id.clone(),
        name: args.name,
        scopes: args.scopes,
        roles: args.roles,
        token_lifetime,
        expires,
        enabled: true,
        tokens_not_before: None,
        secrets: vec![secret],
    };
    let file = registry.edit_new(&id, |doc| doc.add_client(&client))?;
    if !args.secret.json {
        println!("Created client {id:?} in {}.", file.display());
    }
    print_secret(&id, &client.secrets[0].id, &plain, args.secret.json, "");
    Ok(())
}

/// A fresh secret as `args` describe it, and the registry entry that stores only its hash.
fn new_secret(args: &SecretArgs) -> anyhow::Result<(zeroize::Zeroizing<String>, Secret)> {
    let now = OffsetDateTime::now_utc();
    let expires =
        parse_expiry(&args.secret_expires, now).map_err(|e| anyhow!("--secret-expires: {e}"))?;
    Ok(crate::registry::new_secret::new_secret(
        args.secret_description.clone(),
        expires,
        now,
    ))
}

fn print_secret(id: &str, secret_id: &str, secret: &str, as_json: bool, action: &str) {
    if as_json {
        let created = json!({"client_id": id, "client_secret": secret, "secret_id": secret_id});
        println!("{created}");
        return;
    }
    if !action.is_empty() {
        println!("{action} client {id:?}.");
    }
    println!("client_id:     {id}");
    println!("client_secret: {secret}");
    println!("secret_id:     {secret_id}   (not secret: `credgate secret remove {id} {secret_id}` removes it)");
    println!("Copy the secret now: it is shown only this once (the registry keeps only its hash).");
}

fn list(registry: &Audited<'_>) -> anyhow::Result<()> {
    let loaded = registry.load()?;
    let now = OffsetDateTime::now_utc();
    println!(
        "{:<32} {:<10} {:<8} {:<24} NAME",
        "ID", "STATUS", "SECRETS", "SCOPES"
    );
    for client in loaded.sorted() {
        println!(
            "{:<32} {:<10} {:<8} {:<24} {}",
            client.id,
            status(client, now),
            client.secrets.len(),
            client.scopes.join(" "),
            client.name
        );
    }
    Ok(())
}

fn show(registry: &Audited<'_>, id: &str) -> anyhow::Result<()> {
    let loaded = registry.load()?;
    let client = loaded
        .get(id)
        .ok_or_else(|| anyhow!("no client with id {id:?}"))?;
    let now = OffsetDateTime::now_utc();
    let never = || "never".to_string();
    println!("id:             {}", client.id);
    println!("name:           {}", client.name);
    println!("status:         {}", status(client, now));
    println!("scopes:         {}", client.scopes.join(" "));
    println!("roles:          {}", client.roles.join(" "));
    println!(
        "token_lifetime: {}",
        client
            .token_lifetime
            .map_or_else(|| "issuer default".into(), format_duration)
    );
    println!(
        "expires:        {}",
        client.expires.map_or_else(never, format_instant)
    );
    println!("secrets:");
    for secret in &client.secrets {
        let state = if secret.is_valid_at(now) {
            "valid"
        } else {
            "expired"
        };
        println!(
            "  {}  {:<8} expires {:<21} {}",
            secret.id,
            state,
            secret.expires.map_or_else(never, format_instant),
            secret.description
        );
    }
    Ok(())
}

fn status(client: &Client, now: OffsetDateTime) -> &'static str {
    if !client.enabled {
        "disabled"
    } else if client.is_active(now) {
        "active"
    } else {
        "expired"
    }
}

/// The registry a command edits, and the audit log its changes go to (`[manage] audit_log`,
/// when the config read names one), as `cli:<user>`.
pub struct Audited<'a> {
    pub editor: &'a Editor,
    pub audit: Option<&'a AuditLog>,
}

impl Audited<'_> {
    fn load(&self) -> anyhow::Result<crate::registry::Registry> {
        Ok(self.editor.load()?)
    }

    fn target(&self, id: &str) -> String {
        match &self.editor.org {
            Some(org) => format!("{org}/{id}"),
            None => id.to_owned(),
        }
    }

    /// [`Editor::edit_client`], audited as `action` (on secret `secret_id`, if any).
    fn edit_client(
        &self,
        action: &str,
        id: &str,
        secret_id: Option<&str>,
        change: impl FnOnce(&mut RegistryDocument) -> Result<(), String>,
    ) -> anyhow::Result<()> {
        let result = self.editor.edit_client(id, change).map(|_| ());
        self.record(action, id, secret_id, &result)?;
        Ok(result?)
    }

    /// [`Editor::edit_new`], audited as `client.create`; the file written.
    fn edit_new(
        &self,
        id: &str,
        change: impl FnOnce(&mut RegistryDocument) -> Result<(), String>,
    ) -> anyhow::Result<std::path::PathBuf> {
        let result = self.editor.edit_new(id, change).map(|((), file)| file);
        self.record("client.create", id, None, &result)?;
        Ok(result?)
    }

    fn record<T>(
        &self,
        action: &str,
        id: &str,
        secret_id: Option<&str>,
        result: &Result<T, EditError>,
    ) -> anyhow::Result<()> {
        record(self.audit, action, &self.target(id), secret_id, result)
    }
}

/// Appends a CLI edit of `target` and its result to `audit`, if there is one.
pub fn record<T>(
    audit: Option<&AuditLog>,
    action: &str,
    target: &str,
    secret_id: Option<&str>,
    result: &Result<T, EditError>,
) -> anyhow::Result<()> {
    let Some(audit) = audit else {
        return Ok(());
    };
    let actor = cli_actor();
    audit
        .record(&Entry {
            actor: &actor,
            action,
            target,
            secret_id,
            result: result.as_ref().map_or_else(EditError::code, |_| "ok"),
            request_id: None,
        })
        .map_err(|e| anyhow!("cannot write the audit log: {e}"))
}

/// `cli:<user>`: who ran the command, as the audit log names them.
pub fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        // SAFETY: getuid(2) cannot fail and touches no memory.
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }));
    format!("cli:{user}")
}
