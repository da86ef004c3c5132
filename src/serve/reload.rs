//! Applying edits of the registry files and of `keys_dir` while serving.
//!
//! Changes are noticed by watching directories, not files, so all the ways files get replaced
//! are seen: in-place writes, editors' write-then-rename, and Kubernetes ConfigMap updates
//! (which swap a `..data` symlink inside the mounted directory). SIGHUP forces a reload too.
//! A burst of events is debounced into one reload.
//!
//! A reload parses and validates everything first, then swaps the snapshot whole. A registry or
//! key set that fails validation is not applied: the previous one keeps serving, the problems
//! are logged with their file and field, and the next change is tried again.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::Limits;
use crate::config::{Config, TlsFiles};
use crate::metrics::metrics;
use crate::oauth::{KeySet, KeyStore, SigningAlgorithm};
use crate::problems::Problems;
use crate::proxy::{Edge, EdgeStore};
use crate::registry::{file, validate, Store};
use crate::serve::tls::CertStore;

/// How long to wait for a burst of file events to settle before reloading.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Two reads of the registry this far apart must agree before it is applied.
const SETTLE: Duration = Duration::from_millis(25);
const SETTLE_TRIES: usize = 10;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Registry,
    Keys,
    Certificate,
    Config,
}

/// The gateway config file, the config the process started with, and the edge built from the
/// config last applied.
struct ConfigFile {
    path: PathBuf,
    running: Config,
    edge: Arc<EdgeStore>,
    /// Hash of the text last applied.
    applied: AtomicU64,
}

/// Reloads the registry into its store, and the keys into theirs.
pub struct Reloader {
    registry_path: PathBuf,
    /// Whether `registry_path` was a directory at start; a reload that finds the other kind is
    /// refused (a file replaced by a directory would otherwise read as an empty registry).
    registry_is_dir: bool,
    limits: Limits,
    registry: Arc<Store>,
    /// Hash of the registry files last applied, to skip reloads that change nothing.
    applied: AtomicU64,
    keys_dir: PathBuf,
    algorithm: SigningAlgorithm,
    key_activation_delay: Duration,
    keys: Arc<KeyStore>,
    /// The TLS listener's certificate files and the certificate in service, if TLS is on.
    certificate: Option<(TlsFiles, Arc<CertStore>)>,
    /// Hash of the certificate files in service, to skip reloads that change nothing.
    certificate_applied: AtomicU64,
    config: Option<ConfigFile>,
    /// Watch the files; without it only SIGHUP reloads.
    watch: bool,
}

/// What a registry reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// A new snapshot with this many clients is in service.
    Applied(usize),
    /// The files are byte for byte what is already in service.
    Unchanged,
}

/// What a config reload applied.
#[derive(Debug)]
pub struct ConfigReloaded {
    pub routes: usize,
    /// Changed settings that take effect only after a restart.
    pub restart_needed: Vec<&'static str>,
}

/// A reload refused because the files have problems, and what it still applied.
#[derive(Debug)]
pub struct Refused {
    pub problems: Problems,
    /// Clients left in service: those the previous registry and the readable part of the
    /// files both grant, narrowed to what both allow (see [`crate::registry::Registry::restrict`]).
    pub in_service: usize,
    /// Clients the refusal took out of service.
    pub taken_out: Vec<String>,
}

impl Reloader {
    /// A reloader of the registry and keys `config` names into `registry` and `keys`.
    pub fn new(config: &Config, registry: Arc<Store>, keys: Arc<KeyStore>) -> Self {
        let registry_path = config.registry.path.clone();
        let applied = fingerprint(&file::read_readable_sources(&registry_path).0);
        Reloader {
            registry_is_dir: registry_path.is_dir(),
            registry_path,
            limits: config.issuer.lifetimes,
            registry,
            applied: AtomicU64::new(applied),
            keys_dir: config.issuer.keys_dir.clone(),
            algorithm: config.issuer.algorithm,
            key_activation_delay: config.issuer.key_activation_delay,
            keys,
            certificate: None,
            certificate_applied: AtomicU64::new(0),
            config: None,
            watch: config.registry.watch,
        }
    }

