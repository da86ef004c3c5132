//! Two gateway processes sharing one registry and one keys dir, as instances behind a load
//! balancer do: either verifies the other's tokens, and an edit reaches both.

mod common;

use std::time::{Duration, Instant};

use common::upstream::Upstream;
use common::{client_toml, Gateway, Setup};

const SECRET: &str = "scale-out-secret-1234";
const GRANT: (&str, &str) = ("grant_type", "client_credentials");
const ISSUER: &str = "https://id.example.test";

/// Starts one instance on the shared `registry` and `keys` with a route to `upstream`.
fn instance(registry: &std::path::Path, keys: &std::path::Path, upstream: &Upstream) -> Gateway {
    let mut setup = Setup::new("").registry_path(registry).tables(&format!(
        "[[route]]\nprefix = \"/api/\"\nupstream = \"{}\"\nscopes = [\"api.read\"]\n",
        upstream.addr
    ));
    setup.issuer_url = Some(ISSUER.into());
    setup.keys_dir = Some(keys.to_path_buf());
    setup.start()
}

#[tokio::test]
async fn two_instances_share_tokens_and_a_disable_reaches_both_within_a_second() {
    let shared = tempfile::tempdir().unwrap();
    let registry = shared.path().join("clients.toml");
    std::fs::write(
        &registry,
        client_toml("app", SECRET, "scopes = [\"api.read\"]", ""),
    )
    .unwrap();
    let keys = shared.path().join("keys");
    let upstream = Upstream::start().await;
    // The first instance generates the key; the second finds it (README: generate it once).
    let a = instance(&registry, &keys, &upstream);
    let b = instance(&registry, &keys, &upstream);
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
