//! Where an issuer lives: one fixed URL (`[issuer] issuer`), or one per organisation made from
//! `[organizations] issuer_template`.
//!
//! The template holds `{org}` exactly once. In the path (`https://api.example.com/{org}`,
//! Avanti's `https://myavanti.ca/{org}-api`) it is *path mode*: every organisation shares the
//! host and owns the paths under its base. In the host (`https://{org}.api.example.com`) it is
//! *host mode*: the organisation is read from the request's `Host`. Both sides use this one
//! description: the issuer fills it in to write `iss`, the guard to check `iss`, the route
//! table to find the organisation a request is for.

/// The placeholder an issuer template holds once.
pub const ORG_PLACEHOLDER: &str = "{org}";

/// The longest organisation id: one DNS label, so an id works as a host name label (host mode)
/// as well as a path segment.
pub const MAX_ORG_ID_LEN: usize = 63;

/// Organisation ids that are refused because they name something else, or would read as such
/// in a URL, a log line or an admin's screen.
pub const RESERVED_ORG_IDS: [&str; 16] = [
    "admin", "api", "assets", "connect", "console", "default", "healthz", "manage", "metrics",
    "oauth", "oauth2", "readyz", "self", "static", "token", "www",
];

/// Why `id` is not a valid organisation id, if it is not. Ids are lower-case letters, digits
/// and inner hyphens, 1 to 63 characters (a DNS label), and not one of [`RESERVED_ORG_IDS`].
pub fn org_id_problem(id: &str) -> Option<String> {
    let bytes = id.as_bytes();
    let plain = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let shaped = !bytes.is_empty()
        && bytes.len() <= MAX_ORG_ID_LEN
        && bytes.iter().all(|b| plain(b) || *b == b'-')
        && plain(&bytes[0])
        && plain(&bytes[bytes.len() - 1]);
    if !shaped {
        Some(format!(
            "{id:?} is not an organisation id: 1 to {MAX_ORG_ID_LEN} lower-case letters, digits \
             and inner hyphens"
        ))
    } else if RESERVED_ORG_IDS.contains(&id) {
        Some(format!("{id:?} is a reserved name"))
    } else {
        None
    }
}

/// Whether `id` is a valid organisation id (see [`org_id_problem`]).
pub fn is_valid_org_id(id: &str) -> bool {
    org_id_problem(id).is_none()
}

/// The issuers of a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuers {
    /// One issuer; tokens carry no `org_id`.
    Single(String),
    /// One issuer per organisation; tokens carry `org_id`.
    PerOrg(IssuerTemplate),
}

impl Issuers {
    /// The `iss` of tokens of organisation `org` (`None`: the single issuer). `None` when the
    /// two do not go together: an organisation under a single issuer, or none under a template.
    pub fn issuer_of(&self, org: Option<&str>) -> Option<String> {
        match (self, org) {
            (Issuers::Single(url), None) => Some(url.clone()),
            (Issuers::PerOrg(template), Some(org)) if is_valid_org_id(org) => {
                Some(template.fill(org))
            }
            _ => None,
        }
    }
}

/// A parsed `issuer_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerTemplate {
    text: String,
    mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// `{org}` in the path: `before` (ends with `/`) + org + `after`.
    Path { before: String, after: String },
    /// `{org}` in the host: `before` + org + `after` is the authority (lower case), `path`
    /// the base path shared by every organisation (empty or `/x`).
    Host {
        before: String,
        after: String,
        path: String,
    },
}

/// Where a request is, as far as the template can tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Located<'a> {
    /// Under the base of organisation `org`; `rest` is the path below the base (`""` or `/…`).
    Org { org: &'a str, rest: &'a str },
    /// Where an organisation would be, but not a valid organisation id: nothing is there.
    Malformed,
    /// Outside every organisation's base.
    Outside,
}

