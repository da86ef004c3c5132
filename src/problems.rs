//! Validation problems that name the file and the field they come from.
//!
//! `credgate check` must print *every* problem in one run, so loaders do not stop at the
//! first one: they push into a [`Problems`] list and the caller decides what to do with it.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a file, located as precisely as we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// Line of the table the problem is in, when known.
    pub line: Option<usize>,
    /// Dotted path of the field (`issuer.max_token_lifetime`, `client "abc".secret[1].hash`),
    /// empty when the problem is about the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// An ordered list of problems found while loading one or more files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, file: &Path, field: impl Into<String>, message: impl Into<String>) {
        self.push_at(file, None, field, message);
    }

    /// Like [`Problems::push`], with the line of the table the problem is in.
    pub fn push_at(
        &mut self,
        file: &Path,
        line: Option<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(Problem {
            file: file.to_path_buf(),
            line,
            field: field.into(),
            message: message.into(),
        });
    }

    /// A list of exactly one problem about the whole of `file`.
    pub fn one(file: &Path, message: impl Into<String>) -> Problems {
        let mut problems = Problems::default();
        problems.push(file, "", message);
        problems
    }

    /// A TOML syntax or type error in `text` (the contents of `file`), located by line.
    ///
    /// Only the parser's message is kept, not the source excerpt it would print: that excerpt
    /// can be a line holding a hash, and these problems end up in the gateway's log.
    pub fn push_toml(&mut self, file: &Path, text: &str, error: &toml::de::Error) {
        let line = error
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        self.push_at(file, line, "", error.message().trim_end());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was found, else the problems.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// For a message about a file that could not be found or read: where a relative `path` was
/// looked for (` (relative to /srv/credgate)`), since every relative path is resolved against
/// the working directory, not the config file's; empty for an absolute path.
pub fn relative_to_cwd(path: &Path) -> String {
    if path.is_absolute() {
        return String::new();
    }
    match std::env::current_dir() {
        Ok(cwd) => format!(" (relative to {})", cwd.display()),
        Err(_) => String::new(),
    }
}
