//! The one registry editor, for the command line and the management API alike.
//!
//! Every edit takes an exclusive lock on the file it changes (`flock` on a hidden lock file
//! beside it, `.<name>.lock`, so a lock survives the atomic rename of the file itself), then
//! reads the files afresh, applies the change, validates the whole registry as it would be,
//! and only then writes the file atomically. Two editors — two API requests, an API request
//! and a CLI command, two instances sharing a volume — therefore never lose each other's
//! changes: the second waits for the first and applies its change to the first's result.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::atomic;
use super::edit::RegistryDocument;
use super::file::{self, Source};
use super::org_file::read_org;
use super::validate;
use super::Registry;
use crate::config::Limits;
use crate::problems::Problems;

/// What makes an edit fail.
#[derive(Debug)]
pub enum EditError {
    /// What it names does not exist (an organisation, a client, the registry file).
    Missing(String),
    /// The change itself was refused (a duplicate id, the only secret of a client).
    Refused(String),
    /// The registry would be invalid after the change; nothing was written.
    Invalid(Problems),
    /// The files cannot be read, locked or written (a read-only mount, permissions).
    Io(String),
    /// The client is not as the caller last saw it (`If-Match`).
    Precondition(String),
}

impl EditError {
    /// A stable name of the failure, as the API's problems and the audit log give it.
    pub fn code(&self) -> &'static str {
        match self {
            EditError::Missing(_) => "not_found",
            EditError::Refused(_) => "conflict",
            EditError::Invalid(_) => "invalid",
            EditError::Precondition(_) => "precondition_failed",
            EditError::Io(_) => "registry_unwritable",
        }
    }
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::Missing(m)
            | EditError::Refused(m)
            | EditError::Io(m)
            | EditError::Precondition(m) => f.write_str(m),
            EditError::Invalid(problems) => write!(
                f,
                "the change was not written because the registry would be invalid:\n{problems}"
            ),
        }
    }
}

impl std::error::Error for EditError {}

/// The registry an editor changes: its path, the issuer's bounds on token lifetimes, and
/// whether a missing registry file may be created (only when asked, or when the config names
/// it: a mistyped `--registry` must not start a new registry the gateway never reads).
#[derive(Debug, Clone)]
pub struct Editor {
    pub path: PathBuf,
    pub limits: Limits,
    pub may_create: bool,
    /// `Some(id)`: `path` is the file of organisation `id` (`credgate org add` creates it), and
    /// its `[organization]` policy bounds what its clients may hold.
    pub org: Option<String>,
}

/// What a file holds once its last client is removed: a registry file is never left with zero
/// bytes, which no reader can tell from one being written.
const NO_CLIENTS: &str =
    "# credgate client registry: no clients. `credgate client add` adds them here.\n";

/// An exclusive lock on one registry file, held until dropped.
struct FileLock(File);

