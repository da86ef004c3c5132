//! `cargo xtask deb`: builds the Debian package with cargo-deb, installs it with `dpkg -i` into
//! a scratch root, checks that everything landed, and runs the installed binary's
//! `credgate check` on the installed config inside that root.

use std::path::{Path, PathBuf};

use crate::tools::Tools;

/// Where the generated man page and completions go (the package's assets name them).
const ASSETS: &str = "target/debian-assets";
/// The scratch root the package is installed into.
const SCRATCH_ROOT: &str = "target/deb-root";

/// Builds the package with cargo profile `profile` (`release`, or `dist` for the one shipped),
/// installs it into a scratch root and checks the installed config.
pub fn build_and_check(tools: &mut Tools, profile: &str) -> Result<(), String> {
    tools.cmake()?;
    tools.cargo_deb()?;
    tools.run(
        "cargo",
        &[
            "build",
            "--profile",
            profile,
            "--locked",
            "--bin",
            "credgate",
        ],
    )?;
    generate_assets(tools)?;
    let built = tools.output(
        "cargo",
        &[
            "deb",
            "--no-build",
            "--profile",
            profile,
            "--locked",
            "--quiet",
        ],
    )?;
    let deb = PathBuf::from(built.trim());
    println!("built {}", deb.display());
    let root = crate::root().join(SCRATCH_ROOT);
    install(tools, &deb, &root)?;
    check_installed(tools, &root)
}

/// The man page and shell completions, from the command line definition itself.
fn generate_assets(tools: &Tools) -> Result<(), String> {
    let assets = crate::root().join(ASSETS);
    std::fs::create_dir_all(&assets).map_err(|e| format!("{}: {e}", assets.display()))?;
    let binary = "target/release/credgate";
    let man = tools.output(binary, &["manpage"])?;
    let page = assets.join("credgate.1");
    write(&page, &man)?;
    tools.run("gzip", &["-9nf", &page.to_string_lossy()])?;
    for (shell, file) in [
        ("bash", "credgate.bash"),
        ("zsh", "_credgate"),
        ("fish", "credgate.fish"),
    ] {
        write(
            &assets.join(file),
            &tools.output(binary, &["completions", shell])?,
        )?;
    }
    Ok(())
}

/// `dpkg -i` into an empty root with its own package database. Maintainer scripts run outside
/// it with `DPKG_ROOT` set (`--force-script-chrootless`), and leave users and services alone
/// there; dependencies (libc) are the host's, hence `--force-depends`.
fn install(tools: &Tools, deb: &Path, root: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(root);
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"] {
        std::fs::create_dir_all(root.join(dir)).map_err(|e| e.to_string())?;
    }
    write(&root.join("var/lib/dpkg/status"), "")?;
    let root_arg = format!("--root={}", root.display());
    let log_arg = format!("--log={}", root.join("var/log/dpkg.log").display());
    tools.run(
        "dpkg",
        &[
            &root_arg,
            &log_arg,
            "--force-script-chrootless",
            "--force-depends",
            "-i",
            &deb.to_string_lossy(),
        ],
    )
}

fn check_installed(tools: &Tools, root: &Path) -> Result<(), String> {
    for file in [
        "usr/bin/credgate",
        "etc/credgate/credgate.toml",
        "etc/credgate/clients.toml",
        "lib/systemd/system/credgate.service",
        "usr/share/man/man1/credgate.1.gz",
        "usr/share/bash-completion/completions/credgate",
        "usr/share/zsh/vendor-completions/_credgate",
        "usr/share/fish/vendor_completions.d/credgate.fish",
    ] {
        if !root.join(file).is_file() {
            return Err(format!("the package did not install /{file}"));
        }
    }
    if !crate::tools::is_root() {
        println!("deb: not root, so the installed config is not checked inside the scratch root");
        return Ok(());
    }
    copy_shared_libraries(tools, root)?;
    let root_arg = root.to_string_lossy().into_owned();
    let checked = tools.output(
        "chroot",
        &[
            &root_arg,
            "/usr/bin/credgate",
            "check",
            "--config",
            "/etc/credgate/credgate.toml",
        ],
    )?;
    print!("{checked}");
    if !checked.contains("/etc/credgate/credgate.toml: ok") {
        return Err("the installed config does not check".into());
    }
    Ok(())
}

/// Copies the libraries the installed binary links against into the scratch root, so it runs
/// there under `chroot` exactly as installed.
fn copy_shared_libraries(tools: &Tools, root: &Path) -> Result<(), String> {
    let binary = root.join("usr/bin/credgate");
    let listing = tools.output("ldd", &[&binary.to_string_lossy()])?;
    for library in listing
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
    {
        let target = root.join(library.trim_start_matches('/'));
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::copy(library, &target).map_err(|e| format!("{library}: {e}"))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
