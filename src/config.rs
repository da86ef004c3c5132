//! The gateway configuration file (`config/credgate.toml`): parsing, defaults, and validation
//! that reports every problem with its field path.
//!
//! Relative paths in the file (`keys_dir`, `registry.path`) are resolved against the process's
//! working directory, as the shipped demo (`cargo run` from the repository root) expects.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::oauth::scope::{is_valid_scope_token, scope_token_problem};
use crate::oauth::well_known::RESERVED_PATHS;
use crate::oauth::{IssuerTemplate, Issuers, SigningAlgorithm};
use crate::problems::Problems;
use crate::timefmt::{format_duration, parse_duration};

/// Where `credgate` looks for its configuration unless `--config` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "config/credgate.toml";

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub issuer: IssuerConfig,
    /// Where the clients are: `[registry] path`, or with `[organizations]` its `dir`.
    pub registry: RegistryConfig,
    pub guard: GuardConfig,
    pub routes: Vec<RouteConfig>,
    pub admin: Option<AdminConfig>,
    /// The management API (needs `[organizations]`).
    pub manage: Option<ManageConfig>,
    pub demo: Option<DemoConfig>,
    pub log: LogConfig,
}

/// Logging: level filter (`RUST_LOG` overrides it) and line format.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Bearer-token validation in front of protected routes.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// Clock skew tolerated on `exp` and `nbf` (at most 30 s).
    pub leeway: Duration,
    /// Verified tokens kept in the validation cache.
    pub cache_capacity: u64,
    /// Longest a verified token stays cached (never past its `exp`).
    pub cache_ttl: Duration,
}

/// One `[[route]]`: requests under `prefix` go to `upstream` once their token passes.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub prefix: String,
    /// Looked up when connecting, never at load (see [`crate::resolve`]).
    pub upstream: UpstreamAddr,
    /// Every one of these scopes is required.
    pub scopes: Vec<String>,
    /// Any one of these roles is required (none = no role check).
    pub roles: Vec<String>,
    /// No token needed at all.
    pub public: bool,
    /// Forward the inbound `Authorization` header (default: removed).
    pub keep_authorization: bool,
    /// `org = "path"`: the route lives under each organisation's base and admits only that
    /// organisation's tokens.
    pub per_org: bool,
    /// Speak HTTPS to the upstream, verifying its certificate for `sni`.
    pub tls: bool,
    /// Server name sent and verified; default: the host part of `upstream`.
    pub sni: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// How long SIGTERM waits for in-flight requests (Pingora's default of 300 s would hold
    /// Kubernetes and CI hostage).
    pub grace_period: Duration,
    /// How long a client may go silent: between two reads of a request body, and on a kept-alive
    /// connection between requests.
    pub client_timeout: Duration,
    /// Worker threads of the main listener.
    pub threads: usize,
    /// Whether an idle worker thread takes tasks queued on a busy one (Pingora's
    /// `work_stealing`).
    pub work_stealing: bool,
    /// Idle upstream connections kept for reuse, across all upstreams (Pingora's
    /// `upstream_keepalive_pool_size`).
    pub upstream_keepalive_pool: usize,
    /// PEM roots that HTTPS upstreams are verified against; `None` = the system's roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// Serve HTTPS on `listen` with this certificate (reloaded when the files change).
    pub tls: Option<TlsFiles>,
    /// Drop every inbound header whose name has an `_` (see [`crate::forwarded`]).
    pub drop_underscore_headers: bool,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IssuerConfig {
    /// The `iss` claim and the base of the discovery URLs: `[issuer] issuer`, or one per
    /// organisation from `[organizations] issuer_template`.
    pub issuers: Issuers,
    /// Paths that answer as the token endpoint; the first is the advertised one.
    pub token_paths: Vec<String>,
    pub keys_dir: PathBuf,
    pub algorithm: SigningAlgorithm,
    /// How long a new key is published (JWKS, verification) before it signs, so every
    /// instance knows it before its first token (see [`crate::oauth::keys`]).
    pub key_activation_delay: Duration,
    pub audience: String,
    pub default_token_lifetime: Duration,
    pub lifetimes: Limits,
    /// How many argon2id verifications run at once (each keeps one core busy); half the cores
    /// by default.
    pub secret_verify_concurrency: usize,
    /// How many token requests may wait for a verification slot before we answer 503.
    pub secret_verify_queue: usize,
    /// How long a verified client secret is remembered (zero: never).
    pub secret_cache_ttl: Duration,
    /// Failed client authentications allowed per id and per address.
    pub failures: FailureLimits,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegistryConfig {
    /// A registry file, or a directory whose `*.toml` files are all loaded; with
    /// `[organizations]`, the directory of organisation files (`<org>.toml` each).
    pub path: PathBuf,
    /// Apply file changes while serving (registry, keys, certificate); SIGHUP works either way.
    pub watch: bool,
}

/// `[manage]`: the management API on the main listener (DESIGN §3).
#[derive(Debug, Clone, PartialEq)]
pub struct ManageConfig {
    /// Where the API lives on the main listener (`/manage/v1`).
    pub prefix: String,
    /// The scope a token needs to manage its own organisation.
    pub scope: String,
    /// Clients of this organisation holding `scope` manage every organisation.
    pub operator_org: Option<String>,
    /// JSON lines, one per change: who, what, on what, with what result. Never a secret.
    pub audit_log: PathBuf,
    /// Most clients an organisation may have through the API.
    pub max_clients_per_org: usize,
    /// Most secrets a client may have through the API.
    pub max_secrets_per_client: usize,
    /// Most changes an organisation may make through the API per minute (0: no bound).
    pub max_writes_per_minute: u32,
    /// Whether the web console is served at `<prefix>/console/` (off unless asked for).
    pub console: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    /// Where the built-in echo upstream listens.
    pub echo_upstream: SocketAddr,
}

/// The issuer's bounds on token lifetimes; a client's `token_lifetime` must lie within them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub min: Duration,
    pub max: Duration,
    /// Whose bounds these are, for the messages: `"issuer"`, or `"organisation"` when an
    /// organisation's `max_token_lifetime` narrowed them.
    pub set_by: &'static str,
}

