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
//!
//! With `[organizations]`, a reload reads only the organisation files the watcher named (all of
//! them on SIGHUP, a Kubernetes `..data` swap, or an overflow of events), and rebuilds only
//! those organisations; every other organisation's part of the snapshot is shared as it is. A
//! file with problems is refused on its own: only its organisation is restricted, the others
//! keep serving.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::Limits;
use crate::config::{Config, TlsFiles};
use crate::manage::Applies;
use crate::metrics::metrics;
use crate::oauth::{IssuerTemplate, Issuers, KeySet, KeyStore, SigningAlgorithm};
use crate::problems::Problems;
use crate::proxy::{Edge, EdgeStore};
use crate::registry::org_file::{org_id_of, read_org, OrgRead};
use crate::registry::{file, validate, Organization, Organizations, Store};
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
    /// The single issuer, or the template that makes each organisation's.
    issuers: Issuers,
    registry_path: PathBuf,
    /// Whether `registry_path` was a directory at start; a reload that finds the other kind is
    /// refused (a file replaced by a directory would otherwise read as an empty registry).
    registry_is_dir: bool,
    limits: Limits,
    registry: Arc<Store>,
    /// Hash of the registry files last applied, to skip reloads that change nothing.
    applied: AtomicU64,
    /// With organisations: the hash of each organisation file last read, and the files refused.
    org_files: Mutex<OrgFiles>,
    /// Set when file events were dropped: the next registry reload reads every file.
    rescan: Arc<AtomicBool>,
    /// One registry reload at a time: the watcher's and the management API's (see
    /// [`Applies`]) would otherwise race, and an older read could be applied after a newer one.
    reloading: tokio::sync::Mutex<()>,
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

/// What the reloader knows of the organisation files.
#[derive(Default)]
struct OrgFiles {
    /// Hash of each file as last read.
    prints: HashMap<PathBuf, u64>,
    /// Files whose last version was refused.
    refused: HashSet<PathBuf>,
}

/// One file as read for a reload.
enum FileState {
    Missing,
    Unreadable(String),
    Text(String),
}

impl FileState {
    fn read(path: &Path) -> FileState {
        match std::fs::read_to_string(path) {
            Ok(text) => FileState::Text(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileState::Missing,
            Err(e) => FileState::Unreadable(format!("cannot read: {e}")),
        }
    }

    fn print(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        match self {
            FileState::Missing => 0u8.hash(&mut hasher),
            FileState::Unreadable(e) => (1u8, e).hash(&mut hasher),
            FileState::Text(text) => (2u8, text).hash(&mut hasher),
        }
        hasher.finish()
    }
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
        let sources = file::read_readable_sources(&registry_path).0;
        let applied = fingerprint(&sources);
        let prints = sources
            .into_iter()
            .map(|s| (s.path, FileState::Text(s.text).print()))
            .collect();
        Reloader {
            issuers: config.issuer.issuers.clone(),
            org_files: Mutex::new(OrgFiles {
                prints,
                refused: HashSet::new(),
            }),
            rescan: Arc::new(AtomicBool::new(false)),
            reloading: tokio::sync::Mutex::new(()),
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
        file.edge.replace(Edge::new(&config, &file.running));
        file.applied.store(print, Ordering::Release);
        Ok(Some(ConfigReloaded {
            routes: config.routes.len(),
            restart_needed: file.running.restart_only_changes(&config),
        }))
    }

    /// Loads and validates the registry and swaps it in if it is valid and changed. Files with
    /// problems are refused, but never to the advantage of a client: what stays in service is
    /// only what the previous registry and the readable part of the files both grant. With
    /// organisations, `changed` names the files to read (`None`: every one).
    pub async fn reload_registry(
        &self,
        changed: Option<BTreeSet<PathBuf>>,
    ) -> Result<Reloaded, Refused> {
        let _one_at_a_time = self.reloading.lock().await;
        match &self.issuers {
            Issuers::Single(issuer) => self.reload_single(issuer).await,
            Issuers::PerOrg(template) => {
                let changed = changed.filter(|_| !self.rescan.swap(false, Ordering::AcqRel));
                self.reload_orgs(template, changed).await
            }
        }
    }

    /// Reloads the single issuer's registry (a file or a directory), as a whole.
    async fn reload_single(&self, issuer: &str) -> Result<Reloaded, Refused> {
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
            let orgs = Organizations::single(issuer, readable);
            orgs.count(true);
            self.registry.replace(orgs);
            return Ok(Reloaded::Applied(self.registry.snapshot().client_count()));
        }
        let previous = self.registry.snapshot();
        let mut orgs = (*previous).clone();
        let mut taken_out = Vec::new();
        if let Some(org) = previous.get("") {
            let restricted = org.restrict(None, &readable);
            taken_out = left_out(org, &restricted);
            orgs.insert(restricted);
        }
        orgs.count(false);
        let in_service = orgs.client_count();
        self.registry.replace(orgs);
        Err(Refused {
            problems,
            in_service,
            taken_out,
        })
    }

