//! The management API (DESIGN §3) on a real gateway: each organisation's administrators manage
//! their own clients with credgate's own tokens; operators manage every organisation.

mod common;

use std::time::{Duration, Instant};

use common::{claims, client_toml, json, Gateway, Setup};
use serde_json::{json, Value};

const SECRET: &str = "manage-test-secret";
const MANAGE: &str = "credgate:manage";

fn org(name: &str, scopes: &str, default_roles: &str, clients: &str) -> String {
    format!(
        "[organization]\nname = \"{name}\"\nscopes = [{scopes}]\ndefault_roles = [{default_roles}]\n\n{clients}"
    )
}

fn admin(id: &str, scopes: &str) -> String {
    client_toml(id, SECRET, &format!("scopes = [{scopes}]"), "")
}

fn setup() -> Setup {
    let acme = org(
        "Acme Corp",
        "\"payroll.read\", \"payroll.write\", \"credgate:manage\"",
        "\"tenant-member\"",
        &(admin("admin", "\"credgate:manage\"") + &admin("app", "\"payroll.read\"")),
    );
    let globex = org(
        "Globex",
        "\"payroll.read\", \"credgate:manage\"",
        "",
        &admin("admin", "\"credgate:manage\""),
    );
    let vendor = org(
        "Vendor",
        "\"credgate:manage\"",
        "",
        &admin("ops", "\"credgate:manage\""),
    );
    Setup::organizations(
        "http://127.0.0.1:PORT/{org}",
        &[("acme", acme), ("globex", globex), ("vendor", vendor)],
    )
    // The tests poll for secrets that stop working: no brute-force limit in the way.
    .issuer("failure_limit_per_client = 0\nfailure_limit_per_ip = 0")
    .tables(
        "[manage]\nprefix = \"/manage/v1\"\nscope = \"credgate:manage\"\noperator_org = \"vendor\"\n\
         audit_log = \"@HOME@/audit.log\"\nmax_secrets_per_client = 3\n",
    )
}

/// A management API client with one bearer token.
struct Api<'a> {
    gw: &'a Gateway,
    token: String,
}

impl Api<'_> {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.gw
            .http
            .request(method, self.gw.url(&format!("/manage/v1{path}")))
            .bearer_auth(&self.token)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON: {text}"))
        };
        (status, headers, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, v) = self.call(reqwest::Method::GET, path, None).await;
        (s, v)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, _, v) = self.call(reqwest::Method::POST, path, Some(body)).await;
        (s, v)
    }
}

async fn api<'a>(gw: &'a Gateway, org: &str, client: &str) -> Api<'a> {
    Api {
        token: gw.org_token(org, client, SECRET).await,
        gw,
    }
}

