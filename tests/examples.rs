//! The shipped examples stay valid: the Kubernetes ConfigMap's gateway config and registry
//! pass the same validation as `credgate check`.

use std::path::Path;

use credgate::config::Config;
use credgate::registry::file::Source;
use credgate::registry::validate::validate;

/// The text of the block scalar `key: |` in `yaml`, unindented.
fn block(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    assert!(lines.next().is_some(), "no {key} in the ConfigMap");
    let mut text = String::new();
    for line in lines {
        if !line.is_empty() && !line.starts_with("    ") {
            break;
        }
        text.push_str(line.strip_prefix("    ").unwrap_or(line));
        text.push('\n');
    }
    text
}

#[test]
fn the_kubernetes_configmap_holds_a_valid_config_and_registry() {
    let yaml = std::fs::read_to_string("examples/kubernetes/configmap.yaml").unwrap();
    // Upstreams are resolved when the config is read; the in-cluster name does not resolve
    // here, so it stands in for a local one.
    let text = block(&yaml, "credgate.toml").replace(
        "example-api.default.svc.cluster.local:8080",
        "127.0.0.1:8080",
    );
    let config = Config::parse(Path::new("credgate.toml"), &text).unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(config.registry.path, Path::new("/etc/credgate/clients"));
    assert_eq!(config.issuer.failures.per_ip, 0);
    let sources = [Source {
        path: "clients.toml".into(),
        text: block(&yaml, "clients.toml"),
    }];
    let registry = validate(&sources, &config.issuer.lifetimes).unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(registry.len(), 1);
}

/// The secret README publishes for `client` (from its `curl -s -u client:secret` lines).
fn readme_secret(client: &str) -> String {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let needle = format!("-u {client}:");
    let start = readme.find(&needle).expect("README shows the client") + needle.len();
    readme[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// `config/orgs-demo.toml` and its organisation files load, and the secrets README prints for
/// them are the ones the files hold: the README's curl lines work.
#[test]
fn the_organisations_demo_loads_and_readme_shows_its_secrets() {
    let path = Path::new("config/orgs-demo.toml");
    let config = Config::load(path).unwrap_or_else(|p| panic!("{p}"));
    let orgs = credgate::registry::load(
        &config.issuer.issuers,
        &config.registry.path,
        &config.issuer.lifetimes,
    )
    .unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(orgs.len(), 2);
    for (org, client) in [
        ("acme", "payroll-sync"),
        ("acme", "acme-admin"),
        ("globex", "hr-import"),
    ] {
        let org = orgs.get(org).expect("the demo organisation");
        assert_eq!(org.issuer, format!("http://127.0.0.1:8080/{}", org.id));
        let client = org.clients.get(client).expect("the demo client");
        let secret = readme_secret(&client.id);
        let hash = argon2::PasswordHash::new(&client.secrets[0].hash).unwrap();
        use argon2::PasswordVerifier;
        assert!(
            argon2::Argon2::default()
                .verify_password(secret.as_bytes(), &hash)
                .is_ok(),
            "README's secret for {} is not the one in its file",
            client.id
        );
    }
}