impl IssuerTemplate {
    /// Parses `text`, an absolute `http(s)` URL holding `{org}` once, in the host or in the path
    /// (where it starts a segment, and may be followed by more of it: `/{org}-api`).
    pub fn parse(text: &str) -> Result<IssuerTemplate, String> {
        let text = text.trim_end_matches('/');
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| format!("{text:?} must start with https:// or http://"))?;
        if text.matches(ORG_PLACEHOLDER).count() != 1 {
            return Err(format!("{text:?} must hold {ORG_PLACEHOLDER} exactly once"));
        }
        if rest.contains(['?', '#']) {
            return Err("must not contain a query or fragment (RFC 8414)".into());
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority == ORG_PLACEHOLDER && rest.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        if rest.replacen(ORG_PLACEHOLDER, "", 1).contains(['{', '}']) {
            return Err(format!("{text:?}: only {ORG_PLACEHOLDER} may be braced"));
        }
        let mode = match authority.split_once(ORG_PLACEHOLDER) {
            Some((before, after)) => {
                if !(before.is_empty() || before.ends_with('.'))
                    || !(after.is_empty() || after.starts_with(['.', ':']))
                {
                    return Err(format!(
                        "{text:?}: in the host, {ORG_PLACEHOLDER} must be a whole label"
                    ));
                }
                Mode::Host {
                    before: before.to_ascii_lowercase(),
                    after: after.to_ascii_lowercase(),
                    path: path.to_owned(),
                }
            }
            None => {
                let (before, after) = path.split_once(ORG_PLACEHOLDER).expect("counted once");
                if !before.ends_with('/') {
                    return Err(format!(
                        "{text:?}: in the path, {ORG_PLACEHOLDER} must start a segment"
                    ));
                }
                Mode::Path {
                    before: before.to_owned(),
                    after: after.to_owned(),
                }
            }
        };
        Ok(IssuerTemplate {
            text: text.to_owned(),
            mode,
        })
    }

    /// The issuer URL of organisation `org`.
    pub fn fill(&self, org: &str) -> String {
        self.text.replacen(ORG_PLACEHOLDER, org, 1)
    }

    /// The base path of every organisation's issuer, `{org}` left in place in path mode
    /// (`/{org}-api`); in host mode the path the organisations share (`""` or `/x`). A
    /// same-origin page (the web console) reaches an organisation's endpoints below it.
    pub fn base_path(&self) -> String {
        match &self.mode {
            Mode::Path { before, after } => format!("{before}{ORG_PLACEHOLDER}{after}"),
            Mode::Host { path, .. } => path.clone(),
        }
    }

    /// Whether the organisation is read from the host.
    pub fn host_mode(&self) -> bool {
        matches!(self.mode, Mode::Host { .. })
    }

    /// The organisation whose base covers a request for canonical `path` on `host` (the `Host`
    /// header's value), and the path below that base.
    pub fn locate<'a>(&self, host: &'a str, path: &'a str) -> Located<'a> {
        match &self.mode {
            Mode::Path { before, after } => locate_in_path(before, after, path),
            Mode::Host {
                before,
                after,
                path: base,
            } => {
                let host = if after.contains(':') {
                    host
                } else {
                    strip_port(host)
                };
                let Some(org) = between_ignore_case(host, before, after) else {
                    return Located::Outside;
                };
                if !is_valid_org_id(org) {
                    return Located::Malformed;
                }
                match below(path, base) {
                    Some(rest) => Located::Org { org, rest },
                    None => Located::Outside,
                }
            }
        }
    }
}

/// Path mode: `before` + org + `after` must begin `path`, on a segment boundary.
fn locate_in_path<'a>(before: &str, after: &str, path: &'a str) -> Located<'a> {
    let Some(tail) = path.strip_prefix(before) else {
        return Located::Outside;
    };
    // `after` may end the org's segment (`-api`) and go on with more segments (`-api/v1`).
    let (in_segment, more) = after.split_at(after.find('/').unwrap_or(after.len()));
    let segment = &tail[..tail.find('/').unwrap_or(tail.len())];
    let Some(org) = segment.strip_suffix(in_segment) else {
        return Located::Outside;
    };
    if org.is_empty() {
        return Located::Outside;
    }
    if !is_valid_org_id(org) {
        return Located::Malformed;
    }
    match below(&tail[segment.len()..], more) {
        Some(rest) => Located::Org { org, rest },
        None => Located::Outside,
    }
}

/// `path` below `base` (`""` or `/…`), when `base` covers it on a segment boundary.
fn below<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || name.starts_with('[') => {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }
        _ => host,
    }
}

