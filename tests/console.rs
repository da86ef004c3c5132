//! The web console (DESIGN §3) in a real browser: Debian's chromium, driven by playwright-core
//! (`tests/console/flows.mjs`), against a real gateway in front of a real upstream. Each test
//! starts the gateway, runs one scenario of the administrators' flows and checks what the
//! scenario reports against the gateway's own files.

mod common;

use std::time::Duration;

use common::upstream::Upstream;
use common::{client_toml, Gateway, Setup};
use credgate::testing::hash_secret;
use serde_json::{json, Value};

const SECRET: &str = "console-test-secret";
/// A client name that is markup: it must be shown as text.
const HOSTILE_NAME: &str = "<img src=x onerror=window.__xss=1>";

fn org(name: &str, scopes: &str, default_roles: &str, clients: &str) -> String {
    format!(
        "[organization]\nname = \"{name}\"\nscopes = [{scopes}]\ndefault_roles = [{default_roles}]\n\n{clients}"
    )
}

/// A client named `name` holding `scopes`, with `extra` lines in its table and
/// `secret_extra` in its secret's.
fn named(id: &str, name: &str, scopes: &str, extra: &str, secret_extra: &str) -> String {
    client_toml(
        id,
        SECRET,
        &format!("scopes = [{scopes}]\n{extra}"),
        secret_extra,
    )
    .replacen(
        &format!("name = \"Client {id}\""),
        &format!("name = {name:?}"),
        1,
    )
}

/// A client whose one valid secret (`current`) sits beside an expired one (`lapsed`).
fn rotating() -> String {
    let client = named(
        "rotating",
        "Rotating",
        "\"payroll.read\"",
        "",
        "id = \"current\"",
    );
    format!(
        "{}[[client.secret]]\nid = \"lapsed\"\ndescription = \"lapsed\"\nhash = \"{}\"\n\
         expires = \"2020-01-01\"\n\n",
        client.replacen("description = \"test\"", "description = \"current\"", 1),
        hash_secret("lapsed-secret")
    )
}

