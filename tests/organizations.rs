//! Organisations (DESIGN §3): each one its own issuer under its own base URL, with its own
//! clients and policy, served by one real gateway in front of a real upstream, in path mode
//! and in host mode.

mod common;

use std::time::{Duration, Instant};

use common::upstream::Upstream;
use common::{claims, client_toml, json, Gateway, Setup, GRANT};
use serde_json::Value;

const SECRET: &str = "org-test-secret";
const GLOBEX_SECRET: &str = "globex-test-secret";

fn acme() -> String {
    format!(
        "[organization]\nname = \"Acme Corp\"\nscopes = [\"payroll.read\", \"payroll.write\"]\n\
         default_roles = [\"tenant-member\"]\nmax_token_lifetime = \"10m\"\n\n{}{}{}",
        client_toml(
            "app",
            SECRET,
            "scopes = [\"payroll.read\"]\nroles = [\"payroll\"]",
            ""
        ),
        client_toml("reader", SECRET, "scopes = [\"payroll.read\"]", ""),
        client_toml("other", SECRET, "", ""),
    )
}

/// Globex has a client with the same id as Acme's, and requires a role.
fn globex() -> String {
    format!(
        "[organization]\nname = \"Globex\"\nscopes = [\"payroll.read\"]\nrequire_role = true\n\n{}{}",
        client_toml("app", GLOBEX_SECRET, "scopes = [\"payroll.read\"]\nroles = [\"hr\"]", ""),
        client_toml("roleless", GLOBEX_SECRET, "scopes = [\"payroll.read\"]", ""),
    )
}

fn routes(up: std::net::SocketAddr) -> String {
    format!(
        r#"
[[route]]
prefix = "/api/"
upstream = "{up}"
org = "path"
scopes = ["payroll.read"]

[[route]]
prefix = "/shared/"
upstream = "{up}"
"#
    )
}

async fn path_mode() -> (Gateway, Upstream) {
    let upstream = Upstream::start().await;
    let gw = Setup::organizations(
        "http://127.0.0.1:PORT/{org}",
        &[("acme", acme()), ("globex", globex())],
    )
    .tables(&routes(upstream.addr))
    .issuer("token_paths = [\"/connect/token\", \"/as/token.oauth2\"]")
    .start();
    (gw, upstream)
}

