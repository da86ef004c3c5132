//! Reading the registry's files: one file, or every `*.toml` in a directory (see
//! [`super::validate`] for what makes them a registry, and [`super::atomic`] for writing them).

use std::path::{Path, PathBuf};

use super::model::Registry;
use super::validate::validate;
use crate::config::Limits;
use crate::problems::Problems;

/// One registry file and its text.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// Loads and validates the registry at `path` (a file or a directory of `*.toml` files).
pub fn load(path: &Path, limits: &Limits) -> Result<Registry, Problems> {
    validate(&read_sources(path)?, limits)
}

/// The files that make up the registry at `path`: the file itself, or the `*.toml` files of a
/// directory in name order. Hidden entries (editor swap files, Kubernetes' `..data`) are skipped;
/// symlinks are followed, so ConfigMap mounts work.
pub fn source_files(path: &Path) -> Result<Vec<PathBuf>, Problems> {
    let metadata = std::fs::metadata(path).map_err(|e| {
        let place = crate::problems::relative_to_cwd(path);
        Problems::one(path, format!("cannot read the registry{place}: {e}"))
    })?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| Problems::one(path, format!("cannot list the registry directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            !name.starts_with('.') && name.ends_with(".toml") && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads every file of the registry at `path`; fails on the first problem.
pub fn read_sources(path: &Path) -> Result<Vec<Source>, Problems> {
    let (sources, problems) = read_readable_sources(path);
    problems.into_result(sources)
}

/// Reads every file of the registry at `path` that can be read, and says which cannot.
pub fn read_readable_sources(path: &Path) -> (Vec<Source>, Problems) {
    let files = match source_files(path) {
        Ok(files) => files,
        Err(problems) => return (Vec::new(), problems),
    };
    let mut problems = Problems::default();
    let mut sources = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => sources.push(Source { path: file, text }),
            Err(e) => problems.push(&file, "", format!("cannot read: {e}")),
        }
    }
    (sources, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn client(id: &str) -> String {
        format!("[[client]]\nid = \"{id}\"\nname = \"A\"\n\n[[client.secret]]\nhash = \"{HASH}\"\n")
    }

    #[test]
    fn a_directory_loads_its_toml_files_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), client("a")).unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            client("a").replace("\"a\"", "\"b\""),
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not toml").unwrap();
        std::fs::write(dir.path().join(".a.toml.swp"), "garbage").unwrap();
        let registry = load(dir.path(), &Limits::DEFAULT).unwrap();
        assert_eq!(registry.len(), 2);
    }
}
