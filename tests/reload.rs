//! Editing the registry while the gateway serves: no request of a client that stays valid may
//! fail, and a change that disables a client takes effect within a second.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::upstream::Upstream;
use common::{client_toml, Setup, GRANT};

const SECRET: &str = "reload-secret";

/// How the registry files are replaced.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// One file, rewritten alternately in place (truncate + write) and by rename.
    PlainFile,
    /// A Kubernetes ConfigMap mount: `clients.toml -> ..data/clients.toml`, `..data -> ..vN`,
    /// updated by swapping the `..data` symlink.
    ConfigMap,
}

/// The clients of registry version `n`: "stable" and "victim" always valid, "churn" changing.
fn version(n: usize, victim_enabled: bool, hashes: &Hashes) -> String {
    format!(
        "# version {n}\n{}{}{}",
        hashes.entry("stable", "scopes = [\"api.read\"]"),
        hashes.entry(
            "victim",
            &format!("scopes = [\"api.read\"]\nenabled = {victim_enabled}")
        ),
        hashes.entry("churn", &format!("scopes = [\"s{n}\"]")),
    )
}

/// One argon2 hash per client, computed once (hashing 150 entries would dominate the test).
struct Hashes(String);

impl Hashes {
    fn new() -> Self {
        let entry = client_toml("x", SECRET, "", "");
        let hash = entry
            .split("hash = \"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        Hashes(hash)
    }

    fn entry(&self, id: &str, extra: &str) -> String {
        format!(
            "[[client]]\nid = \"{id}\"\nname = \"{id}\"\n{extra}\n\n[[client.secret]]\nhash = \"{}\"\n\n",
            self.0
        )
    }
}

/// Writes registry text the way `layout` says, for rewrite number `n`.
fn publish(layout: Layout, root: &Path, n: usize, text: &str) {
    match layout {
        Layout::PlainFile if n.is_multiple_of(2) => {
            std::fs::write(root.join("clients.toml"), text).unwrap()
        }
        Layout::PlainFile => {
            let staged = root.join(format!(".clients.toml.{n}.tmp"));
            std::fs::write(&staged, text).unwrap();
            std::fs::rename(&staged, root.join("clients.toml")).unwrap();
        }
        Layout::ConfigMap => {
            let version = format!("..v{n}");
            std::fs::create_dir(root.join(&version)).unwrap();
            std::fs::write(root.join(&version).join("clients.toml"), text).unwrap();
            let staged = root.join("..data_tmp");
            let _ = std::fs::remove_file(&staged);
            std::os::unix::fs::symlink(&version, &staged).unwrap();
            let previous = std::fs::read_link(root.join("..data")).ok();
            std::fs::rename(&staged, root.join("..data")).unwrap();
            if let Some(previous) = previous {
                let _ = std::fs::remove_dir_all(root.join(previous));
            }
        }
    }
}

/// Lays out the first registry version and returns the path the gateway is configured with.
fn first_version(layout: Layout, root: &Path, text: &str) -> PathBuf {
    publish(layout, root, 0, text);
    if let Layout::ConfigMap = layout {
        std::os::unix::fs::symlink("..data/clients.toml", root.join("clients.toml")).unwrap();
    }
    root.join("clients.toml")
}

async fn reload_under_load(layout: Layout) {
    let hashes = Hashes::new();
    let upstream = Upstream::start().await;
    let mount = tempfile::tempdir().unwrap();
    let registry_path = first_version(layout, mount.path(), &version(0, true, &hashes));
    let gw = Arc::new(
        Setup::new("")
            .tables(&format!(
                "[[route]]\nprefix = \"/api/\"\nupstream = \"{}\"\nscopes = [\"api.read\"]\n",
                upstream.addr
            ))
            .registry_path(&registry_path)
            .start(),
    );
    let stable = gw.access_token("stable", SECRET).await;
    let victim = gw.access_token("victim", SECRET).await;

    let running = Arc::new(AtomicBool::new(true));
    let failures = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (gw, running, failures, requests, stable) = (
            gw.clone(),
            running.clone(),
            failures.clone(),
            requests.clone(),
            stable.clone(),
        );
        load.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while running.load(Ordering::Relaxed) && Instant::now() < deadline {
                let status = if worker % 2 == 0 {
                    gw.token(Some(("stable", SECRET)), &[GRANT]).await.status()
                } else {
                    gw.http
                        .get(gw.url("/api/x"))
                        .bearer_auth(&stable)
                        .send()
                        .await
                        .unwrap()
                        .status()
                };
                requests.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("worker {worker}: {status}");
                }
            }
        }));
    }

    for n in 1..=50 {
        let mut text = version(n, true, &hashes);
        if n == 25 {
            // Invalid: refused, and what both versions grant ("stable", "victim") keeps serving.
            text.push_str("[[client]]\nid = \"half-written\"\n");
        }
        publish(layout, mount.path(), n, &text);
        // The invalid version stays long enough to be read (shorter-lived versions may be
        // coalesced away by the debounce, which is fine).
        let hold = if n == 25 { 600 } else { 100 };
        tokio::time::sleep(Duration::from_millis(hold)).await;
    }

    // Disabling a client reaches its live tokens within a second.
    publish(layout, mount.path(), 51, &version(51, false, &hashes));
    let changed = Instant::now();
    loop {
        if gw.bearer_status("/api/x", &victim).await == 401 {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "victim still admitted after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = changed.elapsed();

    running.store(false, Ordering::Relaxed);
    for worker in load {
        worker.await.unwrap();
    }
    let log = gw.log();
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "{layout:?}: failed requests; log:\n{log}"
    );
    assert!(
        requests.load(Ordering::Relaxed) >= 20,
        "too little load to mean anything"
    );
    assert!(
        log.contains("registry reload rejected"),
        "the invalid version was seen and refused"
    );
    assert!(
        log.matches("registry reloaded").count() >= 10,
        "reloads happened:\n{log}"
    );
    eprintln!(
        "{layout:?}: {} requests, 0 failed; disabled client refused after {took:?}",
        requests.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_file_rewritten_in_place_and_by_rename_under_load() {
    reload_under_load(Layout::PlainFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_symlink_swap_under_load() {
    reload_under_load(Layout::ConfigMap).await;
}
