//! The dependency rules of the house (DESIGN.md §2, README "Development"), checked on the
//! source: each rule names the files it governs and the `crate::` modules they may not import,
//! or the crates they may not name, or what they may not construct. A broken rule fails with
//! the file, the line and the import.
//!
//! Comments and doc comments are not code: a doc link to another layer is fine.

use std::path::{Path, PathBuf};

/// The ground floor: any module may import these.
const GROUND: [&str; 7] = [
    "path", "bounds", "reply", "problems", "live", "timefmt", "metrics",
];

/// Every `.rs` file under `dir`, relative to `src/`.
fn sources(dir: &Path, src: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, src, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(src).unwrap().to_path_buf());
        }
    }
}

/// The code of a file, line by line, without comments (line comments, doc comments and block
/// comments) and without its `#[cfg(test)]` module at the end, which may use anything.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut lines = Vec::new();
    let mut in_block = false;
    for (i, line) in text.lines().enumerate() {
        let mut code = String::new();
        let mut rest = line;
        loop {
            if in_block {
                match rest.find("*/") {
                    Some(end) => {
                        rest = &rest[end + 2..];
                        in_block = false;
                    }
                    None => break,
                }
            } else {
                let block = rest.find("/*");
                let comment = rest.find("//");
                match (block, comment) {
                    (Some(b), c) if c.is_none_or(|c| b < c) => {
                        code.push_str(&rest[..b]);
                        rest = &rest[b + 2..];
                        in_block = true;
                    }
                    (_, Some(c)) => {
                        code.push_str(&rest[..c]);
                        break;
                    }
                    _ => {
                        code.push_str(rest);
                        break;
                    }
                }
            }
        }
        lines.push((i + 1, code));
    }
    lines
}

/// The top-level modules a line imports through `crate::` (`use crate::{a, b::c}` too).
fn crate_modules(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
        rest = after;
    }
    found
}

/// Whether a line names the `pingora` crate.
fn names_pingora(line: &str) -> bool {
    line.match_indices("pingora").any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + "pingora".len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"')
            && matches!(
                after,
                Some(':') | Some(';') | Some(',') | Some('}') | Some(' ') | None
            )
    })
}

/// What builds a store or a service: only `serve/` and `cli/` may.
const CONSTRUCTORS: [&str; 9] = [
    "Manage::new(",
    "Store::new(",
    "KeyStore::new(",
    "CertStore::new(",
    "Live::new(",
    "Issuer::new(",
    "Guard::new(",
    "Gateway::new(",
    "Reloader::new(",
];

/// One rule: which files it governs, and what they may import.
struct Rule {
    name: &'static str,
    governs: fn(&str) -> bool,
    /// `Some(allowed)`: only these `crate::` modules (and the ground floor); `None`: any but
    /// `forbidden`.
    allowed: Option<&'static [&'static str]>,
    forbidden: &'static [&'static str],
    pingora: bool,
    constructs: bool,
}

fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "oauth/ imports only the ground floor",
            governs: |f| f.starts_with("oauth/"),
            allowed: Some(&["oauth"]),
            forbidden: &[],
            pingora: false,
            constructs: false,
        },
        Rule {
            name: "config.rs imports only oauth/ and the ground floor",
            governs: |f| f == "config.rs",
            allowed: Some(&["oauth", "config"]),
            forbidden: &[],
            pingora: false,
            constructs: false,
        },
        Rule {
            name: "registry/ never imports issuer, guard, serve or pingora",
            governs: |f| f.starts_with("registry/"),
            allowed: None,
            forbidden: &["issuer", "guard", "serve", "proxy"],
            pingora: false,
            constructs: false,
        },
        Rule {
            name: "issuer/ never imports guard/",
            governs: |f| f.starts_with("issuer/"),
            allowed: None,
            forbidden: &["guard", "proxy", "serve"],
            pingora: false,
            constructs: false,
        },
        Rule {
            name: "guard/ never imports issuer/",
            governs: |f| f.starts_with("guard/"),
            allowed: None,
            forbidden: &["issuer", "proxy", "serve"],
            pingora: false,
            constructs: false,
        },
        Rule {
            name: "manage/ never imports issuer/ or guard/ (it asks TokenCheck)",
            governs: |f| f.starts_with("manage/"),
            allowed: None,
            forbidden: &["issuer", "guard", "proxy", "serve"],
            pingora: false,
            constructs: false,
        },
        Rule {
            name: "only proxy.rs, routes.rs, bounds.rs and serve/ name pingora",
            governs: |f| {
                !matches!(f, "proxy.rs" | "routes.rs" | "bounds.rs") && !f.starts_with("serve/")
            },
            allowed: None,
            forbidden: &[],
            pingora: true,
            constructs: false,
        },
        Rule {
            name: "only serve/ and cli/ construct stores and services",
            governs: |f| !f.starts_with("serve/") && !f.starts_with("cli/"),
            allowed: None,
            forbidden: &[],
            pingora: false,
            constructs: true,
        },
    ]
}

