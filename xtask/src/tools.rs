//! Finding the tools a command needs, and installing the missing ones.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository, and the tool directories to put in front of `PATH` for the commands run.
pub struct Tools {
    root: PathBuf,
    path: Vec<PathBuf>,
    apt_updated: bool,
}

impl Tools {
    pub fn new(root: PathBuf) -> Self {
        Tools {
            root,
            path: Vec::new(),
            apt_updated: false,
        }
    }

    /// The git-ignored folder tools are installed into.
    fn folder(&self) -> PathBuf {
        self.root.join(".tools")
    }

    /// `cmake` on `PATH`, or else from PyPI's `cmake` package in `.tools/venv`.
    pub fn cmake(&mut self) -> Result<(), String> {
        if self.find("cmake").is_some() {
            return Ok(());
        }
        self.pypi("cmake", "cmake")
    }

    /// `program` from PyPI's `package`, installed into `.tools/venv` (made if missing) unless
    /// it is there already; its `bin` goes on `PATH`.
    pub fn pypi(&mut self, program: &str, package: &str) -> Result<(), String> {
        let venv = self.folder().join("venv");
        let bin = venv.join("bin");
        if !bin.join("python").is_file() {
            self.run("python3", &["-m", "venv", &venv.to_string_lossy()])?;
        }
        if !bin.join(program).is_file() {
            println!("--- installing {package} from PyPI into {}", venv.display());
            let pip = bin.join("pip").to_string_lossy().into_owned();
            self.run(&pip, &["install", "--quiet", package])?;
        }
        if !self.path.contains(&bin) {
            self.path.push(bin);
        }
        Ok(())
    }

    /// `cargo-nextest` on `PATH`, or else built into `.tools/bin`.
    pub fn nextest(&mut self) -> Result<(), String> {
        self.cargo_install("cargo-nextest")
    }

    /// `cargo-deb` on `PATH`, or else built into `.tools/bin`.
    pub fn cargo_deb(&mut self) -> Result<(), String> {
        self.cargo_install("cargo-deb")
    }

    /// A cargo subcommand from crates.io: on `PATH`, or else built into `.tools/bin`.
    fn cargo_install(&mut self, program: &str) -> Result<(), String> {
        let bin = self.folder().join("bin");
        if !self.path.contains(&bin) {
            self.path.push(bin.clone());
        }
        if self.find(program).is_some() {
            return Ok(());
        }
        println!("--- installing {program} into {}", self.folder().display());
        let root = self.folder().to_string_lossy().into_owned();
        self.run("cargo", &["install", "--locked", "--root", &root, program])
    }

    /// A program that only a Debian package provides; installed with `apt-get` when missing and
    /// this runs as root (CI, a container), else an error that says what to install.
    pub fn debian(&mut self, program: &str, package: &str) -> Result<(), String> {
        if self.find(program).is_some() {
            return Ok(());
        }
        if !is_root() {
            return Err(format!(
                "{program} is missing: install the Debian package {package} (sudo apt-get install {package})"
            ));
        }
        println!("--- installing {package} (for {program})");
        if !self.apt_updated {
            self.run("apt-get", &["update", "-qq"])?;
            self.apt_updated = true;
        }
        self.run(
            "apt-get",
            &["install", "-y", "-qq", "--no-install-recommends", package],
        )?;
        self.find(program)
            .map(|_| ())
            .ok_or_else(|| format!("{package} installed but {program} is not on PATH"))
    }

    /// A program that must already be there.
    pub fn require(&self, program: &str) -> Result<(), String> {
        self.find(program)
            .map(|_| ())
            .ok_or_else(|| format!("{program} is missing"))
    }

    /// Installs the npm packages of the package directory `dir` (relative to the repository
    /// root) exactly as its lock file says, unless they already are.
    pub fn npm_ci(&self, dir: &str) -> Result<(), String> {
        let root = self.root.join(dir);
        let lock = root.join("package-lock.json");
        let installed = root.join("node_modules/.package-lock.json");
        let fresh = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
        if fresh(&installed).is_some() && fresh(&installed) >= fresh(&lock) {
            return Ok(());
        }
        self.require("npm")?;
        let status = self
            .command("npm", &["ci", "--no-audit", "--no-fund", "--prefix", dir])
            .status()
            .map_err(|e| format!("cannot run npm: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("npm ci in {dir} failed ({status})"))
        }
    }

    /// Adds rustup components when rustup is there (a toolchain without rustup has them or not).
    pub fn rustup_components(&self, components: &[&str]) {
        if self.find("rustup").is_some() {
            let mut args = vec!["component", "add"];
            args.extend(components);
            let _ = self.command("rustup", &args).output();
        }
    }

    /// Runs `program` in the repository root with the tool directories on `PATH`.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let status = self
            .command(program, args)
            .status()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{program} {} failed ({status})", args.join(" ")))
        }
    }

    /// Like [`Tools::run`], returning what the command printed on stdout.
    pub fn output(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let output = self
            .command(program, args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "{program} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&self.root)
            .env("PATH", self.search_path());
        command
    }

    fn search_path(&self) -> std::ffi::OsString {
        let inherited = std::env::var_os("PATH").unwrap_or_default();
        let dirs = self
            .path
            .iter()
            .cloned()
            .chain(std::env::split_paths(&inherited));
        std::env::join_paths(dirs).unwrap_or(inherited)
    }

    fn find(&self, program: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.search_path())
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable(candidate))
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
