//! The token endpoint (RFC 6749 §4.4) of a real gateway, over HTTP.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{assert_oauth_error, client_toml, json, Gateway, Setup, GRANT};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "s3cret-for-tests";
/// `[issuer]` lines turning the brute-force limits off, for tests about something else.
const NO_FAILURE_LIMITS: &str = "failure_limit_per_client = 0\nfailure_limit_per_ip = 0";

fn registry() -> String {
    [
        client_toml(
            "app",
            SECRET,
            "scopes = [\"a.read\", \"a.write\"]\nroles = [\"member\"]\ntoken_lifetime = \"15m\"",
            "",
        ),
        client_toml("no-roles", SECRET, "", ""),
        client_toml("off", SECRET, "enabled = false", ""),
        client_toml("old", SECRET, "expires = \"2020-01-01T00:00:00Z\"", ""),
        client_toml("stale-secret", SECRET, "", "expires = \"2020-01-01\""),
        client_toml("soon", SECRET, "expires = \"2099-01-01T00:00:00Z\"", ""),
    ]
    .concat()
}

fn gateway() -> Gateway {
    Setup::new(registry()).start()
}

#[tokio::test]
async fn basic_authentication_gets_a_token() {
    let gw = gateway();
    let response = gw.token(Some(("app", SECRET)), &[GRANT]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = json(response).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "a.read a.write");
    assert_eq!(body.as_object().unwrap().len(), 4, "{body}");
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
}

#[tokio::test]
async fn post_authentication_gets_a_token_with_the_default_lifetime() {
    let gw = gateway();
    let form = [GRANT, ("client_id", "no-roles"), ("client_secret", SECRET)];
    let response = gw.token(None, &form).await;
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["expires_in"], 3600, "issuer default of 1h");
    assert!(
        body.get("scope").is_none(),
        "a client without scopes gets no scope: {body}"
    );
}