    /// Also reloads the TLS listener's certificate when its files change.
    pub fn with_certificate(mut self, certificate: Option<(TlsFiles, Arc<CertStore>)>) -> Self {
        if let Some((files, _)) = &certificate {
            self.certificate_applied = AtomicU64::new(hash_files(&[&files.cert, &files.key]));
        }
        self.certificate = certificate;
        self
    }

    /// Also applies edits of the gateway config file `path` to `edge` (routes, upstreams,
    /// policies, client limits); `running` is the config the process started with, against
    /// which settings that need a restart are compared.
    pub fn with_config(mut self, path: PathBuf, running: Config, edge: Arc<EdgeStore>) -> Self {
        let applied = AtomicU64::new(hash_files(&[&path]));
        self.config = Some(ConfigFile {
            path,
            running,
            edge,
            applied,
        });
        self
    }

    /// Loads and validates the config file and, if it changed, puts its edge in service. An
    /// invalid file is refused whole and the edge in service stays (routes are the operator's
    /// own file, which no tool rewrites; see README "Editing files while serving").
    pub fn reload_config(&self) -> Result<Option<ConfigReloaded>, Problems> {
        let Some(file) = &self.config else {
            return Ok(None);
        };
        // Read once: what is hashed is what is applied.
        let text = std::fs::read_to_string(&file.path)
            .map_err(|e| Problems::one(&file.path, format!("cannot read the config file: {e}")))?;
        let print = hash_contents([Some(text.as_bytes())]);
        if print == file.applied.load(Ordering::Acquire) {
            return Ok(None);
        }
        let config = Config::parse(&file.path, &text)?;
        file.edge.replace(Edge::new(&config, &file.running.issuer));
        file.applied.store(print, Ordering::Release);
        Ok(Some(ConfigReloaded {
            routes: config.routes.len(),
            restart_needed: file.running.restart_only_changes(&config),
        }))
    }

    /// Loads and validates the registry and swaps it in if it is valid and changed. Files with
    /// problems are refused, but never to the advantage of a client: what stays in service is
    /// only what the previous registry and the readable part of the files both grant.
    pub async fn reload_registry(&self) -> Result<Reloaded, Refused> {
        let (sources, mut problems) = self.read_settled().await;
        let print = fingerprint(&sources);
        if problems.is_empty() && print == self.applied.load(Ordering::Acquire) {
            return Ok(Reloaded::Unchanged);
        }
        self.check_layout(&mut problems);
        let (readable, found) = validate::read_clients(&sources, &self.limits);
        problems.0.extend(found.0);
        self.applied.store(print, Ordering::Release);
        if problems.is_empty() {
            let clients = readable.len();
            self.registry.replace(readable);
            return Ok(Reloaded::Applied(clients));
        }
        let previous = self.registry.snapshot();
        let restricted = previous.restrict(&readable);
        let taken_out = previous
            .sorted()
            .into_iter()
            .filter(|c| restricted.get(&c.id).is_none())
            .map(|c| c.id.clone())
            .collect();
        let in_service = restricted.len();
        self.registry.replace(restricted);
        Err(Refused {
            problems,
            in_service,
            taken_out,
        })
    }

    /// A registry file that became a directory, or the reverse, is a layout being swapped: a
    /// problem until the next start, so only what both layouts grant stays in service.
    fn check_layout(&self, problems: &mut Problems) {
        let path = &self.registry_path;
        let is_dir = path.is_dir();
        if path.exists() && is_dir != self.registry_is_dir {
            let (then, now) = if self.registry_is_dir {
                ("a directory", "a file")
            } else {
                ("a file", "a directory")
            };
            problems.push(
                path,
                "",
                format!("was {then} when credgate started and is now {now}; restart to change the layout"),
            );
        }
    }