impl Limits {
    /// The issuer's defaults (`min_token_lifetime = "1m"`, `max_token_lifetime = "1h"`),
    /// which registry commands apply when they read no gateway config.
    pub const DEFAULT: Limits = Limits {
        min: Duration::from_secs(60),
        max: Duration::from_secs(3600),
        set_by: "issuer",
    };

    /// Explains why `lifetime` is out of bounds, if it is.
    pub fn check(&self, lifetime: Duration) -> Result<(), String> {
        if lifetime < self.min {
            Err(format!(
                "{} is shorter than the {}'s min_token_lifetime ({})",
                format_duration(lifetime),
                self.set_by,
                format_duration(self.min)
            ))
        } else if lifetime > self.max {
            Err(format!(
                "{} is longer than the {}'s max_token_lifetime ({})",
                format_duration(lifetime),
                self.set_by,
                format_duration(self.max)
            ))
        } else {
            Ok(())
        }
    }
}

/// The failure limits of the token and introspection endpoints (`[issuer] failure_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    /// Failures per client id per window; 0 turns the limit off.
    pub per_client: u32,
    /// Failures per source address per window; 0 turns the limit off (for instances behind a
    /// proxy that hides the callers' addresses).
    pub per_ip: u32,
    pub window: Duration,
}

/// An upstream as configured: a host (IP address or DNS name) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddr {
    /// Without brackets for IPv6.
    pub host: String,
    pub port: u16,
}

impl UpstreamAddr {
    /// Parses `host:port` (`[v6]:port` for IPv6); checks syntax only, never DNS.
    pub fn parse(text: &str) -> Result<UpstreamAddr, String> {
        let invalid = || format!("{text:?} is not a host:port address");
        let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').ok_or_else(invalid)?,
            None if host.contains(':') => return Err(invalid()),
            None => host,
        };
        let valid_name = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if port == 0 || !(valid_name || host.parse::<IpAddr>().is_ok()) {
            return Err(invalid());
        }
        Ok(UpstreamAddr {
            host: host.to_owned(),
            port,
        })
    }

    /// The address when the host is an IP literal: no lookup needed.
    pub fn literal(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

// ---- the file as written ------------------------------------------------------------------

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default = "from_empty_table")]
    server: RawServer,
    #[serde(default = "from_empty_table")]
    issuer: RawIssuer,
    registry: Option<RawRegistry>,
    organizations: Option<RawOrganizations>,
    #[serde(default)]
    guard: RawGuard,
    #[serde(default, rename = "route")]
    routes: Vec<RawRoute>,
    admin: Option<RawAdmin>,
    manage: Option<RawManage>,
    demo: Option<RawDemo>,
    #[serde(default)]
    log: LogConfig,
}

#[derive(Deserialize)]
#[serde(default)]
struct RawGuard {
    leeway: String,
    cache_capacity: u64,
    cache_ttl: String,
}

impl Default for RawGuard {
    fn default() -> Self {
        RawGuard {
            leeway: "5s".into(),
            cache_capacity: 100_000,
            cache_ttl: "5m".into(),
        }
    }
}

#[derive(Deserialize)]
struct RawRoute {
    prefix: Option<String>,
    upstream: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    keep_authorization: bool,
    org: Option<String>,
    #[serde(default)]
    tls: bool,
    sni: Option<String>,
    #[serde(default = "default_connect_timeout")]
    connect_timeout: String,
    #[serde(default = "default_read_timeout")]
    read_timeout: String,
}

/// How long a route waits for its upstream to accept a connection unless its
/// `connect_timeout` says otherwise: long enough for a distant upstream, short enough that a
/// dead one becomes a 502 rather than a hung client.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a route waits on one read from its upstream unless its `read_timeout` says
/// otherwise, so a stuck upstream becomes a 504 instead of holding the connection forever.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

fn default_connect_timeout() -> String {
    humantime::format_duration(DEFAULT_CONNECT_TIMEOUT).to_string()
}
fn default_read_timeout() -> String {
    humantime::format_duration(DEFAULT_READ_TIMEOUT).to_string()
}

