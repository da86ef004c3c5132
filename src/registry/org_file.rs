//! Organisation files: `<org>.toml` in `[organizations] dir`, an `[organization]` table (the
//! organisation's policy) and the usual `[[client]]` list.
//!
//! Each file is read on its own, so a problem in one costs only that organisation (and, within
//! it, only the client concerned), and a reload re-reads only the files that changed.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::file::{self, Source};
use super::orgs::{OrgPolicy, Organization, Organizations};
use super::validate::read_clients_within;
use super::Registry;
use crate::config::Limits;
use crate::oauth::issuer_url::org_id_problem;
use crate::oauth::scope::{is_valid_scope_token, scope_token_problem};
use crate::oauth::IssuerTemplate;
use crate::problems::Problems;
use crate::timefmt::parse_duration;

/// What one organisation file says, as far as it can be read.
#[derive(Debug)]
pub struct OrgRead {
    /// The file's stem; `None` when it is not a valid organisation id.
    pub id: Option<String>,
    /// The policy, when the `[organization]` table is valid.
    pub policy: Option<OrgPolicy>,
    /// Every client valid on its own within that policy.
    pub clients: Registry,
    pub problems: Problems,
}

impl OrgRead {
    /// The organisation, if the whole file is valid.
    pub fn organization(self, template: &IssuerTemplate) -> Result<Organization, Problems> {
        match (self.id, self.policy) {
            (Some(id), Some(policy)) if self.problems.is_empty() => Ok(Organization {
                issuer: template.fill(&id),
                id,
                policy,
                clients: self.clients,
            }),
            _ => Err(self.problems),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrganization {
    name: String,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    default_roles: Vec<String>,
    #[serde(default)]
    require_role: bool,
    max_token_lifetime: Option<String>,
}

fn enabled_by_default() -> bool {
    true
}

const MAX_NAME_LEN: usize = 200;

/// The organisation id a file stands for: its name without `.toml`.
pub fn org_id_of(path: &Path) -> Result<String, String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("the file name is not UTF-8")?;
    match org_id_problem(stem) {
        None => Ok(stem.to_owned()),
        Some(problem) => Err(format!("the file name says the organisation id: {problem}")),
    }
}

/// Reads one organisation file. `limits` are the issuer's; the organisation's
/// `max_token_lifetime` narrows them for its clients.
pub fn read_org(source: &Source, limits: &Limits) -> OrgRead {
    let mut problems = Problems::default();
    let id = org_id_of(&source.path)
        .map_err(|e| problems.push(&source.path, "", e))
        .ok();
    let policy = read_policy(source, limits, &mut problems);
    let narrowed = policy.as_ref().and_then(|p| p.max_token_lifetime);
    let org_limits = match narrowed {
        Some(max) if max < limits.max => Limits {
            max,
            set_by: "organisation",
            ..*limits
        },
        _ => *limits,
    };
    let no_scopes = Vec::new();
    let allowed = policy.as_ref().and_then(|p| p.scopes.as_ref());
    let (clients, found) = read_clients_within(
        std::slice::from_ref(source),
        &org_limits,
        Some(allowed.unwrap_or(&no_scopes)),
    );
    problems.0.extend(found.0);
    OrgRead {
        id,
        policy,
        clients,
        problems,
    }
}

/// The `[organization]` table of `source`, if it is there and valid.
fn read_policy(source: &Source, limits: &Limits, problems: &mut Problems) -> Option<OrgPolicy> {
    let line = table_line(&source.text);
    let mut found = Problems::default();
    let mut problem = |field: &str, message: String| {
        found.push_at(&source.path, line, format!("organization.{field}"), message)
    };
    let table: toml::Table = toml::from_str(&source.text).ok()?; // reported with the clients
    let Some(raw) = table.get("organization") else {
        problems.push(
            &source.path,
            "organization",
            "missing; an organisation file needs an [organization] table with at least `name`",
        );
        return None;
    };
    let raw: RawOrganization = match raw.clone().try_into() {
        Ok(raw) => raw,
        Err(e) => {
            problems.push_at(&source.path, line, "organization", e.message().trim_end());
            return None;
        }
    };
    if raw.name.trim().is_empty()
        || raw.name.len() > MAX_NAME_LEN
        || raw.name.chars().any(char::is_control)
    {
        problem(
            "name",
            format!("must be 1 to {MAX_NAME_LEN} characters without control characters"),
        );
    }
    for (field, tokens) in [
        ("scopes", &raw.scopes),
        ("default_roles", &raw.default_roles),
    ] {
        for (i, token) in tokens.iter().enumerate() {
            if !is_valid_scope_token(token) {
                problem(&format!("{field}[{i}]"), scope_token_problem(token));
            } else if tokens[..i].contains(token) {
                problem(
                    &format!("{field}[{i}]"),
                    format!("{token:?} is listed twice"),
                );
            }
        }
    }
    let max_token_lifetime = raw.max_token_lifetime.as_deref().and_then(|text| {
        let checked: Result<Duration, String> =
            parse_duration(text).and_then(|d| limits.check(d).map(|_| d));
        checked.map_err(|e| problem("max_token_lifetime", e)).ok()
    });
    let valid = found.is_empty();
    problems.0.extend(found.0);
    valid.then_some(OrgPolicy {
        name: raw.name,
        enabled: raw.enabled,
        scopes: Some(raw.scopes),
        default_roles: raw.default_roles,
        require_role: raw.require_role,
        max_token_lifetime,
    })
}

/// The line of the `[organization]` table.
fn table_line(text: &str) -> Option<usize> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let span = doc.get("organization")?.as_table()?.span()?;
    Some(text[..span.start].matches('\n').count() + 1)
}

/// Every organisation file in `dir`, read; files that cannot be read are problems.
pub fn read_orgs(dir: &Path, limits: &Limits) -> (Vec<OrgRead>, Problems) {
    let (sources, problems) = file::read_readable_sources(dir);
    (
        sources.iter().map(|s| read_org(s, limits)).collect(),
        problems,
    )
}

/// Loads every organisation in `dir`; reports every problem of every file.
pub fn load_orgs(
    dir: &Path,
    template: &IssuerTemplate,
    limits: &Limits,
) -> Result<Organizations, Problems> {
    if !dir.is_dir() {
        let place = crate::problems::relative_to_cwd(dir);
        return Err(Problems::one(
            dir,
            format!("organizations.dir{place} must be a directory of <org>.toml files"),
        ));
    }
    let (reads, mut problems) = read_orgs(dir, limits);
    let mut orgs = Vec::new();
    for read in reads {
        match read.organization(template) {
            Ok(org) => orgs.push(org),
            Err(found) => problems.0.extend(found.0),
        }
    }
    problems.into_result(Organizations::new(orgs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn source(name: &str, text: &str) -> Source {
        Source {
            path: name.into(),
            text: text.into(),
        }
    }

    fn client(id: &str, extra: &str) -> String {
        format!("[[client]]\nid = \"{id}\"\nname = \"A\"\n{extra}\n[[client.secret]]\nhash = \"{HASH}\"\n")
    }

    const POLICY: &str = "[organization]\nname = \"Acme\"\nscopes = [\"p.read\"]\n\
        default_roles = [\"member\"]\nmax_token_lifetime = \"10m\"\n";

    #[test]
    fn a_valid_file_is_one_organisation() {
        let text = format!("{POLICY}{}", client("a", "scopes = [\"p.read\"]"));
        let read = read_org(&source("acme.toml", &text), &Limits::DEFAULT);
        assert!(read.problems.is_empty(), "{}", read.problems);
        let template = IssuerTemplate::parse("https://x/{org}").unwrap();
        let org = read.organization(&template).unwrap();
        assert_eq!(org.id, "acme");
        assert_eq!(org.issuer, "https://x/acme");
        assert_eq!(
            org.policy.max_token_lifetime,
            Some(Duration::from_secs(600))
        );
        assert_eq!(org.clients.len(), 1);
    }

    #[test]
    fn a_client_outside_the_policy_is_a_problem_of_its_own_with_its_line() {
        let text = format!(
            "{POLICY}{}{}",
            client("ok", ""),
            client("wide", "scopes = [\"p.write\"]\ntoken_lifetime = \"30m\"")
        );
        let read = read_org(&source("acme.toml", &text), &Limits::DEFAULT);
        let problems = read.problems.to_string();
        assert!(problems.contains("acme.toml:12"), "{problems}");
        assert!(
            problems.contains("longer than the organisation's max_token_lifetime (10m)"),
            "{problems}"
        );
        assert!(
            problems.contains("\"p.write\" is not in the organisation's scopes"),
            "{problems}"
        );
        assert!(problems.contains("token_lifetime"), "{problems}");
        assert_eq!(read.clients.len(), 1);
        assert!(read.clients.get("ok").is_some());
    }

    #[test]
    fn bad_names_and_policies_are_problems() {
        let read = read_org(&source("Acme.toml", POLICY), &Limits::DEFAULT);
        assert!(read.id.is_none());
        let read = read_org(&source("manage.toml", POLICY), &Limits::DEFAULT);
        assert!(read.problems.to_string().contains("reserved"));
        let read = read_org(&source("acme.toml", &client("a", "")), &Limits::DEFAULT);
        assert!(read.policy.is_none());
        assert!(read.problems.to_string().contains("[organization]"));
        let read = read_org(
            &source(
                "acme.toml",
                "[organization]\nname = \"A\"\nmax_token_lifetime = \"9h\"\nsurprise = 1\n",
            ),
            &Limits::DEFAULT,
        );
        assert!(read.policy.is_none());
        assert!(
            read.problems.to_string().contains("acme.toml:1"),
            "{}",
            read.problems
        );
    }
}