    /// Reads the registry files until two reads `SETTLE` apart agree, so a writer that
    /// truncates a file and then fills it is not caught in between. Files that cannot be read
    /// are problems; files that keep changing are read as they last were, and the next change
    /// triggers another reload.
    async fn read_settled(&self) -> (Vec<file::Source>, Problems) {
        let mut read = file::read_readable_sources(&self.registry_path);
        for _ in 0..SETTLE_TRIES {
            tokio::time::sleep(SETTLE).await;
            let again = file::read_readable_sources(&self.registry_path);
            let same = fingerprint(&again.0) == fingerprint(&read.0) && again.1 == read.1;
            read = again;
            if same {
                break;
            }
        }
        read
    }

    /// Loads the keys; swaps them in if they load and differ from the keys in service.
    pub fn reload_keys(&self) -> Result<bool, Problems> {
        let loaded = KeySet::load(&self.keys_dir, self.algorithm, self.key_activation_delay)?;
        let kids = |set: &KeySet| set.keys().iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
        let current = self.keys.snapshot();
        let changed = kids(&loaded) != kids(&current)
            || loaded.signing_key().kid != current.signing_key().kid;
        if changed {
            self.keys.replace(loaded);
        }
        Ok(changed)
    }

    /// Reloads `target` and logs the outcome; `asked` (SIGHUP) logs even a reload that changed
    /// nothing, so whoever sent the signal sees an answer.
    async fn reload(&self, target: Target, asked: bool) {
        match target {
            Target::Registry => match self.reload_registry().await {
                Ok(Reloaded::Applied(clients)) => {
                    metrics().registry_reloaded(clients, true);
                    tracing::info!(clients, "registry reloaded");
                }
                Ok(Reloaded::Unchanged) if asked => tracing::info!("registry reload: no change"),
                Ok(Reloaded::Unchanged) => tracing::debug!("registry reload: no change"),
                Err(refused) => {
                    metrics().registry_reloaded(refused.in_service, false);
                    tracing::error!(
                        problems = %refused.problems.to_string().replace('\n', "; "),
                        clients = refused.in_service,
                        taken_out = %refused.taken_out.join(" "),
                        "registry reload rejected; until the files are valid, only what both the previous registry and the files grant stays in service"
                    )
                }
            },
            Target::Keys => match self.reload_keys() {
                Ok(true) => {
                    let keys = self.keys.snapshot();
                    tracing::info!(keys = keys.keys().len(), signing = %keys.signing_key().kid, "keys reloaded");
                }
                Ok(false) if asked => tracing::info!("keys reload: no change"),
                Ok(false) => tracing::debug!("keys reload: no change"),
                Err(problems) => tracing::error!(
                    problems = %problems.to_string().replace('\n', "; "),
                    "keys reload rejected; the previous keys stay in service"
                ),
            },
            Target::Certificate => self.reload_certificate(asked),
            Target::Config => match self.reload_config() {
                Ok(Some(applied)) => {
                    metrics().config_reloaded(true);
                    tracing::info!(routes = applied.routes, "config reloaded");
                    if !applied.restart_needed.is_empty() {
                        tracing::warn!(
                            settings = %applied.restart_needed.join(", "),
                            "config changes that take effect only after a restart"
                        );
                    }
                }
                Ok(None) if asked => tracing::info!("config reload: no change"),
                Ok(None) => tracing::debug!("config reload: no change"),
                Err(problems) => {
                    metrics().config_reloaded(false);
                    tracing::error!(
                        problems = %problems.to_string().replace('\n', "; "),
                        "config reload rejected; the previous routes and limits stay in service"
                    )
                }
            },
        }
    }

    /// Reloads the listener's certificate if its files changed; files that do not load keep
    /// the old one serving.
    fn reload_certificate(&self, asked: bool) {
        let Some((files, store)) = &self.certificate else {
            return;
        };
        let print = hash_files(&[&files.cert, &files.key]);
        if print == self.certificate_applied.load(Ordering::Acquire) {
            if asked {
                tracing::info!("certificate reload: no change");
            }
            return;
        }
        match crate::serve::tls::load(&files.cert, &files.key) {
            Ok(certificate) => {
                store.replace(certificate);
                self.certificate_applied.store(print, Ordering::Release);
                metrics().certificate_reloaded(true);
                tracing::info!(cert = %files.cert.display(), "certificate reloaded");
            }
            Err(e) => {
                metrics().certificate_reloaded(false);
                tracing::error!(
                    cert = %files.cert.display(),
                    error = %e,
                    "certificate reload rejected; the previous certificate stays in service"
                )
            }
        }
    }