/// The most clock skew the guard may tolerate.
const MAX_LEEWAY: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct RawServer {
    listen: Option<String>,
    #[serde(default = "default_grace_period")]
    grace_period: String,
    #[serde(default = "default_client_timeout")]
    client_timeout: String,
    threads: Option<usize>,
    #[serde(default = "work_stealing_by_default")]
    work_stealing: bool,
    #[serde(default = "default_upstream_keepalive_pool")]
    upstream_keepalive_pool: usize,
    upstream_ca_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default = "drop_underscore_headers_by_default")]
    drop_underscore_headers: bool,
}

fn drop_underscore_headers_by_default() -> bool {
    true
}

fn work_stealing_by_default() -> bool {
    true
}

fn default_upstream_keepalive_pool() -> usize {
    128
}

#[derive(Deserialize)]
struct RawIssuer {
    issuer: Option<String>,
    #[serde(default = "default_token_paths")]
    token_paths: Vec<String>,
    keys_dir: Option<PathBuf>,
    #[serde(default)]
    algorithm: SigningAlgorithm,
    #[serde(default = "default_key_activation_delay")]
    key_activation_delay: String,
    audience: Option<String>,
    #[serde(default = "default_lifetime")]
    default_token_lifetime: String,
    #[serde(default = "default_lifetime")]
    max_token_lifetime: String,
    #[serde(default = "default_min_lifetime")]
    min_token_lifetime: String,
    secret_verify_concurrency: Option<usize>,
    #[serde(default = "default_verify_queue")]
    secret_verify_queue: usize,
    #[serde(default = "default_secret_cache_ttl")]
    secret_cache_ttl: String,
    #[serde(default = "default_failure_limit")]
    failure_limit_per_client: u32,
    #[serde(default = "default_failure_limit")]
    failure_limit_per_ip: u32,
    #[serde(default = "default_failure_window")]
    failure_window: String,
}

#[derive(Deserialize)]
struct RawRegistry {
    path: Option<PathBuf>,
    #[serde(default = "watch_by_default")]
    watch: bool,
}

/// A section left out of the file: every field at its default, required ones missing.
fn from_empty_table<T: serde::de::DeserializeOwned>() -> T {
    toml::from_str("").expect("every field of a section has a default")
}

#[derive(Deserialize)]
struct RawOrganizations {
    dir: Option<PathBuf>,
    issuer_template: Option<String>,
    #[serde(default = "watch_by_default")]
    watch: bool,
}

fn watch_by_default() -> bool {
    true
}

#[derive(Deserialize)]
struct RawManage {
    #[serde(default = "default_manage_prefix")]
    prefix: String,
    #[serde(default = "default_manage_scope")]
    scope: String,
    operator_org: Option<String>,
    audit_log: Option<PathBuf>,
    #[serde(default)]
    console: bool,
    #[serde(default = "default_max_clients")]
    max_clients_per_org: usize,
    #[serde(default = "default_max_secrets")]
    max_secrets_per_client: usize,
    #[serde(default = "default_max_writes")]
    max_writes_per_minute: u32,
}

fn default_max_writes() -> u32 {
    600
}

fn default_manage_prefix() -> String {
    "/manage/v1".into()
}
fn default_manage_scope() -> String {
    "credgate:manage".into()
}
fn default_max_clients() -> usize {
    1000
}
fn default_max_secrets() -> usize {
    10
}

#[derive(Deserialize)]
struct RawAdmin {
    listen: Option<String>,
}

#[derive(Deserialize)]
struct RawDemo {
    echo_upstream: Option<String>,
}

