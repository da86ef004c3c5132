//! Metrics, request logs, and what must never appear in them.

mod common;

use common::upstream::Upstream;
use common::{client_toml, json, Gateway, Setup, GRANT};

const SECRET: &str = "ops-secret-value-1234";

async fn setup(extra: &str, log_level: &str) -> (Gateway, Upstream) {
    let upstream = Upstream::start().await;
    let mut setup =
        Setup::new(client_toml("app", SECRET, "scopes = [\"api.read\"]", "")).tables(&format!(
            "[[route]]\nprefix = \"/api/\"\nupstream = \"{}\"\nscopes = [\"api.read\"]\n{extra}",
            upstream.addr
        ));
    setup.log_level = log_level.into();
    (setup.start(), upstream)
}

#[tokio::test]
async fn metrics_count_exactly_what_was_sent() {
    let (gw, _upstream) = setup("", "info").await;
    let mut token = String::new();
    for _ in 0..3 {
        token = json(gw.token(Some(("app", SECRET)), &[GRANT]).await).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    for _ in 0..2 {
        assert_eq!(
            gw.token(Some(("app", "wrong")), &[GRANT]).await.status(),
            401
        );
    }
    assert_eq!(
        gw.token(Some(("app", SECRET)), &[("grant_type", "password")])
            .await
            .status(),
        400
    );
    for _ in 0..4 {
        assert_eq!(gw.bearer_status("/api/x", &token).await, 200);
    }
    assert_eq!(
        gw.http.get(gw.url("/api/x")).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        gw.http.get(gw.url("/nope")).send().await.unwrap().status(),
        404
    );

    // Durations are recorded in the logging phase, just after each response is sent.
    let last = "credgate_request_duration_seconds_count{route=\"not_found\"}";
    let mut m = gw.metrics().await;
    for _ in 0..100 {
        if m.contains_key(last) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        m = gw.metrics().await;
    }
    let get = |series: &str| {
        *m.get(series)
            .unwrap_or_else(|| panic!("no {series} in {m:#?}"))
    };
    assert_eq!(
        get("credgate_token_requests_total{outcome=\"issued\"}"),
        3.0
    );
    assert_eq!(
        get("credgate_token_requests_total{outcome=\"invalid_client\"}"),
        2.0
    );
    assert_eq!(
        get("credgate_token_requests_total{outcome=\"unsupported_grant_type\"}"),
        1.0
    );
    assert_eq!(get("credgate_token_issue_seconds_count"), 6.0);
    assert_eq!(
        get("credgate_auth_requests_total{outcome=\"allowed\",route=\"/api/\"}"),
        4.0
    );
    assert_eq!(
        get("credgate_auth_requests_total{outcome=\"missing_token\",route=\"/api/\"}"),
        1.0
    );
    assert_eq!(
        get("credgate_auth_cache_misses_total"),
        1.0,
        "one token, verified once"
    );
    assert_eq!(get("credgate_auth_cache_hits_total"), 3.0);
    assert_eq!(
        get("credgate_upstream_responses_total{route=\"/api/\",status_class=\"2xx\"}"),
        4.0
    );
    assert_eq!(
        get("credgate_request_duration_seconds_count{route=\"/api/\"}"),
        5.0
    );
    assert_eq!(
        get("credgate_request_duration_seconds_count{route=\"token\"}"),
        6.0
    );
    assert_eq!(
        get("credgate_request_duration_seconds_count{route=\"not_found\"}"),
        1.0
    );
    assert_eq!(get("credgate_registry_clients"), 1.0);
    assert_eq!(get("credgate_secret_verify_queue_depth"), 0.0);
    assert!(get("credgate_registry_last_reload_timestamp_seconds") > 1.7e9);
    assert_eq!(
        get(&format!(
            "credgate_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    let text = format!("{m:?}");
    assert!(
        !text.contains(SECRET) && !text.contains(&token),
        "no secret or token in any label"
    );
}

#[tokio::test]
async fn reloads_are_counted_by_result() {
    let (gw, _upstream) = setup("", "info").await;
    let registry = gw.home.join("clients.toml");
    let valid = std::fs::read_to_string(&registry).unwrap();
    std::fs::write(&registry, "[[client]]\nid = \"x\"\n").unwrap();
    gw.reload();
    std::fs::write(&registry, valid.replace("Client app", "Renamed")).unwrap();
    gw.reload();
    let m = gw.metrics().await;
    assert!(m["credgate_registry_reloads_total{result=\"rejected\"}"] >= 1.0);
    assert!(m["credgate_registry_reloads_total{result=\"applied\"}"] >= 1.0);
}

#[tokio::test]
async fn json_logs_have_one_structured_line_per_request() {
    let (gw, _upstream) = setup("\n[log]\nformat = \"json\"\n", "info").await;
    let token = json(gw.token(Some(("app", SECRET)), &[GRANT]).await).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        gw.http
            .get(gw.url("/api/items?q=1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        gw.http
            .get(gw.url("/api/items"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = gw.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "credgate::access")
        .collect();
    assert_eq!(access.len(), 3, "{log}");
    let fields = |i: usize| &access[i]["fields"];
    assert_eq!(fields(0)["route"], "token");
    assert_eq!(fields(0)["client_id"], "app");
    assert_eq!(fields(0)["outcome"], "issued");
    assert_eq!(fields(0)["status"], 200);
    assert_eq!(fields(1)["route"], "/api/");
    assert_eq!(fields(1)["path"], "/api/items", "no query string");
    assert_eq!(fields(1)["client_id"], "app");
    assert_eq!(fields(1)["outcome"], "allowed");
    assert!(fields(1)["latency_ms"].as_f64().is_some());
    assert_eq!(fields(2)["status"], 401);
    assert_eq!(fields(2)["outcome"], "missing_token");
    assert_eq!(fields(2)["client_id"], "-");
}

/// Every path a secret or token travels, at debug level: none of them may reach the log.
#[tokio::test]
async fn no_secret_token_or_hash_reaches_the_logs() {
    let (gw, upstream) = setup("", "debug").await;
    let token = json(gw.token(Some(("app", SECRET)), &[GRANT]).await).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = [GRANT, ("client_id", "app"), ("client_secret", SECRET)];
    assert_eq!(gw.token(None, &post).await.status(), 200);
    assert_eq!(
        gw.token(Some(("app", "wrong-secret-abc")), &[GRANT])
            .await
            .status(),
        401
    );
    assert_eq!(
        gw.token(Some(("ghost-client", SECRET)), &[GRANT])
            .await
            .status(),
        401
    );
    let calls = [
        gw.http.get(gw.url("/api/x")).bearer_auth(&token),
        gw.http
            .get(gw.url("/api/x?access_token=leak-me"))
            .bearer_auth(&token),
        gw.http
            .get(gw.url("/api/x"))
            .bearer_auth(format!("{token}x")),
        gw.http
            .get(gw.url("/api/x"))
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", "Bearer second"),
    ];
    for call in calls {
        call.send().await.unwrap();
    }
    gw.http
        .post(gw.url("/connect/introspect"))
        .basic_auth("app", Some(SECRET))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    // A failed proxy attempt is logged by Pingora too, with its request summary.
    upstream.stop();
    gw.http
        .get(gw.url("/api/x?client_secret=leak-me-too"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = gw.log();
    let signature = token.rsplit('.').next().unwrap();
    for needle in [
        SECRET,
        "wrong-secret-abc",
        token.as_str(),
        signature,
        "$argon2id",
        "leak-me",
        "client_secret",
    ] {
        assert!(!log.contains(needle), "{needle:?} found in the log:\n{log}");
    }
    assert!(!common::holds_a_jwt(&log), "a token in the log:\n{log}");
    assert!(log.lines().count() > 10, "debug logging was on: {log}");
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn a_key_rotation_keeps_old_tokens_valid_and_a_removed_key_stops_verifying() {
    let upstream = Upstream::start().await;
    let gw = Setup::new(client_toml("app", SECRET, "scopes = [\"api.read\"]", ""))
        .issuer("key_activation_delay = \"0s\"")
        .tables(&format!(
            "[[route]]\nprefix = \"/api/\"\nupstream = \"{}\"\nscopes = [\"api.read\"]\n",
            upstream.addr
        ))
        .start();
    let before = gw.access_token("app", SECRET).await;
    assert_eq!(
        gw.bearer_status("/api/x", &before).await,
        200,
        "verified and cached"
    );

    let rotated = gw.cli(&["keys", "rotate"]);
    let out = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        rotated.status.success() && out.contains("No key to prune."),
        "{out}"
    );
    gw.wait_for_log("keys reloaded", 1);

    let after = gw.access_token("app", SECRET).await;
    assert_ne!(kid(&before), kid(&after), "the new key signs");
    let jwks = gw.get_json("/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&kid(&before).as_str()) && kids.contains(&kid(&after).as_str()),
        "{kids:?}"
    );
    assert_eq!(
        gw.bearer_status("/api/x", &before).await,
        200,
        "the old key still verifies"
    );
    assert_eq!(gw.bearer_status("/api/x", &after).await, 200);

    // Removing the old key file ends its tokens at once, cached or not.
    let old = std::fs::read_dir(gw.home.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(&kid(&before)[..8]))
        .expect("the old key file");
    std::fs::remove_file(old).unwrap();
    gw.wait_for_log("keys reloaded", 2);
    assert_eq!(gw.bearer_status("/api/x", &before).await, 401);
    assert_eq!(gw.bearer_status("/api/x", &after).await, 200);
}

/// A TLS listener's files in `dir` with a fresh certificate: the setup serving them, the two
/// files, and the certificate (DER) to trust.
fn tls_setup(
    dir: &std::path::Path,
    registry: String,
) -> (Setup, std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let (cert_file, key_file) = (dir.join("tls.crt"), dir.join("tls.key"));
    let (cert, key, root) = certificate();
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let setup = Setup::new(registry).server(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        cert_file.display(),
        key_file.display()
    ));
    (setup, cert_file, key_file, root)
}

/// A self-signed certificate for `localhost`: (cert PEM, key PEM, cert DER to trust).
fn certificate() -> (String, String, Vec<u8>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    (
        certified.cert.pem(),
        certified.signing_key.serialize_pem(),
        certified.cert.der().to_vec(),
    )
}

/// POSTs a token request over HTTPS to `addr`, trusting only `root`; returns the raw response.
async fn https_token_request(addr: &str, root: &[u8]) -> std::io::Result<String> {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{self, pki_types::CertificateDer, pki_types::ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root.to_vec())).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let body = "grant_type=client_credentials";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("app:{SECRET}"));
    let request = format!(
        "POST /connect/token HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test]
async fn tokens_are_served_over_https_and_a_renewed_certificate_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let (setup, cert_file, key_file, first_root) =
        tls_setup(dir.path(), client_toml("app", SECRET, "", ""));
    let gw = setup.start();
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let response = https_token_request(&addr, &first_root).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"access_token\""), "{response}");

    // Renew: the next handshake presents the new certificate, no restart.
    let (cert, key, second_root) = certificate();
    std::fs::write(&key_file, key).unwrap();
    std::fs::write(&cert_file, cert).unwrap();
    gw.wait_for_log("certificate reloaded", 1);
    let mut renewed = https_token_request(&addr, &second_root).await;
    if renewed.is_err() {
        // A reload may have run between the two writes (and been refused); the next one fixes it.
        gw.wait_for_log("certificate reloaded", 2);
        renewed = https_token_request(&addr, &second_root).await;
    }
    assert!(renewed.unwrap().starts_with("HTTP/1.1 200"));
    assert!(
        https_token_request(&addr, &first_root).await.is_err(),
        "the old certificate is gone"
    );
    let reloads = gw.log().matches("certificate reloaded").count();
    let counted = gw.metrics().await["credgate_certificate_reloads_total{result=\"applied\"}"];
    assert_eq!(counted, reloads as f64);

    // Other files in the certificate's directory (a log, say) never reload it.
    for i in 0..20 {
        std::fs::write(dir.path().join("access.log"), format!("line {i}\n")).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        gw.log().matches("certificate reload").count(),
        reloads,
        "{}",
        gw.log()
    );
}

/// SIGTERM: stop accepting, let the request in flight finish, and exit as soon as it has, not
/// after the whole grace period.
#[tokio::test]
async fn sigterm_drains_requests_in_flight() {
    let upstream = Upstream::start().await;
    let mut setup =
        Setup::new(client_toml("app", SECRET, "scopes = [\"api.read\"]", "")).tables(&format!(
            "[[route]]\nprefix = \"/slow/\"\nupstream = \"{}\"\npublic = true\n",
            upstream.addr
        ));
    setup.grace_period = "4s".into();
    let mut gw = setup.start();
    let in_flight = {
        let (http, url) = (gw.http.clone(), gw.url("/slow/x"));
        tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) })
    };
    while upstream.seen().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let signalled = std::time::Instant::now();
    gw.signal(libc::SIGTERM);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let addr = gw.base.trim_start_matches("http://").to_owned();
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "no new connections while draining"
    );
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "the request in flight completed"
    );
    let status = gw
        .wait_exit(std::time::Duration::from_secs(15))
        .expect("the gateway exited");
    assert!(status.success(), "{status:?}");
    let took = signalled.elapsed();
    // The slow request takes 2 s; the grace period is 4 s.
    assert!(
        took < std::time::Duration::from_millis(3500),
        "exited after {took:?}"
    );
}

