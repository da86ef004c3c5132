//! The audit log of registry changes (`[manage] audit_log`): one JSON line per change made
//! through the management API or the CLI — when, who, what, on what, with what result — appended
//! and flushed to disk before the change is reported done. Never a secret or a hash.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;

/// One change, as the audit log records it.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// Who: `org/client` of the management token, or `cli:<user>`.
    pub actor: &'a str,
    /// What: `client.create`, `secret.remove`, `org.disable`, ...
    pub action: &'a str,
    /// On what: `org`, `org/client`.
    pub target: &'a str,
    /// The secret concerned, by id, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<&'a str>,
    /// `ok`, or why it was refused (`not_found`, `invalid`, `precondition_failed`, ...).
    pub result: &'a str,
    /// The request's `X-Request-Id` (API), absent for the CLI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    #[serde(flatten)]
    entry: &'a Entry<'a>,
}

/// Whether this process may create files in `dir` (access(2), with the real user).
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// An append-only JSON-lines file.
pub struct AuditLog {
    path: PathBuf,
    /// One writer at a time within the process (each line is one `write` with `O_APPEND`, so
    /// processes sharing the file do not interleave either).
    write: Mutex<()>,
}

impl AuditLog {
    /// The audit log at `path`; fails if it cannot be opened for appending.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        Self::append_to(path)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            write: Mutex::new(()),
        })
    }

    /// Whether the gateway will be able to append to the log at `path`, found without
    /// creating it (`credgate check` changes nothing): an existing file must open for
    /// appending, a missing one needs a directory this user may write to.
    pub fn check_appendable(path: &Path) -> Result<(), String> {
        if path.exists() {
            return std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map(drop)
                .map_err(|e| format!("cannot be opened for appending: {e}"));
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(format!("its directory {} does not exist", dir.display()));
        }
        if !writable(dir) {
            return Err(format!(
                "its directory {} is not writable by this user, so the file cannot be created",
                dir.display()
            ));
        }
        Ok(())
    }

    fn append_to(path: &Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }

    /// Appends `entry` and waits until it is on disk.
    pub fn record(&self, entry: &Entry<'_>) -> std::io::Result<()> {
        let line = Line {
            time: crate::timefmt::format_instant(OffsetDateTime::now_utc()),
            entry,
        };
        let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        text.push('\n');
        let _one_at_a_time = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = Self::append_to(&self.path)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        for result in ["ok", "invalid"] {
            log.record(&Entry {
                actor: "acme/admin",
                action: "client.create",
                target: "acme/app",
                secret_id: Some("k3Jd9_x2QmTa"),
                result,
                request_id: None,
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["result"], "invalid");
        assert_eq!(lines[0]["secret_id"], "k3Jd9_x2QmTa");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert!(lines[0].get("request_id").is_none());
    }
}
