//! Replacing and removing registry files so that a reader — the gateway's reload, another
//! instance on a shared volume — sees either the old file or the new one, never half of it, and
//! the gateway's user can still read what was written.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of a registry file credgate creates: its owner writes, its group (the gateway's
/// user, when the directory is shared that way) reads, others get nothing. The file's owner and
/// group are those of its directory when credgate may set them (it runs as root), so a file an
/// operator creates with `sudo` stays readable by the gateway's user.
pub const NEW_FILE_MODE: u32 = 0o640;

/// Replaces `path` with `contents`: a temporary file beside it, flushed to disk, renamed over
/// it. A symlinked file is written through its link. A rewrite keeps the file's mode, owner and
/// group; a new file gets [`NEW_FILE_MODE`] and its directory's owner and group.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = parent(&target);
    let (mode, owner) = match std::fs::metadata(&target) {
        Ok(existing) => (existing.permissions().mode() & 0o777, Owner::of(&existing)),
        Err(_) => (NEW_FILE_MODE, Owner::of(&std::fs::metadata(&dir)?)),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".credgate-")
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    temp.write_all(contents.as_bytes())?;
    owner.apply(temp.as_file(), &target)?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    temp.as_file().sync_all()?;
    temp.persist(&target).map_err(|e| e.error)?;
    sync_dir(&dir);
    Ok(())
}

/// Removes `path` and makes the removal durable.
pub fn remove_durably(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    sync_dir(&parent(path));
    Ok(())
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes a rename or removal durable; not every filesystem supports syncing a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The owner and group a written file should have.
struct Owner {
    uid: u32,
    gid: u32,
}

impl Owner {
    fn of(metadata: &std::fs::Metadata) -> Owner {
        Owner {
            uid: metadata.uid(),
            gid: metadata.gid(),
        }
    }

    /// Gives `file` this owner when it differs from the writer's. Only root may give a file
    /// away; anyone else writing a file they do not own is refused, because the rename would
    /// silently hand the registry to them and could leave the gateway unable to read it.
    fn apply(&self, file: &std::fs::File, target: &Path) -> std::io::Result<()> {
        let written = Owner::of(&file.metadata()?);
        if (written.uid, written.gid) == (self.uid, self.gid) {
            return Ok(());
        }
        std::os::unix::fs::fchown(file, Some(self.uid), Some(self.gid)).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot keep owner {}:{} of {} ({e}); run the command as that user or as root",
                    self.uid,
                    self.gid,
                    target.display()
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_rewrite_keeps_permissions_and_replaces_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.toml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        write_atomic(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(mode(&path), 0o604);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn a_new_file_is_group_readable_and_owned_like_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            std::os::unix::fs::chown(dir.path(), Some(4321), Some(4322)).unwrap();
        }
        let path = dir.path().join("new.toml");
        write_atomic(&path, "# x\n").unwrap();
        assert_eq!(mode(&path), NEW_FILE_MODE);
        let dir_meta = std::fs::metadata(dir.path()).unwrap();
        let file_meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (file_meta.uid(), file_meta.gid()),
            (dir_meta.uid(), dir_meta.gid())
        );
    }

    #[test]
    fn a_rewrite_keeps_the_owner() {
        if unsafe { libc::geteuid() } != 0 {
            return; // only root can make a file owned by someone else to rewrite
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.toml");
        std::fs::write(&path, "old").unwrap();
        std::os::unix::fs::chown(&path, Some(1234), Some(1235)).unwrap();
        write_atomic(&path, "new").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1234, 1235));
    }
}
