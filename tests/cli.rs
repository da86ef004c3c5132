//! The admin command line against real registry files and a real gateway.

mod common;

use common::{cli, client_toml, json, Setup, GRANT};

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "credgate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// `--json` prints exactly one JSON object: the client id, the new secret and its id.
fn created(output: &std::process::Output) -> (String, String) {
    let out = stdout(output);
    assert_eq!(out.lines().count(), 1, "exactly one line: {out}");
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value.as_object().unwrap().len(), 3, "{value}");
    assert_eq!(value["secret_id"].as_str().unwrap().len(), 12, "{value}");
    let id = value["client_id"].as_str().unwrap().to_owned();
    let secret = value["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "32 random bytes, base64url");
    (id, secret)
}

#[tokio::test]
async fn add_serve_rotate_restart_round_trip() {
    let gw = Setup::new("# an empty registry\n").start();
    let added = gw.cli(&[
        "client",
        "add",
        "--name",
        "Hire New Employees",
        "--scope",
        "hr.read",
        "--token-lifetime",
        "15m",
        "--json",
    ]);
    let (id, first) = created(&added);
    assert_eq!(id, "hire-new-employees");
    let registry = std::fs::read_to_string(gw.home.join("clients.toml")).unwrap();
    assert!(
        registry.starts_with("# an empty registry\n"),
        "comments kept:\n{registry}"
    );
    assert!(!registry.contains(&first), "only the hash is stored");

    let gw = gw.restart();
    let body = json(gw.token(Some((&id, &first)), &[GRANT]).await).await;
    assert_eq!(body["scope"], "hr.read");
    assert_eq!(body["expires_in"], 900);

    let (_, second) = created(&gw.cli(&["secret", "rotate", &id, "--json"]));
    assert_ne!(first, second);

    let gw = gw.restart();
    let refused = gw.token(Some((&id, &first)), &[GRANT]).await;
    common::assert_oauth_error(refused, 401, "invalid_client", true).await;
    assert_eq!(gw.token_status(&id, &second).await, 200);
}