/// Polls until `org/client` gets a token with `secret` (or fails to, with `want`), 5 s at most.
async fn eventually_status(gw: &Gateway, org: &str, client: &str, secret: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = gw
            .token_at(&format!("/{org}/connect/token"), client, secret)
            .await
            .status()
            .as_u16();
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{org}/{client}: {status}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn an_organisation_administrator_runs_a_client_through_its_whole_life() {
    let gw = setup().start();
    let api = api(&gw, "acme", "admin").await;

    // Add: the secret is shown this once, never cached.
    let (status, headers, created) = api
        .call(
            reqwest::Method::POST,
            "/orgs/acme/clients",
            Some(
                json!({"name": "Payroll Sync", "scopes": ["payroll.read"], "roles": ["payroll"],
                        "token_lifetime": 900, "secret_description": "first"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(
        headers["location"],
        "/manage/v1/orgs/acme/clients/payroll-sync"
    );
    assert!(headers.contains_key("etag") && headers.contains_key("x-request-id"));
    let client = &created["client"];
    assert_eq!(client["id"], "payroll-sync");
    assert_eq!(client["default_roles"], json!(["tenant-member"]));
    assert_eq!(client["token_lifetime"], 900);
    assert!(!created.to_string().contains("argon2"), "never a hash");
    let first = created["client_secret"].as_str().unwrap().to_owned();
    let first_id = client["secrets"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(client["secrets"][0]["description"], "first");
    // A calendar year by default: the same date and time, a year on.
    let created_at = client["secrets"][0]["created"].as_str().unwrap();
    let expires_at = client["secrets"][0]["expires"].as_str().unwrap();
    let year: i32 = created_at[..4].parse().unwrap();
    assert_eq!(
        expires_at,
        format!("{}{}", year + 1, &created_at[4..]),
        "a year by default"
    );

    eventually_status(&gw, "acme", "payroll-sync", &first, 200).await;
    let minted = gw.org_token("acme", "payroll-sync", &first).await;
    assert_eq!(
        claims(&minted)["roles"],
        json!(["tenant-member", "payroll"])
    );

    let (status, list) = api.get("/orgs/acme/clients").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["admin", "app", "payroll-sync"]);

    // A second secret, then the first removed, then everything regenerated.
    let (status, added) = api
        .post(
            "/orgs/acme/clients/payroll-sync/secrets",
            json!({"description": "second", "expires": "never"}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let second = added["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(added["secret"]["expires"], Value::Null);
    eventually_status(&gw, "acme", "payroll-sync", &second, 200).await;
    assert_eq!(
        gw.token_at("/acme/connect/token", "payroll-sync", &first)
            .await
            .status(),
        200
    );
    let (status, _, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/orgs/acme/clients/payroll-sync/secrets/{first_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    eventually_status(&gw, "acme", "payroll-sync", &first, 401).await;
    let (status, regenerated) = api
        .post(
            "/orgs/acme/clients/payroll-sync/secrets/regenerate",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{regenerated}");
    let third = regenerated["client_secret"].as_str().unwrap().to_owned();
    eventually_status(&gw, "acme", "payroll-sync", &second, 401).await;
    eventually_status(&gw, "acme", "payroll-sync", &third, 200).await;

    // A role added shows in the next token; disabling stops the next protected call.
    let (status, _, patched) = api
        .call(
            reqwest::Method::PATCH,
            "/orgs/acme/clients/payroll-sync",
            Some(json!({"roles": ["payroll", "hr"]})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while claims(&gw.org_token("acme", "payroll-sync", &third).await)["roles"]
        != json!(["tenant-member", "payroll", "hr"])
    {
        assert!(Instant::now() < deadline, "the new role never showed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (status, _, _) = api
        .call(
            reqwest::Method::PATCH,
            "/orgs/acme/clients/payroll-sync",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    eventually_status(&gw, "acme", "payroll-sync", &third, 401).await;
    let (status, revoked) = api
        .post("/orgs/acme/clients/payroll-sync/revoke-tokens", json!({}))
        .await;
    assert_eq!(status, 200);
    assert!(revoked["tokens_not_before"].is_string());

    let (status, _, _) = api
        .call(
            reqwest::Method::DELETE,
            "/orgs/acme/clients/payroll-sync",
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(api.get("/orgs/acme/clients/payroll-sync").await.0, 404);

    // One audit line per change, by this administrator, never a secret.
    let audit = std::fs::read_to_string(gw.home.join("audit.log")).unwrap();
    let lines: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "client.create",
            "secret.add",
            "secret.remove",
            "secret.regenerate",
            "client.update",
            "client.update",
            "client.revoke_tokens",
            "client.delete"
        ]
    );
    assert!(lines
        .iter()
        .all(|l| l["actor"] == "acme/admin" && l["result"] == "ok"));
    assert_eq!(lines[2]["secret_id"], first_id);
    for secret in [&first, &second, &third] {
        assert!(!audit.contains(secret.as_str()));
    }
    assert!(!audit.contains("argon2"));
    // The request log names the caller of each API request.
    gw.wait_for_log(
        "path=/manage/v1/orgs/acme/clients route=manage client_id=acme/admin status=201",
        1,
    );
}

#[tokio::test]
async fn an_organisation_administrator_cannot_see_or_touch_another_organisation() {
    let gw = setup().start();
    let acme = api(&gw, "acme", "admin").await;
    let (status, missing) = acme.get("/orgs/nope/clients").await;
    assert_eq!(status, 404);
    for (method, path, body) in [
        (reqwest::Method::GET, "/orgs/globex/clients", None),
        (reqwest::Method::GET, "/orgs/globex", None),
        (reqwest::Method::GET, "/orgs/globex/clients/admin", None),
        (
            reqwest::Method::POST,
            "/orgs/globex/clients",
            Some(json!({"name": "x"})),
        ),
        (
            reqwest::Method::PATCH,
            "/orgs/globex/clients/admin",
            Some(json!({"enabled": false})),
        ),
        (reqwest::Method::DELETE, "/orgs/globex/clients/admin", None),
        (
            reqwest::Method::POST,
            "/orgs/globex/clients/admin/secrets",
            Some(json!({})),
        ),
        (
            reqwest::Method::POST,
            "/orgs/globex/clients/admin/revoke-tokens",
            None,
        ),
    ] {
        let (status, headers, body) = acme.call(method.clone(), path, body).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(headers["content-type"], "application/problem+json");
        // Exactly what a missing organisation answers, but for its name: nothing leaks.
        assert_eq!(
            body["detail"],
            missing["detail"]
                .as_str()
                .unwrap()
                .replace("nope", "globex")
        );
    }
    assert_eq!(acme.get("/orgs").await.0, 403);
    let (status, own) = acme.get("/orgs/acme").await;
    assert_eq!(status, 200);
    assert_eq!(own["default_roles"], json!(["tenant-member"]));
    // Globex's admin still works: nothing was changed.
    eventually_status(&gw, "globex", "admin", SECRET, 200).await;
    assert!(!std::fs::read_to_string(gw.home.join("audit.log"))
        .unwrap()
        .contains("globex/admin\""));

    // The operator sees and manages everyone.
    let ops = api(&gw, "vendor", "ops").await;
    let (status, orgs) = ops.get("/orgs").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = orgs["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "globex", "vendor"]);
    assert_eq!(ops.get("/orgs/globex/clients").await.0, 200);
}

#[tokio::test]
async fn nobody_grants_more_than_their_organisation_allows() {
    let gw = setup().start();
    let acme = api(&gw, "acme", "admin").await;
    let (status, body) = acme
        .post(
            "/orgs/acme/clients",
            json!({"name": "Sneaky", "scopes": [MANAGE]}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("only an operator"));
    let (status, _, body) = acme
        .call(
            reqwest::Method::PATCH,
            "/orgs/acme/clients/app",
            Some(json!({"scopes": [MANAGE]})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = acme
        .post(
            "/orgs/acme/clients",
            json!({"name": "Wide", "scopes": ["payroll.admin"]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("acme.toml:"), "{body}");
    assert!(
        !detail.contains("/orgs/"),
        "never where the server keeps its files: {body}"
    );
    assert!(
        detail.contains("not in the organisation's scopes"),
        "{body}"
    );

    // Default roles are the organisation's: whatever roles a client is given or loses, its
    // tokens carry them.
    for (roles, expected) in [
        (json!(["payroll"]), json!(["tenant-member", "payroll"])),
        (json!([]), json!(["tenant-member"])),
    ] {
        let (status, _, body) = acme
            .call(
                reqwest::Method::PATCH,
                "/orgs/acme/clients/app",
                Some(json!({ "roles": roles })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["default_roles"], json!(["tenant-member"]));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let token = gw.org_token("acme", "app", SECRET).await;
            if claims(&token)["roles"] == expected {
                break;
            }
            assert!(Instant::now() < deadline, "{}", claims(&token));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    // Without the manage scope, or without a token, nothing.
    let app = api(&gw, "acme", "app").await;
    let (status, body) = app.get("/orgs/acme/clients").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let response = gw
        .http
        .get(gw.url("/manage/v1/orgs/acme/clients"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let response = gw
        .http
        .get(gw.url("/manage/v1/orgs/acme/clients"))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // An operator may grant the management scope where the organisation lists it.
    let ops = api(&gw, "vendor", "ops").await;
    let (status, body) = ops
        .post(
            "/orgs/acme/clients",
            json!({"name": "Second Admin", "scopes": [MANAGE]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = ops
        .post(
            "/orgs/globex/clients",
            json!({"name": "W", "scopes": ["payroll.write"]}),
        )
        .await;
    assert_eq!(
        status, 422,
        "not even an operator goes past an organisation's scopes: {body}"
    );
}

#[tokio::test]
async fn stale_etags_and_bad_requests_are_refused_with_problem_details() {
    let gw = setup().start();
    let api = api(&gw, "acme", "admin").await;
    let (status, headers, _) = api
        .call(reqwest::Method::GET, "/orgs/acme/clients/app", None)
        .await;
    assert_eq!(status, 200);
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let patch = |tag: &str, body: Value| {
        api.request(reqwest::Method::PATCH, "/orgs/acme/clients/app")
            .header("if-match", tag)
            .json(&body)
            .send()
    };
    let fresh = patch(&etag, json!({"name": "App v2"})).await.unwrap();
    assert_eq!(fresh.status(), 200);
    let new_etag = fresh.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let stale = patch(&etag, json!({"name": "App v3"})).await.unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(json(stale).await["code"], "precondition_failed");
    let stale_delete = api
        .request(reqwest::Method::DELETE, "/orgs/acme/clients/app")
        .header("if-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(stale_delete.status(), 412);
    assert_eq!(api.get("/orgs/acme/clients/app").await.1["name"], "App v2");

    // Bad inputs, each with a problem a person can read.
    let (status, body) = api
        .post("/orgs/acme/clients", json!({"name": "X", "colour": "red"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("colour"));
    let response = api
        .request(reqwest::Method::POST, "/orgs/acme/clients")
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let response = api
        .request(reqwest::Method::POST, "/orgs/acme/clients")
        .header("content-type", "application/json")
        .body(vec![b' '; 70 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(api.get("/orgs/acme/nothing").await.0, 404);
    let (status, _, _) = api
        .call(reqwest::Method::PUT, "/orgs/acme/clients/app", None)
        .await;
    assert_eq!(status, 405);
    let (status, body) = api
        .post("/orgs/acme/clients", json!({"name": "App", "id": "app"}))
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = api
        .post("/orgs/acme/clients", json!({"name": "Bad", "id": "a b"}))
        .await;
    assert_eq!(status, 400, "{body}");
    // The only secret of a client cannot go, even forced; the last valid one only forced.
    let app_secret = api.get("/orgs/acme/clients/app").await.1["secrets"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let remove = |force: &str| {
        api.request(
            reqwest::Method::DELETE,
            &format!("/orgs/acme/clients/app/secrets/{app_secret}{force}"),
        )
        .send()
    };
    assert_eq!(remove("").await.unwrap().status(), 409);
    assert_eq!(remove("?force=true").await.unwrap().status(), 409);
    // At most max_secrets_per_client (3).
    for _ in 0..2 {
        assert_eq!(
            api.post("/orgs/acme/clients/app/secrets", json!({}))
                .await
                .0,
            201
        );
    }
    let (status, body) = api.post("/orgs/acme/clients/app/secrets", json!({})).await;
    assert_eq!(status, 409, "{body}");
    let (status, _, _) = api
        .call(
            reqwest::Method::DELETE,
            "/orgs/acme/clients/app/secrets/nosuch",
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_api_writers_and_cli_edits_lose_nothing() {
    let gw = setup().start();
    let api = api(&gw, "acme", "admin").await;
    let url = gw.url("/manage/v1/orgs/acme/clients");
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let (http, url, token) = (gw.http.clone(), url.clone(), api.token.clone());
        writers.spawn(async move {
            for n in 0..50 {
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("w{w} n{n}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
            }
        });
    }
    for n in 0..4 {
        let config = gw.config.clone();
        writers.spawn(async move {
            let name = format!("cli {n}");
            let output = tokio::task::spawn_blocking(move || {
                common::cli(
                    &config,
                    &["client", "add", "--org", "acme", "--name", &name, "--json"],
                )
            })
            .await
            .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    let (status, list) = api.get("/orgs/acme/clients").await;
    assert_eq!(status, 200);
    assert_eq!(list["clients"].as_array().unwrap().len(), 2 + 8 * 50 + 4);
    let audit = std::fs::read_to_string(gw.home.join("audit.log")).unwrap();
    let lines: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let created_by = |actor: &str| {
        lines
            .iter()
            .filter(|l| l["action"] == "client.create" && l["result"] == "ok")
            .filter(|l| l["actor"].as_str().unwrap().starts_with(actor))
            .count()
    };
    assert_eq!(created_by("acme/admin"), 8 * 50, "one line per API change");
    assert_eq!(created_by("cli:"), 4, "CLI edits are audited too");
    assert_eq!(lines.len(), 8 * 50 + 4);
}

/// What the API answers is in force on its instance when it answers: no watcher here (`watch =
/// false`), and no waiting. A disabled client, a removed secret, a deleted client or
/// organisation is refused at the very next request; a new client or secret works at once.
#[tokio::test]
async fn a_change_holds_on_the_writing_instance_as_soon_as_it_is_answered() {
    let gw = Setup {
        watch: false,
        ..setup()
    }
    .start();
    let status = |client: &str, secret: &str| {
        let (gw, client, secret) = (&gw, client.to_owned(), secret.to_owned());
        async move {
            gw.token_at("/acme/connect/token", &client, &secret)
                .await
                .status()
                .as_u16()
        }
    };
    let api = api(&gw, "acme", "admin").await;
    let (code, created) = api.post("/orgs/acme/clients", json!({"name": "Now"})).await;
    assert_eq!(code, 201);
    let first = created["client_secret"].as_str().unwrap().to_owned();
    let first_id = created["client"]["secrets"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        status("now", &first).await,
        200,
        "a new client works at once"
    );
    let (code, added) = api.post("/orgs/acme/clients/now/secrets", json!({})).await;
    assert_eq!(code, 201);
    let second = added["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        status("now", &second).await,
        200,
        "a new secret works at once"
    );
    let path = format!("/orgs/acme/clients/now/secrets/{first_id}");
    assert_eq!(api.call(reqwest::Method::DELETE, &path, None).await.0, 204);
    assert_eq!(status("now", &first).await, 401, "a removed secret");
    let disable = Some(json!({"enabled": false}));
    let client = "/orgs/acme/clients/now";
    assert_eq!(
        api.call(reqwest::Method::PATCH, client, disable).await.0,
        200
    );
    assert_eq!(status("now", &second).await, 401, "a disabled client");
    let enable = Some(json!({"enabled": true}));
    assert_eq!(
        api.call(reqwest::Method::PATCH, client, enable).await.0,
        200
    );
    assert_eq!(status("now", &second).await, 200, "enabled again");
    assert_eq!(api.call(reqwest::Method::DELETE, client, None).await.0, 204);
    assert_eq!(status("now", &second).await, 401, "a deleted client");

    let operator = self::api(&gw, "vendor", "ops").await;
    let globex = "/orgs/globex?force=true";
    assert_eq!(
        operator.call(reqwest::Method::DELETE, globex, None).await.0,
        204
    );
    let refused = gw.token_at("/globex/connect/token", "admin", SECRET).await;
    assert_eq!(refused.status(), 404, "a deleted organisation");
}

#[tokio::test]
async fn a_client_created_on_one_instance_gets_a_token_on_another() {
    let a = setup().start();
    let b = Setup {
        home: Some(a.home.clone()),
        ..setup()
    }
    .start();
    let api = api(&a, "acme", "admin").await;
    let (status, created) = api
        .post("/orgs/acme/clients", json!({"name": "Shared"}))
        .await;
    assert_eq!(status, 201);
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let started = Instant::now();
    eventually_status(&b, "acme", "shared", &secret, 200).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn operators_create_change_and_remove_organisations() {
    let gw = setup().start();
    let acme = api(&gw, "acme", "admin").await;
    assert_eq!(
        acme.post("/orgs", json!({"id": "initech", "name": "I"}))
            .await
            .0,
        403
    );
    let (status, _, _) = acme
        .call(
            reqwest::Method::PATCH,
            "/orgs/acme",
            Some(json!({"scopes": []})),
        )
        .await;
    assert_eq!(status, 403, "an organisation does not change its own plan");
    let (status, _, _) = acme
        .call(reqwest::Method::DELETE, "/orgs/globex", None)
        .await;
    assert_eq!(status, 404);

    let ops = api(&gw, "vendor", "ops").await;
    let (status, created) = ops
        .post(
            "/orgs",
            json!({"id": "initech", "name": "Initech", "scopes": ["payroll.read", MANAGE],
                   "default_roles": ["tenant-member"], "max_token_lifetime": 600}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["max_token_lifetime"], 600);
    assert_eq!(
        ops.post("/orgs", json!({"id": "initech", "name": "Again"}))
            .await
            .0,
        409
    );
    assert_eq!(
        ops.post("/orgs", json!({"id": "Bad Id", "name": "X"}))
            .await
            .0,
        400
    );
    let (status, client) = ops
        .post(
            "/orgs/initech/clients",
            json!({"name": "App", "scopes": ["payroll.read"]}),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    eventually_status(&gw, "initech", "app", &secret, 200).await;

    // A plan narrowed under a client that uses the scope is refused; disabling applies.
    let (status, _, body) = ops
        .call(
            reqwest::Method::PATCH,
            "/orgs/initech",
            Some(json!({"scopes": [MANAGE]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _, body) = ops
        .call(
            reqwest::Method::PATCH,
            "/orgs/initech",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabled"], false);
    eventually_status(&gw, "initech", "app", &secret, 401).await;

    let (status, _, _) = ops
        .call(reqwest::Method::DELETE, "/orgs/initech", None)
        .await;
    assert_eq!(status, 409, "it still has a client");
    let (status, _, _) = ops
        .call(reqwest::Method::DELETE, "/orgs/initech?force=true", None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(ops.get("/orgs/initech").await.0, 404);
    // CLI edits of organisations are audited as well.
    let output = common::cli(&gw.config, &["org", "disable", "globex"]);
    assert!(output.status.success(), "{output:?}");
    let audit = std::fs::read_to_string(gw.home.join("audit.log")).unwrap();
    let cli_line = audit.lines().last().unwrap();
    assert!(
        cli_line.contains("\"actor\":\"cli:")
            && cli_line.contains("\"action\":\"org.update\",\"target\":\"globex\""),
        "{cli_line}"
    );
    for action in ["org.create", "org.update", "org.delete"] {
        assert!(
            audit.contains(&format!("\"action\":\"{action}\",\"target\":\"initech\"")),
            "{action}: {audit}"
        );
    }
}

/// What one call of the API answered: method, path template, status, body.
type Seen = (&'static str, &'static str, u16, Value);

/// Calls `method path` (an instance of `template`) and notes what it answered.
async fn exercise(
    seen: &mut Vec<Seen>,
    api: &Api<'_>,
    method: &'static str,
    template: &'static str,
    path: String,
    body: Option<Value>,
) -> Value {
    let method_name = method.to_uppercase().parse().unwrap();
    let (status, _, answer) = api.call(method_name, &path, body).await;
    seen.push((method, template, status, answer.clone()));
    answer
}

/// The document's schema of the answer `status` of `method template`, as a validator.
fn answer_schema(
    doc: &Value,
    method: &str,
    template: &str,
    status: u16,
) -> Option<jsonschema::Validator> {
    let answer = &doc["paths"][template][method]["responses"][status.to_string()];
    assert!(
        !answer.is_null(),
        "{method} {template} answers {status}, which the document does not say"
    );
    let content = answer.get("content")?;
    let (_, media) = content.as_object().unwrap().iter().next().unwrap();
    let mut root = doc.clone();
    root["$ref"] = media["schema"]["$ref"].clone();
    Some(jsonschema::validator_for(&root).expect("a valid schema"))
}

/// `GET <prefix>/openapi.json` describes the API that runs: every operation answers with a
/// status the document lists for it, and a body that fits the schema it gives.
#[tokio::test]
async fn the_openapi_document_describes_the_running_api() {
    let gw = setup().start();
    let response = gw
        .http
        .get(gw.url("/manage/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = json(response).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["servers"][0]["url"], "/manage/v1");
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(operations, 15);

    let ops = api(&gw, "vendor", "ops").await;
    let admin = api(&gw, "acme", "admin").await;
    let mut seen = Vec::new();
    exercise(&mut seen, &ops, "get", "/orgs", "/orgs".into(), None).await;
    exercise(
        &mut seen,
        &ops,
        "post",
        "/orgs",
        "/orgs".into(),
        Some(json!({"id": "initech", "name": "I", "scopes": ["a.read"]})),
    )
    .await;
    exercise(
        &mut seen,
        &ops,
        "post",
        "/orgs",
        "/orgs".into(),
        Some(json!({"id": "initech", "name": "I"})),
    )
    .await;
    exercise(
        &mut seen,
        &ops,
        "patch",
        "/orgs/{org}",
        "/orgs/initech".into(),
        Some(json!({"name": "Initech"})),
    )
    .await;
    exercise(
        &mut seen,
        &ops,
        "delete",
        "/orgs/{org}",
        "/orgs/initech".into(),
        None,
    )
    .await;
    exercise(&mut seen, &admin, "get", "/orgs", "/orgs".into(), None).await;
    exercise(
        &mut seen,
        &admin,
        "get",
        "/orgs/{org}",
        "/orgs/acme".into(),
        None,
    )
    .await;
    exercise(
        &mut seen,
        &admin,
        "get",
        "/orgs/{org}",
        "/orgs/globex".into(),
        None,
    )
    .await;
    exercise(
        &mut seen,
        &admin,
        "get",
        "/orgs/{org}/clients",
        "/orgs/acme/clients".into(),
        None,
    )
    .await;
    let created = exercise(
        &mut seen,
        &admin,
        "post",
        "/orgs/{org}/clients",
        "/orgs/acme/clients".into(),
        Some(json!({"name": "Doc", "expires": "2030-01-01"})),
    )
    .await;
    exercise(
        &mut seen,
        &admin,
        "post",
        "/orgs/{org}/clients",
        "/orgs/acme/clients".into(),
        Some(json!({"name": "Doc"})),
    )
    .await;
    exercise(
        &mut seen,
        &admin,
        "post",
        "/orgs/{org}/clients",
        "/orgs/acme/clients".into(),
        Some(json!({"name": "X", "scopes": ["nope"]})),
    )
    .await;
    exercise(
        &mut seen,
        &admin,
        "post",
        "/orgs/{org}/clients",
        "/orgs/acme/clients".into(),
        Some(json!({"nom": "X"})),
    )
    .await;
    exercise(
        &mut seen,
        &admin,
        "get",
        "/orgs/{org}/clients/{id}",
        "/orgs/acme/clients/doc".into(),
        None,
    )
    .await;
    exercise(
        &mut seen,
        &admin,
        "get",
        "/orgs/{org}/clients/{id}",
        "/orgs/acme/clients/nope".into(),
        None,
    )
    .await;
    exercise(
        &mut seen,
        &admin,
        "patch",
        "/orgs/{org}/clients/{id}",
        "/orgs/acme/clients/doc".into(),
        Some(json!({"token_lifetime": 600, "expires": null})),
    )
    .await;
    let added = exercise(
        &mut seen,
        &admin,
        "post",
        "/orgs/{org}/clients/{id}/secrets",
        "/orgs/acme/clients/doc/secrets".into(),
        Some(json!({"description": "two"})),
    )
    .await;
    let second = added["secret"]["id"].as_str().unwrap().to_owned();
    exercise(
        &mut seen,
        &admin,
        "delete",
        "/orgs/{org}/clients/{id}/secrets/{secret_id}",
        format!("/orgs/acme/clients/doc/secrets/{second}"),
        None,
    )
    .await;
    let first = created["client"]["secrets"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    exercise(
        &mut seen,
        &admin,
        "delete",
        "/orgs/{org}/clients/{id}/secrets/{secret_id}",
        format!("/orgs/acme/clients/doc/secrets/{first}"),
        None,
    )
    .await;
    exercise(
        &mut seen,
        &admin,
        "post",
        "/orgs/{org}/clients/{id}/secrets/regenerate",
        "/orgs/acme/clients/doc/secrets/regenerate".into(),
        None,
    )
    .await;
    exercise(
        &mut seen,
        &admin,
        "post",
        "/orgs/{org}/clients/{id}/revoke-tokens",
        "/orgs/acme/clients/doc/revoke-tokens".into(),
        None,
    )
    .await;
    exercise(
        &mut seen,
        &admin,
        "delete",
        "/orgs/{org}/clients/{id}",
        "/orgs/acme/clients/doc".into(),
        None,
    )
    .await;

    let mut exercised = std::collections::BTreeSet::new();
    for (method, template, status, body) in &seen {
        exercised.insert((*method, *template));
        if let Some(validator) = answer_schema(&doc, method, template, *status) {
            let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{method} {template} {status}: {errors:?}\n{body}"
            );
        } else {
            assert_eq!(
                *body,
                Value::Null,
                "{method} {template} {status} has a body the document does not describe"
            );
        }
    }
    assert_eq!(
        exercised.len(),
        14,
        "every operation but the document itself was exercised: {exercised:?}"
    );
}

/// Where `cargo xtask test` installs schemathesis (PyPI), unless `SCHEMATHESIS` says otherwise.
fn schemathesis() -> std::path::PathBuf {
    std::env::var_os("SCHEMATHESIS")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/schemathesis")
        })
}

/// A schema-driven property test: schemathesis generates requests from the OpenAPI document,
/// as an operator (who may call everything), and checks that no answer is a 5xx and every
/// answer fits the document.
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let gw = setup().start();
    let ops = gw.org_token("vendor", "ops", SECRET).await;
    let output = tokio::process::Command::new(schemathesis())
        .args(["run", &gw.url("/manage/v1/openapi.json")])
        .args(["--url", &gw.url("/manage/v1")])
        .args(["--header", &format!("Authorization: Bearer {ops}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"])
        .args(["--max-examples", "25", "--workers", "2", "--seed", "1"])
        .args(["--request-timeout", "30"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("schemathesis runs (cargo xtask test installs it into .tools/venv)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn an_organisation_changing_too_fast_is_slowed_down_alone() {
    let gw = Setup {
        tables: setup().tables + "max_writes_per_minute = 3\n",
        ..setup()
    }
    .start();
    let acme = api(&gw, "acme", "admin").await;
    for n in 0..3 {
        assert_eq!(
            acme.post("/orgs/acme/clients", json!({"name": format!("c{n}")}))
                .await
                .0,
            201
        );
    }
    let response = acme
        .request(reqwest::Method::POST, "/orgs/acme/clients")
        .json(&json!({"name": "c3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(json(response).await["code"], "too_many_changes");
    // Reads go on; so do other organisations' changes.
    assert_eq!(acme.get("/orgs/acme/clients").await.0, 200);
    let globex = api(&gw, "globex", "admin").await;
    assert_eq!(
        globex
            .post("/orgs/globex/clients", json!({"name": "g"}))
            .await
            .0,
        201
    );
}

/// A registry this instance cannot write (here: its lock cannot be taken) answers 503 with a
/// problem that says so, and names none of the server's files.
#[tokio::test]
async fn an_unwritable_registry_is_503_not_a_lost_change() {
    let gw = setup().start();
    let api = api(&gw, "acme", "admin").await;
    std::fs::create_dir(gw.home.join("orgs/.acme.toml.lock")).unwrap();
    let (status, body) = api
        .post("/orgs/acme/clients", json!({"name": "Blocked"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "registry_unwritable");
    assert!(
        !body["detail"].as_str().unwrap().contains('/')
            || !body["detail"].as_str().unwrap().contains("orgs"),
        "{body}"
    );
    assert_eq!(
        api.get("/orgs/acme/clients/blocked").await.0,
        404,
        "nothing was written"
    );
    gw.wait_for_log("the registry cannot be written", 1);
}
