//! The process as an operator meets it: starting on addresses it cannot have, readiness,
//! shutting down, config edits while serving, upstream names that do not resolve, and key
//! files it cannot read.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::upstream::Upstream;
use common::{client_toml, free_ports, json, Setup, BIN};

const SECRET: &str = "lifecycle-secret-1234";

/// A config in `dir` listening on `listen`, with an admin listener on `admin`.
fn config(dir: &std::path::Path, listen: &str, admin: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("clients.toml"), "").unwrap();
    let text = format!(
        "[server]\nlisten = \"{listen}\"\ngrace_period = \"0s\"\n\
         [issuer]\nissuer = \"http://x\"\nkeys_dir = \"{}\"\naudience = \"a\"\n\
         [registry]\npath = \"{}\"\n[admin]\nlisten = \"{admin}\"\n",
        dir.join("keys").display(),
        dir.join("clients.toml").display()
    );
    let path = dir.join("credgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `credgate serve` and waits up to `limit` for it to exit: its status, stderr and how
/// long it took; `None` if it was still running (then it is killed).
fn serve_until_exit(config: &std::path::Path, limit: Duration) -> Option<(i32, String, Duration)> {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return Some((status.code().unwrap_or(-1), stderr, started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_listen_address_in_use_is_one_clear_error_and_a_prompt_exit() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let [free] = free_ports();
    for (listen, admin, field) in [
        (
            taken_addr.clone(),
            format!("127.0.0.1:{free}"),
            "server.listen",
        ),
        (
            format!("127.0.0.1:{free}"),
            taken_addr.clone(),
            "admin.listen",
        ),
    ] {
        let config = config(dir.path(), &listen, &admin);
        let (code, stderr, took) = serve_until_exit(&config, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("still running with {field} in use"));
        assert_ne!(code, 0);
        assert!(took < Duration::from_secs(5), "took {took:?}");
        let wanted = format!("{field}: cannot listen on {taken_addr}: Address already in use");
        assert!(stderr.contains(&wanted), "{stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("gateway listening"),
            "{stderr}"
        );
    }
}

#[test]
fn an_address_not_on_this_host_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let [admin] = free_ports();
    // TEST-NET-1 (RFC 5737): never assigned to this host; nothing is sent to it.
    let config = config(dir.path(), "192.0.2.1:8080", &format!("127.0.0.1:{admin}"));
    let (code, stderr, took) =
        serve_until_exit(&config, Duration::from_secs(10)).expect("the process exits");
    assert_ne!(code, 0);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        stderr.contains("server.listen: cannot listen on 192.0.2.1:8080"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn readiness_reports_every_listener_and_each_upstream_name() {
    let upstream = Upstream::start().await;
    let port = upstream.addr.port();
    let gw = Setup::new(client_toml("app", SECRET, "scopes = [\"api.read\"]", ""))
        .tables(&format!(
            "[[route]]\nprefix = \"/api/\"\nupstream = \"localhost:{port}\"\npublic = true\n\
             [[route]]\nprefix = \"/gone/\"\nupstream = \"no-such-upstream.invalid:80\"\npublic = true\n"
        ))
        .start();
    // Resolved when connecting: a name works, and one that does not resolve fails its route only.
    assert_eq!(
        gw.http.get(gw.url("/api/x")).send().await.unwrap().status(),
        200
    );
    let gone = gw.http.get(gw.url("/gone/x")).send().await.unwrap();
    assert_eq!(gone.status(), 502);
    assert_eq!(json(gone).await["error"], "bad_gateway");

    let ready = gw
        .http
        .get(format!("{}/readyz", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body = json(ready).await;
    let listen = gw.base.trim_start_matches("http://");
    assert_eq!(
        body["listeners"][format!("server.listen {listen}")],
        "up",
        "{body}"
    );
    assert_eq!(
        body["upstreams"][format!("/api/ localhost:{port}")],
        "resolved",
        "{body}"
    );
    assert_eq!(
        body["upstreams"]["/gone/ no-such-upstream.invalid:80"], "does not resolve",
        "{body}"
    );
    let metrics = gw.metrics().await;
    assert!(metrics["credgate_upstream_resolve_failures_total"] >= 1.0);
}

#[tokio::test]
async fn sigterm_on_an_idle_gateway_exits_at_once_not_after_the_grace_period() {
    let mut setup = Setup::new("");
    setup.grace_period = "10s".into();
    let mut gw = setup.start();
    let signalled = Instant::now();
    gw.signal(libc::SIGTERM);
    let status = gw.wait_exit(Duration::from_secs(15)).expect("exited");
    assert!(status.success(), "{status:?}");
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(2), "exited after {took:?}");
}

#[tokio::test]
async fn a_config_edit_applies_routes_while_serving_and_names_what_needs_a_restart() {
    let upstream = Upstream::start().await;
    let gw = Setup::new(client_toml("app", SECRET, "scopes = [\"api.read\"]", "")).start();
    let token = gw.access_token("app", SECRET).await;
    assert_eq!(gw.bearer_status("/api/x", &token).await, 404);

    let original = std::fs::read_to_string(&gw.config).unwrap();
    let route = format!(
        "\n[[route]]\nprefix = \"/api/\"\nupstream = \"{}\"\nscopes = [\"api.read\"]\n",
        upstream.addr
    );
    std::fs::write(&gw.config, format!("{original}{route}")).unwrap();
    gw.wait_for_log("config reloaded", 1);
    assert_eq!(
        gw.bearer_status("/api/x", &token).await,
        200,
        "the new route serves"
    );

    // Tightening the route applies too.
    let tighter = route.replace("[\"api.read\"]", "[\"api.write\"]");
    std::fs::write(&gw.config, format!("{original}{tighter}")).unwrap();
    gw.wait_for_log("config reloaded", 2);
    assert_eq!(gw.bearer_status("/api/x", &token).await, 403);

    // An invalid file is refused whole, loudly; the routes in service stay.
    std::fs::write(
        &gw.config,
        format!("{original}{tighter}[[route]]\nprefix = \"/x/\"\n"),
    )
    .unwrap();
    gw.wait_for_log("config reload rejected", 1);
    assert!(
        gw.log()
            .contains("route[1].upstream: missing; this field is required"),
        "{}",
        gw.log()
    );
    assert_eq!(gw.metrics().await["credgate_config_valid"], 0.0);
    assert_eq!(gw.bearer_status("/api/x", &token).await, 403);

    // Settings that need a restart are named, and the rest is applied.
    let threads = original.replace("[server]\n", "[server]\nthreads = 3\n");
    std::fs::write(&gw.config, format!("{threads}{route}")).unwrap();
    gw.wait_for_log("config reloaded", 3);
    gw.wait_for_log("take effect only after a restart", 1);
    assert!(gw.log().contains("settings=server.threads"), "{}", gw.log());
    assert_eq!(gw.bearer_status("/api/x", &token).await, 200);
    assert_eq!(gw.metrics().await["credgate_config_valid"], 1.0);
}

#[test]
fn an_unreadable_key_file_stops_serve_without_generating_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let [port, admin] = free_ports();
    let config = config(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{admin}"),
    );
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    // Tests may run as root, whom permissions do not stop: a link to nowhere is unreadable
    // for everyone.
    std::os::unix::fs::symlink(
        keys.join("vanished"),
        keys.join("20260101T000000Z-EdDSA-a.pem"),
    )
    .unwrap();
    let (code, stderr, _) =
        serve_until_exit(&config, Duration::from_secs(10)).expect("the process exits");
    assert_ne!(code, 0);
    assert!(
        stderr.contains("20260101T000000Z-EdDSA-a.pem: cannot read: No such file or directory"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&keys).unwrap().count(),
        1,
        "no key generated"
    );
}