#[tokio::test]
async fn a_second_secret_overlaps_until_the_first_is_removed() {
    let gw = Setup::new(client_toml("svc", "first-secret", "", "")).start();
    let (_, second) =
        created(&gw.cli(&["secret", "add", "svc", "--secret-expires", "30d", "--json"]));
    let show = stdout(&gw.cli(&["client", "show", "svc"]));
    assert!(
        !show.contains(&second) && !show.contains("$argon2id"),
        "no secret or hash shown:\n{show}"
    );
    let first_ref = show
        .lines()
        .find(|l| l.contains("test"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let gw = gw.restart();
    assert_eq!(gw.token_status("svc", "first-secret").await, 200);
    assert_eq!(gw.token_status("svc", &second).await, 200);
    let removed = gw.cli(&["secret", "remove", "svc", &first_ref]);
    assert!(stdout(&removed).contains("Removed secret"));

    let gw = gw.restart();
    assert_eq!(gw.token_status("svc", "first-secret").await, 401);
    assert_eq!(gw.token_status("svc", &second).await, 200);
    let unknown = gw.cli(&["secret", "remove", "svc", "nosuchref"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("has no secret \"nosuchref\""));
}

#[tokio::test]
async fn disable_enable_and_remove_take_effect_after_a_restart() {
    let registry = client_toml("svc", "pw", "", "") + &client_toml("other", "pw", "", "");
    let gw = Setup::new(registry).start();
    stdout(&gw.cli(&["client", "disable", "svc"]));
    let gw = gw.restart();
    assert_eq!(gw.token_status("svc", "pw").await, 401);
    let list = stdout(&gw.cli(&["client", "list"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("svc") && l.contains("disabled")),
        "{list}"
    );

    stdout(&gw.cli(&["client", "enable", "svc"]));
    stdout(&gw.cli(&["client", "remove", "other"]));
    let gw = gw.restart();
    assert_eq!(gw.token_status("svc", "pw").await, 200);
    assert_eq!(gw.token_status("other", "pw").await, 401);
    let missing = gw.cli(&["client", "disable", "other"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no client with id \"other\""));
}

#[test]
fn an_edit_that_would_break_the_registry_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let before = client_toml("svc", "pw", "", "");
    std::fs::write(dir.path().join("clients.toml"), &before).unwrap();
    let cases: [&[&str]; 4] = [
        &[
            "client",
            "add",
            "--name",
            "Too Long",
            "--token-lifetime",
            "5h",
        ],
        &["client", "add", "--name", "Dup", "--id", "svc"],
        &["client", "add", "--name", "Bad Id", "--id", "bad id"],
        &["client", "add", "--name", "Bad Scope", "--scope", "a\"b"],
    ];
    for args in cases {
        let output = cli(&config, args);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(!output.stderr.is_empty());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("clients.toml")).unwrap(),
            before,
            "{args:?}"
        );
    }
}

#[test]
fn a_registry_directory_gets_one_file_per_new_client() {
    let dir = tempfile::tempdir().unwrap();
    let clients = dir.path().join("clients.d");
    std::fs::create_dir(&clients).unwrap();
    let config = write_config(dir.path(), &format!("path = \"{}\"", clients.display()));
    let (id, _) = created(&cli(&config, &["client", "add", "--name", "One", "--json"]));
    assert!(clients.join(format!("{id}.toml")).is_file());
    created(&cli(&config, &["client", "add", "--name", "Two", "--json"]));
    stdout(&cli(&config, &["client", "disable", "one"]));
    let one = std::fs::read_to_string(clients.join("one.toml")).unwrap();
    assert!(one.contains("enabled = false"));
    let check = stdout(&cli(&config, &["check"]));
    assert!(check.contains("ok, 2 client(s)"), "{check}");
}

#[test]
fn check_reports_every_problem_with_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let registry = client_toml("ok", "pw", "", "")
        + &client_toml("ok", "pw", "", "")
        + &client_toml(
            "bad",
            "pw",
            "token_lifetime = \"3h\"\nexpires = \"someday\"",
            "",
        );
    std::fs::write(dir.path().join("clients.toml"), registry).unwrap();
    let output = cli(&config, &["check"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&output.stderr);
    let file = dir.path().join("clients.toml").display().to_string();
    let text = std::fs::read_to_string(dir.path().join("clients.toml")).unwrap();
    // Each position is that of the line after [[client]], i.e. the table's line number.
    let client_line = |id: &str| -> Vec<usize> {
        let line = format!("id = \"{id}\"");
        (text.lines().enumerate())
            .filter(|(_, l)| *l == line)
            .map(|(i, _)| i)
            .collect()
    };
    let bad_line = client_line("bad")[0];
    let [first_ok, second_ok] = client_line("ok")[..] else {
        panic!("the registry defines \"ok\" twice");
    };
    for needle in [
        format!(
            "{file}:{second_ok}: client \"ok\".id: duplicate id; already defined at {file}:{first_ok}"
        ),
        format!("{file}:{bad_line}: client \"bad\".token_lifetime: 3h is longer"),
        format!("{file}:{bad_line}: client \"bad\".expires: \"someday\" is not a date"),
        "3 problem(s) found".to_string(),
    ] {
        assert!(errors.contains(&needle), "missing {needle:?} in:\n{errors}");
    }
}

#[test]
fn check_accepts_the_shipped_demo_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(common::BIN)
        .current_dir(root)
        .args(["check"])
        .output()
        .unwrap();
    let out = stdout(&output);
    assert!(
        out.contains("config/clients.toml: ok, 1 client(s)"),
        "{out}"
    );
}

#[test]
fn keys_generate_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    std::fs::write(dir.path().join("clients.toml"), "").unwrap();
    let generated = stdout(&cli(&config, &["keys", "generate"]));
    assert!(generated.contains("Generated a EdDSA key"), "{generated}");
    stdout(&cli(&config, &["keys", "generate", "--algorithm", "ES256"]));
    let list = stdout(&cli(&config, &["keys", "list"]));
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(
        list.lines()
            .any(|l| l.contains("EdDSA") && l.contains("yes")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains("ES256") && !l.contains("yes")),
        "{list}"
    );
}

/// A minimal gateway config in `dir`; `registry` replaces the `[registry]` body if given.
fn write_config(dir: &std::path::Path, registry: &str) -> std::path::PathBuf {
    let registry = if registry.is_empty() {
        format!("path = \"{}\"", dir.join("clients.toml").display())
    } else {
        registry.to_owned()
    };
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\n[issuer]\nissuer = \"http://x\"\nkeys_dir = \"{}\"\naudience = \"a\"\n[registry]\n{registry}\n",
        dir.join("keys").display()
    );
    let path = dir.join("credgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `credgate ARGS...` in `dir`, with no `--config`.
fn cli_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::BIN)
        .current_dir(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run credgate")
}

