//! Bearer validation in front of a real upstream: what gets through, what the upstream sees,
//! and every way a request is refused without reaching it.

mod common;

use std::time::Duration;

use common::upstream::Upstream;
use common::{client_toml, json, Gateway, Setup, GRANT};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "guard-test-secret";

fn registry() -> String {
    client_toml(
        "reader",
        SECRET,
        "scopes = [\"api.read\"]\nroles = [\"member\"]",
        "",
    ) + &client_toml(
        "writer",
        SECRET,
        "scopes = [\"api.read\", \"api.write\"]\nroles = [\"admin\"]",
        "",
    ) + &client_toml("nobody", SECRET, "", "")
}

/// A gateway with `/api/` (api.read), `/api/admin` (api.write + role admin), `/public/` (no
/// token), `/keep/` (forwards Authorization) and `/slow/` (500 ms read timeout), all in front
/// of `upstream`.
async fn setup() -> (Gateway, Upstream) {
    let upstream = Upstream::start().await;
    let up = upstream.addr;
    let gw = Setup::new(registry())
        .tables(&format!(
            r#"
[guard]
leeway = "0s"

[[route]]
prefix = "/api/"
upstream = "{up}"
scopes = ["api.read"]

[[route]]
prefix = "/api/admin"
upstream = "{up}"
scopes = ["api.write"]
roles = ["admin", "owner"]

[[route]]
prefix = "/public/"
upstream = "{up}"
public = true

[[route]]
prefix = "/keep/"
upstream = "{up}"
keep_authorization = true

[[route]]
prefix = "/slow/"
upstream = "{up}"
read_timeout = "500ms"
"#
        ))
        .start();
    (gw, upstream)
}

async fn get(gw: &Gateway, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = gw.http.get(gw.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Asserts a refusal at the edge: status, challenge, JSON error, and an upstream that saw nothing.
async fn assert_refused(
    response: reqwest::Response,
    upstream: &Upstream,
    status: u16,
    error: Option<&str>,
) {
    assert_eq!(response.status().as_u16(), status);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer realm=\"credgate\""),
        "{challenge}"
    );
    match error {
        Some(code) => assert!(
            challenge.contains(&format!("error=\"{code}\"")),
            "{challenge}"
        ),
        None => assert_eq!(challenge, "Bearer realm=\"credgate\""),
    }
    let body = json(response).await;
    assert!(
        body["error"].is_string() && body["error_description"].is_string(),
        "{body}"
    );
    assert!(
        upstream.seen().is_empty(),
        "the upstream was reached: {:?}",
        upstream.seen()
    );
}

/// Asserts that `/api/x` refuses `token` as `invalid_token` without reaching the upstream.
async fn assert_invalid_token(gw: &Gateway, upstream: &Upstream, token: &str) {
    assert_refused(
        get(gw, "/api/x", Some(token)).await,
        upstream,
        401,
        Some("invalid_token"),
    )
    .await;
}