    /// Reloads the organisation files `changed` (`None`: every file in the directory, and every
    /// one read before): each valid file replaces its organisation, a removed one takes its
    /// organisation out, a refused one restricts its organisation to what both versions grant.
    async fn reload_orgs(
        &self,
        template: &IssuerTemplate,
        changed: Option<BTreeSet<PathBuf>>,
    ) -> Result<Reloaded, Refused> {
        let paths: BTreeSet<PathBuf> = match changed {
            Some(paths) => paths,
            None => {
                let listed = file::source_files(&self.registry_path).unwrap_or_default();
                let known = self.org_files.lock().expect("not poisoned").prints.clone();
                listed.into_iter().chain(known.into_keys()).collect()
            }
        };
        let reads = read_files_settled(&paths).await;
        let settled = std::time::Instant::now();
        let mut files = self.org_files.lock().expect("not poisoned");
        let previous = self.registry.snapshot();
        let mut orgs = (*previous).clone();
        let (mut problems, mut taken_out, mut changed_any) =
            (Problems::default(), Vec::new(), false);
        for (path, state) in reads {
            let print = state.print();
            if files.prints.get(&path) == Some(&print) {
                continue;
            }
            changed_any = true;
            let old = org_id_of(&path)
                .ok()
                .and_then(|id| previous.get(&id).cloned());
            let read = match state {
                FileState::Missing => {
                    files.prints.remove(&path);
                    files.refused.remove(&path);
                    if let Some(old) = old {
                        taken_out.extend(qualified(&old, old.clients.sorted()));
                        orgs.remove(&old.id);
                    }
                    continue;
                }
                FileState::Unreadable(e) => OrgRead {
                    id: None,
                    policy: None,
                    clients: Default::default(),
                    problems: Problems::one(&path, e),
                },
                FileState::Text(text) => read_org(
                    &file::Source {
                        path: path.clone(),
                        text,
                    },
                    &self.limits,
                ),
            };
            files.prints.insert(path.clone(), print);
            let (policy, readable) = (read.policy.clone(), read.clients.clone());
            match read.organization(template) {
                Ok(org) => {
                    files.refused.remove(&path);
                    orgs.insert(org);
                }
                Err(found) => {
                    problems.0.extend(found.0);
                    files.refused.insert(path.clone());
                    if let Some(old) = old {
                        let restricted = old.restrict(policy.as_ref(), &readable);
                        taken_out.extend(left_out(&old, &restricted));
                        orgs.insert(restricted);
                    }
                }
            }
        }
        if !changed_any {
            return Ok(Reloaded::Unchanged);
        }
        let valid = files.refused.is_empty();
        drop(files);
        orgs.count(valid);
        let in_service = orgs.client_count();
        self.registry.replace(orgs);
        tracing::debug!(
            files = paths.len(),
            after_settle_us = settled.elapsed().as_micros() as u64,
            "organisation files applied"
        );
        if problems.is_empty() {
            return Ok(Reloaded::Applied(in_service));
        }
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
    /// nothing, so whoever sent the signal sees an answer. `changed` names the registry files
    /// the watcher saw change (`None`: read them all).
    async fn reload(&self, target: Target, asked: bool, changed: Option<BTreeSet<PathBuf>>) {
        match target {
            Target::Registry => match self.reload_registry(changed).await {
                Ok(Reloaded::Applied(clients)) => {
                    metrics().registry_reloaded(true);
                    tracing::info!(clients, "registry reloaded");
                }
                Ok(Reloaded::Unchanged) if asked => tracing::info!("registry reload: no change"),
                Ok(Reloaded::Unchanged) => tracing::debug!("registry reload: no change"),
                Err(refused) => {
                    metrics().registry_reloaded(false);
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
    ///
    /// Each event goes out with the paths it names; when the channel is full, `overflow` is set
    /// instead, so the next reload reads every file rather than miss one.
    fn watch(
        path: &Path,
        target: Target,
        only: Option<Vec<std::ffi::OsString>>,
        events: mpsc::Sender<(Target, Vec<PathBuf>)>,
        overflow: Arc<AtomicBool>,
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
                if let Some(event) = event.ok().filter(|e| !e.kind.is_access() && concerns(e)) {
                    if events.try_send((target, event.paths)).is_err() {
                        overflow.store(true, Ordering::Release);
                    }
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    }
}

/// The clients of `old` that `restricted` no longer has, as `org/client` (or `client` for the
/// single issuer), for the log line of a refused reload.
fn left_out(old: &Organization, restricted: &Organization) -> Vec<String> {
    qualified(
        old,
        old.clients
            .sorted()
            .into_iter()
            .filter(|c| restricted.clients.get(&c.id).is_none())
            .collect(),
    )
}

fn qualified(org: &Organization, clients: Vec<&Arc<crate::registry::Client>>) -> Vec<String> {
    clients
        .into_iter()
        .map(|c| match org.claim() {
            Some(id) => format!("{id}/{}", c.id),
            None => c.id.clone(),
        })
        .collect()
}

/// Reads `paths` until two reads `SETTLE` apart agree (see [`Reloader::read_settled`]).
async fn read_files_settled(paths: &BTreeSet<PathBuf>) -> Vec<(PathBuf, FileState)> {
    let read = || -> Vec<(PathBuf, FileState)> {
        paths
            .iter()
            .map(|p| (p.clone(), FileState::read(p)))
            .collect()
    };
    let prints = |files: &[(PathBuf, FileState)]| -> Vec<u64> {
        files.iter().map(|(_, f)| f.print()).collect()
    };
    let mut files = read();
    for _ in 0..SETTLE_TRIES {
        tokio::time::sleep(SETTLE).await;
        let again = read();
        let same = prints(&again) == prints(&files);
        files = again;
        if same {
            break;
        }
    }
    files
}

impl Reloader {
    /// The targets of `first` and of every event queued behind it, each once, and the registry
    /// files they name (see [`Reloader::org_files_named`]).
    fn gather(
        &self,
        first: (Target, Vec<PathBuf>),
        rx: &mut mpsc::Receiver<(Target, Vec<PathBuf>)>,
    ) -> (Vec<Target>, Option<BTreeSet<PathBuf>>) {
        let mut targets = Vec::new();
        let mut changed = Some(BTreeSet::new());
        let mut event = Some(first);
        while let Some((target, paths)) = event {
            if !targets.contains(&target) {
                targets.push(target);
            }
            if target == Target::Registry {
                changed =
                    changed
                        .zip(self.org_files_named(paths.into_iter()))
                        .map(|(mut all, named)| {
                            all.extend(named);
                            all
                        });
            }
            event = rx.try_recv().ok();
        }
        (targets, changed)
    }

    /// The organisation files among event `paths`. Other files of the directory (a writer's
    /// staging file, an editor's swap file) are not organisations and are left out; `None` when
    /// an event concerns the directory as a whole (itself, a Kubernetes `..data` swap, a
    /// name that is not UTF-8): then every file is read.
    fn org_files_named(&self, paths: impl Iterator<Item = PathBuf>) -> Option<BTreeSet<PathBuf>> {
        let mut named = BTreeSet::new();
        for path in paths {
            let name = path.file_name().map(|n| n.to_str());
            match name {
                Some(Some(name)) if path.parent() == Some(self.registry_path.as_path()) => {
                    if name.starts_with("..") {
                        return None;
                    }
                    if !name.starts_with('.') && name.ends_with(".toml") {
                        named.insert(path);
                    }
                }
                _ => return None,
            }
        }
        Some(named)
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

/// The management API's changes, applied before they are answered: the file it wrote is read
/// and applied as the watcher would, logged the same way; the watcher's own reload of it then
/// finds nothing changed.
#[async_trait]
impl Applies for Reloader {
    async fn apply(&self, path: PathBuf) {
        self.reload(Target::Registry, false, Some(BTreeSet::from([path])))
            .await;
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = mpsc::channel(1024);
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
            match Self::watch(path, target, only, tx.clone(), self.rescan.clone()) {
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
                    self.reload(Target::Registry, true, None).await;
                    self.reload(Target::Keys, true, None).await;
                    self.reload(Target::Certificate, true, None).await;
                    self.reload(Target::Config, true, None).await;
                }
                Some(first) = rx.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    let (targets, changed) = self.gather(first, &mut rx);
                    for target in targets {
                        self.reload(target, false, changed.clone()).await;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::key_files;
    use crate::testing::hash_secret;

    fn org_file(name: &str, client: &str) -> String {
        format!(
            "[organization]\nname = \"{name}\"\nscopes = [\"s\"]\n\n[[client]]\nid = \"{client}\"\n\
             name = \"C\"\nscopes = [\"s\"]\n\n[[client.secret]]\nhash = \"{}\"\n",
            hash_secret("pw")
        )
    }

    /// A reloader of organisation files in a temporary directory, with what it serves.
    fn reloader(dir: &Path, orgs: &[&str]) -> (Reloader, Arc<Store>) {
        let orgs_dir = dir.join("orgs");
        std::fs::create_dir(&orgs_dir).unwrap();
        for org in orgs {
            std::fs::write(orgs_dir.join(format!("{org}.toml")), org_file(org, "app")).unwrap();
        }
        let keys_dir = dir.join("keys");
        key_files::generate(&keys_dir, SigningAlgorithm::EdDSA).unwrap();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n[issuer]\nkeys_dir = \"{}\"\naudience = \"a\"\n\
             [organizations]\ndir = \"{}\"\nissuer_template = \"https://x/{{org}}\"\n",
            keys_dir.display(),
            orgs_dir.display()
        );
        let config = Config::parse(Path::new("credgate.toml"), &text).unwrap();
        let loaded = crate::registry::load(
            &config.issuer.issuers,
            &config.registry.path,
            &config.issuer.lifetimes,
        )
        .unwrap();
        let store = Arc::new(Store::new(loaded));
        let keys = KeySet::load(&keys_dir, SigningAlgorithm::EdDSA, Duration::ZERO).unwrap();
        let reloader = Reloader::new(&config, store.clone(), Arc::new(KeyStore::new(keys)));
        (reloader, store)
    }

    #[tokio::test]
    async fn a_changed_organisation_file_rebuilds_only_that_organisation() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, store) = reloader(dir.path(), &["acme", "globex", "initech"]);
        let before = store.snapshot();
        let acme = dir.path().join("orgs/acme.toml");
        std::fs::write(&acme, org_file("Acme Corp", "app2")).unwrap();

        let changed = BTreeSet::from([acme.clone()]);
        assert_eq!(
            reloader
                .reload_registry(Some(changed.clone()))
                .await
                .unwrap(),
            Reloaded::Applied(3)
        );
        let after = store.snapshot();
        for untouched in ["globex", "initech"] {
            assert!(Arc::ptr_eq(
                before.get(untouched).unwrap(),
                after.get(untouched).unwrap()
            ));
        }
        let acme_now = after.get("acme").unwrap();
        assert_eq!(acme_now.policy.name, "Acme Corp");
        assert!(acme_now.clients.get("app2").is_some());
        assert_eq!(
            reloader.reload_registry(Some(changed)).await.unwrap(),
            Reloaded::Unchanged
        );
    }

    #[test]
    fn events_name_the_organisation_files_to_read_or_ask_for_all() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, _) = reloader(dir.path(), &["acme"]);
        let orgs = dir.path().join("orgs");
        let named = |names: &[&str]| {
            reloader.org_files_named(names.iter().map(|n| {
                if n.is_empty() {
                    orgs.clone()
                } else {
                    orgs.join(n)
                }
            }))
        };
        // A writer's staging file and an editor's swap file are not organisations.
        assert_eq!(
            named(&["acme.toml.staged", "acme.toml", ".acme.toml.swp"]),
            Some(BTreeSet::from([orgs.join("acme.toml")]))
        );
        assert_eq!(named(&["notes.txt"]), Some(BTreeSet::new()));
        // A ConfigMap swap, or the directory itself: read every file.
        assert_eq!(named(&["..data", "acme.toml"]), None);
        assert_eq!(named(&[""]), None);
    }

    #[test]
    fn a_burst_of_events_is_one_reload_per_target_with_the_files_it_named() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, _) = reloader(dir.path(), &["acme"]);
        let orgs = dir.path().join("orgs");
        let (tx, mut rx) = mpsc::channel(8);
        for event in [
            (Target::Registry, vec![orgs.join("acme.toml")]),
            (
                Target::Registry,
                vec![orgs.join("b.toml.staged"), orgs.join("b.toml")],
            ),
        ] {
            tx.try_send(event).unwrap();
        }
        let first = (Target::Keys, vec![dir.path().join("keys/new.pem")]);
        let (targets, changed) = reloader.gather(first, &mut rx);
        assert_eq!(targets, [Target::Keys, Target::Registry]);
        assert_eq!(
            changed,
            Some(BTreeSet::from([
                orgs.join("acme.toml"),
                orgs.join("b.toml")
            ]))
        );
    }

    #[tokio::test]
    async fn a_refused_organisation_file_restricts_only_that_organisation() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, store) = reloader(dir.path(), &["acme", "globex"]);
        let before = store.snapshot();
        let acme = dir.path().join("orgs/acme.toml");
        // Its client now names a scope Acme does not offer.
        let wider = org_file("Acme", "app").replace(
            "scopes = [\"s\"]\n\n[[client.secret]]",
            "scopes = [\"t\"]\n\n[[client.secret]]",
        );
        std::fs::write(&acme, wider).unwrap();

        let refused = reloader
            .reload_registry(Some(BTreeSet::from([acme])))
            .await
            .unwrap_err();
        assert!(
            refused.problems.to_string().contains("acme.toml:"),
            "{}",
            refused.problems
        );
        assert_eq!(refused.taken_out, ["acme/app"]);
        let after = store.snapshot();
        assert!(after.get("acme").unwrap().clients.is_empty());
        assert!(Arc::ptr_eq(
            before.get("globex").unwrap(),
            after.get("globex").unwrap()
        ));
        // Files the watcher did not name are not read: a full rescan finds a new one.
        std::fs::write(dir.path().join("orgs/initech.toml"), org_file("I", "app")).unwrap();
        assert_eq!(
            reloader.reload_registry(None).await.unwrap(),
            Reloaded::Applied(2),
            "initech added; acme, unchanged since refused, stays restricted"
        );
        assert!(store.snapshot().get("initech").is_some());
        assert!(store.snapshot().get("acme").unwrap().clients.is_empty());
    }
}
