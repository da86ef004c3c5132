//! Abuse of a real gateway: brute-forcing client secrets, and oversized requests.

mod common;

use common::upstream::Upstream;
use common::{client_toml, json, Gateway, Setup, GRANT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "abuse-secret-value-1234";

fn registry() -> String {
    [
        client_toml("app", SECRET, "", ""),
        client_toml("other", SECRET, "", ""),
    ]
    .concat()
}

/// A gateway with the given failure limits (`per_client`, `per_ip`) and window.
fn gateway(per_client: u32, per_ip: u32, window: &str) -> Gateway {
    Setup::new(registry())
        .issuer(&format!(
            "failure_limit_per_client = {per_client}\nfailure_limit_per_ip = {per_ip}\n\
             failure_window = \"{window}\""
        ))
        .start()
}

/// How many times argon2 ran in the gateway so far.
async fn verifications(gw: &Gateway) -> f64 {
    gw.metrics().await["credgate_secret_verifications_total"]
}

/// Asserts a 429 `slow_down` whose Retry-After is within the window.
async fn assert_slow_down(response: reqwest::Response, window_secs: u64) {
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=window_secs).contains(&retry), "Retry-After {retry}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(json(response).await["error"], "slow_down");
}

#[tokio::test]
async fn failures_on_one_client_id_throttle_it_without_argon2_until_the_window_ends() {
    let gw = gateway(3, 0, "2s");
    for _ in 0..3 {
        assert_eq!(gw.token_status("app", "wrong").await, 401);
    }
    let before = verifications(&gw).await;
    // Even the right secret is refused now: the caller may be the attacker.
    assert_slow_down(gw.token(Some(("app", SECRET)), &[GRANT]).await, 2).await;
    assert_slow_down(gw.token(Some(("app", "wrong")), &[GRANT]).await, 2).await;
    assert_eq!(
        verifications(&gw).await,
        before,
        "no argon2 while throttled"
    );
    assert_eq!(
        gw.token_status("other", SECRET).await,
        200,
        "other ids unaffected"
    );
    let m = gw.metrics().await;
    assert_eq!(m["credgate_auth_throttled_total{by=\"client\"}"], 2.0);
    assert_eq!(
        m["credgate_token_requests_total{outcome=\"slow_down\"}"],
        2.0
    );

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        gw.token_status("app", SECRET).await,
        200,
        "the window ended"
    );
}

/// Guesses sent at once are counted while they wait for argon2, so a burst cannot overrun
/// the limit before the first failure is recorded.
#[tokio::test]
async fn a_burst_of_concurrent_guesses_gets_no_more_than_the_limit() {
    let gw = std::sync::Arc::new(gateway(3, 0, "1m"));
    let before = verifications(&gw).await;
    let guesses: Vec<_> = (0..20)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { gw.token_status("app", "guess").await })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    let tried = statuses.iter().filter(|s| **s == 401).count();
    assert!(tried <= 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 20 - tried);
    assert!(verifications(&gw).await - before <= 3.0);
}

#[tokio::test]
async fn unknown_ids_count_too_so_a_spray_is_throttled_per_id() {
    let gw = gateway(2, 0, "1m");
    for _ in 0..2 {
        assert_eq!(gw.token_status("ghost", "guess").await, 401);
    }
    assert_slow_down(gw.token(Some(("ghost", "guess")), &[GRANT]).await, 60).await;
}

#[tokio::test]
async fn failures_from_one_address_throttle_every_client_id_from_it() {
    let gw = gateway(0, 3, "1m");
    for id in ["a", "b", "c"] {
        assert_eq!(gw.token_status(id, "guess").await, 401);
    }
    assert_slow_down(gw.token(Some(("app", SECRET)), &[GRANT]).await, 60).await;
    let introspection = gw
        .http
        .post(gw.url("/connect/introspect"))
        .basic_auth("other", Some(SECRET))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_slow_down(introspection, 60).await;
    assert_eq!(
        gw.metrics().await["credgate_auth_throttled_total{by=\"ip\"}"],
        2.0
    );
}

/// An integration whose secret was verified recently keeps working while someone hammers its
/// id: the remembered verification proves the secret without argon2.
#[tokio::test]
async fn a_recently_verified_secret_is_not_locked_out_by_an_attacker() {
    let gw = gateway(3, 0, "1m");
    assert_eq!(gw.token_status("app", SECRET).await, 200);
    for _ in 0..5 {
        let status = gw.token_status("app", "guess").await;
        assert!(status == 401 || status == 429, "{status}");
    }
    assert_eq!(gw.token_status("app", "guess").await, 429);
    assert_eq!(gw.token_status("app", SECRET).await, 200);
}

#[tokio::test]
async fn successes_do_not_count() {
    let gw = gateway(2, 2, "1m");
    for _ in 0..5 {
        assert_eq!(gw.token_status("app", SECRET).await, 200);
    }
    assert_eq!(gw.token_status("app", "wrong").await, 401);
    assert_eq!(gw.token_status("app", SECRET).await, 200);
}