/// Signs `claims` as an access token (`typ`) with `alg`, `kid` and `key`.
fn sign(alg: Algorithm, kid: &str, typ: &str, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.typ = Some(typ.into());
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// Claims our issuer would put in a token, to be altered by a test.
fn claims(gw: &Gateway) -> Value {
    let now = credgate::testing::unix_now();
    json!({
        "iss": gw.base, "sub": "reader", "client_id": "reader", "aud": "test-api",
        "iat": now, "nbf": now, "exp": now + 300, "jti": "j", "scope": "api.read", "roles": ["member"]
    })
}

/// Signs `claims` with the gateway's own key and kid.
fn forge(gw: &Gateway, claims: &Value) -> String {
    let (key, kid) = gw.signing_key();
    sign(Algorithm::EdDSA, &kid, "at+jwt", claims, &key)
}

fn b64(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn a_valid_token_is_forwarded_with_trusted_identity_headers() {
    let (gw, upstream) = setup().await;
    let token = gw.access_token("reader", SECRET).await;
    let response = gw
        .http
        .get(gw.url("/api/items/7?sort=desc&x=%20y"))
        .bearer_auth(&token)
        .header("x-credgate-client-id", "spoofed")
        .header("X-Credgate-Roles", "admin")
        .header("x-credgate-anything", "spoofed")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["upstream"], "ok");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    assert_eq!(
        seen[0].target, "/api/items/7?sort=desc&x=%20y",
        "path and query unchanged"
    );
    assert_eq!(h["x-credgate-client-id"], "reader");
    assert_eq!(h["x-credgate-scope"], "api.read");
    assert_eq!(h["x-credgate-roles"], "member");
    assert_eq!(h.get_all("x-credgate-client-id").iter().count(), 1);
    assert!(h.get("x-credgate-anything").is_none());
    assert!(
        h.get("authorization").is_none(),
        "the token is not forwarded"
    );
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn keep_authorization_forwards_the_token() {
    let (gw, upstream) = setup().await;
    let token = gw.access_token("reader", SECRET).await;
    assert_eq!(get(&gw, "/keep/x", Some(&token)).await.status(), 200);
    let seen = upstream.seen();
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {token}"));
    assert_eq!(seen[0].headers["x-credgate-client-id"], "reader");
}

#[tokio::test]
async fn a_public_route_needs_no_token_and_gets_no_identity() {
    let (gw, upstream) = setup().await;
    let response = gw
        .http
        .get(gw.url("/public/info"))
        .header("x-credgate-client-id", "spoofed")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = upstream.seen();
    assert!(seen[0].headers.get("x-credgate-client-id").is_none());
}

#[tokio::test]
async fn the_longest_prefix_decides_the_policy() {
    let (gw, upstream) = setup().await;
    let reader = gw.access_token("reader", SECRET).await;
    let writer = gw.access_token("writer", SECRET).await;
    assert_eq!(
        get(&gw, "/api/admin/users", Some(&writer)).await.status(),
        200
    );
    assert_eq!(
        get(&gw, "/api/adminx", Some(&reader)).await.status(),
        200,
        "segment boundaries"
    );
    assert_eq!(upstream.seen().len(), 2);
    let refused = get(&gw, "/api/admin/users", Some(&reader)).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(upstream.seen().len(), 2);
}

#[tokio::test]
async fn a_missing_token_is_401_without_an_error_code() {
    let (gw, upstream) = setup().await;
    assert_refused(get(&gw, "/api/x", None).await, &upstream, 401, None).await;
    let basic = gw
        .http
        .get(gw.url("/api/x"))
        .basic_auth("reader", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_refused(basic, &upstream, 401, None).await;
}

#[tokio::test]
async fn a_malformed_token_is_invalid_token() {
    let (gw, upstream) = setup().await;
    assert_refused(
        get(&gw, "/api/x", Some("not-a-jwt")).await,
        &upstream,
        401,
        Some("invalid_token"),
    )
    .await;
    let spaced = gw
        .http
        .get(gw.url("/api/x"))
        .header("authorization", "Bearer a b")
        .send()
        .await
        .unwrap();
    assert_refused(spaced, &upstream, 401, Some("invalid_token")).await;
    let huge = "a".repeat(9 * 1024);
    assert_invalid_token(&gw, &upstream, &huge).await;
}

/// Only a token the cache does not hold is checked against the `b64token` grammar: a cached
/// token with one byte more (a quote, an obs-text byte) is a different token, checked again.
#[tokio::test]
async fn a_cached_token_with_one_byte_more_is_malformed() {
    let (gw, upstream) = setup().await;
    let token = gw.access_token("reader", SECRET).await;
    assert_eq!(get(&gw, "/api/x", Some(&token)).await.status(), 200);
    for extra in [&b"\""[..], b"\xe9", b" x"] {
        let value = [format!("Bearer {token}").as_bytes(), extra].concat();
        let response = gw
            .http
            .get(gw.url("/api/x"))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(&value).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{extra:?}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge
                .contains("error=\"invalid_token\", error_description=\"malformed bearer token\""),
            "{challenge}"
        );
    }
    assert_eq!(
        upstream.seen().len(),
        1,
        "only the well-formed token got through"
    );
}

#[tokio::test]
async fn several_authorization_headers_are_invalid_request() {
    let (gw, upstream) = setup().await;
    let token = gw.access_token("reader", SECRET).await;
    let doubled = gw
        .http
        .get(gw.url("/api/x"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_refused(doubled, &upstream, 400, Some("invalid_request")).await;
}

#[tokio::test]
async fn a_bad_signature_is_invalid_token() {
    let (gw, upstream) = setup().await;
    let token = gw.access_token("reader", SECRET).await;
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{rest}.{flipped}{}", &signature[1..]);
    assert_invalid_token(&gw, &upstream, &tampered).await;
    // Valid signature, altered claims: scope widened.
    let (header, _) = rest.split_once('.').unwrap();
    let mut widened = claims(&gw);
    widened["scope"] = json!("api.read api.write");
    let swapped = format!("{header}.{}.{signature}", b64(&widened));
    assert_invalid_token(&gw, &upstream, &swapped).await;
}

#[tokio::test]
async fn alg_none_is_invalid_token() {
    let (gw, upstream) = setup().await;
    let (_, kid) = gw.signing_key();
    let header = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
    let unsigned = format!("{}.{}.", b64(&header), b64(&claims(&gw)));
    assert_invalid_token(&gw, &upstream, &unsigned).await;
}

#[tokio::test]
async fn hs256_under_our_kid_is_invalid_token() {
    let (gw, upstream) = setup().await;
    let (_, kid) = gw.signing_key();
    let jwks = gw.get_json("/.well-known/jwks.json").await;
    // The classic confusion attack: HMAC keyed with the public key, and a guessed secret.
    for secret in [jwks["keys"][0]["x"].as_str().unwrap().as_bytes(), b"secret"] {
        let hmac = EncodingKey::from_secret(secret);
        let token = sign(Algorithm::HS256, &kid, "at+jwt", &claims(&gw), &hmac);
        assert_invalid_token(&gw, &upstream, &token).await;
    }
}

#[tokio::test]
async fn an_unknown_kid_is_invalid_token() {
    let (gw, upstream) = setup().await;
    let other = tempfile::tempdir().unwrap();
    let file = credgate::oauth::key_files::generate(other.path(), Default::default()).unwrap();
    let key = EncodingKey::from_ed_pem(&std::fs::read(file).unwrap()).unwrap();
    let token = sign(
        Algorithm::EdDSA,
        "someone-elses-key",
        "at+jwt",
        &claims(&gw),
        &key,
    );
    assert_invalid_token(&gw, &upstream, &token).await;
    // Their key under our kid: the signature does not verify.
    let token = sign(
        Algorithm::EdDSA,
        &gw.signing_key().1,
        "at+jwt",
        &claims(&gw),
        &key,
    );
    assert_invalid_token(&gw, &upstream, &token).await;
}

#[tokio::test]
async fn altered_claims_are_invalid_token() {
    let (gw, upstream) = setup().await;
    let now = credgate::testing::unix_now();
    let cases = [
        ("iss", json!("https://evil.example")),
        ("aud", json!("another-api")),
        ("exp", json!(now - 10)),
        ("nbf", json!(now + 120)),
    ];
    for (claim, value) in cases {
        let mut altered = claims(&gw);
        altered[claim] = value;
        let response = get(&gw, "/api/x", Some(&forge(&gw, &altered))).await;
        assert_refused(response, &upstream, 401, Some("invalid_token")).await;
    }
    // A control: the unaltered forgery passes, so the refusals above are about the claims.
    assert_eq!(
        get(&gw, "/api/x", Some(&forge(&gw, &claims(&gw))))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_token_without_typ_at_jwt_is_invalid_token() {
    let (gw, upstream) = setup().await;
    let (key, kid) = gw.signing_key();
    let token = sign(Algorithm::EdDSA, &kid, "JWT", &claims(&gw), &key);
    assert_invalid_token(&gw, &upstream, &token).await;
}

#[tokio::test]
async fn insufficient_scope_and_missing_role_are_403() {
    let (gw, upstream) = setup().await;
    let nobody = gw.access_token("nobody", SECRET).await;
    let response = get(&gw, "/api/x", Some(&nobody)).await;
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("scope=\"api.read\""), "{challenge}");
    assert_refused(response, &upstream, 403, Some("insufficient_scope")).await;
    // writer-like scopes but no admin/owner role
    let mut no_role = claims(&gw);
    no_role["scope"] = json!("api.read api.write");
    let response = get(&gw, "/api/admin/x", Some(&forge(&gw, &no_role))).await;
    assert_refused(response, &upstream, 403, Some("insufficient_scope")).await;
}

#[tokio::test]
async fn a_disabled_client_loses_its_cached_token_at_the_next_request() {
    let (gw, upstream) = setup().await;
    let token = gw.access_token("reader", SECRET).await;
    assert_eq!(
        get(&gw, "/api/x", Some(&token)).await.status(),
        200,
        "now cached"
    );
    let output = gw.cli(&["client", "disable", "reader"]);
    assert!(output.status.success());
    gw.reload();
    let response = get(&gw, "/api/x", Some(&token)).await;
    assert_eq!(upstream.seen().len(), 1);
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("disabled"));
}

#[tokio::test]
async fn revoked_tokens_stop_working_and_new_ones_do() {
    let (gw, upstream) = setup().await;
    let old = gw.access_token("reader", SECRET).await;
    assert_eq!(get(&gw, "/api/x", Some(&old)).await.status(), 200);
    assert!(gw
        .cli(&["client", "revoke-tokens", "reader"])
        .status
        .success());
    gw.reload();
    let response = get(&gw, "/api/x", Some(&old)).await;
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("revoked"));
    assert_eq!(response.status(), 401);
    // Revocation reaches to the start of the next second; tokens minted after it work.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = gw.access_token("reader", SECRET).await;
    assert_eq!(get(&gw, "/api/x", Some(&fresh)).await.status(), 200);
    assert_eq!(upstream.seen().len(), 2);
}

#[tokio::test]
async fn a_cached_token_never_outlives_its_exp() {
    let (gw, upstream) = setup().await;
    let mut short = claims(&gw);
    short["exp"] = json!(credgate::testing::unix_now() + 2);
    let token = forge(&gw, &short);
    assert_eq!(
        get(&gw, "/api/x", Some(&token)).await.status(),
        200,
        "verified and cached"
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let response = get(&gw, "/api/x", Some(&token)).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("expired"));
    assert_eq!(upstream.seen().len(), 1);
}

/// The files now define only an invalid client: the reload is refused, and the refusal does not
/// keep "reader", which the files no longer define, working — not even with a cached token.
#[tokio::test]
async fn an_invalid_registry_reload_never_keeps_a_removed_client_working() {
    let (gw, _upstream) = setup().await;
    let token = gw.access_token("reader", SECRET).await;
    assert_eq!(get(&gw, "/api/x", Some(&token)).await.status(), 200);
    std::fs::write(
        gw.home.join("clients.toml"),
        "[[client]]\nid = \"broken\"\n",
    )
    .unwrap();
    gw.reload();
    assert!(
        gw.log().contains("registry reload rejected"),
        "{}",
        gw.log()
    );
    assert_eq!(get(&gw, "/api/x", Some(&token)).await.status(), 401);
    assert_eq!(
        gw.token(Some(("reader", SECRET)), &[GRANT]).await.status(),
        401
    );
}

/// No spelling of a protected path reaches it without a token: each is refused as ambiguous
/// (400) or lands on the protected route and is refused there (401). Only an unambiguous path
/// to the public route passes.
#[tokio::test]
async fn path_confusion_never_reaches_a_protected_route() {
    let (gw, upstream) = setup().await;
    let paths = [
        "/public/../api/x",
        "/public/%2e%2e/api/x",
        "/public/%2E%2E/api/x",
        "/public/..%2fapi/x",
        "/public/..%2Fapi/x",
        "/api%2fx",
        "/public%5C..%5Capi/x",
        "/public/..%5capi/x",
        "/public/%00/../api/x",
        "/api/x%00",
        "//api/x",
        "/public//../api/x",
        "/public/%c0%af../api/x",
        "/public/..;/api/x",
        "/public/%252e%252e/api/x",
        "/%61pi/x",
        "/API/x",
    ];
    for path in paths {
        // Sent raw: reqwest would normalise some of these.
        let status = raw_get(&gw, path).await;
        assert!(
            status == 400 || status == 401 || status == 404,
            "{path} answered {status}"
        );
        assert!(upstream.seen().is_empty(), "{path} reached the upstream");
    }
    assert_eq!(
        raw_get(&gw, "/%61pi/x").await,
        401,
        "decoded before routing"
    );
    assert_eq!(raw_get(&gw, "/public/../api/x").await, 400);
}

/// Sends `GET path` byte for byte and returns the status code.
async fn raw_get(gw: &Gateway, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gw.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status for {path}: {response:?}"))
}

#[tokio::test]
async fn a_down_upstream_is_502_json_and_recovery_needs_nothing() {
    let (gw, upstream) = setup().await;
    let token = gw.access_token("reader", SECRET).await;
    assert_eq!(get(&gw, "/api/x", Some(&token)).await.status(), 200);
    let addr = upstream.stop();
    let response = get(&gw, "/api/x", Some(&token)).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.headers()["connection"],
        "close",
        "the connection is not reusable"
    );
    assert_eq!(json(response).await["error"], "bad_gateway");
    let upstream = Upstream::start_on(addr).await;
    assert_eq!(get(&gw, "/api/x", Some(&token)).await.status(), 200);
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test]
async fn a_slow_upstream_is_504_json() {
    let (gw, _upstream) = setup().await;
    let token = gw.access_token("reader", SECRET).await;
    let response = get(&gw, "/slow/x", Some(&token)).await;
    assert_eq!(response.status(), 504);
    assert_eq!(response.headers()["connection"], "close");
    assert_eq!(json(response).await["error"], "upstream_timeout");
    assert_eq!(
        get(&gw, "/api/x", Some(&token)).await.status(),
        200,
        "the gateway stays up"
    );
}

#[tokio::test]
async fn an_https_upstream_is_verified_against_its_name() {
    let (upstream, root) = Upstream::start_tls(&["upstream.test"]).await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), root).unwrap();
    let up = upstream.addr;
    let gw = Setup::new(registry())
        .server(&format!("upstream_ca_file = \"{}\"", ca.path().display()))
        .tables(&format!(
            r#"
[[route]]
prefix = "/secure/"
upstream = "{up}"
tls = true
sni = "upstream.test"

[[route]]
prefix = "/mismatch/"
upstream = "{up}"
tls = true
sni = "other.test"
"#
        ))
        .start();
    let token = gw.access_token("reader", SECRET).await;
    let status = get(&gw, "/secure/x", Some(&token)).await.status();
    assert_eq!(status, 200, "{}", gw.log());
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-credgate-client-id"], "reader");
    // A certificate that does not match the route's name is refused before any request.
    let mismatch = get(&gw, "/mismatch/x", Some(&token)).await;
    assert_eq!(mismatch.status(), 502);
    assert_eq!(upstream.seen().len(), 1);
}