#[tokio::test]
async fn removing_the_last_client_leaves_a_comment_and_takes_effect_at_once() {
    let gw = Setup::new(client_toml("only", "pw", "", "")).start();
    assert_eq!(gw.token_status("only", "pw").await, 200);
    stdout(&gw.cli(&["client", "remove", "only"]));
    let text = std::fs::read_to_string(gw.home.join("clients.toml")).unwrap();
    assert!(
        text.starts_with("# credgate client registry: no clients."),
        "{text:?}"
    );
    gw.wait_for_log("registry reloaded", 1);
    assert_eq!(gw.token_status("only", "pw").await, 401);
    assert_eq!(gw.metrics().await["credgate_registry_valid"], 1.0);
    let (id, secret) = created(&gw.cli(&["client", "add", "--name", "Next", "--json"]));
    gw.wait_for_log("registry reloaded", 2);
    assert_eq!(gw.token_status(&id, &secret).await, 200);
}

#[tokio::test]
async fn removing_a_client_from_a_registry_directory_deletes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("only.toml"),
        client_toml("only", "pw", "", ""),
    )
    .unwrap();
    let gw = Setup::new("").registry_path(dir.path()).start();
    stdout(&gw.cli(&["client", "remove", "only"]));
    assert!(!dir.path().join("only.toml").exists());
    gw.wait_for_log("registry reloaded", 1);
    assert_eq!(gw.token_status("only", "pw").await, 401);
    let (id, secret) = created(&gw.cli(&["client", "add", "--name", "Later", "--json"]));
    gw.wait_for_log("registry reloaded", 2);
    assert_eq!(
        gw.token_status(&id, &secret).await,
        200,
        "later reloads still apply"
    );
    stdout(&gw.cli(&["client", "disable", &id]));
    gw.wait_for_log("registry reloaded", 3);
    assert_eq!(gw.token_status(&id, &secret).await, 401);
}

#[test]
fn registry_commands_need_no_config_but_a_new_registry_needs_create() {
    let dir = tempfile::tempdir().unwrap();
    let mistyped = cli_in(
        dir.path(),
        &["--registry", "clents.toml", "client", "add", "--name", "A"],
    );
    assert!(!mistyped.status.success());
    let error = String::from_utf8_lossy(&mistyped.stderr);
    assert!(
        error.contains("clents.toml does not exist") && error.contains("--create"),
        "{error}"
    );
    assert!(!dir.path().join("clents.toml").exists(), "nothing created");

    let args = [
        "--registry",
        "clients.toml",
        "--create",
        "client",
        "add",
        "--name",
        "A",
        "--json",
    ];
    let added = cli_in(dir.path(), &args);
    let note = String::from_utf8_lossy(&added.stderr);
    assert!(note.contains("default bounds 1m..1h"), "{note}");
    created(&added);
    let long = [
        "--registry",
        "clients.toml",
        "client",
        "add",
        "--name",
        "B",
        "--token-lifetime",
        "2h",
    ];
    let refused = cli_in(dir.path(), &long);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("2h is longer"));
    let list = stdout(&cli_in(
        dir.path(),
        &["--registry", "clients.toml", "client", "list"],
    ));
    assert!(list.contains("\na "), "{list}");
}

#[test]
fn registry_commands_read_the_config_only_for_lifetime_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    // An upstream that only resolves inside a cluster must not stop a registry edit here.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "[[route]]\nprefix = \"/api/\"\nupstream = \"orders.svc.cluster.invalid:8080\"\n",
    );
    text = text.replace(
        "audience = \"a\"",
        "audience = \"a\"\nmax_token_lifetime = \"3h\"",
    );
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();
    let args = [
        "--config",
        config,
        "client",
        "add",
        "--name",
        "A",
        "--token-lifetime",
        "2h",
        "--json",
    ];
    created(&cli_in(dir.path(), &args));
    let other = dir.path().join("other.toml");
    let other = other.to_str().unwrap();
    let args = [
        "--config",
        config,
        "--registry",
        other,
        "--create",
        "client",
        "add",
        "--name",
        "B",
        "--token-lifetime",
        "150m",
    ];
    let output = cli_in(dir.path(), &args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("note:"));
}

#[test]
fn check_reports_config_typos_missing_fields_and_registry_problems_together() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace(
            "audience = \"a\"",
            "audeince = \"a\"\ntoken_path = [\"/t\"]",
        )
        .replace("[server]\n", "[server]\nthreds = 2\n");
    std::fs::write(&config, text).unwrap();
    std::fs::write(
        dir.path().join("clients.toml"),
        client_toml("a", "pw", "", "") + &client_toml("a", "pw", "colour = \"red\"", ""),
    )
    .unwrap();
    let output = cli(&config, &["check"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "server.threds: unknown field",
        "issuer.audeince: unknown field",
        "issuer.token_path: unknown field",
        "issuer.audience: missing; this field is required",
        "client \"a\": unknown field `colour`",
        "client \"a\".id: duplicate id",
        "6 problem(s) found",
    ] {
        assert!(errors.contains(needle), "missing {needle:?} in:\n{errors}");
    }
}