/// Every broken rule in the source tree at `src`: "file:line: rule: the line".
fn broken_rules(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(src, src, &mut files);
    files.sort();
    let mut broken = Vec::new();
    for file in files {
        let name = file.to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(src.join(&file)).unwrap();
        for rule in rules().iter().filter(|r| (r.governs)(&name)) {
            for (line, code) in code_lines(&text) {
                let bad_import = crate_modules(&code).into_iter().find(|m| {
                    let ground = GROUND.contains(&m.as_str());
                    match rule.allowed {
                        Some(allowed) => !ground && !allowed.contains(&m.as_str()),
                        None => rule.forbidden.contains(&m.as_str()),
                    }
                });
                if let Some(module) = bad_import {
                    broken.push(format!(
                        "src/{name}:{line}: {}: imports crate::{module}: {}",
                        rule.name,
                        code.trim()
                    ));
                }
                let constructs = CONSTRUCTORS.iter().any(|c| code.contains(c));
                if (rule.pingora && names_pingora(&code)) || (rule.constructs && constructs) {
                    broken.push(format!("src/{name}:{line}: {}: {}", rule.name, code.trim()));
                }
            }
        }
    }
    broken
}

#[test]
fn the_dependency_rules_hold() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let broken = broken_rules(&src);
    assert!(
        broken.is_empty(),
        "{} broken dependency rule(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

/// The checker itself catches what it is for: a copy of the tree with one bad import of each
/// kind fails, naming the file and the import.
#[test]
fn a_deliberately_broken_import_is_caught() {
    let copy = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    for file in &files {
        let target = copy.path().join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(src.join(file), target).unwrap();
    }
    let plant = |file: &str, line: &str| {
        let path = copy.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{line}\n{text}")).unwrap();
    };
    plant("issuer/introspect.rs", "use crate::guard::Guard;");
    plant("oauth/keys.rs", "use crate::{problems, registry::Client};");
    plant("config.rs", "use crate::issuer::throttle;");
    plant("registry/model.rs", "use pingora::http::RequestHeader;");
    plant(
        "guard/policy.rs",
        "// use crate::issuer::Issuer; (a comment is not an import)",
    );
    plant(
        "proxy.rs",
        "fn f() { let _ = Guard::new(todo!(), todo!()); }",
    );
    let broken = broken_rules(copy.path());
    let expected = [
        "src/config.rs:1: config.rs imports only oauth/ and the ground floor: imports crate::issuer",
        "src/issuer/introspect.rs:1: issuer/ never imports guard/: imports crate::guard",
        "src/oauth/keys.rs:1: oauth/ imports only the ground floor: imports crate::registry",
        "src/proxy.rs:1: only serve/ and cli/ construct stores and services",
        "src/registry/model.rs:1: only proxy.rs, routes.rs, bounds.rs and serve/ name pingora",
    ];
    for needle in expected {
        assert!(
            broken.iter().any(|b| b.starts_with(needle)),
            "missing {needle:?} in:\n{}",
            broken.join("\n")
        );
    }
    assert_eq!(broken.len(), expected.len(), "{}", broken.join("\n"));
}