async fn get(gw: &Gateway, path: &str, token: &str) -> reqwest::Response {
    gw.http
        .get(gw.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn each_organisation_issues_its_own_tokens_under_its_own_base() {
    let (gw, _upstream) = path_mode().await;
    let token = gw.org_token("acme", "app", SECRET).await;
    let c = claims(&token);
    assert_eq!(c["iss"], gw.url("/acme"));
    assert_eq!(c["org_id"], "acme");
    assert_eq!(c["client_id"], "app");
    assert_eq!(c["aud"], "test-api");
    assert_eq!(c["roles"], serde_json::json!(["tenant-member", "payroll"]));
    // The organisation's max_token_lifetime (10m) narrows the issuer's default (1h).
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);

    // The same id in Globex is another client, with another secret.
    let globex = gw.org_token("globex", "app", GLOBEX_SECRET).await;
    assert_eq!(claims(&globex)["iss"], gw.url("/globex"));
    assert_eq!(claims(&globex)["roles"], serde_json::json!(["hr"]));
    let crossed = gw.token_at("/globex/connect/token", "app", SECRET).await;
    assert_eq!(crossed.status(), 401);

    // Every alias of the token path lives under each organisation's base.
    let alias = gw
        .token_at("/globex/as/token.oauth2", "app", GLOBEX_SECRET)
        .await;
    assert_eq!(alias.status(), 200);
    let alias = json(alias).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(claims(&alias)["iss"], gw.url("/globex"));

    // No issuer at the root, none for an unknown organisation.
    for path in [
        "/connect/token",
        "/as/token.oauth2",
        "/nope/connect/token",
        "/Acme/connect/token",
    ] {
        let response = gw.token_at(path, "app", SECRET).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    // A scope outside the client's is refused as ever.
    let response = gw
        .http
        .post(gw.url("/acme/connect/token"))
        .basic_auth("app", Some(SECRET))
        .form(&[GRANT, ("scope", "payroll.write")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(json(response).await["error"], "invalid_scope");
}

#[tokio::test]
async fn an_org_route_admits_only_its_organisations_tokens() {
    let (gw, upstream) = path_mode().await;
    let acme = gw.org_token("acme", "app", SECRET).await;
    let globex = gw.org_token("globex", "app", GLOBEX_SECRET).await;

    let response = gw
        .http
        .get(gw.url("/acme/api/payslips"))
        .bearer_auth(&acme)
        .header("x-credgate-org-id", "globex")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = upstream.seen().pop().unwrap();
    assert_eq!(seen.target, "/acme/api/payslips", "the raw path, unchanged");
    assert_eq!(seen.headers["x-credgate-org-id"], "acme");
    assert_eq!(seen.headers.get_all("x-credgate-org-id").iter().count(), 1);
    assert_eq!(seen.headers["x-credgate-client-id"], "app");

    let refused = get(&gw, "/acme/api/payslips", &globex).await;
    assert_eq!(refused.status(), 401);
    let header = challenge(&refused);
    assert!(header.contains("error=\"invalid_token\""), "{header}");
    assert!(
        header.contains("issued by another organisation"),
        "{header}"
    );
    assert_eq!(get(&gw, "/globex/api/payslips", &acme).await.status(), 401);
    assert_eq!(
        get(&gw, "/globex/api/payslips", &globex).await.status(),
        200
    );

    // A route without `org` admits every organisation's tokens and says whose they are.
    let seen_before = upstream.seen().len();
    assert_eq!(get(&gw, "/shared/x", &globex).await.status(), 200);
    let seen = &upstream.seen()[seen_before];
    assert_eq!(seen.headers["x-credgate-org-id"], "globex");
    // Org routes exist only under an organisation's base.
    assert_eq!(get(&gw, "/api/payslips", &acme).await.status(), 404);
    assert_eq!(get(&gw, "/nope/api/payslips", &acme).await.status(), 404);
}

#[tokio::test]
async fn introspection_at_another_organisation_says_inactive() {
    let (gw, _upstream) = path_mode().await;
    let acme = gw.org_token("acme", "app", SECRET).await;
    let introspect = |org: &'static str, client: &'static str, secret: &'static str| {
        let request = gw
            .http
            .post(gw.url(&format!("/{org}/connect/introspect")))
            .basic_auth(client, Some(secret))
            .form(&[("token", acme.as_str())]);
        async move { json(request.send().await.unwrap()).await }
    };
    let at_acme = introspect("acme", "reader", SECRET).await;
    assert_eq!(at_acme["active"], true);
    assert_eq!(at_acme["org_id"], "acme");
    assert_eq!(at_acme["iss"], gw.url("/acme"));
    let at_globex = introspect("globex", "app", GLOBEX_SECRET).await;
    assert_eq!(at_globex, serde_json::json!({"active": false}));
}

#[tokio::test]
async fn discovery_documents_name_each_organisations_own_urls() {
    let (gw, _upstream) = path_mode().await;
    let paths = [
        "/acme/.well-known/openid-configuration",
        "/acme/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/acme",
    ];
    let mut documents = Vec::new();
    for path in paths {
        let response = gw.http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        documents.push(json(response).await);
    }
    assert!(documents.iter().all(|d| *d == documents[0]));
    let m = &documents[0];
    assert_eq!(m["issuer"], gw.url("/acme"));
    assert_eq!(m["token_endpoint"], gw.url("/acme/connect/token"));
    assert_eq!(m["jwks_uri"], gw.url("/acme/.well-known/jwks.json"));
    assert_eq!(
        m["introspection_endpoint"],
        gw.url("/acme/connect/introspect")
    );
    assert_eq!(
        m["scopes_supported"],
        serde_json::json!(["payroll.read", "payroll.write"])
    );
    let jwks = gw.get_json("/globex/.well-known/jwks.json").await;
    assert_eq!(
        jwks,
        gw.get_json("/acme/.well-known/jwks.json").await,
        "keys are shared"
    );
    for missing in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/nope",
        "/nope/.well-known/jwks.json",
    ] {
        let response = gw.http.get(gw.url(missing)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
    }
}

/// A real OAuth client library (openid-client, jose) that is given only an organisation's
/// issuer URL finds everything else in its discovery documents: OIDC discovery and the RFC 8414
/// path-inserted form, token, JWKS verification and introspection.
#[tokio::test]
async fn a_real_oauth_client_needs_only_the_issuer_url() {
    let (gw, _upstream) = path_mode().await;
    for (org, client, secret) in [("acme", "app", SECRET), ("globex", "app", GLOBEX_SECRET)] {
        for algorithm in ["oidc", "oauth2"] {
            let issuer = gw.url(&format!("/{org}"));
            let output = tokio::process::Command::new("node")
                .arg("tests/oauth-client/client.mjs")
                .args([&issuer, client, secret, "test-api", algorithm])
                .output()
                .await
                .expect("node runs (cargo xtask test installs tests/oauth-client)");
            assert!(
                output.status.success(),
                "{org} {algorithm}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let result: Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(result["token_endpoint"], format!("{issuer}/connect/token"));
            assert_eq!(result["claims"]["iss"], issuer);
            assert_eq!(result["claims"]["org_id"], org);
            assert_eq!(result["introspection"]["active"], true);
            assert_eq!(result["introspection"]["org_id"], org);
        }
    }
}

#[tokio::test]
async fn organisation_policy_is_enforced_at_issuance() {
    let (gw, _upstream) = path_mode().await;
    // Default roles are carried even by a client that lists none.
    let reader = gw.org_token("acme", "reader", SECRET).await;
    assert_eq!(
        claims(&reader)["roles"],
        serde_json::json!(["tenant-member"])
    );

    // Globex requires a role of the client's own: the secret is proven, so the caller is told.
    let refused = gw
        .token_at("/globex/connect/token", "roleless", GLOBEX_SECRET)
        .await;
    assert_eq!(refused.status(), 401);
    let body = json(refused).await;
    assert_eq!(body["error"], "invalid_client");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("requires a role"), "{description}");
    // A wrong secret learns nothing more than ever.
    let wrong = gw
        .token_at("/globex/connect/token", "roleless", "wrong")
        .await;
    let body = json(wrong).await;
    assert_eq!(body["error_description"], "client authentication failed");
}

fn edit(gw: &Gateway, org: &str, text: &str) {
    let path = gw.home.join("orgs").join(format!("{org}.toml"));
    let tmp = gw.home.join(format!(".{org}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `check` until it holds (a reload applied) or 10 s pass.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn disabling_an_organisation_kills_its_live_tokens_cached_or_not() {
    let (gw, _upstream) = path_mode().await;
    let cached = gw.org_token("acme", "app", SECRET).await;
    let uncached = gw.org_token("acme", "reader", SECRET).await;
    let globex = gw.org_token("globex", "app", GLOBEX_SECRET).await;
    assert_eq!(get(&gw, "/acme/api/x", &cached).await.status(), 200);

    edit(
        &gw,
        "acme",
        &acme().replace(
            "name = \"Acme Corp\"",
            "name = \"Acme Corp\"\nenabled = false",
        ),
    );
    eventually("acme disabled", || async {
        get(&gw, "/acme/api/x", &cached).await.status() == 401
    })
    .await;
    let refused = get(&gw, "/acme/api/x", &uncached).await;
    assert_eq!(refused.status(), 401);
    assert!(challenge(&refused).contains("organisation is disabled"));
    assert_eq!(get(&gw, "/shared/x", &cached).await.status(), 401);
    let response = gw.token_at("/acme/connect/token", "app", SECRET).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        json(response).await["error_description"],
        "the organisation is disabled"
    );
    // Globex is untouched.
    assert_eq!(get(&gw, "/globex/api/x", &globex).await.status(), 200);
    let metrics = gw.metrics().await;
    assert_eq!(metrics["credgate_organizations{state=\"disabled\"}"], 1.0);
    assert_eq!(metrics["credgate_organizations{state=\"enabled\"}"], 1.0);
    assert_eq!(metrics["credgate_clients{state=\"disabled\"}"], 3.0);
    assert_eq!(metrics["credgate_clients{state=\"enabled\"}"], 2.0);
}

#[tokio::test]
async fn a_bad_organisation_file_is_refused_alone_and_files_come_and_go_while_serving() {
    let (gw, _upstream) = path_mode().await;
    let acme_token = gw.org_token("acme", "app", SECRET).await;
    let globex_token = gw.org_token("globex", "app", GLOBEX_SECRET).await;

    // Globex's file breaks: its client `app` now names a scope Globex does not offer.
    let broken = globex().replace(
        "scopes = [\"payroll.read\"]\nroles = [\"hr\"]",
        "scopes = [\"payroll.admin\"]\nroles = [\"hr\"]",
    );
    edit(&gw, "globex", &broken);
    gw.wait_for_log("registry reload rejected", 1);
    let log = gw.log();
    assert!(
        log.contains("globex.toml:"),
        "the error names the file and line:\n{log}"
    );
    assert!(
        log.contains("globex/app"),
        "and the client taken out:\n{log}"
    );
    // Only what the refused file still grants stays: globex/app is out, Acme serves on.
    assert_eq!(get(&gw, "/globex/api/x", &globex_token).await.status(), 401);
    assert_eq!(get(&gw, "/acme/api/x", &acme_token).await.status(), 200);
    assert_eq!(gw.metrics().await["credgate_registry_valid"], 0.0);

    // A new file adds an organisation while serving...
    let initech = format!(
        "[organization]\nname = \"Initech\"\nscopes = [\"payroll.read\"]\n\n{}",
        client_toml("app", SECRET, "scopes = [\"payroll.read\"]", "")
    );
    edit(&gw, "initech", &initech);
    eventually("initech added", || async {
        gw.token_at("/initech/connect/token", "app", SECRET)
            .await
            .status()
            == 200
    })
    .await;
    // Globex is still refused: the registry is not valid yet.
    assert_eq!(gw.metrics().await["credgate_registry_valid"], 0.0);
    // ... and removing one takes it out, its tokens with it.
    std::fs::remove_file(gw.home.join("orgs/acme.toml")).unwrap();
    eventually("acme removed", || async {
        get(&gw, "/acme/api/x", &acme_token).await.status() == 404
    })
    .await;
    assert_eq!(get(&gw, "/shared/x", &acme_token).await.status(), 401);
    // Globex fixed: valid again.
    edit(&gw, "globex", &globex());
    eventually("globex fixed", || async {
        get(&gw, "/globex/api/x", &globex_token).await.status() == 200
    })
    .await;
    assert_eq!(gw.metrics().await["credgate_registry_valid"], 1.0);
}

#[tokio::test]
async fn host_mode_reads_the_organisation_from_the_host() {
    let upstream = Upstream::start().await;
    let up = upstream.addr;
    let gw = Setup::organizations(
        "http://{org}.api.test",
        &[("acme", acme()), ("globex", globex())],
    )
    .tables(&format!(
        "[[route]]\nprefix = \"/api/\"\nupstream = \"{up}\"\norg = \"path\"\n"
    ))
    .start();
    let post = |host: &str, path: &str| {
        gw.http
            .post(gw.url(path))
            .header("host", host)
            .basic_auth("app", Some(SECRET))
            .form(&[GRANT])
    };
    let response = post("acme.api.test", "/connect/token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token = json(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(claims(&token)["iss"], "http://acme.api.test");
    let metadata = gw
        .http
        .get(gw.url("/.well-known/openid-configuration"))
        .header("host", "ACME.api.test")
        .send()
        .await
        .unwrap();
    assert_eq!(metadata.status(), 404, "an id is lower case");
    let metadata = gw
        .http
        .get(gw.url("/.well-known/openid-configuration"))
        .header("host", "acme.API.test:80")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(metadata).await["token_endpoint"],
        "http://acme.api.test/connect/token"
    );

    let call = |host: &str| {
        gw.http
            .get(gw.url("/api/x"))
            .header("host", host)
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(call("acme.api.test").await.unwrap().status(), 200);
    assert_eq!(call("globex.api.test").await.unwrap().status(), 401);
    for unknown in ["nope.api.test", "a.b.api.test", "-x.api.test"] {
        assert_eq!(call(unknown).await.unwrap().status(), 404, "{unknown}");
        let response = post(unknown, "/connect/token").send().await.unwrap();
        assert_eq!(response.status(), 404, "{unknown}");
    }
    // Not an organisation's host at all: no issuer there.
    let response = post("api.test", "/connect/token").send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(upstream.seen().len(), 1);

    // An absolute-form target naming one organisation with the Host of another is refused
    // (by Pingora's ingress check) before credgate picks either.
    let auth = format!("Authorization: Bearer {token}\r\n");
    for (target, host, expected) in [
        (
            "http://globex.api.test/api/x",
            "acme.api.test",
            "HTTP/1.1 400",
        ),
        (
            "http://acme.api.test/api/x",
            "acme.api.test",
            "HTTP/1.1 200",
        ),
    ] {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
        let mut stream = tokio::net::TcpStream::connect(gw.base.trim_start_matches("http://"))
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(expected), "{target} / {host}: {answer}");
    }
    assert_eq!(upstream.seen().len(), 2);
}

#[test]
fn check_reports_every_problem_across_organisation_files() {
    let dir = tempfile::tempdir().unwrap();
    let orgs = dir.path().join("orgs");
    std::fs::create_dir(&orgs).unwrap();
    std::fs::write(orgs.join("acme.toml"), acme()).unwrap();
    std::fs::write(
        orgs.join("globex.toml"),
        globex().replace("require_role = true", "require_role = true\nsurprise = 1"),
    )
    .unwrap();
    std::fs::write(orgs.join("Bad_Name.toml"), acme()).unwrap();
    std::fs::write(orgs.join("manage.toml"), acme()).unwrap();
    let config = dir.path().join("credgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n[issuer]\nkeys_dir = \"{}\"\naudience = \"a\"\n\
             [organizations]\ndir = \"{}\"\nissuer_template = \"https://api.example.com/{{org}}\"\n",
            dir.path().join("keys").display(),
            orgs.display()
        ),
    )
    .unwrap();
    let output = common::cli(&config, &["check"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("globex.toml:1: organization"), "{stderr}");
    assert!(stderr.contains("surprise"), "{stderr}");
    assert!(stderr.contains("Bad_Name.toml"), "{stderr}");
    assert!(stderr.contains("\"manage\" is a reserved name"), "{stderr}");

    std::fs::remove_file(orgs.join("Bad_Name.toml")).unwrap();
    std::fs::remove_file(orgs.join("manage.toml")).unwrap();
    std::fs::write(orgs.join("globex.toml"), globex()).unwrap();
    let output = common::cli(&config, &["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("2 organisation(s), 5 client(s)"),
        "{stdout}"
    );
}

#[test]
fn organizations_replace_the_registry_and_the_issuer_url() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("credgate.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:1\"\n[issuer]\nissuer = \"https://x\"\nkeys_dir = \"k\"\n\
         audience = \"a\"\n[registry]\npath = \"c.toml\"\n[organizations]\ndir = \"orgs\"\n\
         issuer_template = \"https://api.example.com/x{org}\"\n[[route]]\nprefix = \"/a/\"\n\
         upstream = \"127.0.0.1:1\"\norg = \"host\"\n",
    )
    .unwrap();
    let output = common::cli(&config, &["check"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "issuer.issuer: [organizations] replaces it",
        "registry: [organizations] replaces it",
        "organizations.issuer_template",
        "must start a segment",
        "route[0].org",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

/// Two organisations with the very same file (same client id, secret hash, scopes and roles):
/// what is shared or cached per client must still tell them apart.
#[tokio::test]
async fn identical_clients_of_two_organisations_stay_apart() {
    let upstream = Upstream::start().await;
    let gw = Setup::organizations(
        "http://127.0.0.1:PORT/{org}",
        &[("acme", acme()), ("initech", acme())],
    )
    .tables(&routes(upstream.addr))
    .start();
    for org in ["acme", "initech", "acme", "initech"] {
        let token = gw.org_token(org, "app", SECRET).await;
        assert_eq!(claims(&token)["org_id"], org);
        assert_eq!(get(&gw, "/shared/x", &token).await.status(), 200);
        let seen = upstream.seen().pop().unwrap();
        assert_eq!(seen.headers["x-credgate-org-id"], org);
        let own = get(&gw, &format!("/{org}/api/x"), &token).await;
        assert_eq!(own.status(), 200);
        let other = if org == "acme" { "initech" } else { "acme" };
        assert_eq!(
            get(&gw, &format!("/{other}/api/x"), &token).await.status(),
            401
        );
    }
}

/// A change made to a token's claims.
type Edit = dyn Fn(&mut Value);

/// A token signed with the shared key still names its issuer: `iss` must be the issuer of the
/// organisation in `org_id`, and under a template every token needs an `org_id`.
#[tokio::test]
async fn a_token_whose_iss_and_org_id_disagree_is_refused() {
    let (gw, upstream) = path_mode().await;
    let genuine = claims(&gw.org_token("acme", "app", SECRET).await);
    let (key, kid) = gw.signing_key();
    let forge = |edit: &Edit| {
        let mut c = genuine.clone();
        edit(&mut c);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, &c, &key).unwrap()
    };
    let unchanged = forge(&|_| {});
    assert_eq!(
        get(&gw, "/acme/api/x", &unchanged).await.status(),
        200,
        "the forge works"
    );
    let globex_iss = gw.url("/globex");
    let cases: [(&str, Box<Edit>); 3] = [
        (
            "org_id of another",
            Box::new(|c| c["org_id"] = "globex".into()),
        ),
        (
            "iss of another",
            Box::new(move |c| c["iss"] = globex_iss.clone().into()),
        ),
        (
            "no org_id",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("org_id");
            }),
        ),
    ];
    for (case, edit) in cases {
        let token = forge(edit.as_ref());
        for path in ["/acme/api/x", "/globex/api/x", "/shared/x"] {
            let response = get(&gw, path, &token).await;
            assert_eq!(response.status(), 401, "{case} at {path}");
            assert!(challenge(&response).contains("another issuer"), "{case}");
        }
    }
    assert_eq!(upstream.seen().len(), 1);
}

fn run(gw: &Gateway, args: &[&str]) -> (bool, String, String) {
    let output = gw.cli(args);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_manages_organisations_and_their_clients_while_serving() {
    let gw = Setup::organizations("http://127.0.0.1:PORT/{org}", &[]).start();
    let (ok, out, err) = run(
        &gw,
        &[
            "org",
            "add",
            "acme",
            "--name",
            "Acme Corp",
            "--scope",
            "payroll.read",
            "--default-role",
            "tenant-member",
            "--max-token-lifetime",
            "30m",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("Created organisation \"acme\""), "{out}");
    for (args, expected) in [
        (
            &["org", "add", "acme", "--name", "Again"][..],
            "already exists",
        ),
        (
            &["org", "add", "Acme", "--name", "X"][..],
            "not an organisation id",
        ),
        (&["org", "add", "manage", "--name", "X"][..], "reserved"),
        (
            &[
                "org",
                "add",
                "x",
                "--name",
                "X",
                "--max-token-lifetime",
                "9h",
            ][..],
            "longer than",
        ),
        (
            &["client", "add", "--name", "App"][..],
            "name one with --org",
        ),
        (
            &["client", "add", "--org", "nope", "--name", "App"][..],
            "no organisation \"nope\"",
        ),
        (
            &[
                "client",
                "add",
                "--org",
                "acme",
                "--name",
                "App",
                "--scope",
                "payroll.write",
            ][..],
            "not in the organisation's scopes",
        ),
    ] {
        let (ok, _, err) = run(&gw, args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(expected), "{args:?}: {err}");
    }

    let (ok, out, err) = run(
        &gw,
        &[
            "client",
            "add",
            "--org",
            "acme",
            "--name",
            "App",
            "--scope",
            "payroll.read",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(out.trim()).unwrap();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let (ok, out, _) = run(&gw, &["client", "list", "--org", "acme"]);
    assert!(ok && out.contains("app"), "{out}");
    let (ok, out, _) = run(&gw, &["org", "list"]);
    assert!(ok, "{out}");
    let row = out.lines().find(|l| l.starts_with("acme")).unwrap();
    assert!(
        row.contains("enabled") && row.contains("payroll.read") && row.contains("Acme Corp"),
        "{row}"
    );
    let (ok, out, _) = run(&gw, &["org", "show", "acme"]);
    assert!(
        ok && out.contains("tenant-member") && out.contains("30m"),
        "{out}"
    );

    // The running gateway picked the new organisation and client up.
    eventually("acme's client gets a token", || async {
        gw.token_at("/acme/connect/token", "app", &secret)
            .await
            .status()
            == 200
    })
    .await;
    let token = gw.org_token("acme", "app", &secret).await;
    assert_eq!(
        claims(&token)["roles"],
        serde_json::json!(["tenant-member"])
    );

    let (ok, out, err) = run(&gw, &["secret", "add", "app", "--org", "acme", "--json"]);
    assert!(ok, "{err}");
    let second: Value = serde_json::from_str(out.trim()).unwrap();
    let second = second["client_secret"].as_str().unwrap().to_owned();
    eventually("the second secret works", || async {
        gw.token_at("/acme/connect/token", "app", &second)
            .await
            .status()
            == 200
    })
    .await;

    let (ok, _, err) = run(&gw, &["org", "disable", "acme"]);
    assert!(ok, "{err}");
    eventually("acme disabled", || async {
        gw.token_at("/acme/connect/token", "app", &secret)
            .await
            .status()
            == 401
    })
    .await;
    let (ok, _, err) = run(&gw, &["org", "enable", "acme"]);
    assert!(ok, "{err}");
    eventually("acme enabled", || async {
        gw.token_at("/acme/connect/token", "app", &secret)
            .await
            .status()
            == 200
    })
    .await;

    let (ok, _, err) = run(&gw, &["org", "remove", "acme"]);
    assert!(
        !ok && err.contains("1 client(s)") && err.contains("--force"),
        "{err}"
    );
    let (ok, _, err) = run(&gw, &["org", "remove", "acme", "--force"]);
    assert!(ok, "{err}");
    eventually("acme removed", || async {
        gw.token_at("/acme/connect/token", "app", &secret)
            .await
            .status()
            == 404
    })
    .await;
}