/// A gateway with one public route to a recording upstream and a 1 s client timeout.
async fn proxying() -> (Gateway, Upstream) {
    let upstream = Upstream::start().await;
    let gw = Setup::new(registry())
        .server("client_timeout = \"1s\"")
        .tables(&format!(
            "[[route]]\nprefix = \"/open/\"\nupstream = \"{}\"\npublic = true\n",
            upstream.addr
        ))
        .start();
    (gw, upstream)
}

async fn assert_refused_head(response: reqwest::Response, status: u16) {
    assert_eq!(response.status(), status);
    assert_eq!(json(response).await["error"], "invalid_request");
}

#[tokio::test]
async fn oversized_request_heads_are_refused_before_routing() {
    let (gw, upstream) = proxying().await;
    let long = format!("/open/?q={}", "a".repeat(9 * 1024));
    assert_refused_head(gw.http.get(gw.url(&long)).send().await.unwrap(), 414).await;

    let mut many = gw.http.get(gw.url("/open/x"));
    for i in 0..101 {
        many = many.header(format!("x-h{i}"), "v");
    }
    assert_refused_head(many.send().await.unwrap(), 431).await;

    let mut heavy = gw.http.get(gw.url("/open/x"));
    for i in 0..5 {
        heavy = heavy.header(format!("x-big{i}"), "v".repeat(7 * 1024));
    }
    assert_refused_head(heavy.send().await.unwrap(), 431).await;
    // The token endpoint is behind the same check.
    let token = gw
        .http
        .post(gw.url(&format!("/connect/token?{}", "a".repeat(9 * 1024))))
        .send()
        .await
        .unwrap();
    assert_refused_head(token, 414).await;

    assert!(upstream.seen().is_empty(), "nothing reached the upstream");
    let ok = gw.http.get(gw.url("/open/x")).send().await.unwrap();
    assert_eq!(ok.status(), 200, "a normal request still passes");
}

/// Sends `request` on a new connection, then reads until the gateway closes it; returns what
/// was read and how long after sending the close came.
async fn until_closed(gw: &Gateway, request: &[u8]) -> (String, std::time::Duration) {
    let mut stream = tokio::net::TcpStream::connect(gw.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let sent = std::time::Instant::now();
    let mut received = Vec::new();
    let read = stream.read_to_end(&mut received);
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("the gateway closed the connection within 10 s")
        .ok();
    (
        String::from_utf8_lossy(&received).into_owned(),
        sent.elapsed(),
    )
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_client_timeout() {
    let (gw, _upstream) = proxying().await;
    let (received, took) = until_closed(
        &gw,
        b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");
}

#[tokio::test]
async fn a_request_body_that_stalls_is_given_up_after_the_client_timeout() {
    let (gw, _upstream) = proxying().await;
    let (_, took) = until_closed(
        &gw,
        b"POST /open/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part",
    )
    .await;
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");
}

/// argon2id runs on its own threads below the proxy's priority (`SCHED_IDLE`, and nice +10
/// against the gateway's own where that policy is refused), so a flood of wrong secrets takes
/// only the CPU the proxy leaves idle.
#[tokio::test]
async fn secret_verification_threads_run_below_the_proxy() {
    use credgate::issuer::low_priority::NICENESS;
    let idle = i64::from(libc::SCHED_IDLE);
    let gw = gateway(0, 0, "1m");
    let task_dir = format!("/proc/{}/task", gw.pid());
    // A thread's name, nice value and scheduling policy, from proc_pid_stat(5).
    let priority = |tid: &str| -> Option<(String, i64, i64)> {
        let comm = std::fs::read_to_string(format!("{task_dir}/{tid}/comm")).ok()?;
        let stat = std::fs::read_to_string(format!("{task_dir}/{tid}/stat")).ok()?;
        // Fields after the ")" of the name are plain; the first of them is field 3, so the
        // nice value (field 19) and the policy (field 41) are the 17th and the 39th.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
        let nice = fields.get(16)?.parse().ok()?;
        let policy = fields.get(38)?.parse().ok()?;
        Some((comm.trim().to_owned(), nice, policy))
    };
    let threads: Vec<(String, i64, i64)> = std::fs::read_dir(&task_dir)
        .unwrap()
        .filter_map(|e| priority(e.ok()?.file_name().to_str()?))
        .collect();
    let (_, main_nice, main_policy) = priority(&gw.pid().to_string()).unwrap();
    assert_ne!(main_policy, idle);
    let lowered = (main_nice + i64::from(NICENESS)).min(19);
    let (argon2, rest): (Vec<_>, Vec<_>) = threads
        .iter()
        .partition(|(name, _, _)| name == "credgate-argon2");
    assert!(!argon2.is_empty(), "no argon2 threads among {threads:?}");
    assert!(
        argon2
            .iter()
            .all(|(_, nice, policy)| *nice == lowered && *policy == idle),
        "{threads:?}"
    );
    assert!(
        rest.iter()
            .all(|(_, nice, policy)| *nice == main_nice && *policy == main_policy),
        "{threads:?}"
    );
    // And they verify: a right secret gets a token, a wrong one does not.
    assert_eq!(gw.token_status("app", SECRET).await, 200);
    assert_eq!(gw.token_status("app", "wrong").await, 401);
}