async fn introspect(gw: &Gateway, caller: Option<(&str, &str)>, token: &str) -> reqwest::Response {
    let mut request = gw
        .http
        .post(gw.url("/connect/introspect"))
        .form(&[("token", token)]);
    if let Some((id, secret)) = caller {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn introspection_reports_active_tokens() {
    let (gw, _upstream) = setup().await;
    let token = gw.access_token("reader", SECRET).await;
    let response = introspect(&gw, Some(("writer", SECRET)), &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json(response).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "reader");
    assert_eq!(body["sub"], "reader");
    assert_eq!(body["scope"], "api.read");
    assert_eq!(body["iss"], gw.base);
    assert_eq!(body["aud"], "test-api");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["exp"].as_i64().unwrap() > body["iat"].as_i64().unwrap());
}

#[tokio::test]
async fn introspection_reports_invalid_tokens_as_inactive() {
    let (gw, _upstream) = setup().await;
    let mut expired = claims(&gw);
    expired["exp"] = json!(credgate::testing::unix_now() - 60);
    for token in ["garbage".to_owned(), forge(&gw, &expired)] {
        let body = json(introspect(&gw, Some(("writer", SECRET)), &token).await).await;
        assert_eq!(body, json!({"active": false}));
    }
}

#[tokio::test]
async fn introspection_requires_an_authenticated_caller() {
    let (gw, _upstream) = setup().await;
    let token = gw.access_token("reader", SECRET).await;
    common::assert_oauth_error(
        introspect(&gw, None, &token).await,
        401,
        "invalid_client",
        true,
    )
    .await;
    let wrong = introspect(&gw, Some(("writer", "wrong")), &token).await;
    common::assert_oauth_error(wrong, 401, "invalid_client", true).await;
    let get = gw
        .http
        .get(gw.url("/connect/introspect"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.headers()["allow"], "POST");
    common::assert_oauth_error(get, 405, "invalid_request", false).await;
    let metadata = gw.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        metadata["introspection_endpoint"],
        gw.url("/connect/introspect")
    );
}