#[test]
fn a_missing_relative_path_says_which_directory_it_was_looked_for_in() {
    let dir = tempfile::tempdir().unwrap();
    let output = cli_in(dir.path(), &["check"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    let cwd = dir.path().canonicalize().unwrap();
    let wanted = format!(
        "config/credgate.toml: cannot read the config file (relative to {})",
        cwd.display()
    );
    assert!(error.contains(&wanted), "{error}");
}

#[tokio::test]
async fn a_new_secret_has_a_stable_id_that_show_lists_and_remove_takes() {
    let gw = Setup::new(client_toml("svc", "first-secret", "", "")).start();
    let output = gw.cli(&["secret", "add", "svc", "--json"]);
    let added: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let secret_id = added["secret_id"].as_str().unwrap().to_owned();
    let show = stdout(&gw.cli(&["client", "show", "svc"]));
    assert!(show.contains(&secret_id), "{show}");
    let file = std::fs::read_to_string(gw.home.join("clients.toml")).unwrap();
    assert!(file.contains(&format!("id = \"{secret_id}\"")), "{file}");
    assert!(file.contains("created = \""), "{file}");
    let removed = gw.cli(&["secret", "remove", "svc", &secret_id]);
    assert!(stdout(&removed).contains("Removed secret"), "{removed:?}");
    assert!(!stdout(&gw.cli(&["client", "show", "svc"])).contains(&secret_id));
}

/// `check` tells whether the gateway will be able to append to `[manage] audit_log` (here: a
/// missing directory), without creating anything.
#[test]
fn check_says_whether_the_audit_log_can_be_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string("config/orgs-demo.toml").unwrap();
    let config = dir.path().join("credgate.toml");
    let with_log = |log: &std::path::Path| {
        let text = demo.replace(
            "audit_log = \"config/audit.log\"",
            &format!("audit_log = {:?}", log.display().to_string()),
        );
        assert_ne!(text, demo, "the demo names its audit log");
        std::fs::write(&config, text).unwrap();
    };

    let missing_dir = dir.path().join("nowhere/audit.log");
    with_log(&missing_dir);
    let output = cli(&config, &["check"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("manage.audit_log") && errors.contains("does not exist"),
        "{errors}"
    );

    let fine = dir.path().join("audit.log");
    with_log(&fine);
    let report = stdout(&cli(&config, &["check"]));
    assert!(
        report.contains("the audit log can be appended to"),
        "{report}"
    );
    assert!(!fine.exists(), "check created the audit log");
}

/// Ids may start with `-` (a client id is any RFC 3986 unreserved string; a secret id is
/// base64url, so one random id in 64 does): every command takes them as ids, not as options.
/// A CI run failed on a random secret id `-q…` before.
#[test]
fn ids_that_start_with_a_hyphen_are_ids_not_options() {
    let dir = tempfile::tempdir().unwrap();
    let file = client_toml("-svc", "pw", "", "id = \"-q1\"");
    std::fs::write(dir.path().join("clients.toml"), file).unwrap();
    let config = write_config(dir.path(), "");
    let run = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        stdout(&cli_in(dir.path(), &all))
    };
    assert!(run(&["client", "show", "-svc"]).contains("-q1"));
    let added: serde_json::Value =
        serde_json::from_str(&run(&["secret", "add", "-svc", "--json"])).unwrap();
    assert_eq!(added["client_id"], "-svc");
    assert!(run(&["secret", "remove", "-svc", "-q1"]).contains("Removed secret -q1"));
    assert!(!run(&["client", "show", "-svc"]).contains("-q1"));
    for command in ["disable", "enable", "revoke-tokens"] {
        run(&["client", command, "-svc"]);
    }
    run(&["secret", "rotate", "-svc", "--json"]);
    run(&[
        "client", "add", "--name", "Other", "--id", "-other", "--json",
    ]);
    run(&["client", "remove", "-svc"]);
    let list = run(&["client", "list"]);
    assert!(list.contains("-other") && !list.contains("-svc"), "{list}");
    assert!(run(&["client", "show", "--help"]).contains("Usage"));
}
