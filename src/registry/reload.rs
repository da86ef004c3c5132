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

use super::{file, Limits, Store};
use crate::config::TlsFiles;
use crate::issuer::keys::{KeySet, KeyStore, SigningAlgorithm};
use crate::ops::metrics::metrics;
use crate::problems::Problems;
use crate::tls::CertStore;

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
    keys: Arc<KeyStore>,
    /// The TLS listener's certificate files and the certificate in service, if TLS is on.
    certificate: Option<(TlsFiles, Arc<CertStore>)>,
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

impl Reloader {
    pub fn new(
        registry_path: PathBuf,
        limits: Limits,
        registry: Arc<Store>,
        keys_dir: PathBuf,
        algorithm: SigningAlgorithm,
        keys: Arc<KeyStore>,
    ) -> Self {
        let applied = file::read_sources(&registry_path).map_or(0, |s| fingerprint(&s));
        Reloader {
            registry_is_dir: registry_path.is_dir(),
            registry_path,
            limits,
            registry,
            applied: AtomicU64::new(applied),
            keys_dir,
            algorithm,
            keys,
            certificate: None,
            watch: true,
        }
    }

    /// Reload only on SIGHUP, not on file changes.
    pub fn without_watching(mut self) -> Self {
        self.watch = false;
        self
    }

    /// Also reloads the TLS listener's certificate when its files change.
    pub fn with_certificate(mut self, certificate: Option<(TlsFiles, Arc<CertStore>)>) -> Self {
        self.certificate = certificate;
        self
    }

    /// Loads and validates the registry, and swaps it in only if it is valid and changed.
    pub async fn reload_registry(&self) -> Result<Reloaded, Problems> {
        let sources = self.read_settled().await?;
        let print = fingerprint(&sources);
        if print == self.applied.load(Ordering::Acquire) {
            return Ok(Reloaded::Unchanged);
        }
        self.reject_vanished_clients(&sources)?;
        let registry = file::validate(&sources, &self.limits)?;
        let clients = registry.len();
        self.registry.replace(registry);
        self.applied.store(print, Ordering::Release);
        Ok(Reloaded::Applied(clients))
    }

    /// Refuses sources that would take every client out of service because of how the files are
    /// being replaced rather than what they say: a zero-byte file is a file being written
    /// (truncated, not yet filled) however long its writer is delayed, and a registry directory
    /// with no `*.toml` left, or a registry file that became a directory, is a layout being
    /// swapped. Each is refused until its next change triggers another reload. To remove every
    /// client on purpose, leave a file with only a comment.
    fn reject_vanished_clients(&self, sources: &[file::Source]) -> Result<(), Problems> {
        let path = &self.registry_path;
        if path.is_dir() != self.registry_is_dir {
            let (then, now) = if self.registry_is_dir {
                ("a directory", "a file")
            } else {
                ("a file", "a directory")
            };
            return Err(Problems::one(
                path,
                format!("was {then} when credgate started and is now {now}; restart to change the layout"),
            ));
        }
        if self.registry_is_dir && sources.is_empty() {
            return Err(Problems::one(
                path,
                "the registry directory has no *.toml file left (being replaced?); to remove every client, leave a file with only a comment",
            ));
        }
        let mut problems = Problems::default();
        for source in sources.iter().filter(|s| s.text.is_empty()) {
            problems.push(
                &source.path,
                "",
                "the file is empty (still being written?); to remove every client, leave a comment in it",
            );
        }
        problems.into_result(())
    }

    /// Reads the registry files until two reads `SETTLE` apart agree. A writer that truncates a
    /// file and then writes it leaves a moment where the file is empty — a valid, empty
    /// registry that must never go into service.
    async fn read_settled(&self) -> Result<Vec<file::Source>, Problems> {
        let mut sources = file::read_sources(&self.registry_path)?;
        for _ in 0..SETTLE_TRIES {
            tokio::time::sleep(SETTLE).await;
            let again = file::read_sources(&self.registry_path)?;
            if fingerprint(&again) == fingerprint(&sources) {
                return Ok(again);
            }
            sources = again;
        }
        let mut problems = Problems::default();
        problems.push(
            &self.registry_path,
            "",
            "the files kept changing while being read",
        );
        Err(problems)
    }

    /// Loads the keys; swaps them in if they load and differ from the keys in service.
    pub fn reload_keys(&self) -> Result<bool, Problems> {
        let loaded = KeySet::load(&self.keys_dir, self.algorithm)?;
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
                    metrics()
                        .registry_reloads
                        .with_label_values(&["applied"])
                        .inc();
                    metrics().registry_applied(clients);
                    tracing::info!(clients, "registry reloaded");
                }
                Ok(Reloaded::Unchanged) if asked => tracing::info!("registry reload: no change"),
                Ok(Reloaded::Unchanged) => tracing::debug!("registry reload: no change"),
                Err(problems) => {
                    metrics()
                        .registry_reloads
                        .with_label_values(&["rejected"])
                        .inc();
                    tracing::error!(
                        problems = %problems.to_string().replace('\n', "; "),
                        "registry reload rejected; the previous registry stays in service"
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
            Target::Certificate => self.reload_certificate(),
        }
    }

    /// Reloads the listener's certificate; files that do not load keep the old one serving.
    fn reload_certificate(&self) {
        let Some((files, store)) = &self.certificate else {
            return;
        };
        match crate::tls::load(&files.cert, &files.key) {
            Ok(certificate) => {
                store.replace(certificate);
                tracing::info!(cert = %files.cert.display(), "certificate reloaded");
            }
            Err(e) => tracing::error!(
                cert = %files.cert.display(),
                error = %e,
                "certificate reload rejected; the previous certificate stays in service"
            ),
        }
    }

    /// Watches the directory that holds `path` (or `path` itself when it is a directory).
    fn watch(
        path: &Path,
        target: Target,
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
                if event.is_ok_and(|e| !e.kind.is_access()) {
                    // A full channel already holds a pending reload; dropping this one loses nothing.
                    let _ = events.try_send(target);
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    }
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
        let mut watched = if !self.watch {
            Vec::new()
        } else {
            vec![
                (&self.registry_path, Target::Registry),
                (&self.keys_dir, Target::Keys),
            ]
        };
        if let (true, Some((files, _))) = (self.watch, &self.certificate) {
            watched.push((&files.cert, Target::Certificate));
            watched.push((&files.key, Target::Certificate));
        }
        for (path, target) in watched {
            match Self::watch(path, target, tx.clone()) {
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