/// The instant `days` from now, RFC 3339.
fn in_days(days: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Acme (an administrator, an app whose secret expires in 10 days, a short-lived
/// administrator, an expired client), Globex, and the operators' organisation; `/api/` under each organisation is protected.
async fn start() -> (Gateway, Upstream) {
    start_with("http://127.0.0.1:PORT/{org}").await
}

/// The same, with issuer template `template`.
async fn start_with(template: &str) -> (Gateway, Upstream) {
    let upstream = Upstream::start().await;
    let manage = "\"credgate:manage\"";
    let acme = org(
        "Acme Corp",
        "\"payroll.read\", \"payroll.write\", \"credgate:manage\"",
        "\"tenant-member\"",
        &[
            named("admin", "Acme admin", manage, "", ""),
            named(
                "app",
                "Existing app",
                "\"payroll.read\"",
                "",
                &format!("expires = \"{}\"", in_days(10)),
            ),
            named(
                "short",
                "Short session",
                manage,
                "token_lifetime = \"3s\"",
                "",
            ),
            named(
                "old",
                "Old export",
                "\"payroll.read\"",
                "expires = \"2020-01-01\"",
                "",
            ),
            rotating(),
        ]
        .concat(),
    );
    let globex = org(
        "Globex",
        "\"payroll.read\", \"credgate:manage\"",
        "",
        &[
            named("admin", "Globex admin", manage, "", ""),
            named("app", "Globex app", "\"payroll.read\"", "", ""),
        ]
        .concat(),
    );
    let vendor = org(
        "Vendor",
        manage,
        "",
        &named("ops", "Operations", manage, "", ""),
    );
    let gw = Setup::organizations(
        template,
        &[("acme", acme), ("globex", globex), ("vendor", vendor)],
    )
    .issuer("min_token_lifetime = \"1s\"\nfailure_limit_per_client = 0\nfailure_limit_per_ip = 0")
    .tables(&format!(
        "[manage]\noperator_org = \"vendor\"\naudit_log = \"@HOME@/audit.log\"\nconsole = true\n\n\
         [[route]]\nprefix = \"/api/\"\nupstream = \"{}\"\norg = \"path\"\nscopes = [\"payroll.read\"]\n",
        upstream.addr
    ))
    .start();
    (gw, upstream)
}

fn credentials(org: &str, client: &str) -> Value {
    json!({"org": org, "client": client, "secret": SECRET})
}

/// Runs `scenario` of `tests/console/flows.mjs` against `gw` with `settings` (plus `base`);
/// what it reports.
async fn run(gw: &Gateway, scenario: &str, mut settings: Value) -> Value {
    settings["base"] = json!(gw.base);
    settings["admin"] = credentials("acme", "admin");
    let mut command = tokio::process::Command::new("node");
    command
        .arg("tests/console/flows.mjs")
        .arg(scenario)
        .arg(settings.to_string());
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the scenario ends within 2 minutes")
        .expect("node runs (cargo xtask test installs tests/console and chromium)");
    assert!(
        output.status.success(),
        "{scenario}:\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        gw.log()
    );
    serde_json::from_slice(&output.stdout).expect("the scenario reports JSON")
}

fn audit_actions(gw: &Gateway) -> Vec<(String, String)> {
    std::fs::read_to_string(gw.home.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Sign in; add a client and read its secret off the page; use it; add a second secret, use
/// it; remove the first; regenerate; add a role and see it in the next token; disable and see
/// the held token refused; revoke; delete. Nothing lands in storage, cookies or the URL.
#[tokio::test]
async fn an_administrator_walks_the_client_lifecycle() {
    let (gw, upstream) = start().await;
    let seen = run(&gw, "clients", json!({})).await;
    assert_eq!(seen["client_id"], "payroll-sync");
    // The page's last secret belonged to a client that is gone.
    let gone = gw
        .token_at(
            "/acme/connect/token",
            "payroll-sync",
            seen["secret"].as_str().unwrap(),
        )
        .await;
    assert_eq!(gone.status(), 401);
    // Every change went through the API as the signed-in administrator.
    let actions = audit_actions(&gw);
    assert!(actions.iter().all(|(actor, _)| actor == "acme/admin"));
    let names: Vec<&str> = actions.iter().map(|(_, a)| a.as_str()).collect();
    for action in [
        "client.create",
        "secret.add",
        "secret.remove",
        "client.delete",
    ] {
        assert!(names.contains(&action), "{action} missing from {names:?}");
    }
    let file = std::fs::read_to_string(gw.home.join("orgs/acme.toml")).unwrap();
    assert!(!file.contains("payroll-sync"), "{file}");
    assert!(upstream
        .seen()
        .iter()
        .all(|s| s.headers["x-credgate-org-id"] == "acme"));
}

/// Wrong credentials and an unknown organisation are explained; a pasted bearer token signs
/// in; an organisation's administrator cannot reach another organisation's clients.
#[tokio::test]
async fn an_organisation_administrator_sees_only_their_organisation() {
    let (gw, _upstream) = start().await;
    let globex = gw.org_token("globex", "admin", SECRET).await;
    run(&gw, "isolation", json!({"globex_token": globex})).await;
}

/// Operators get an organisation picker and the organisation list.
#[tokio::test]
async fn an_operator_picks_any_organisation() {
    let (gw, _upstream) = start().await;
    run(
        &gw,
        "operator",
        json!({"operator": credentials("vendor", "ops")}),
    )
    .await;
}

/// A client named `<img src=x onerror=...>` is shown as text, and the page's CSP stops a
/// script injected into it.
#[tokio::test]
async fn markup_in_a_client_name_is_shown_as_text_and_injected_script_is_blocked() {
    let (gw, _upstream) = start().await;
    let token = gw.org_token("acme", "admin", SECRET).await;
    let created = gw
        .http
        .post(gw.url("/manage/v1/orgs/acme/clients"))
        .bearer_auth(token)
        .json(&json!({"name": HOSTILE_NAME, "id": "hostile"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let seen = run(&gw, "xss", json!({"hostile_name": HOSTILE_NAME})).await;
    assert!(!seen["violations"].as_array().unwrap().is_empty());
}

/// In host mode (`http://{org}.localhost:PORT`, which chromium resolves to loopback) the
/// console at an organisation's host signs in to that organisation without asking for it.
#[tokio::test]
async fn in_host_mode_the_host_names_the_organisation() {
    let (gw, _upstream) = start_with("http://{org}.localhost:PORT").await;
    let host_base = gw.base.replace("127.0.0.1", "acme.localhost");
    run(&gw, "host_mode", json!({"host_base": host_base})).await;
}

/// The console signs out when its token expires, and says so.
#[tokio::test]
async fn the_console_signs_out_when_its_token_expires() {
    let (gw, _upstream) = start().await;
    run(
        &gw,
        "expiry",
        json!({"short": credentials("acme", "short")}),
    )
    .await;
}

/// The pages' security headers, caching, and the settings the script reads.
#[tokio::test]
async fn the_console_is_served_with_a_strict_policy() {
    let (gw, _upstream) = start().await;
    let page = gw
        .http
        .get(gw.url("/manage/v1/console/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "{html}"
    );
    let script = html
        .split('"')
        .find(|s| s.ends_with("/console.js"))
        .expect("the page names its script");
    let asset = gw.http.get(gw.url(script)).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert!(asset.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));

    let settings = gw.get_json("/manage/v1/console/settings.json").await;
    assert_eq!(settings["token_path"], "/{org}/connect/token");
    assert_eq!(settings["scope"], "credgate:manage");
    assert_eq!(settings["org_in_path"], true);

    // The redirect keeps the organisation prefill; nothing is served beside the console.
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(gw.url("/manage/v1/console?org=acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/manage/v1/console/?org=acme");
    let missing = gw
        .http
        .get(gw.url("/manage/v1/console/secrets.txt"))
        .send()
        .await;
    assert_eq!(missing.unwrap().status(), 404);
}
