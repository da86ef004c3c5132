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