impl FileLock {
    /// Waits for the lock of `path` (its hidden lock file, created if need be).
    fn acquire(path: &Path) -> Result<FileLock, EditError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("registry");
        let lock_path = path.with_file_name(format!(".{name}.lock"));
        let io =
            |e: std::io::Error| EditError::Io(format!("cannot lock {}: {e}", lock_path.display()));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl Editor {
    fn root(&self) -> &Path {
        &self.path
    }

    /// The registry as the files say now.
    pub fn load(&self) -> Result<Registry, EditError> {
        self.exists()?;
        self.validate(&self.read()?)
    }

    fn read(&self) -> Result<Vec<Source>, EditError> {
        file::read_sources(self.root()).map_err(|p| EditError::Io(p.to_string()))
    }

    /// An organisation's file must exist: `credgate org add` creates it.
    fn exists(&self) -> Result<(), EditError> {
        match &self.org {
            Some(org) if !self.root().is_file() => Err(EditError::Missing(format!(
                "no organisation {org:?} ({} does not exist); create it with `credgate org add {org} --name NAME`",
                self.root().display()
            ))),
            _ => Ok(()),
        }
    }

    /// The registry `sources` make, or every problem: an organisation's file is checked
    /// against its own policy.
    fn validate(&self, sources: &[Source]) -> Result<Registry, EditError> {
        let checked = match &self.org {
            None => validate::validate(sources, &self.limits),
            Some(_) => {
                let read = read_org(&sources[0], &self.limits);
                read.problems.into_result(read.clients)
            }
        };
        checked.map_err(EditError::Invalid)
    }

    /// Applies `change` to the file that defines client `id`.
    pub fn edit_client<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut RegistryDocument) -> Result<T, String>,
    ) -> Result<(T, PathBuf), EditError> {
        self.edit_client_if(id, |_| Ok(()), change)
    }

    /// Applies `change` to the file that defines client `id`, if `check` accepts the client as
    /// the files describe it under the lock (an `If-Match`, a rule on its secrets).
    pub fn edit_client_if<T>(
        &self,
        id: &str,
        check: impl FnOnce(&super::Client) -> Result<(), EditError>,
        change: impl FnOnce(&mut RegistryDocument) -> Result<T, String>,
    ) -> Result<(T, PathBuf), EditError> {
        self.exists()?;
        let defines = |s: &Source| RegistryDocument::parse(&s.text).is_ok_and(|d| d.contains(id));
        let missing = || {
            EditError::Missing(format!(
                "no client with id {id:?} in {}",
                self.root().display()
            ))
        };
        let path = self
            .read()?
            .into_iter()
            .find(defines)
            .ok_or_else(missing)?
            .path;
        let _lock = FileLock::acquire(&path)?;
        // Read again under the lock: another editor may have changed or moved it meanwhile.
        let sources = self.read()?;
        let index = sources
            .iter()
            .position(|s| s.path == path && defines(s))
            .ok_or_else(missing)?;
        let current = self.validate(&sources)?;
        check(current.get(id).ok_or_else(missing)?)?;
        self.write(sources, index, change)
    }

    /// Applies `change` to the file a new client `id` goes into: the registry file itself
    /// (created if missing and allowed), or `<id>.toml` in a registry directory.
    pub fn edit_new<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut RegistryDocument) -> Result<T, String>,
    ) -> Result<(T, PathBuf), EditError> {
        self.exists()?;
        let root = self.root();
        if !root.exists() && !self.may_create {
            return Err(EditError::Missing(format!(
                "{} does not exist{}; pass --create to start a new registry there",
                root.display(),
                crate::problems::relative_to_cwd(root)
            )));
        }
        let target = if root.is_dir() {
            root.join(format!("{id}.toml"))
        } else {
            root.to_path_buf()
        };
        let _lock = FileLock::acquire(&target)?;
        let mut sources = if target.exists() || root.is_dir() {
            self.read()?
        } else {
            Vec::new()
        };
        let index = match sources.iter().position(|s| s.path == target) {
            Some(i) => i,
            None => {
                sources.push(Source {
                    path: target,
                    text: String::new(),
                });
                sources.len() - 1
            }
        };
        self.write(sources, index, change)
    }

    /// Applies `change` to an organisation's file as a whole (its `[organization]` table), under
    /// the file's lock; the clients must still fit the changed policy.
    pub fn edit_organization<T>(
        &self,
        change: impl FnOnce(&mut RegistryDocument) -> Result<T, String>,
    ) -> Result<T, EditError> {
        self.exists()?;
        let _lock = FileLock::acquire(&self.path)?;
        let sources = self.read()?;
        self.write(sources, 0, change).map(|(outcome, _)| outcome)
    }

    /// Writes the new organisation file `doc` (no clients yet), unless the file exists.
    pub fn create_organization(&self, doc: &RegistryDocument) -> Result<(), EditError> {
        let _lock = FileLock::acquire(&self.path)?;
        if self.path.exists() {
            let org = self.org.as_deref().unwrap_or("");
            return Err(EditError::Refused(format!(
                "organisation {org:?} already exists"
            )));
        }
        let source = Source {
            path: self.path.clone(),
            text: doc.render(),
        };
        self.validate(std::slice::from_ref(&source))?;
        atomic::write_atomic(&self.path, &source.text)
            .map_err(|e| EditError::Io(format!("cannot write {}: {e}", self.path.display())))
    }

    /// Deletes an organisation's file; refused while it has clients, unless `force`. The
    /// number of clients removed with it.
    pub fn remove_organization(&self, force: bool) -> Result<usize, EditError> {
        self.exists()?;
        let _lock = FileLock::acquire(&self.path)?;
        let sources = self.read()?;
        let clients = RegistryDocument::parse(&sources[0].text).map_or(0, |d| d.client_count());
        if clients > 0 && !force {
            let org = self.org.as_deref().unwrap_or("");
            return Err(EditError::Refused(format!(
                "organisation {org:?} has {clients} client(s); remove them first, or force it"
            )));
        }
        atomic::remove_durably(&self.path)
            .map_err(|e| EditError::Io(format!("cannot remove {}: {e}", self.path.display())))?;
        Ok(clients)
    }

    /// Edits `sources[index]`, validates the whole registry as it would be, and only then
    /// writes the file atomically. A file left without clients is deleted from a registry
    /// directory, and keeps a comment in a single-file registry.
    fn write<T>(
        &self,
        mut sources: Vec<Source>,
        index: usize,
        change: impl FnOnce(&mut RegistryDocument) -> Result<T, String>,
    ) -> Result<(T, PathBuf), EditError> {
        let path = sources[index].path.clone();
        let mut doc = RegistryDocument::parse(&sources[index].text)
            .map_err(|e| EditError::Refused(format!("{}: {e}", path.display())))?;
        let outcome = change(&mut doc).map_err(EditError::Refused)?;
        let emptied = doc.is_empty();
        let in_directory = self.root().is_dir();
        sources[index].text = match doc.render() {
            text if emptied && text.trim().is_empty() => NO_CLIENTS.to_owned(),
            text => text,
        };
        if emptied && in_directory {
            sources.remove(index);
        }
        self.validate(&sources)?;
        let written = if emptied && in_directory {
            atomic::remove_durably(&path)
        } else {
            atomic::write_atomic(&path, &sources[index].text)
        };
        written.map_err(|e| EditError::Io(format!("cannot write {}: {e}", path.display())))?;
        Ok((outcome, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> String {
        format!(
            "[[client]]\nid = \"{id}\"\nname = \"C\"\n\n[[client.secret]]\nhash = \"{}\"\n",
            crate::testing::hash_secret("pw")
        )
    }

    /// Editors on several threads, each adding clients to one file: every change is there.
    #[test]
    fn concurrent_editors_lose_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.toml");
        std::fs::write(&path, client("seed")).unwrap();
        let editor = Editor {
            path: path.clone(),
            limits: Limits::DEFAULT,
            may_create: false,
            org: None,
        };
        let template = validate::validate(
            &[Source {
                path: path.clone(),
                text: client("x"),
            }],
            &Limits::DEFAULT,
        )
        .unwrap();
        let proto = (**template.get("x").unwrap()).clone();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (editor, proto) = (&editor, &proto);
                scope.spawn(move || {
                    for n in 0..10 {
                        let id = format!("t{t}-{n}");
                        let mut c = proto.clone();
                        c.id = id.clone();
                        editor.edit_new(&id, |doc| doc.add_client(&c)).unwrap();
                    }
                });
            }
        });
        assert_eq!(editor.load().unwrap().len(), 41);
    }
}