#[tokio::test]
async fn without_watching_only_sighup_applies_an_edit() {
    let mut setup = Setup::new(client_toml("app", SECRET, "", ""));
    setup.watch = false;
    let gw = setup.start();
    std::fs::write(gw.home.join("clients.toml"), "# nobody\n").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        gw.token(Some(("app", SECRET)), &[GRANT]).await.status(),
        200,
        "not applied yet"
    );
    gw.reload();
    assert_eq!(
        gw.token(Some(("app", SECRET)), &[GRANT]).await.status(),
        401
    );
}

/// A repeated token request skips argon2, until the registry changes that client.
#[tokio::test]
async fn verified_secrets_are_remembered_until_their_client_changes() {
    let registry = client_toml("app", SECRET, "", "") + &client_toml("other", SECRET, "", "");
    let gw = Setup::new(registry).start();
    let hits = |m: &std::collections::HashMap<String, f64>| m["credgate_secret_cache_hits_total"];
    assert_eq!(
        gw.token(Some(("app", SECRET)), &[GRANT]).await.status(),
        200
    );
    assert_eq!(
        hits(&gw.metrics().await),
        0.0,
        "the first request pays argon2"
    );
    assert_eq!(
        gw.token(Some(("app", SECRET)), &[GRANT]).await.status(),
        200
    );
    assert_eq!(hits(&gw.metrics().await), 1.0);
    assert_eq!(
        gw.token(Some(("app", "wrong")), &[GRANT]).await.status(),
        401
    );

    // Another client's change leaves the entry alone...
    assert!(gw.cli(&["client", "disable", "other"]).status.success());
    gw.reload();
    assert_eq!(
        gw.token(Some(("app", SECRET)), &[GRANT]).await.status(),
        200
    );
    assert_eq!(hits(&gw.metrics().await), 2.0);

    // ...a change to this client voids it: the rotated-out secret is refused.
    let rotated = gw.cli(&["secret", "rotate", "app", "--json"]);
    let new_secret: serde_json::Value = serde_json::from_slice(&rotated.stdout).unwrap();
    gw.reload();
    assert_eq!(
        gw.token(Some(("app", SECRET)), &[GRANT]).await.status(),
        401
    );
    let new_secret = new_secret["client_secret"].as_str().unwrap();
    assert_eq!(
        gw.token(Some(("app", new_secret)), &[GRANT]).await.status(),
        200
    );
    assert_eq!(hits(&gw.metrics().await), 2.0);
}