fn default_grace_period() -> String {
    "10s".into()
}
fn default_client_timeout() -> String {
    "30s".into()
}
fn default_token_paths() -> Vec<String> {
    vec!["/connect/token".into()]
}
fn default_lifetime() -> String {
    "1h".into()
}
fn default_min_lifetime() -> String {
    "1m".into()
}
fn default_key_activation_delay() -> String {
    "5m".into()
}
fn default_verify_queue() -> usize {
    256
}
fn default_secret_cache_ttl() -> String {
    "5m".into()
}
fn default_failure_limit() -> u32 {
    10
}
fn default_failure_window() -> String {
    "1m".into()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The default argon2id concurrency: a flood of token requests may keep this many cores busy
/// hashing, and no more, so proxying keeps the rest (measured in `benches/e2e`, row 8).
fn half_the_cores() -> usize {
    (cores() / 2).max(1)
}

impl Config {
    /// The settings that differ between `self` (the running config) and `new` and take effect
    /// only after a restart: everything but the routes, `server.client_timeout` and
    /// `server.drop_underscore_headers`, which a reload applies.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let (a, b) = (&self.server, &new.server);
        [
            ("server.listen", a.listen != b.listen),
            ("server.threads", a.threads != b.threads),
            ("server.work_stealing", a.work_stealing != b.work_stealing),
            (
                "server.upstream_keepalive_pool",
                a.upstream_keepalive_pool != b.upstream_keepalive_pool,
            ),
            ("server.grace_period", a.grace_period != b.grace_period),
            (
                "server.upstream_ca_file",
                a.upstream_ca_file != b.upstream_ca_file,
            ),
            ("server.tls_cert/tls_key", a.tls != b.tls),
            ("[issuer]", self.issuer != new.issuer),
            ("[registry]", self.registry != new.registry),
            ("[guard]", self.guard != new.guard),
            ("[admin]", self.admin != new.admin),
            ("[manage]", self.manage != new.manage),
            ("[demo]", self.demo != new.demo),
            ("[log]", self.log != new.log),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let place = crate::problems::relative_to_cwd(path);
            Problems::one(path, format!("cannot read the config file{place}: {e}"))
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text` as the contents of the config file `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Problems> {
        let (config, problems) = Self::check(path, text);
        match config {
            Some(config) => problems.into_result(config),
            None => Err(problems),
        }
    }

    /// Every problem of `text` as the config file `path`, and the config it describes as far as
    /// it can be read (`None` only when it is not a TOML document of the right shape), so
    /// `credgate check` can go on to check the registry and keys it names. Unknown fields and
    /// missing required fields are all reported; a value of the wrong type stops the reading
    /// there, since the rest cannot be interpreted.
    pub fn check(path: &Path, text: &str) -> (Option<Config>, Problems) {
        let mut problems = Problems::default();
        let deserializer = match toml::Deserializer::parse(text) {
            Ok(deserializer) => deserializer,
            Err(e) => {
                problems.push_toml(path, text, &e);
                return (None, problems);
            }
        };
        let mut unknown = Vec::new();
        let read =
            serde_ignored::deserialize(deserializer, |field| unknown.push(field_path(&field)));
        let lines = toml_edit::Document::parse(text).ok();
        for (field, keys) in unknown {
            let line = lines.as_ref().and_then(|doc| line_of(doc, text, &keys));
            problems.push_at(path, line, field, "unknown field");
        }
        let raw: RawConfig = match read {
            Ok(raw) => raw,
            Err(e) => {
                problems.push_toml(path, text, &e);
                return (None, problems);
            }
        };
        let mut check = Checker { path, problems };
        let config = check.config(raw);
        (Some(config), check.problems)
    }
}

/// An ignored field's path as written in problems (`route[1].prefx`), and its keys for
/// finding its line.
fn field_path(path: &serde_ignored::Path<'_>) -> (String, Vec<Segment>) {
    fn walk(path: &serde_ignored::Path<'_>, keys: &mut Vec<Segment>) {
        match path {
            serde_ignored::Path::Root => {}
            serde_ignored::Path::Seq { parent, index } => {
                walk(parent, keys);
                keys.push(Segment::Index(*index));
            }
            serde_ignored::Path::Map { parent, key } => {
                walk(parent, keys);
                keys.push(Segment::Key(key.clone()));
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, keys),
        }
    }
    let mut keys = Vec::new();
    walk(path, &mut keys);
    let mut text = String::new();
    for segment in &keys {
        match segment {
            Segment::Key(key) if text.is_empty() => text.push_str(key),
            Segment::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Segment::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    (text, keys)
}

/// One step of a field's path: a key, or an index into an array of tables.
enum Segment {
    Key(String),
    Index(usize),
}

/// The line where the key at `keys` is written in `text`.
fn line_of(doc: &toml_edit::Document<&str>, text: &str, keys: &[Segment]) -> Option<usize> {
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut span = None;
    let mut segments = keys.iter().peekable();
    while let Some(segment) = segments.next() {
        let Segment::Key(key) = segment else {
            return None;
        };
        let (found, value) = table.get_key_value(key)?;
        span = found.span();
        match segments.peek() {
            Some(Segment::Index(i)) => {
                segments.next();
                let element = value.as_array_of_tables()?.get(*i)?;
                span = element.span().or(span);
                table = element;
            }
            Some(Segment::Key(_)) => table = value.as_table_like()?,
            None => {}
        }
    }
    span.map(|s| text[..s.start].matches('\n').count() + 1)
}

/// Converts the raw file into a [`Config`], recording problems instead of stopping.
struct Checker<'a> {
    path: &'a Path,
    problems: Problems,
}

impl Checker<'_> {
    fn config(&mut self, raw: RawConfig) -> Config {
        let server = ServerConfig {
            listen: self.addr("server.listen", raw.server.listen.as_deref()),
            grace_period: self.duration("server.grace_period", &raw.server.grace_period),
            client_timeout: self
                .at_least_a_second("server.client_timeout", &raw.server.client_timeout),
            threads: self.positive("server.threads", raw.server.threads.unwrap_or_else(cores)),
            work_stealing: raw.server.work_stealing,
            upstream_keepalive_pool: self.positive(
                "server.upstream_keepalive_pool",
                raw.server.upstream_keepalive_pool,
            ),
            upstream_ca_file: raw.server.upstream_ca_file,
            tls: match (raw.server.tls_cert, raw.server.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                (None, None) => None,
                _ => {
                    self.problem("server.tls_cert", "tls_cert and tls_key go together");
                    None
                }
            },
            drop_underscore_headers: raw.server.drop_underscore_headers,
        };
        if let Some(file) = &server.upstream_ca_file {
            if !file.is_file() {
                self.problem(
                    "server.upstream_ca_file",
                    format!("{} is not a readable file", file.display()),
                );
            }
        }
        let (issuers, registry) =
            self.tenancy(raw.issuer.issuer.clone(), raw.registry, raw.organizations);
        let issuer = self.issuer(raw.issuer, issuers);
        let admin = raw.admin.map(|a| AdminConfig {
            listen: self.addr("admin.listen", a.listen.as_deref()),
        });
        let demo = raw.demo.map(|d| DemoConfig {
            echo_upstream: self.addr("demo.echo_upstream", d.echo_upstream.as_deref()),
        });
        let mut listeners = vec![("server.listen", server.listen)];
        listeners.extend(admin.as_ref().map(|a| ("admin.listen", a.listen)));
        listeners.extend(
            demo.as_ref()
                .map(|d| ("demo.echo_upstream", d.echo_upstream)),
        );
        self.distinct_listeners(&listeners);
        let per_org_mode = matches!(issuer.issuers, Issuers::PerOrg(_));
        let manage = raw.manage.map(|m| self.manage(m, per_org_mode));
        let guard = GuardConfig {
            leeway: self.duration("guard.leeway", &raw.guard.leeway),
            cache_capacity: raw.guard.cache_capacity,
            cache_ttl: self.duration("guard.cache_ttl", &raw.guard.cache_ttl),
        };
        if guard.leeway > MAX_LEEWAY {
            self.problem("guard.leeway", "must be at most 30s");
        }
        let routes = raw
            .routes
            .into_iter()
            .enumerate()
            .map(|(i, r)| self.route(&format!("route[{i}]"), r, per_org_mode))
            .collect::<Vec<_>>();
        for (i, route) in routes.iter().enumerate() {
            if routes[..i].iter().any(|r| r.prefix == route.prefix) {
                self.problem(
                    &format!("route[{i}].prefix"),
                    format!("{:?} is listed twice", route.prefix),
                );
            }
        }
        Config {
            server,
            issuer,
            registry,
            guard,
            routes,
            admin,
            manage,
            demo,
            log: raw.log,
        }
    }

    fn route(&mut self, at: &str, raw: RawRoute, per_org_mode: bool) -> RouteConfig {
        let per_org = match raw.org.as_deref() {
            None => false,
            Some("path") if per_org_mode => true,
            Some("path") => {
                self.problem(&format!("{at}.org"), "needs an [organizations] section");
                false
            }
            Some(other) => {
                self.problem(
                    &format!("{at}.org"),
                    format!("{other:?}: the only value is \"path\""),
                );
                false
            }
        };
        let prefix = self.required(&format!("{at}.prefix"), raw.prefix.clone());
        let upstream = self.required(&format!("{at}.upstream"), raw.upstream.clone());
        match crate::path::canonicalize(&prefix) {
            _ if raw.prefix.is_none() => {}
            Ok(canonical) if canonical == prefix => {}
            Ok(_) => self.problem(
                &format!("{at}.prefix"),
                "write the prefix without percent-escapes",
            ),
            Err(e) => self.problem(&format!("{at}.prefix"), format!("{prefix:?}: {}", e.0)),
        }
        if raw.public && !(raw.scopes.is_empty() && raw.roles.is_empty()) {
            self.problem(
                &format!("{at}.public"),
                "a public route cannot require scopes or roles",
            );
        }
        for (field, tokens) in [("scopes", &raw.scopes), ("roles", &raw.roles)] {
            for (i, token) in tokens.iter().enumerate() {
                if !is_valid_scope_token(token) {
                    self.problem(&format!("{at}.{field}[{i}]"), scope_token_problem(token));
                }
            }
        }
        if !raw.tls && raw.sni.is_some() {
            self.problem(&format!("{at}.sni"), "only applies with tls = true");
        }
        let upstream = UpstreamAddr::parse(&upstream).unwrap_or_else(|e| {
            if raw.upstream.is_some() {
                self.problem(&format!("{at}.upstream"), e);
            }
            UpstreamAddr {
                host: "127.0.0.1".into(),
                port: 1,
            }
        });
        RouteConfig {
            sni: raw.sni.unwrap_or_else(|| upstream.host.clone()),
            upstream,
            tls: raw.tls,
            connect_timeout: self.duration(&format!("{at}.connect_timeout"), &raw.connect_timeout),
            read_timeout: self.duration(&format!("{at}.read_timeout"), &raw.read_timeout),
            prefix,
            scopes: raw.scopes,
            roles: raw.roles,
            public: raw.public,
            keep_authorization: raw.keep_authorization,
            per_org,
        }
    }

    /// Where the issuers and the clients are: `[issuer] issuer` and `[registry]`, or
    /// `[organizations]`, which replaces both.
    fn tenancy(
        &mut self,
        issuer: Option<String>,
        registry: Option<RawRegistry>,
        organizations: Option<RawOrganizations>,
    ) -> (Issuers, RegistryConfig) {
        let Some(orgs) = organizations else {
            let url = self.required("issuer.issuer", issuer.clone());
            if issuer.is_some() {
                self.issuer_url(&url);
            }
            let registry = registry.unwrap_or_else(from_empty_table);
            let registry = RegistryConfig {
                path: self.required("registry.path", registry.path),
                watch: registry.watch,
            };
            return (
                Issuers::Single(url.trim_end_matches('/').to_string()),
                registry,
            );
        };
        let replaced =
            "[organizations] replaces it: each organisation's issuer comes from issuer_template";
        if issuer.is_some() {
            self.problem("issuer.issuer", replaced);
        }
        if registry.is_some() {
            self.problem("registry", "[organizations] replaces it: each organisation's clients are in its file in organizations.dir");
        }
        let text = self.required(
            "organizations.issuer_template",
            orgs.issuer_template.clone(),
        );
        let template = IssuerTemplate::parse(&text).unwrap_or_else(|e| {
            if orgs.issuer_template.is_some() {
                self.problem("organizations.issuer_template", e);
            }
            IssuerTemplate::parse("http://localhost/{org}").expect("a valid template")
        });
        let registry = RegistryConfig {
            path: self.required("organizations.dir", orgs.dir),
            watch: orgs.watch,
        };
        (Issuers::PerOrg(template), registry)
    }

    fn manage(&mut self, raw: RawManage, per_org_mode: bool) -> ManageConfig {
        if !per_org_mode {
            self.problem(
                "manage",
                "the management API manages organisations: it needs an [organizations] section",
            );
        }
        let prefix = raw.prefix.trim_end_matches('/').to_owned();
        let canonical = crate::path::canonicalize(&prefix).is_ok_and(|c| c == prefix);
        if !prefix.starts_with('/') || prefix.len() < 2 || !canonical {
            self.problem(
                "manage.prefix",
                format!(
                    "{:?} must be a canonical absolute path below the root, like \"/manage/v1\"",
                    raw.prefix
                ),
            );
        }
        if !is_valid_scope_token(&raw.scope) {
            self.problem("manage.scope", scope_token_problem(&raw.scope));
        }
        if let Some(problem) = raw
            .operator_org
            .as_deref()
            .and_then(crate::oauth::issuer_url::org_id_problem)
        {
            self.problem("manage.operator_org", problem);
        }
        for (field, n) in [
            ("manage.max_clients_per_org", raw.max_clients_per_org),
            ("manage.max_secrets_per_client", raw.max_secrets_per_client),
        ] {
            self.positive(field, n);
        }
        ManageConfig {
            prefix,
            scope: raw.scope,
            operator_org: raw.operator_org,
            audit_log: self.required("manage.audit_log", raw.audit_log),
            max_clients_per_org: raw.max_clients_per_org.max(1),
            max_secrets_per_client: raw.max_secrets_per_client.max(1),
            max_writes_per_minute: raw.max_writes_per_minute,
            console: raw.console,
        }
    }

    fn issuer(&mut self, raw: RawIssuer, issuers: Issuers) -> IssuerConfig {
        let audience = self.required("issuer.audience", raw.audience.clone());
        for (i, p) in raw.token_paths.iter().enumerate() {
            self.token_path(
                &format!("issuer.token_paths[{i}]"),
                p,
                &raw.token_paths[..i],
            );
        }
        if raw.token_paths.is_empty() {
            self.problem("issuer.token_paths", "needs at least one path");
        }
        if raw.audience.is_some() && audience.trim().is_empty() {
            self.problem("issuer.audience", "must not be empty");
        }
        let default = self.duration("issuer.default_token_lifetime", &raw.default_token_lifetime);
        let max = self.duration("issuer.max_token_lifetime", &raw.max_token_lifetime);
        let min = self.duration("issuer.min_token_lifetime", &raw.min_token_lifetime);
        let lifetimes = Limits {
            min,
            max,
            set_by: "issuer",
        };
        if min > max {
            self.problem(
                "issuer.min_token_lifetime",
                "is longer than issuer.max_token_lifetime",
            );
        } else if let Err(e) = lifetimes.check(default) {
            self.problem("issuer.default_token_lifetime", e);
        }
        IssuerConfig {
            issuers,
            token_paths: raw.token_paths,
            keys_dir: self.required("issuer.keys_dir", raw.keys_dir),
            algorithm: raw.algorithm,
            key_activation_delay: self
                .duration("issuer.key_activation_delay", &raw.key_activation_delay),
            audience,
            default_token_lifetime: default,
            lifetimes,
            secret_verify_concurrency: self.positive(
                "issuer.secret_verify_concurrency",
                raw.secret_verify_concurrency.unwrap_or_else(half_the_cores),
            ),
            secret_verify_queue: raw.secret_verify_queue,
            secret_cache_ttl: self.duration("issuer.secret_cache_ttl", &raw.secret_cache_ttl),
            failures: FailureLimits {
                per_client: raw.failure_limit_per_client,
                per_ip: raw.failure_limit_per_ip,
                window: self.at_least_a_second("issuer.failure_window", &raw.failure_window),
            },
        }
    }

    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(self.path, field, message);
    }

    /// A required field's value; a missing one is a problem (and a default stands in).
    fn required<T: Default>(&mut self, field: &str, value: Option<T>) -> T {
        value.unwrap_or_else(|| {
            self.problem(field, "missing; this field is required");
            T::default()
        })
    }

    fn addr(&mut self, field: &str, text: Option<&str>) -> SocketAddr {
        let fallback = SocketAddr::from(([127, 0, 0, 1], 0));
        let Some(text) = text else {
            self.problem(field, "missing; this field is required");
            return fallback;
        };
        text.parse().unwrap_or_else(|_| {
            self.problem(field, format!("{text:?} is not an ip:port address"));
            fallback
        })
    }

    fn duration(&mut self, field: &str, text: &str) -> Duration {
        parse_duration(text).unwrap_or_else(|e| {
            self.problem(field, e);
            Duration::ZERO
        })
    }

    fn at_least_a_second(&mut self, field: &str, text: &str) -> Duration {
        let duration = self.duration(field, text);
        if duration < Duration::from_secs(1) && parse_duration(text).is_ok() {
            self.problem(field, "must be at least 1s");
        }
        duration
    }

    fn positive(&mut self, field: &str, n: usize) -> usize {
        if n == 0 {
            self.problem(field, "must be at least 1");
        }
        n.max(1)
    }

    fn issuer_url(&mut self, url: &str) {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            None => self.problem(
                "issuer.issuer",
                format!("{url:?} must start with https:// or http://"),
            ),
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                self.problem("issuer.issuer", format!("{url:?} has no host"))
            }
            Some(rest) if rest.contains(['?', '#']) => self.problem(
                "issuer.issuer",
                "must not contain a query or fragment (RFC 8414)",
            ),
            Some(_) => {}
        }
    }

    fn token_path(&mut self, field: &str, path: &str, earlier: &[String]) {
        if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
            self.problem(
                field,
                format!("{path:?} must be an absolute path without query"),
            );
        } else if RESERVED_PATHS.contains(&path) {
            self.problem(
                field,
                format!("{path:?} is a discovery path served by credgate"),
            );
        } else if earlier.iter().any(|p| p == path) {
            self.problem(field, format!("{path:?} is listed twice"));
        }
    }

    fn distinct_listeners(&mut self, listeners: &[(&str, SocketAddr)]) {
        for (i, (field, addr)) in listeners.iter().enumerate() {
            if let Some((other, _)) = listeners[..i].iter().find(|(_, a)| a == addr) {
                self.problem(field, format!("{addr} is already used by {other}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_parsed_without_dns() {
        let named = UpstreamAddr::parse("orders.svc.cluster.local:8080").unwrap();
        assert_eq!(
            (named.host.as_str(), named.port),
            ("orders.svc.cluster.local", 8080)
        );
        assert_eq!(named.literal(), None);
        let v6 = UpstreamAddr::parse("[::1]:80").unwrap();
        assert_eq!(v6.literal(), Some("[::1]:80".parse().unwrap()));
        assert_eq!(v6.to_string(), "[::1]:80");
        for bad in [
            "nowhere",
            "host:",
            ":80",
            "host:0",
            "::1:80",
            "a b:80",
            "host:99999",
        ] {
            assert!(UpstreamAddr::parse(bad).is_err(), "{bad}");
        }
    }

    const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:8080"
[issuer]
issuer = "http://127.0.0.1:8080/"
keys_dir = "keys"
audience = "api"
[registry]
path = "clients.toml"
"#;

    fn parse(text: &str) -> Result<Config, Problems> {
        Config::parse(Path::new("gw.toml"), text)
    }

    #[test]
    fn defaults_fill_a_minimal_file() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(
            c.issuer.issuers,
            crate::oauth::Issuers::Single("http://127.0.0.1:8080".into())
        );
        assert_eq!(c.issuer.token_paths, ["/connect/token"]);
        assert_eq!(c.issuer.algorithm, SigningAlgorithm::EdDSA);
        assert_eq!(c.issuer.default_token_lifetime, Duration::from_secs(3600));
        assert_eq!(c.issuer.lifetimes.min, Duration::from_secs(60));
        assert_eq!(c.server.grace_period, Duration::from_secs(10));
        assert_eq!(c.issuer.key_activation_delay, Duration::from_secs(300));
        assert_eq!(c.issuer.secret_verify_queue, 256);
        assert!(c.admin.is_none() && c.demo.is_none());
        assert_eq!(c.server.client_timeout, Duration::from_secs(30));
        let failures = c.issuer.failures;
        assert_eq!((failures.per_client, failures.per_ip), (10, 10));
        assert_eq!(failures.window, Duration::from_secs(60));
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let text = MINIMAL
            .replace("127.0.0.1:8080\"\n[issuer]", "nowhere\"\ngrace_period = \"soon\"\nclient_timeout = \"500ms\"\n[issuer]")
            .replace("audience = \"api\"", "audience = \"api\"\nmin_token_lifetime = \"2h\"\ntoken_paths = [\"token\", \"/.well-known/jwks.json\"]\nfailure_window = \"0s\"");
        let problems = parse(&text).unwrap_err().to_string();
        for needle in [
            "gw.toml: server.listen: \"nowhere\" is not an ip:port address",
            "server.grace_period: \"soon\" is not a duration",
            "issuer.min_token_lifetime: is longer than issuer.max_token_lifetime",
            "issuer.token_paths[0]: \"token\" must be an absolute path",
            "issuer.token_paths[1]: \"/.well-known/jwks.json\" is a discovery path",
            "server.client_timeout: must be at least 1s",
            "issuer.failure_window: must be at least 1s",
        ] {
            assert!(
                problems.contains(needle),
                "missing {needle:?} in:\n{problems}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_line() {
        let text = MINIMAL.replace("audience", "audeince");
        let problems = parse(&text).unwrap_err().to_string();
        assert_eq!(
            problems,
            "gw.toml:7: issuer.audeince: unknown field\ngw.toml: issuer.audience: missing; this field is required"
        );
    }

    #[test]
    fn typos_and_missing_fields_do_not_hide_each_other() {
        let text = MINIMAL
            .replace("keys_dir = \"keys\"\n", "keys_dri = \"keys\"\n")
            .replace("[registry]", "colour = \"red\"\n[registry]")
            .replace(
                "listen = \"127.0.0.1:8080\"",
                "listen = \"127.0.0.1:8080\"\ngrace_period = \"soon\"",
            )
            + "[[route]]\nprefix = \"/a/\"\nupstrem = \"x:1\"\n";
        let problems = parse(&text).unwrap_err().to_string();
        for needle in [
            "gw.toml:7: issuer.keys_dri: unknown field",
            "gw.toml:9: issuer.colour: unknown field",
            "gw.toml:14: route[0].upstrem: unknown field",
            "issuer.keys_dir: missing; this field is required",
            "route[0].upstream: missing; this field is required",
            "server.grace_period: \"soon\" is not a duration",
        ] {
            assert!(
                problems.contains(needle),
                "missing {needle:?} in:\n{problems}"
            );
        }
        assert_eq!(problems.lines().count(), 6, "{problems}");
    }

    #[test]
    fn tls_files_are_validated() {
        let half = MINIMAL.replace("[issuer]", "tls_cert = \"c.pem\"\n[issuer]");
        let problems = parse(&half).unwrap_err().to_string();
        assert!(
            problems.contains("server.tls_cert: tls_cert and tls_key go together"),
            "{problems}"
        );
        let ca = MINIMAL.replace(
            "[issuer]",
            "upstream_ca_file = \"/nonexistent/ca.pem\"\n[issuer]",
        );
        let problems = parse(&ca).unwrap_err().to_string();
        assert!(
            problems
                .contains("server.upstream_ca_file: /nonexistent/ca.pem is not a readable file"),
            "{problems}"
        );
    }

    #[test]
    fn routes_are_validated() {
        let text = format!(
            "{MINIMAL}[[route]]\nprefix = \"/api/\"\nupstream = \"127.0.0.1:9000\"\nscopes = [\"a\"]\n\
             [[route]]\nprefix = \"/api/\"\nupstream = \"nowhere\"\n\
             [[route]]\nprefix = \"/x/../y\"\nupstream = \"127.0.0.1:1\"\npublic = true\nroles = [\"r\"]\n\
             [guard]\nleeway = \"1m\"\n"
        );
        let problems = parse(&text).unwrap_err().to_string();
        for needle in [
            "route[1].prefix: \"/api/\" is listed twice",
            "route[1].upstream: \"nowhere\" is not a host:port address",
            "route[2].prefix: \"/x/../y\": dot segments",
            "route[2].public: a public route cannot require scopes or roles",
            "guard.leeway: must be at most 30s",
        ] {
            assert!(
                problems.contains(needle),
                "missing {needle:?} in:\n{problems}"
            );
        }
        let good =
            format!("{MINIMAL}[[route]]\nprefix = \"/api/\"\nupstream = \"127.0.0.1:9000\"\n");
        let config = parse(&good).unwrap();
        // The documented defaults (README: `5s` / `60s`), which bare-pingora --forwarding sets too.
        assert_eq!(config.routes[0].connect_timeout, Duration::from_secs(5));
        assert_eq!(config.routes[0].read_timeout, Duration::from_secs(60));
        assert_eq!(config.guard.cache_capacity, 100_000);
    }

    #[test]
    fn restart_only_changes_are_named_and_routes_are_not_among_them() {
        let running = parse(MINIMAL).unwrap();
        let text = MINIMAL.replace("8080\"\n[issuer]", "8081\"\nthreads = 7\nwork_stealing = false\nupstream_keepalive_pool = 16\nclient_timeout = \"9s\"\n[issuer]")
            + "[[route]]\nprefix = \"/new/\"\nupstream = \"127.0.0.1:9\"\n[guard]\nleeway = \"1s\"\n";
        let new = parse(&text).unwrap();
        assert_eq!(
            running.restart_only_changes(&new),
            [
                "server.listen",
                "server.threads",
                "server.work_stealing",
                "server.upstream_keepalive_pool",
                "[guard]"
            ]
        );
        assert!(running.restart_only_changes(&running).is_empty());
    }

    #[test]
    fn listeners_must_differ() {
        let text = format!("{MINIMAL}[admin]\nlisten = \"127.0.0.1:8080\"\n");
        let problems = parse(&text).unwrap_err().to_string();
        assert!(problems.contains("admin.listen: 127.0.0.1:8080 is already used by server.listen"));
    }
}
