//! Two gateway processes sharing one registry and one keys dir, as instances behind a load
//! balancer do: either verifies the other's tokens, and an edit reaches both.

mod common;

use std::time::{Duration, Instant};

use common::upstream::Upstream;
use common::{client_toml, Gateway, Setup, GRANT};

const SECRET: &str = "scale-out-secret-1234";
const ISSUER: &str = "https://id.example.test";

/// Starts one instance on the shared `registry` and `keys` with a route to `upstream` and
/// `issuer` lines.
fn instance(
    registry: &std::path::Path,
    keys: &std::path::Path,
    upstream: &Upstream,
    issuer: &str,
) -> Gateway {
    let mut setup = Setup::new("")
        .registry_path(registry)
        .issuer(issuer)
        .tables(&format!(
            "[[route]]\nprefix = \"/api/\"\nupstream = \"{}\"\nscopes = [\"api.read\"]\n",
            upstream.addr
        ));
    setup.issuer_url = Some(ISSUER.into());
    setup.keys_dir = Some(keys.to_path_buf());
    setup.start()
}

/// A directory the instances share, holding a registry with client "app".
fn shared_registry() -> (tempfile::TempDir, std::path::PathBuf) {
    let shared = tempfile::tempdir().unwrap();
    let registry = shared.path().join("clients.toml");
    let app = client_toml("app", SECRET, "scopes = [\"api.read\"]", "");
    std::fs::write(&registry, app).unwrap();
    (shared, registry)
}

#[tokio::test]
async fn two_instances_share_tokens_and_a_disable_reaches_both_within_a_second() {
    let (shared, registry) = shared_registry();
    let keys = shared.path().join("keys");
    let upstream = Upstream::start().await;
    // The first instance generates the key; the second finds it (README: generate it once).
    let a = instance(&registry, &keys, &upstream, "");
    let b = instance(&registry, &keys, &upstream, "");
    assert_eq!(
        a.get_json("/.well-known/jwks.json").await,
        b.get_json("/.well-known/jwks.json").await,
        "one key set"
    );

    let from_a = a.access_token("app", SECRET).await;
    let from_b = b.access_token("app", SECRET).await;
    for gw in [&a, &b] {
        for token in [&from_a, &from_b] {
            assert_eq!(gw.bearer_status("/api/orders", token).await, 200);
        }
    }
    assert_eq!(upstream.seen().len(), 4);

    let output = a.cli(&["client", "disable", "app"]);
    assert!(output.status.success(), "{output:?}");
    let disabled = Instant::now();
    for gw in [&a, &b] {
        while gw.bearer_status("/api/orders", &from_a).await != 401 {
            assert!(
                disabled.elapsed() < Duration::from_secs(1),
                "an instance still admits the disabled client after 1 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for gw in [&a, &b] {
        assert_eq!(gw.bearer_status("/api/orders", &from_b).await, 401);
        let refused = gw.token(Some(("app", SECRET)), &[GRANT]).await;
        assert_eq!(refused.status(), 401);
    }
}

/// A rotation where the second instance sees the new key late, as with a Kubernetes Secret
/// that takes up to a minute to sync: the new key is published at once but signs only after
/// `key_activation_delay`, so no token is ever signed with a key an instance does not know.
#[tokio::test]
async fn a_rotation_seen_late_by_one_instance_rejects_no_token() {
    let (shared, registry) = shared_registry();
    let (keys_a, keys_b) = (shared.path().join("keys-a"), shared.path().join("keys-b"));
    let upstream = Upstream::start().await;
    let delay = "key_activation_delay = \"4s\"";
    let start = |keys: &std::path::Path| instance(&registry, keys, &upstream, delay);
    let a = start(&keys_a);
    std::fs::create_dir(&keys_b).unwrap();
    let copy_keys = || {
        for entry in std::fs::read_dir(&keys_a).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, keys_b.join(path.file_name().unwrap())).unwrap();
        }
    };
    copy_keys();
    let b = start(&keys_b);

    let rotated = a.cli(&["keys", "rotate"]);
    let out = String::from_utf8_lossy(&rotated.stdout).into_owned();
    assert!(
        rotated.status.success() && out.contains("it signs from"),
        "{out}"
    );
    a.wait_for_log("keys reloaded", 1);
    let published = a.get_json("/.well-known/jwks.json").await;
    assert_eq!(
        published["keys"].as_array().unwrap().len(),
        2,
        "published at once"
    );

    // B gets the new key only after a second; A keeps signing with the old key meanwhile.
    let rotation = Instant::now();
    let mut copied = false;
    let mut checked = 0;
    while rotation.elapsed() < Duration::from_secs(6) {
        if !copied && rotation.elapsed() > Duration::from_secs(1) {
            copy_keys();
            copied = true;
        }
        let token = a.access_token("app", SECRET).await;
        assert_eq!(
            b.bearer_status("/api/x", &token).await,
            200,
            "B rejected A's token"
        );
        checked += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(checked > 10);
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let first = a.access_token("app", SECRET).await;
    let newest = published["keys"][1]["kid"].as_str().unwrap().to_owned();
    assert_eq!(kid(&first), newest, "the new key signs after the delay");
}