/// The exposition passes Prometheus's own linter, has the process metrics, and exports every
/// series with a fixed label set at zero before anything happened.
#[tokio::test]
async fn metrics_pass_promtool_and_fixed_series_start_at_zero() {
    let (gw, _upstream) = setup("", "info").await;
    let text = gw
        .http
        .get(format!("{}/metrics", gw.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect(
            "promtool (Debian package prometheus) is installed; `cargo xtask test` installs it",
        );
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let m = common::parse_metrics(&text);
    for series in [
        "credgate_token_requests_total{outcome=\"invalid_client\"}",
        "credgate_registry_reloads_total{result=\"rejected\"}",
        "credgate_auth_throttled_total{by=\"ip\"}",
        "credgate_auth_requests_total{outcome=\"insufficient_scope\",route=\"/api/\"}",
        "credgate_certificate_reloads_total{result=\"applied\"}",
    ] {
        assert_eq!(m.get(series), Some(&0.0), "{series}");
    }
    assert!(m["process_resident_memory_bytes"] > 1e6);
    assert!(m.contains_key("process_open_fds"));
}

#[tokio::test]
async fn discovery_and_jwks_answer_head_and_jwks_says_how_long_to_cache() {
    let (gw, _upstream) = setup("", "info").await;
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        let get = gw.http.get(gw.url(path)).send().await.unwrap();
        let length = get.headers()["content-length"].clone();
        let head = gw.http.head(gw.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(head.headers()["content-length"], length, "{path}");
        assert!(head.bytes().await.unwrap().is_empty());
        let post = gw.http.post(gw.url(path)).send().await.unwrap();
        assert_eq!(post.status(), 405);
        assert_eq!(post.headers()["allow"], "GET, HEAD");
    }
    let jwks = gw
        .http
        .get(gw.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    // The default key_activation_delay is 5 min: a fifth of it.
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=60");
}

/// Plain HTTP sent to the TLS port and a client hanging up mid-request are ordinary client
/// behaviour: counted and logged quietly, never as ERROR.
#[tokio::test]
async fn ordinary_client_misbehaviour_is_not_logged_as_an_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let (setup, _, _, _) = tls_setup(dir.path(), String::new());
    let gw = setup.start();
    let addr = gw.base.trim_start_matches("http://").to_owned();
    // The harness's readiness probes (bare connects) count too, as they close: let them settle,
    // then compare with after.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = gw.metrics().await["credgate_tls_handshake_failures_total"];
    let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    let mut metrics = gw.metrics().await;
    for _ in 0..50 {
        if metrics["credgate_tls_handshake_failures_total"] > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        metrics = gw.metrics().await;
    }
    assert!(metrics["credgate_tls_handshake_failures_total"] >= before + 1.0);
    assert!(!gw.log().contains("ERROR"), "{}", gw.log());
}

#[tokio::test]
async fn a_client_hanging_up_mid_request_is_not_an_error() {
    use tokio::io::AsyncWriteExt;
    let upstream = Upstream::start().await;
    let gw = Setup::new("")
        .tables(&format!(
            "[[route]]\nprefix = \"/slow/\"\nupstream = \"{}\"\npublic = true\n",
            upstream.addr
        ))
        .start();
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let mut client = tokio::net::TcpStream::connect(&addr).await.unwrap();
    client
        .write_all(b"POST /slow/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(client);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let log = gw.log();
    assert!(
        log.contains("credgate::access"),
        "the request is logged: {log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
}

/// The log check finds a token, and does not take a random key id holding `eyJ` for one.
#[test]
fn a_jwt_is_told_from_a_key_id_that_happens_to_hold_eyj() {
    let token = "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFZERTQSJ9.eyJpc3MiOiJ4In0.c2ln";
    assert!(common::holds_a_jwt(&format!("header={token} next")));
    assert!(common::holds_a_jwt("eyJhbGciOiJFZERTQSJ9.eyJ"));
    let kid = "kid=Ly0L3El_gwZLnJX0aYS_ExslokeyJrMZGqDR-fZVJFs algorithm=\"EdDSA\"";
    assert!(!common::holds_a_jwt(kid));
    assert!(!common::holds_a_jwt("keys/20261124-EdDSA-abeyJxyz.pem"));
}

/// A gateway with one public route to `upstream`, its stderr a pipe the test can stop reading.
fn public_with_log_pipe(upstream: &Upstream) -> Gateway {
    Setup::new("")
        .tables(&format!(
            "[[route]]\nprefix = \"/open/\"\nupstream = \"{}\"\npublic = true\n",
            upstream.addr
        ))
        .log_pipe()
        .start()
}

/// `GET /open/x` `count` times, each answered 200 within 10 s.
async fn answered(gw: &Gateway, count: usize) {
    for i in 0..count {
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            gw.http.get(gw.url("/open/x")).send(),
        )
        .await
        .unwrap_or_else(|_| panic!("request {i} not answered while the log reader stalls"))
        .unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// A log reader that stops reading (journald under its rate limit, a stuck log driver) costs
/// requests nothing: 2 000 request lines are about 300 KB and a pipe holds 64 KiB, so a gateway
/// writing them from its event loop stops answering after about 400. Nothing is lost once the
/// reader resumes.
#[tokio::test]
async fn a_stalled_log_reader_never_stalls_requests() {
    let upstream = Upstream::start().await;
    let gw = public_with_log_pipe(&upstream);
    gw.stall_log(true);
    answered(&gw, 2_000).await;
    gw.stall_log(false);
    gw.wait_for_log("credgate::access", 2_000);
    let metrics = gw.metrics().await;
    assert_eq!(metrics["credgate_log_lines_dropped_total"], 0.0);
}

/// Lines still queued when the process exits are written first: with the reader stalled, the
/// last of 500 request lines wait in the queue when SIGTERM comes, and all are in the log once
/// the reader resumes.
#[tokio::test]
async fn the_log_is_complete_when_the_process_exits() {
    let upstream = Upstream::start().await;
    let mut gw = public_with_log_pipe(&upstream);
    gw.stall_log(true);
    answered(&gw, 500).await;
    gw.signal(libc::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(500));
    gw.stall_log(false);
    let status = gw.wait_exit(std::time::Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    gw.wait_for_log("credgate::access", 500);
    assert_eq!(gw.log().matches("credgate::access").count(), 500);
}