#[tokio::test]
async fn basic_credentials_are_form_decoded() {
    let registry = client_toml("a b", "p:ss word+", "", "").replace("id = \"a b\"", "id = \"a.b\"");
    let gw = Setup::new(registry).start();
    // id "a.b" written as "a%2Eb", secret "p:ss word+" as "p%3Ass+word%2B" (RFC 6749 §2.3.1)
    let response = gw.token(Some(("a%2Eb", "p%3Ass+word%2B")), &[GRANT]).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_jwt_verifies_with_the_published_key_and_carries_exactly_the_rfc9068_claims() {
    for algorithm in ["EdDSA", "ES256", "RS256"] {
        let gw = Setup::new(registry())
            .issuer(&format!("algorithm = \"{algorithm}\""))
            .start();
        let before = time_now();
        let token = json(
            gw.token(Some(("app", SECRET)), &[GRANT, ("scope", "a.read")])
                .await,
        )
        .await;
        let token = token["access_token"].as_str().unwrap().to_owned();

        let jwks: JwkSet = gw
            .http
            .get(gw.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(format!("{:?}", header.alg), algorithm);
        let jwk = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("kid is published");
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&["test-api"]);
        validation.set_issuer(&[gw.base.as_str()]);
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
            .unwrap()
            .claims;

        let names: BTreeSet<&str> = claims
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = [
            "iss",
            "sub",
            "client_id",
            "aud",
            "iat",
            "nbf",
            "exp",
            "jti",
            "scope",
            "roles",
        ]
        .into();
        assert_eq!(names, expected, "{algorithm}");
        assert_eq!(claims["sub"], "app");
        assert_eq!(claims["client_id"], "app");
        assert_eq!(claims["aud"], "test-api");
        assert_eq!(claims["scope"], "a.read");
        assert_eq!(claims["roles"], serde_json::json!(["member"]));
        let iat = claims["iat"].as_i64().unwrap();
        assert!((before - 1..=before + 5).contains(&iat));
        assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
        assert_eq!(claims["exp"].as_i64().unwrap(), iat + 900);
        assert_eq!(
            claims["jti"].as_str().unwrap().len(),
            22,
            "128 random bits, base64url"
        );
    }
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn tokens_get_unique_ids_and_never_outlive_their_client() {
    let registry = client_toml("ends", SECRET, "expires = \"2099-01-01T00:00:00Z\"", "")
        + &client_toml(
            "ends-soon",
            SECRET,
            &format!("expires = \"{}\"", rfc3339(time_now() + 120)),
            "",
        );
    let gw = Setup::new(registry).start();
    let claims = |token: &serde_json::Value| -> serde_json::Value {
        let token = token["access_token"].as_str().unwrap();
        jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token)
            .unwrap()
            .claims
    };
    let a = json(gw.token(Some(("ends", SECRET)), &[GRANT]).await).await;
    let b = json(gw.token(Some(("ends", SECRET)), &[GRANT]).await).await;
    assert_ne!(claims(&a)["jti"], claims(&b)["jti"]);
    let short = json(gw.token(Some(("ends-soon", SECRET)), &[GRANT]).await).await;
    let expires_in = short["expires_in"].as_i64().unwrap();
    assert!(
        (100..=120).contains(&expires_in),
        "capped at the client's expiry: {short}"
    );
}

fn rfc3339(unix: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn a_requested_scope_narrows_the_token() {
    let gw = gateway();
    let response = gw
        .token(
            Some(("app", SECRET)),
            &[GRANT, ("scope", "a.write a.write")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["scope"], "a.write");
}

#[tokio::test]
async fn a_scope_the_client_lacks_is_invalid_scope() {
    let gw = gateway();
    let response = gw
        .token(Some(("app", SECRET)), &[GRANT, ("scope", "a.read admin")])
        .await;
    assert_oauth_error(response, 400, "invalid_scope", false).await;
}

#[tokio::test]
async fn get_is_405_with_allow_post() {
    let gw = gateway();
    let response = gw.http.get(gw.url("/connect/token")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    assert_oauth_error(response, 405, "invalid_request", false).await;
}

#[tokio::test]
async fn a_non_form_body_is_invalid_request() {
    let gw = gateway();
    let response = gw
        .http
        .post(gw.url("/connect/token"))
        .basic_auth("app", Some(SECRET))
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 400, "invalid_request", false).await;
}

#[tokio::test]
async fn a_body_over_8_kib_is_413() {
    let gw = gateway();
    let padding = "x".repeat(8 * 1024);
    let response = gw
        .token(Some(("app", SECRET)), &[GRANT, ("pad", &padding)])
        .await;
    assert_oauth_error(response, 413, "invalid_request", false).await;
}

#[tokio::test]
async fn a_chunked_body_over_8_kib_is_413_too() {
    let gw = gateway();
    let mut stream = tokio::net::TcpStream::connect(gw.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = "POST /connect/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 4096, "x".repeat(4096));
    for _ in 0..3 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break; // the gateway may already have answered and closed
        }
    }
    let mut response = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
}

#[tokio::test]
async fn a_repeated_parameter_is_invalid_request() {
    let gw = gateway();
    let response = gw
        .token(
            Some(("app", SECRET)),
            &[GRANT, ("scope", "a.read"), ("scope", "a.write")],
        )
        .await;
    assert_oauth_error(response, 400, "invalid_request", false).await;
}

#[tokio::test]
async fn a_missing_grant_type_is_invalid_request() {
    let gw = gateway();
    let response = gw
        .token(Some(("app", SECRET)), &[("scope", "a.read")])
        .await;
    assert_oauth_error(response, 400, "invalid_request", false).await;
}

#[tokio::test]
async fn another_grant_type_is_unsupported_grant_type() {
    let gw = gateway();
    let response = gw
        .token(Some(("app", SECRET)), &[("grant_type", "password")])
        .await;
    assert_oauth_error(response, 400, "unsupported_grant_type", false).await;
}

#[tokio::test]
async fn basic_and_post_together_are_invalid_request() {
    let gw = gateway();
    let response = gw
        .token(
            Some(("app", SECRET)),
            &[GRANT, ("client_id", "app"), ("client_secret", SECRET)],
        )
        .await;
    assert_oauth_error(response, 400, "invalid_request", false).await;
}

#[tokio::test]
async fn no_client_authentication_is_invalid_client_with_a_challenge() {
    let gw = gateway();
    let response = gw.token(None, &[GRANT]).await;
    assert_oauth_error(response, 401, "invalid_client", true).await;
}

#[tokio::test]
async fn an_unknown_client_is_invalid_client() {
    let gw = gateway();
    let response = gw.token(Some(("ghost", SECRET)), &[GRANT]).await;
    assert_oauth_error(response, 401, "invalid_client", true).await;
}

#[tokio::test]
async fn a_wrong_secret_is_invalid_client() {
    let gw = gateway();
    let basic = gw.token(Some(("app", "wrong")), &[GRANT]).await;
    assert_oauth_error(basic, 401, "invalid_client", true).await;
    let post = gw
        .token(
            None,
            &[GRANT, ("client_id", "app"), ("client_secret", "wrong")],
        )
        .await;
    assert_oauth_error(post, 401, "invalid_client", false).await;
}

#[tokio::test]
async fn an_expired_secret_is_invalid_client() {
    let gw = gateway();
    let response = gw.token(Some(("stale-secret", SECRET)), &[GRANT]).await;
    assert_oauth_error(response, 401, "invalid_client", true).await;
}

#[tokio::test]
async fn an_expired_client_is_invalid_client() {
    let gw = gateway();
    let response = gw.token(Some(("old", SECRET)), &[GRANT]).await;
    assert_oauth_error(response, 401, "invalid_client", true).await;
}

#[tokio::test]
async fn a_disabled_client_is_invalid_client() {
    let gw = gateway();
    let response = gw
        .token(
            None,
            &[GRANT, ("client_id", "off"), ("client_secret", SECRET)],
        )
        .await;
    assert_oauth_error(response, 401, "invalid_client", false).await;
}

/// An unknown id must cost an argon2 verification like a wrong secret does, or response
/// times would tell which client ids exist. Without the dummy verification the ratio would
/// be about 0.05 (no hashing at all), so the 0.5 bound leaves room for a noisy machine.
#[tokio::test]
async fn unknown_clients_cost_as_much_time_as_wrong_secrets() {
    // Twenty-two failures in a row would trip the brute-force limits.
    let gw = Setup::new(registry()).issuer(NO_FAILURE_LIMITS).start();
    let time = |id: &'static str| {
        let gw = &gw;
        async move {
            let started = Instant::now();
            let response = gw.token(Some((id, "wrong")), &[GRANT]).await;
            assert_eq!(response.status(), 401);
            started.elapsed()
        }
    };
    // Interleaved, so both kinds see the same load on a shared machine.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..11 {
        known.push(time("app").await);
        unknown.push(time("nobody").await);
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(ratio > 0.5, "unknown {unknown:?} vs wrong secret {known:?}");
}

#[tokio::test]
async fn a_full_verification_queue_answers_503_with_retry_after() {
    let gw = Setup::new(registry())
        .issuer("secret_verify_concurrency = 1\nsecret_verify_queue = 1\nsecret_cache_ttl = \"0s\"")
        .issuer(NO_FAILURE_LIMITS)
        .start();
    let mut ok = 0;
    let mut refused = 0;
    for request in concurrent_tokens(&std::sync::Arc::new(gw), 40) {
        let response = request.await.unwrap();
        match response.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                assert_eq!(json(response).await["error"], "temporarily_unavailable");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "ok {ok}, refused {refused}");
}

/// Many connections of one integration asking at once with a secret not verified yet (or
/// whose cached verification expired) cost one argon2 run: each waiting request looks in the
/// secret cache again once a thread is free. Under load the repeated runs each waited for CPU
/// the proxy left idle, and the last of 32 connections waited seconds for its first token.
#[tokio::test]
async fn concurrent_requests_with_one_unverified_secret_run_argon2_once() {
    let gw = std::sync::Arc::new(
        Setup::new(registry())
            .issuer("secret_verify_concurrency = 1")
            .issuer(NO_FAILURE_LIMITS)
            .start(),
    );
    let counts = |m: &std::collections::HashMap<String, f64>| {
        let hits = m["credgate_secret_cache_hits_total"];
        (m["credgate_secret_verifications_total"], hits)
    };
    let (verified, hits) = counts(&gw.metrics().await);
    for request in concurrent_tokens(&gw, 16) {
        assert_eq!(request.await.unwrap().status(), 200);
    }
    let (verified_after, hits_after) = counts(&gw.metrics().await);
    assert_eq!(verified_after - verified, 1.0, "argon2 runs");
    assert_eq!(hits_after - hits, 15.0, "cache hits");
}

/// Starts `n` token requests of client "app" at once.
fn concurrent_tokens(
    gw: &std::sync::Arc<Gateway>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<reqwest::Response>> {
    (0..n)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { gw.token(Some(("app", SECRET)), &[GRANT]).await })
        })
        .collect()
}

