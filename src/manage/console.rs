//! The web console (DESIGN §3, `[manage] console = true`): static HTML, CSS and plain
//! JavaScript embedded in the binary and served at `<prefix>/console/`.
//!
//! The console is a client of the management API and nothing more: the pages hold no data and
//! every action is an API call made with the administrator's own token, which the page obtains
//! from its organisation's token endpoint and keeps in memory only. So serving it needs no
//! authentication and grants nothing; what matters here is that the pages cannot be turned
//! against the administrator:
//! - a strict Content-Security-Policy: scripts, styles and connections from this origin only,
//!   no inline script or style, no `eval`, no frames, no form submission to anywhere, and
//!   Trusted Types with no policy, so no string ever becomes markup (the script builds every
//!   element with `textContent`), even if a bug tried;
//! - `X-Frame-Options: DENY` for browsers without `frame-ancestors` (clickjacking);
//! - `Referrer-Policy: no-referrer`, `X-Content-Type-Options: nosniff`;
//! - the page itself is never cached; the script and style sheet live under a path that holds
//!   a hash of their content and are cached for good, so a new version is never mixed with an
//!   old one.

use http::{header, HeaderValue, Method, StatusCode};
use serde::Serialize;

use crate::config::Limits;
use crate::reply::{self, Reply};

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &[u8] = include_bytes!("console/console.js");
const CONSOLE_CSS: &[u8] = include_bytes!("console/console.css");

/// Where `index.html` names the versioned asset folder.
const ASSETS_PLACEHOLDER: &str = "{{assets}}";

/// Every console response carries these.
const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
         require-trusted-types-for 'script'; trusted-types 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// What the page needs to know about this gateway, served as `settings.json`.
#[derive(Debug, Serialize)]
pub struct Settings {
    /// The management API's prefix.
    pub prefix: String,
    /// The scope the console asks its token for.
    pub scope: String,
    /// The path of an organisation's token endpoint on this origin, `{org}` in place in path
    /// mode (`/{org}/connect/token`); in host mode the origin is the organisation's own.
    pub token_path: String,
    /// Whether the organisation is part of `token_path` (path mode), so the sign-in form asks
    /// for it; in host mode the token's `org_id` tells.
    pub org_in_path: bool,
    /// The issuer's bounds on a client's token lifetime, in seconds.
    pub min_token_lifetime: u64,
    pub max_token_lifetime: u64,
    /// The lifetime of a client without its own, in seconds.
    pub default_token_lifetime: u64,
}

impl Settings {
    pub fn new(
        prefix: &str,
        scope: &str,
        template: &crate::oauth::issuer_url::IssuerTemplate,
        token_path: &str,
        limits: Limits,
        default_token_lifetime: std::time::Duration,
    ) -> Self {
        Settings {
            prefix: prefix.to_owned(),
            scope: scope.to_owned(),
            token_path: format!("{}{token_path}", template.base_path()),
            org_in_path: !template.host_mode(),
            min_token_lifetime: limits.min.as_secs(),
            max_token_lifetime: limits.max.as_secs(),
            default_token_lifetime: default_token_lifetime.as_secs(),
        }
    }
}

/// The console's files, ready to serve.
pub struct Console {
    /// `<prefix>/console`.
    root: String,
    index: Vec<u8>,
    settings: Vec<u8>,
    /// The hash of the script and style sheet, naming their folder.
    version: String,
}

impl Console {
    pub fn new(settings: &Settings) -> Self {
        let root = format!("{}/console", settings.prefix);
        let version = content_version(&[CONSOLE_JS, CONSOLE_CSS]);
        let assets = format!("{root}/assets/{version}");
        Console {
            index: INDEX_HTML.replace(ASSETS_PLACEHOLDER, &assets).into_bytes(),
            settings: serde_json::to_vec(settings).expect("settings serialize"),
            root,
            version,
        }
    }

