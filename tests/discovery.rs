//! Discovery documents, the JWKS, the admin endpoints and unknown paths.

mod common;

use common::{client_toml, json, Setup};

fn gateway() -> common::Gateway {
    let registry = client_toml("a", "pw", "scopes = [\"x.read\", \"y.write\"]", "")
        + &client_toml("b", "pw", "scopes = [\"x.read\", \"z\"]", "");
    Setup::new(registry)
        .issuer("token_paths = [\"/connect/token\", \"/as/token.oauth2\"]")
        .start()
}

#[tokio::test]
async fn both_metadata_paths_serve_rfc8414_metadata() {
    let gw = gateway();
    let mut documents = Vec::new();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = gw.http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        documents.push(json(response).await);
    }
    assert_eq!(documents[0], documents[1]);
    let metadata = &documents[0];
    assert_eq!(metadata["issuer"], gw.base);
    assert_eq!(metadata["token_endpoint"], gw.url("/connect/token"));
    assert_eq!(metadata["jwks_uri"], gw.url("/.well-known/jwks.json"));
    assert_eq!(
        metadata["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        metadata["scopes_supported"],
        serde_json::json!(["x.read", "y.write", "z"])
    );
}

#[tokio::test]
async fn a_token_path_alias_works_like_the_main_one() {
    let gw = gateway();
    let response = gw
        .http
        .post(gw.url("/as/token.oauth2"))
        .basic_auth("a", Some("pw"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_jwks_holds_public_keys_only() {
    let gw = gateway();
    let jwks = gw.get_json("/.well-known/jwks.json").await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(
            !key.contains_key(private),
            "private member {private} published"
        );
    }
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["use"], "sig");
}

#[tokio::test]
async fn documents_only_answer_get_and_head() {
    let gw = gateway();
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        let response = gw.http.post(gw.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{path}");
        assert_eq!(response.headers()["allow"], "GET, HEAD");
    }
}

#[tokio::test]
async fn unknown_paths_are_404_json_and_matching_is_exact() {
    let gw = gateway();
    for path in [
        "/",
        "/api/x",
        "/connect/token/",
        "/Connect/Token",
        "/.well-known/",
    ] {
        let response = gw.http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(json(response).await["error"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn the_admin_listener_serves_health_and_readiness() {
    let gw = gateway();
    for path in ["/healthz", "/readyz"] {
        let response = gw
            .http
            .get(format!("{}{path}", gw.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(json(response).await["status"], "ok");
    }
    let other = gw
        .http
        .get(format!("{}/metrics-nope", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test]
async fn a_broken_registry_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("credgate.toml");
    std::fs::write(dir.path().join("clients.toml"), "[[client]]\nid = \"x\"\n").unwrap();
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\n[issuer]\nissuer = \"http://x\"\nkeys_dir = \"{}\"\naudience = \"a\"\n[registry]\npath = \"{}\"\n",
            common::free_port(),
            dir.path().join("keys").display(),
            dir.path().join("clients.toml").display()
        ),
    )
    .unwrap();
    let output = common::cli(&config, &["serve"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("clients.toml") && stderr.contains("missing field `name`"),
        "{stderr}"
    );
}