/// `text` without `prefix` and `suffix`, both compared ignoring ASCII case (host names are
/// case-insensitive); `None` unless both are there without overlapping.
fn between_ignore_case<'a>(text: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    let end = text.len().checked_sub(suffix.len())?;
    let (bytes, start) = (text.as_bytes(), prefix.len());
    let fits = start <= end
        && bytes[..start].eq_ignore_ascii_case(prefix.as_bytes())
        && bytes[end..].eq_ignore_ascii_case(suffix.as_bytes());
    fits.then(|| text.get(start..end)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> IssuerTemplate {
        IssuerTemplate::parse(text).unwrap()
    }

    #[test]
    fn org_ids_are_dns_labels_and_not_reserved() {
        for good in ["acme", "a", "globex-2", "0day"] {
            assert!(is_valid_org_id(good), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "", "Acme", "-acme", "acme-", "ac_me", "ac.me", "manage", "api", &long,
        ] {
            assert!(!is_valid_org_id(bad), "{bad}");
        }
    }

    #[test]
    fn base_paths_keep_the_placeholder_in_path_mode_only() {
        assert_eq!(t("https://api.example.com/{org}").base_path(), "/{org}");
        assert_eq!(t("https://x.ca/v1/{org}-api/").base_path(), "/v1/{org}-api");
        assert_eq!(t("https://{org}.api.example.com").base_path(), "");
        assert_eq!(t("https://{org}.api.example.com/v2").base_path(), "/v2");
    }

    #[test]
    fn path_mode_finds_the_org_and_the_rest() {
        let template = t("https://api.example.com/{org}");
        assert!(!template.host_mode());
        assert_eq!(template.fill("acme"), "https://api.example.com/acme");
        let h = "api.example.com";
        assert_eq!(
            template.locate(h, "/acme/connect/token"),
            Located::Org {
                org: "acme",
                rest: "/connect/token"
            }
        );
        assert_eq!(
            template.locate(h, "/acme"),
            Located::Org {
                org: "acme",
                rest: ""
            }
        );
        assert_eq!(template.locate(h, "/Acme/x"), Located::Malformed);
        assert_eq!(template.locate(h, "/"), Located::Outside);
    }

    #[test]
    fn path_mode_takes_the_org_from_part_of_a_segment() {
        let template = t("https://myavanti.ca/{org}-api/v1/");
        assert_eq!(template.fill("acme"), "https://myavanti.ca/acme-api/v1");
        let h = "myavanti.ca";
        assert_eq!(
            template.locate(h, "/acme-corp-api/v1/connect/token"),
            Located::Org {
                org: "acme-corp",
                rest: "/connect/token"
            }
        );
        assert_eq!(template.locate(h, "/acme-corp-api/v2/x"), Located::Outside);
        assert_eq!(template.locate(h, "/acme/v1/x"), Located::Outside);
        assert_eq!(template.locate(h, "/-api/v1"), Located::Outside);
    }

    #[test]
    fn host_mode_reads_the_org_from_the_host() {
        let template = t("https://{org}.api.example.com");
        assert!(template.host_mode());
        assert_eq!(
            template.locate("ACME.api.example.com:8443", "/connect/token"),
            Located::Malformed
        );
        assert_eq!(
            template.locate("acme.API.example.com:8443", "/connect/token"),
            Located::Org {
                org: "acme",
                rest: "/connect/token"
            }
        );
        assert_eq!(template.locate("api.example.com", "/x"), Located::Outside);
        assert_eq!(
            template.locate("a.b.api.example.com", "/x"),
            Located::Malformed
        );
        assert_eq!(template.locate("evil.com", "/x"), Located::Outside);
        let with_path = t("http://{org}.localhost:8080/auth");
        assert_eq!(
            with_path.locate("acme.localhost:8080", "/auth/connect/token"),
            Located::Org {
                org: "acme",
                rest: "/connect/token"
            }
        );
        assert_eq!(
            with_path.locate("acme.localhost:9090", "/auth/x"),
            Located::Outside
        );
        assert_eq!(
            with_path.locate("acme.localhost:8080", "/authz"),
            Located::Outside
        );
    }

    #[test]
    fn bad_templates_are_refused_with_a_reason() {
        for bad in [
            "api.example.com/{org}",
            "https://api.example.com/tenants",
            "https://api.example.com/{org}/{org}",
            "https://api.example.com/x{org}",
            "https://x{org}.example.com",
            "https://api.example.com/{org}?a=b",
            "https://api.example.com/{tenant}/{org}",
        ] {
            assert!(IssuerTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn issuers_pair_orgs_with_templates_only() {
        let single = Issuers::Single("https://a".into());
        assert_eq!(single.issuer_of(None).as_deref(), Some("https://a"));
        assert_eq!(single.issuer_of(Some("acme")), None);
        let per_org = Issuers::PerOrg(t("https://a/{org}"));
        assert_eq!(per_org.issuer_of(None), None);
        assert_eq!(per_org.issuer_of(Some("../x")), None);
        assert_eq!(
            per_org.issuer_of(Some("acme")).as_deref(),
            Some("https://a/acme")
        );
    }
}