    /// Whether `path` (canonical) is one of the console's.
    pub fn owns(&self, path: &str) -> bool {
        path.strip_prefix(&self.root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The answer to a request for `path`, one of the console's (`query` kept on the
    /// redirect, which carries `?org=`).
    pub fn serve(&self, method: &Method, path: &str, query: Option<&str>) -> Reply {
        let mut reply = if method != Method::GET && method != Method::HEAD {
            reply::get_only()
        } else {
            self.file(path, query)
        };
        let headers = reply.headers_mut();
        for (name, value) in SECURITY_HEADERS {
            headers.insert(name, HeaderValue::from_static(value));
        }
        reply
    }

    fn file(&self, path: &str, query: Option<&str>) -> Reply {
        let rest = path.strip_prefix(&self.root).unwrap_or_default();
        let asset = rest
            .strip_prefix("/assets/")
            .and_then(|a| a.split_once('/'))
            .filter(|(version, _)| *version == self.version)
            .and_then(|(_, name)| match name {
                "console.js" => Some((CONSOLE_JS, "text/javascript; charset=utf-8")),
                "console.css" => Some((CONSOLE_CSS, "text/css; charset=utf-8")),
                _ => None,
            });
        match (rest, asset) {
            ("", _) => {
                let target = match query {
                    Some(q) => format!("{}/?{q}", self.root),
                    None => format!("{}/", self.root),
                };
                let mut moved = Reply::new(Vec::new());
                *moved.status_mut() = StatusCode::PERMANENT_REDIRECT;
                if let Ok(location) = HeaderValue::from_str(&target) {
                    moved.headers_mut().insert(header::LOCATION, location);
                }
                moved
            }
            ("/", _) => reply::no_store(with_type(self.index.clone(), "text/html; charset=utf-8")),
            ("/settings.json", _) => {
                reply::no_store(with_type(self.settings.clone(), "application/json"))
            }
            (_, Some((body, content_type))) => {
                let mut reply = with_type(body.to_vec(), content_type);
                reply.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                );
                reply
            }
            _ => reply::not_found(),
        }
    }
}

fn with_type(body: Vec<u8>, content_type: &'static str) -> Reply {
    let mut reply = Reply::new(body);
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// The first 12 hex digits of the SHA-256 of `parts`.
fn content_version(parts: &[&[u8]]) -> String {
    super::views::sha256_hex(&parts.concat(), 6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::issuer_url::IssuerTemplate;
    use std::time::Duration;

    fn console() -> Console {
        let template = IssuerTemplate::parse("https://api.example.com/{org}").unwrap();
        let settings = Settings::new(
            "/manage/v1",
            "credgate:manage",
            &template,
            "/connect/token",
            Limits::DEFAULT,
            Duration::from_secs(900),
        );
        Console::new(&settings)
    }

    fn get(console: &Console, path: &str) -> Reply {
        console.serve(&Method::GET, path, None)
    }

    #[test]
    fn the_page_names_its_versioned_assets_and_is_never_cached() {
        let console = console();
        let page = get(&console, "/manage/v1/console/");
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
        let html = String::from_utf8(page.body().clone()).unwrap();
        let script = format!("/manage/v1/console/assets/{}/console.js", console.version);
        assert!(html.contains(&script), "{html}");
        assert!(!html.contains(ASSETS_PLACEHOLDER));
        let asset = get(&console, &script);
        assert_eq!(asset.status(), StatusCode::OK);
        assert!(asset.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable"));
        let stale = get(
            &console,
            "/manage/v1/console/assets/000000000000/console.js",
        );
        assert_eq!(stale.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn every_answer_carries_the_security_headers() {
        let console = console();
        for path in [
            "/manage/v1/console/",
            "/manage/v1/console",
            "/manage/v1/console/nothing",
            "/manage/v1/console/settings.json",
        ] {
            let reply = get(&console, path);
            let csp = reply.headers()["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'self'"), "{path}");
            assert!(csp.contains("frame-ancestors 'none'"), "{path}");
            assert_eq!(reply.headers()["x-frame-options"], "DENY", "{path}");
        }
        let post = console.serve(&Method::POST, "/manage/v1/console/", None);
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn the_bare_root_redirects_keeping_the_query() {
        let console = console();
        let reply = console.serve(&Method::GET, "/manage/v1/console", Some("org=acme"));
        assert_eq!(reply.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            reply.headers()[header::LOCATION],
            "/manage/v1/console/?org=acme"
        );
        assert!(console.owns("/manage/v1/console"));
        assert!(console.owns("/manage/v1/console/x"));
        assert!(!console.owns("/manage/v1/consoles"));
    }

    #[test]
    fn settings_name_the_token_path_of_each_mode() {
        let settings = |template: &str| {
            Settings::new(
                "/m",
                "s",
                &IssuerTemplate::parse(template).unwrap(),
                "/connect/token",
                Limits::DEFAULT,
                Duration::from_secs(600),
            )
        };
        let path = settings("https://api.example.com/{org}-api");
        assert_eq!(path.token_path, "/{org}-api/connect/token");
        assert!(path.org_in_path);
        let host = settings("https://{org}.api.example.com/v2");
        assert_eq!(host.token_path, "/v2/connect/token");
        assert!(!host.org_in_path);
    }
}