/// argon2 must never block the event loops: 100 token requests at once all succeed while the
/// admin listener's /healthz and the main listener's JWKS keep answering quickly. The prober
/// is a plain OS thread with a blocking socket, so the test's own busy runtime does not
/// distort what it measures; like a Kubernetes probe it opens a new connection every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_token_requests_succeed_while_healthz_stays_fast() {
    // Without the verified-secret cache every one of the hundred runs argon2; without the
    // brute-force limits all hundred are admitted at once (they allow ten in flight).
    let gw = Setup::new(registry())
        .issuer("secret_cache_ttl = \"0s\"")
        .issuer(NO_FAILURE_LIMITS)
        .start();
    let gw = std::sync::Arc::new(gw);
    let admin = gw.admin.trim_start_matches("http://").to_owned();
    let main = gw.base.trim_start_matches("http://").to_owned();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut probes = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                probes.push(probe(&admin, "/healthz"));
                probes.push(probe(&main, "/.well-known/jwks.json"));
                std::thread::sleep(Duration::from_millis(20));
            }
            probes
        })
    };
    for request in concurrent_tokens(&gw, 100) {
        assert_eq!(request.await.unwrap().status(), 200);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut probes = prober.join().unwrap();
    assert!(
        probes.len() >= 3,
        "the burst ended too fast to observe: {} probes",
        probes.len()
    );
    // A blocked event loop would hold probes behind queued argon2 runs (about 20 ms each, 50
    // per thread here), i.e. for most of a second; a busy shared machine adds tens of ms to a
    // few probes. The bounds tell the two apart.
    probes.sort();
    let (median, slowest) = (probes[probes.len() / 2], probes[probes.len() - 1]);
    assert!(
        median < Duration::from_millis(10) && slowest < Duration::from_millis(250),
        "median {median:?}, slowest {slowest:?} of {probes:?}"
    );
}

/// One `GET path` on a new connection; returns how long the answer took.
fn probe(addr: &str, path: &str) -> Duration {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let elapsed = started.elapsed();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    elapsed
}