    /// Watches the directory that holds `path` (or `path` itself when it is a directory). With
    /// `only`, events count only when they name one of those files, or a `..`-prefixed entry
    /// (Kubernetes swaps a `..data` symlink to update a mounted ConfigMap or Secret): a log file
    /// written beside a certificate must not reload it several times a second.
    fn watch(
        path: &Path,
        target: Target,
        only: Option<Vec<std::ffi::OsString>>,
        events: mpsc::Sender<Target>,
    ) -> notify::Result<RecommendedWatcher> {
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            }
        };
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let concerns = |e: &notify::Event| match &only {
                    None => true,
                    Some(names) => e.paths.iter().any(|p| {
                        p.file_name().is_some_and(|name| {
                            names.iter().any(|n| n == name)
                                || name.to_string_lossy().starts_with("..")
                        })
                    }),
                };
                if event.is_ok_and(|e| !e.kind.is_access() && concerns(&e)) {
                    // A full channel already holds a pending reload; dropping this one loses nothing.
                    let _ = events.try_send(target);
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    }
}

/// A hash of the contents of `files` (an unreadable file hashes as absent).
fn hash_files(files: &[&Path]) -> u64 {
    let contents: Vec<Option<Vec<u8>>> = files.iter().map(|f| std::fs::read(f).ok()).collect();
    hash_contents(contents.iter().map(|c| c.as_deref()))
}

/// A hash of file contents (`None` for a file that could not be read).
fn hash_contents<'a>(contents: impl IntoIterator<Item = Option<&'a [u8]>>) -> u64 {
    let mut hasher = DefaultHasher::new();
    for content in contents {
        content.hash(&mut hasher);
    }
    hasher.finish()
}

/// A hash of the registry files' names and contents.
fn fingerprint(sources: &[file::Source]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for source in sources {
        source.path.hash(&mut hasher);
        source.text.hash(&mut hasher);
    }
    hasher.finish()
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = mpsc::channel(16);
        let mut watchers = Vec::new();
        let name = |path: &Path| path.file_name().map(|n| n.to_owned()).into_iter().collect();
        let mut watched: Vec<(&Path, Target, Option<Vec<_>>)> = if !self.watch {
            Vec::new()
        } else {
            vec![
                (&self.registry_path, Target::Registry, None),
                (&self.keys_dir, Target::Keys, None),
            ]
        };
        if let (true, Some((files, _))) = (self.watch, &self.certificate) {
            let names: Vec<_> = [&files.cert, &files.key]
                .into_iter()
                .flat_map(|f| name(f))
                .collect();
            watched.push((&files.cert, Target::Certificate, Some(names.clone())));
            if files.key.parent() != files.cert.parent() {
                watched.push((&files.key, Target::Certificate, Some(names)));
            }
        }
        if let (true, Some(config)) = (self.watch, &self.config) {
            watched.push((&config.path, Target::Config, Some(name(&config.path))));
        }
        for (path, target, only) in watched {
            match Self::watch(path, target, only, tx.clone()) {
                Ok(watcher) => watchers.push(watcher),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot watch; reload with SIGHUP")
                }
            }
        }
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP");
                None
            }
        };
        tracing::info!(watched_files = watchers.len(), "reloader ready");
        loop {
            tokio::select! {
                Some(()) = async { hangups.as_mut()?.recv().await } => {
                    self.reload(Target::Registry, true).await;
                    self.reload(Target::Keys, true).await;
                    self.reload(Target::Certificate, true).await;
                    self.reload(Target::Config, true).await;
                }
                Some(first) = rx.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    let mut targets = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        if !targets.contains(&more) {
                            targets.push(more);
                        }
                    }
                    for target in targets {
                        self.reload(target, false).await;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
