//! Key files on disk: which files of `keys_dir` are keys, when each was made, and generating
//! a new one (named by its creation time, so names sort oldest first and every instance reads
//! the same creation time).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use super::algorithm::SigningAlgorithm;
use super::keys::read_key;

/// When a key file was made: the UTC stamp that starts generated names
/// (`20261123T095624Z-…`), else the file's modification time.
pub(super) fn created(file: &Path) -> Option<SystemTime> {
    let name = file.file_name()?.to_str()?;
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    name.get(..16)
        .and_then(|stamp| time::PrimitiveDateTime::parse(stamp, &format).ok())
        .map(|t| SystemTime::from(t.assume_utc()))
        .or_else(|| std::fs::metadata(file).and_then(|m| m.modified()).ok())
}

/// Whether `dir` holds no `*.pem` file at all (a fresh deployment; `serve` will generate one).
pub fn has_no_keys(dir: &Path) -> bool {
    key_files(dir).is_ok_and(|files| files.is_empty())
}

/// The `*.pem` files of `dir` in name order; a missing directory has none.
pub(super) fn key_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list the keys directory: {e}")),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        // Not `is_file()`: a key file that cannot be read (a dangling link, no permission) must
        // surface as an error, never be skipped as if there were no key.
        .filter(|p| p.extension().is_some_and(|x| x == "pem") && !p.is_dir())
        .collect();
    files.sort();
    Ok(files)
}

/// Generates a key of `algorithm` into `dir` (created 0700 if missing) as a 0600 PEM file
/// named `<UTC time>-<nanoseconds>-<alg>-<kid prefix>.pem`, and returns its path.
pub fn generate(dir: &Path, algorithm: SigningAlgorithm) -> Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create the keys directory: {e}"))?;
    let der = algorithm.generate_pkcs8()?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
    let now = OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let staged = dir.join(format!(".{stamp}-{}.pem.tmp", algorithm.name()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .map_err(|e| format!("cannot write {}: {e}", staged.display()))?;
    file.write_all(pem.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", staged.display()))?;
    let kid = read_key(&staged, Duration::ZERO)?.kid;
    // Nanoseconds keep two keys made within one second in creation order.
    let nanos = now.nanosecond();
    let target = dir.join(format!(
        "{stamp}-{nanos:09}-{}-{}.pem",
        algorithm.name(),
        &kid[..8]
    ));
    std::fs::rename(&staged, &target)
        .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    Ok(target)
}
