//! Faults around a real gateway: upstreams that misbehave, registry and key files that break
//! while it serves. Each test checks that what still can be served is, that the fault is
//! reported clearly, and that fixing it is enough to recover.
//! (Upstreams that are down or too slow are covered in `guard.rs`.)

mod common;

use common::{client_toml, json, Gateway, Setup, GRANT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SECRET: &str = "faults-secret-value-1234";

/// An upstream that answers every connection with `response`, verbatim, and then closes it.
async fn scripted_upstream(response: &'static [u8]) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head).await;
                let _ = stream.write_all(response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// A gateway whose public route `/up/` goes to `upstream`.
fn gateway_in_front_of(upstream: std::net::SocketAddr) -> Gateway {
    Setup::new(client_toml("app", SECRET, "", ""))
        .tables(&format!(
            "[[route]]\nprefix = \"/up/\"\nupstream = \"{upstream}\"\npublic = true\n"
        ))
        .start()
}

#[tokio::test]
async fn an_upstream_closing_mid_response_never_looks_complete() {
    let upstream =
        scripted_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten b").await;
    let gw = gateway_in_front_of(upstream);
    let response = gw.http.get(gw.url("/up/file")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the head had already gone out");
    assert!(
        response.bytes().await.is_err(),
        "a truncated body must not read as a complete one"
    );
    let token = gw.token(Some(("app", SECRET)), &[GRANT]).await;
    assert_eq!(token.status(), 200, "the gateway keeps serving");
}

#[tokio::test]
async fn an_upstream_5xx_reaches_the_client_untouched_and_is_counted() {
    let upstream = scripted_upstream(
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Type: text/plain\r\n\
          Content-Length: 11\r\n\r\nmaintenance",
    )
    .await;
    let gw = gateway_in_front_of(upstream);
    let response = gw.http.get(gw.url("/up/x")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(response.text().await.unwrap(), "maintenance");
    let m = gw.metrics().await;
    assert_eq!(
        m["credgate_upstream_responses_total{route=\"/up/\",status_class=\"5xx\"}"],
        1.0
    );
}

/// A gateway with client "app" in `clients.toml`, and the registry file's path.
fn registry_gateway() -> (Gateway, std::path::PathBuf) {
    let gw = Setup::new(client_toml("app", SECRET, "", "")).start();
    let path = gw.home.join("clients.toml");
    assert!(path.is_file());
    (gw, path)
}

/// Breaks the registry with `fault` and checks the rule of a refused reload: the fault is
/// reported with `message`, loudly (ERROR, `credgate_registry_valid` 0), and a client the files
/// no longer validly define is out of service at once — a refusal never keeps access alive.
/// Then writes a registry with client "fixed" and checks it is applied.
async fn a_broken_registry_takes_its_clients_out(
    fault: impl FnOnce(&std::path::Path),
    message: &str,
) {
    let (gw, path) = registry_gateway();
    assert_eq!(gw.metrics().await["credgate_registry_valid"], 1.0);
    fault(&path);
    gw.wait_for_log("registry reload rejected", 1);
    let log = gw.log();
    assert!(log.contains(message), "{message:?} in\n{log}");
    assert!(
        log.contains("ERROR") && log.contains("taken_out=app"),
        "{log}"
    );
    assert_eq!(
        gw.token_status("app", SECRET).await,
        401,
        "no longer granted by the files"
    );
    let metrics = gw.metrics().await;
    assert_eq!(metrics["credgate_registry_clients"], 0.0);
    assert_eq!(metrics["credgate_registry_valid"], 0.0);
    assert_eq!(
        metrics["credgate_registry_reloads_total{result=\"rejected\"}"],
        1.0
    );

    if path.is_dir() {
        std::fs::remove_dir_all(&path).unwrap();
    } else if path.symlink_metadata().is_ok() {
        std::fs::remove_file(&path).unwrap();
    }
    let fixed = client_toml("fixed", SECRET, "", "");
    let staged = path.with_extension("staged");
    std::fs::write(&staged, fixed).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    gw.wait_for_log("registry reloaded", 1);
    assert_eq!(gw.token_status("fixed", SECRET).await, 200, "recovered");
    assert_eq!(gw.token_status("app", SECRET).await, 401);
    assert_eq!(gw.metrics().await["credgate_registry_valid"], 1.0);
}

#[tokio::test]
async fn a_deleted_registry_file_takes_its_clients_out() {
    a_broken_registry_takes_its_clients_out(
        |path| std::fs::remove_file(path).unwrap(),
        "cannot read the registry",
    )
    .await;
}

#[tokio::test]
async fn a_truncated_registry_file_takes_its_clients_out() {
    a_broken_registry_takes_its_clients_out(
        |path| {
            let text = std::fs::read(path).unwrap();
            std::fs::write(path, &text[..text.len() / 2]).unwrap();
        },
        "clients.toml",
    )
    .await;
}

#[tokio::test]
async fn an_unreadable_registry_file_takes_its_clients_out() {
    // Tests may run as root, for whom permissions do not stop a read; a symlink to nowhere
    // fails the read the same way for everyone.
    a_broken_registry_takes_its_clients_out(
        |path| {
            std::fs::remove_file(path).unwrap();
            std::os::unix::fs::symlink(path.with_extension("gone"), path).unwrap();
        },
        "cannot read the registry",
    )
    .await;
}

#[tokio::test]
async fn a_registry_file_that_is_not_utf8_takes_its_clients_out() {
    a_broken_registry_takes_its_clients_out(
        |path| std::fs::write(path, b"[[client]]\nid = \"\xff\xfe\"\n").unwrap(),
        "clients.toml",
    )
    .await;
}

#[tokio::test]
async fn a_registry_file_replaced_by_a_directory_takes_its_clients_out() {
    a_broken_registry_takes_its_clients_out(
        |path| {
            std::fs::remove_file(path).unwrap();
            std::fs::create_dir(path).unwrap();
        },
        "was a file when credgate started and is now a directory",
    )
    .await;
}

#[tokio::test]
async fn a_refused_reload_still_applies_a_disable_and_keeps_valid_clients_serving() {
    let dir = tempfile::tempdir().unwrap();
    for id in ["a", "b", "c"] {
        let file = dir.path().join(format!("{id}.toml"));
        std::fs::write(file, client_toml(id, SECRET, "", "")).unwrap();
    }
    let gw = Setup::new("").registry_path(dir.path()).start();
    for id in ["a", "b", "c"] {
        assert_eq!(gw.token_status(id, SECRET).await, 200);
    }
    // One edit disables b; another, in the same moment, breaks c's file.
    std::fs::write(
        dir.path().join("b.toml"),
        client_toml("b", SECRET, "enabled = false", ""),
    )
    .unwrap();
    std::fs::write(dir.path().join("c.toml"), "[[client]\nid = \"c\"\n").unwrap();
    gw.wait_for_log("registry reload rejected", 1);
    assert_eq!(
        gw.token_status("a", SECRET).await,
        200,
        "a valid client keeps serving"
    );
    assert_eq!(
        gw.token_status("b", SECRET).await,
        401,
        "the disable is applied"
    );
    assert_eq!(
        gw.token_status("c", SECRET).await,
        401,
        "a client of a broken file is out"
    );
    assert_eq!(gw.metrics().await["credgate_registry_valid"], 0.0);

    std::fs::write(dir.path().join("c.toml"), client_toml("c", SECRET, "", "")).unwrap();
    gw.wait_for_log("registry reloaded", 1);
    assert_eq!(
        gw.token_status("c", SECRET).await,
        200,
        "valid files restore it"
    );
    assert_eq!(gw.token_status("b", SECRET).await, 401);
}

#[tokio::test]
async fn an_empty_registry_is_applied_as_no_clients_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.toml");
    std::fs::write(&file, client_toml("app", SECRET, "", "")).unwrap();
    let gw = Setup::new("").registry_path(dir.path()).start();
    assert_eq!(gw.token_status("app", SECRET).await, 200);
    std::fs::remove_file(&file).unwrap();
    gw.wait_for_log("registry reloaded", 1);
    assert_eq!(gw.token_status("app", SECRET).await, 401);
    std::fs::write(dir.path().join("b.toml"), client_toml("b", SECRET, "", "")).unwrap();
    gw.wait_for_log("registry reloaded", 2);
    assert_eq!(gw.token_status("b", SECRET).await, 200);

    // A zero-byte file is an empty registry at reload, at start and for `check` alike.
    std::fs::write(dir.path().join("b.toml"), "").unwrap();
    gw.wait_for_log("registry reloaded", 3);
    assert_eq!(gw.token_status("b", SECRET).await, 401);
    assert_eq!(gw.metrics().await["credgate_registry_valid"], 1.0);
    let check = gw.cli(&["check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("ok, 0 client(s)"));
    let gw = gw.restart();
    assert_eq!(gw.token_status("b", SECRET).await, 401);
}

#[tokio::test]
async fn an_emptied_keys_dir_keeps_the_loaded_keys_signing_and_verifying() {
    let gw = Setup::new(client_toml("app", SECRET, "", "")).start();
    let keys_dir = gw.home.join("keys");
    let before = json(gw.token(Some(("app", SECRET)), &[GRANT]).await).await;
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&keys_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(!saved.is_empty());
    for (path, _) in &saved {
        std::fs::remove_file(path).unwrap();
    }
    gw.wait_for_log("keys reload rejected", 1);
    assert!(gw.log().contains("no EdDSA key"), "{}", gw.log());

    let after = json(gw.token(Some(("app", SECRET)), &[GRANT]).await).await;
    let introspect = |token: String| {
        let gw = &gw;
        async move {
            let response = gw
                .http
                .post(gw.url("/connect/introspect"))
                .basic_auth("app", Some(SECRET))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            json(response).await["active"].clone()
        }
    };
    for token in [&before, &after] {
        let token = token["access_token"].as_str().unwrap().to_owned();
        assert_eq!(introspect(token).await, true, "still signed and verified");
    }
    let jwks = gw.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "JWKS unchanged");

    for (path, pem) in &saved {
        std::fs::write(path, pem).unwrap();
    }
    gw.reload();
    gw.wait_for_log("keys reload: no change", 1);
    let token = json(gw.token(Some(("app", SECRET)), &[GRANT]).await).await;
    let token = token["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(token).await, true);
}
