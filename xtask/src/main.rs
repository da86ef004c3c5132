//! credgate's developer commands, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml`). Each finds the tools it needs, installs what is missing without
//! asking (into the git-ignored `.tools/` of the repository where it can, with `apt-get` where
//! only a Debian package has it), and then runs cargo:
//!
//! - `cargo xtask demo [ARGS]`: the gateway with the shipped `config/` (`cargo run --release`).
//! - `cargo xtask test [ARGS]`: the whole test suite (`cargo nextest run --workspace`).
//! - `cargo xtask ci`: formatting, lints, docs, the MSRV check, the fuzz smoke run and the Debian
//!   package: everything `.ci/run` does before the README's test command.
//! - `cargo xtask msrv`: checks `rust-version` against every dependency's.
//! - `cargo xtask deb [--dist]`: builds the Debian package, installs it into a scratch root and
//!   checks the installed config; `--dist` builds it with the `dist` profile (fat LTO, one
//!   codegen unit: what is shipped), else with `release` (what CI checks, in a third of the
//!   time).
//!
//! Why: pingora-core builds zlib-ng with cmake, which a fresh machine with only the Rust
//! toolchain, python3 and a C compiler lacks, and there is no supported way around it upstream.
//! PyPI's `cmake` package ships the binary, so it installs without root into a virtualenv.

mod deb;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tools::Tools;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    // `cargo xtask demo -- ARGS` and `cargo xtask demo ARGS` mean the same.
    let rest: Vec<String> = args.skip_while(|a| a == "--").collect();
    let result = match command.as_str() {
        "demo" => demo(&rest),
        "test" => test(&rest),
        "ci" => ci(),
        "msrv" => msrv(),
        "deb" => {
            let profile = if rest.iter().any(|a| a == "--dist") {
                "dist"
            } else {
                "release"
            };
            deb::build_and_check(&mut Tools::new(root()), profile)
        }
        _ => Err(format!(
            "usage: cargo xtask <demo|test|ci|msrv|deb> [ARGS]; got {command:?}"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (the parent of this crate's directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .to_path_buf()
}

fn demo(args: &[String]) -> Result<(), String> {
    let mut tools = Tools::new(root());
    tools.cmake()?;
    let mut cargo = vec!["run", "--release", "--locked", "--bin", "credgate", "--"];
    cargo.extend(args.iter().map(String::as_str));
    tools.run("cargo", &cargo)
}

fn test(args: &[String]) -> Result<(), String> {
    let mut tools = Tools::new(root());
    test_tools(&mut tools)?;
    let mut cargo = vec![
        "nextest",
        "run",
        "--workspace",
        "--locked",
        "--no-fail-fast",
    ];
    cargo.extend(args.iter().map(String::as_str));
    tools.run("cargo", &cargo)
}

/// What the test suite runs besides cargo: cmake for the build, nextest, Prometheus's
/// `promtool` (the metrics test lints the exposition with it), python3 (a real WSGI upstream),
/// Node with `openid-client` (a real OAuth client that discovers each organisation),
/// schemathesis (PyPI: the management API's schema-driven property test), and Debian's
/// chromium and chromium-driver with Node's `playwright-core` (the web console's browser tests).
fn test_tools(tools: &mut Tools) -> Result<(), String> {
    tools.cmake()?;
    tools.pypi("schemathesis", "schemathesis==4.32.5")?;
    tools.nextest()?;
    tools.debian("promtool", "prometheus")?;
    tools.require("python3")?;
    tools.require("node")?;
    tools.npm_ci("tests/oauth-client")?;
    tools.debian("chromium", "chromium")?;
    tools.debian("chromedriver", "chromium-driver")?;
    tools.npm_ci("tests/console")
}

fn ci() -> Result<(), String> {
    let mut tools = Tools::new(root());
    test_tools(&mut tools)?;
    tools.rustup_components(&["rustfmt", "clippy"]);
    section("cargo fmt --check");
    tools.run("cargo", &["fmt", "--all", "--", "--check"])?;
    section("cargo clippy");
    tools.run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    section("cargo doc (broken doc links fail)");
    let mut doc = tools.command(
        "cargo",
        &[
            "doc",
            "--no-deps",
            "--document-private-items",
            "--locked",
            "-p",
            "credgate",
        ],
    );
    doc.env("RUSTDOCFLAGS", "-D warnings");
    let status = doc.status().map_err(|e| format!("cargo doc: {e}"))?;
    if !status.success() {
        return Err("cargo doc failed".into());
    }
    section("MSRV: rust-version against the dependencies'");
    msrv()?;
    section("fuzz smoke: 20 s per target (skipped without a nightly toolchain)");
    tools.run("bash", &["fuzz/run.sh", "20"])?;
    section("Debian package: build, install into a scratch root, check the installed config");
    deb::build_and_check(&mut tools, "release")
}

fn section(title: &str) {
    println!("--- {title}");
}

/// The toolchain cannot be switched here (no other toolchain can be installed), so the MSRV is
/// checked the other way round: `rust-version` must be at least the highest `rust-version` of
/// any package the lock file resolves for this platform, and the current toolchain (which the
/// build just used) must satisfy it.
fn msrv() -> Result<(), String> {
    let output = std::process::Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            host()?.as_str(),
        ])
        .current_dir(root())
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let resolved: Vec<&str> = metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let mut ours = None;
    let mut highest: Option<(Version, String)> = None;
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let (Some(id), Some(version)) = (package["id"].as_str(), package["rust_version"].as_str())
        else {
            continue;
        };
        let name = package["name"].as_str().unwrap_or("?");
        let version = Version::parse(version)?;
        if name == "credgate" {
            ours = Some(version);
        } else if resolved.contains(&id) && highest.as_ref().is_none_or(|(v, _)| version > *v) {
            highest = Some((version, name.to_owned()));
        }
    }
    let ours = ours.ok_or("credgate has no rust-version")?;
    let (needed, by) = highest.ok_or("no dependency states a rust-version")?;
    let toolchain = rustc_version()?;
    println!(
        "rust-version {ours}; highest of the dependencies {needed} ({by}); toolchain {toolchain}"
    );
    if ours < needed {
        return Err(format!(
            "rust-version = \"{ours}\" is lower than {by}'s {needed}: raise it"
        ));
    }
    if toolchain < ours {
        return Err(format!(
            "this toolchain ({toolchain}) is older than rust-version {ours}"
        ));
    }
    Ok(())
}

fn host() -> Result<String, String> {
    let output = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV names no host".into())
}

fn rustc_version() -> Result<Version, String> {
    let output = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map_err(|e| format!("rustc: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    Version::parse(text.split_whitespace().nth(1).unwrap_or(""))
}

/// A Rust version, `major.minor[.patch]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Version(u32, u32, u32);

impl Version {
    fn parse(text: &str) -> Result<Version, String> {
        let mut parts = text.split(['.', '-']).map(|p| {
            p.parse::<u32>()
                .map_err(|_| format!("bad version {text:?}"))
        });
        Ok(Version(
            parts.next().unwrap_or(Ok(0))?,
            parts.next().unwrap_or(Ok(0))?,
            parts.next().and_then(Result::ok).unwrap_or(0),
        ))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)?;
        if self.2 > 0 {
            write!(f, ".{}", self.2)?;
        }
        Ok(())
    }
}
