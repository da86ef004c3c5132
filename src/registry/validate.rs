//! What makes registry files a registry: every field of every `[[client]]` table validated,
//! every problem reported with its file, line and field, and only clients that are valid on
//! their own (with an id defined once) read as valid.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::file::Source;
use super::model::{secret_reference, Client, Registry, Secret};
use crate::config::Limits;
use crate::oauth::scope::{is_valid_scope_token, scope_token_problem};
use crate::problems::Problems;
use crate::timefmt::{parse_duration, parse_instant};

/// Parses and validates `sources` as one registry; reports every problem found.
pub fn validate(sources: &[Source], limits: &Limits) -> Result<Registry, Problems> {
    let (registry, problems) = read_clients(sources, limits);
    problems.into_result(registry)
}

/// What `sources` say as far as they can be read: every client that is valid on its own and
/// whose id is defined once, and every problem. A client with any problem, or whose id is
/// defined twice, is left out, so the registry never grants more than the files do.
pub fn read_clients(sources: &[Source], limits: &Limits) -> (Registry, Problems) {
    read_clients_within(sources, limits, None)
}

/// [`read_clients`] of files that may also hold an `[organization]` table (read by
/// [`super::org_file`]), whose clients may hold only the scopes in `allowed_scopes`.
pub fn read_clients_within(
    sources: &[Source],
    limits: &Limits,
    allowed_scopes: Option<&[String]>,
) -> (Registry, Problems) {
    let mut problems = Problems::default();
    let mut clients = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut duplicated = Vec::new();
    for source in sources {
        for table in parse_file(source, limits, allowed_scopes, &mut problems) {
            let Some(id) = table.id else { continue };
            if let Some(first) = seen.get(&id) {
                let field = format!("client {id:?}.id");
                let message = format!("duplicate id; already defined at {first}");
                problems.push_at(&source.path, table.line, field, message);
                duplicated.push(id);
                continue;
            }
            let place = match table.line {
                Some(line) => format!("{}:{line}", source.path.display()),
                None => source.path.display().to_string(),
            };
            seen.insert(id, place);
            clients.extend(table.client);
        }
    }
    clients.retain(|c| !duplicated.contains(&c.id));
    (Registry::new(clients), problems)
}

// ---- the file as written ------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    id: String,
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    token_lifetime: Option<String>,
    expires: Option<String>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    tokens_not_before: Option<String>,
    #[serde(default)]
    secret: Vec<RawSecret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    id: Option<String>,
    #[serde(default)]
    description: String,
    hash: String,
    expires: Option<String>,
    created: Option<String>,
}

fn enabled_by_default() -> bool {
    true
}

/// Longest client id; ids go into URLs, headers and logs, so they are short and plain.
pub const MAX_ID_LEN: usize = 128;
/// Longest secret id.
pub const MAX_SECRET_ID_LEN: usize = 64;

/// `Hire New Employees` → `hire-new-employees`.
pub fn client_id_from_name(name: &str) -> Option<String> {
    let slug: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let slug = slug
        .split('-')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let slug: String = slug.chars().take(MAX_ID_LEN).collect();
    (!slug.is_empty()).then_some(slug)
}

/// Secret ids go into URLs (`.../secrets/{id}`): letters, digits, `_` and `-` (base64url).
pub fn is_valid_secret_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SECRET_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
const MAX_NAME_LEN: usize = 200;

/// RFC 3986 unreserved characters: safe in form bodies, Basic credentials, headers and logs.
pub fn is_valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

/// One `[[client]]` table as read: its id when that is valid, the client when the whole table
/// is, and its line.
struct ClientTable {
    id: Option<String>,
    client: Option<Client>,
    line: Option<usize>,
}

/// Every `[[client]]` table of one file; nothing when the file is not valid TOML.
///
/// Each table is read on its own, so a missing or unknown field costs only its own client.
fn parse_file(
    source: &Source,
    limits: &Limits,
    allowed_scopes: Option<&[String]>,
    problems: &mut Problems,
) -> Vec<ClientTable> {
    let mut table: toml::Table = match toml::from_str(&source.text) {
        Ok(table) => table,
        Err(e) => {
            problems.push_toml(&source.path, &source.text, &e);
            return Vec::new();
        }
    };
    let tables = match table.remove("client") {
        None => Vec::new(),
        Some(toml::Value::Array(tables)) => tables,
        Some(_) => {
            problems.push(
                &source.path,
                "client",
                "must be a list of [[client]] tables",
            );
            Vec::new()
        }
    };
    let expected = if allowed_scopes.is_some() {
        "`organization` or `client`"
    } else {
        "`client`"
    };
    for unknown in table
        .keys()
        .filter(|k| allowed_scopes.is_none() || *k != "organization")
    {
        problems.push(
            &source.path,
            "",
            format!("unknown field `{unknown}`, expected {expected}"),
        );
    }
    let lines = client_lines(&source.text);
    let mut check = ClientChecker {
        path: &source.path,
        line: None,
        limits,
        allowed_scopes,
        problems,
    };
    tables
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            check.line = lines.get(i).copied();
            let id = value
                .get("id")
                .and_then(toml::Value::as_str)
                .filter(|id| is_valid_client_id(id))
                .map(str::to_owned);
            let client = match value.try_into::<RawClient>() {
                Ok(raw) => check.client(i, raw),
                Err(e) => {
                    let at = id
                        .as_ref()
                        .map_or(format!("client[{i}]"), |id| format!("client {id:?}"));
                    check.problem(&at, e.message().trim_end());
                    None
                }
            };
            ClientTable {
                id,
                client,
                line: check.line,
            }
        })
        .collect()
}

/// The line of each `[[client]]` table, in order.
fn client_lines(text: &str) -> Vec<usize> {
    let Ok(doc) = toml_edit::Document::parse(text) else {
        return Vec::new();
    };
    let Some(clients) = doc
        .get("client")
        .and_then(toml_edit::Item::as_array_of_tables)
    else {
        return Vec::new();
    };
    clients
        .iter()
        .map(|t| {
            t.span()
                .map_or(0, |span| text[..span.start].matches('\n').count() + 1)
        })
        .collect()
}

/// Converts raw clients, recording every problem with its field path.
struct ClientChecker<'a> {
    path: &'a Path,
    /// Line of the client table being checked.
    line: Option<usize>,
    limits: &'a Limits,
    /// An organisation's `scopes`: a client may hold no other.
    allowed_scopes: Option<&'a [String]>,
    problems: &'a mut Problems,
}

impl ClientChecker<'_> {
    fn client(&mut self, index: usize, raw: RawClient) -> Option<Client> {
        let before = self.problems.0.len();
        let at = if is_valid_client_id(&raw.id) {
            format!("client {:?}", raw.id)
        } else {
            self.problem(
                &format!("client[{index}].id"),
                format!(
                    "{:?} is not a valid id: use 1 to {MAX_ID_LEN} of A-Z a-z 0-9 . _ ~ -",
                    raw.id
                ),
            );
            format!("client[{index}]")
        };
        if raw.name.trim().is_empty()
            || raw.name.len() > MAX_NAME_LEN
            || raw.name.chars().any(char::is_control)
        {
            self.problem(
                &format!("{at}.name"),
                format!("must be 1 to {MAX_NAME_LEN} characters without control characters"),
            );
        }
        self.tokens(&at, "scopes", &raw.scopes);
        if let Some(allowed) = self.allowed_scopes {
            for (i, scope) in raw.scopes.iter().enumerate() {
                if !allowed.contains(scope) {
                    self.problem(
                        &format!("{at}.scopes[{i}]"),
                        format!("{scope:?} is not in the organisation's scopes"),
                    );
                }
            }
        }
        self.tokens(&at, "roles", &raw.roles);
        let token_lifetime = raw.token_lifetime.as_deref().and_then(|text| {
            let lifetime = self.parsed(&format!("{at}.token_lifetime"), parse_duration(text))?;
            let checked = self.limits.check(lifetime);
            self.parsed(&format!("{at}.token_lifetime"), checked.map(|_| lifetime))
        });
        let expires = self.instant(&format!("{at}.expires"), raw.expires.as_deref());
        let tokens_not_before = self.instant(
            &format!("{at}.tokens_not_before"),
            raw.tokens_not_before.as_deref(),
        );
        if raw.secret.is_empty() {
            self.problem(
                &format!("{at}.secret"),
                "a client needs at least one [[client.secret]]",
            );
        }
        let secrets: Vec<Secret> = raw
            .secret
            .into_iter()
            .enumerate()
            .map(|(i, s)| self.secret(&format!("{at}.secret[{i}]"), s))
            .collect();
        for (i, secret) in secrets.iter().enumerate() {
            if secrets[..i].iter().any(|s| s.id == secret.id) {
                self.problem(
                    &format!("{at}.secret[{i}].id"),
                    format!("{:?} is the id of another secret of this client", secret.id),
                );
            }
        }
        (self.problems.0.len() == before).then_some(Client {
            id: raw.id,
            name: raw.name,
            scopes: raw.scopes,
            roles: raw.roles,
            token_lifetime,
            expires,
            enabled: raw.enabled,
            tokens_not_before,
            secrets,
        })
    }

    fn secret(&mut self, at: &str, raw: RawSecret) -> Secret {
        let hash_ok = check_argon2id_hash(&raw.hash)
            .map_err(|e| self.problem(&format!("{at}.hash"), e))
            .is_ok();
        // An id derived from a bad hash is that hash's problem, reported once.
        let check_id = raw.id.is_some() || hash_ok;
        let id = raw.id.unwrap_or_else(|| secret_reference(&raw.hash));
        if check_id && !is_valid_secret_id(&id) {
            self.problem(
                &format!("{at}.id"),
                format!("{id:?} is not a valid secret id: use 1 to {MAX_SECRET_ID_LEN} of A-Z a-z 0-9 _ -"),
            );
        }
        if raw.description.len() > MAX_NAME_LEN || raw.description.chars().any(char::is_control) {
            self.problem(
                &format!("{at}.description"),
                format!("must be at most {MAX_NAME_LEN} characters without control characters"),
            );
        }
        Secret {
            id,
            expires: self.instant(&format!("{at}.expires"), raw.expires.as_deref()),
            created: self.instant(&format!("{at}.created"), raw.created.as_deref()),
            description: raw.description,
            hash: raw.hash,
        }
    }

    fn tokens(&mut self, at: &str, field: &str, tokens: &[String]) {
        for (i, token) in tokens.iter().enumerate() {
            if !is_valid_scope_token(token) {
                self.problem(&format!("{at}.{field}[{i}]"), scope_token_problem(token));
            } else if tokens[..i].contains(token) {
                self.problem(
                    &format!("{at}.{field}[{i}]"),
                    format!("{token:?} is listed twice"),
                );
            }
        }
    }

    fn instant(&mut self, field: &str, text: Option<&str>) -> Option<time::OffsetDateTime> {
        text.and_then(|t| self.parsed(field, parse_instant(t)))
    }

    fn parsed<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.problem(field, e)).ok()
    }

    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push_at(self.path, self.line, field, message);
    }
}

/// Bounds on the argon2 parameters a stored hash may carry. The lower bound is OWASP's weakest
/// recommended setting; the upper bounds stop one bad hash from exhausting memory or CPU.
const MIN_MEMORY_KIB: u32 = 7 * 1024;
const MAX_MEMORY_KIB: u32 = 256 * 1024;
const MAX_ITERATIONS: u32 = 16;
const MAX_LANES: u32 = 8;

/// Accepts only argon2id PHC strings with sane parameters.
pub fn check_argon2id_hash(hash: &str) -> Result<(), String> {
    let parsed = argon2::PasswordHash::new(hash).map_err(|e| {
        format!("not a PHC hash string ({e}); generate one with `credgate secret add`")
    })?;
    if parsed.algorithm != argon2::Algorithm::Argon2id.ident() {
        return Err(format!("algorithm {} is not argon2id", parsed.algorithm));
    }
    if parsed.hash.is_none() {
        return Err("the PHC string has no hash value".into());
    }
    let params = argon2::Params::try_from(&parsed).map_err(|e| format!("bad parameters: {e}"))?;
    if !(MIN_MEMORY_KIB..=MAX_MEMORY_KIB).contains(&params.m_cost())
        || params.t_cost() > MAX_ITERATIONS
        || params.p_cost() > MAX_LANES
    {
        return Err(format!(
            "parameters m={},t={},p={} are outside m={MIN_MEMORY_KIB}..{MAX_MEMORY_KIB}, t<={MAX_ITERATIONS}, p<={MAX_LANES}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn limits() -> Limits {
        Limits::DEFAULT
    }

    fn load_text(text: &str) -> Result<Registry, Problems> {
        let source = Source {
            path: "clients.toml".into(),
            text: text.into(),
        };
        validate(&[source], &limits())
    }

    fn client(extra: &str) -> String {
        format!(
            "[[client]]\nid = \"a\"\nname = \"A\"\n{extra}\n[[client.secret]]\nhash = \"{HASH}\"\n"
        )
    }

    #[test]
    fn ids_derive_from_names() {
        assert_eq!(
            client_id_from_name("Hire New Employees").as_deref(),
            Some("hire-new-employees")
        );
        assert_eq!(
            client_id_from_name("  Payroll / EU (v2) ").as_deref(),
            Some("payroll-eu-v2")
        );
        assert_eq!(client_id_from_name("ÄÖÜ"), None);
    }

    #[test]
    fn a_valid_client_loads_with_defaults() {
        let registry = load_text(&client("scopes = [\"x.read\"]")).unwrap();
        let c = registry.get("a").unwrap();
        assert!(c.enabled);
        assert_eq!(c.scopes, ["x.read"]);
        assert_eq!(c.token_lifetime, None);
        assert_eq!(
            c.secrets[0].id, "c29tZXNh",
            "no id written: the salt's start"
        );
        assert_eq!(c.secrets[0].created, None);
    }

    #[test]
    fn secret_ids_are_url_safe_and_unique_within_a_client() {
        let salted = |salt: &str| HASH.replace("c29tZXNhbHRzb21lc2FsdA", salt);
        let text = format!(
            "[[client]]\nid = \"a\"\nname = \"A\"\n[[client.secret]]\nhash = \"{}\"\n\
             [[client.secret]]\nid = \"k3Jd9_x2QmTa\"\nhash = \"{HASH}\"\ncreated = \"2026-11-24\"\n",
            salted("a+b/c+d/efghijklmnop")
        );
        let registry = load_text(&text).unwrap();
        let secrets = &registry.get("a").unwrap().secrets;
        assert_eq!(secrets[0].id, "a-b_c-d_");
        assert_eq!(secrets[1].id, "k3Jd9_x2QmTa");
        assert!(secrets[1].created.is_some());
        for (bad, problem) in [
            ("id = \"a b\"", "not a valid secret id"),
            ("id = \"c29tZXNh\"", "the id of another secret"),
        ] {
            let text = format!(
                "[[client]]\nid = \"a\"\nname = \"A\"\n[[client.secret]]\nhash = \"{HASH}\"\n\
                 [[client.secret]]\n{bad}\nhash = \"{HASH}\"\n"
            );
            let problems = load_text(&text).unwrap_err().to_string();
            assert!(problems.contains(problem), "{bad}: {problems}");
        }
    }

    #[test]
    fn an_empty_registry_is_valid() {
        assert!(load_text("").unwrap().is_empty());
        assert!(load_text("# nothing yet\n").unwrap().is_empty());
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (
                client("token_lifetime = \"2h\""),
                "client \"a\".token_lifetime: 2h is longer",
            ),
            (
                client("token_lifetime = \"10s\""),
                "client \"a\".token_lifetime: 10s is shorter",
            ),
            (
                client("token_lifetime = \"soon\""),
                "client \"a\".token_lifetime: \"soon\" is not a duration",
            ),
            (
                client("expires = \"tomorrow\""),
                "client \"a\".expires: \"tomorrow\" is not a date",
            ),
            (client("scopes = [\"a b\"]"), "client \"a\".scopes[0]"),
            (
                client("roles = [\"r\", \"r\"]"),
                "client \"a\".roles[1]: \"r\" is listed twice",
            ),
            (client("colour = \"red\""), "unknown field `colour`"),
            (
                client("").replace("id = \"a\"", "id = \"a b\""),
                "client[0].id: \"a b\" is not a valid id",
            ),
            (
                client("").replace("id = \"a\"", "id = \"\""),
                "client[0].id",
            ),
            (
                client("").replace(HASH, "plain"),
                "client \"a\".secret[0].hash: not a PHC hash",
            ),
            (
                client("").replace("argon2id", "argon2i"),
                "algorithm argon2i is not argon2id",
            ),
            (client("").replace("m=19456", "m=1048576"), "outside m="),
            (
                "[[client]]\nid = \"a\"\nname = \"A\"\n".to_string(),
                "client \"a\".secret: a client needs at least one",
            ),
        ];
        for (text, needle) in cases {
            let problems = load_text(&text).unwrap_err().to_string();
            assert!(
                problems.contains(needle),
                "expected {needle:?} in {problems:?}"
            );
        }
    }

    #[test]
    fn a_syntax_error_is_located_without_quoting_the_file() {
        let broken = client("").replace(&format!("hash = \"{HASH}\""), &format!("hash = \"{HASH}"));
        let problems = load_text(&broken).unwrap_err().to_string();
        assert!(problems.starts_with("clients.toml:6: "), "{problems}");
        assert!(
            !problems.contains("argon2id") && !problems.contains('\n'),
            "{problems}"
        );
    }

    #[test]
    fn duplicate_ids_across_files_name_both_files() {
        let sources = [
            Source {
                path: "one.toml".into(),
                text: client(""),
            },
            Source {
                path: "two.toml".into(),
                text: client(""),
            },
        ];
        let problems = validate(&sources, &limits()).unwrap_err().to_string();
        assert_eq!(
            problems,
            "two.toml:1: client \"a\".id: duplicate id; already defined at one.toml:1"
        );
    }

    #[test]
    fn a_duplicate_is_reported_even_when_one_of_the_pair_is_invalid() {
        let text = format!(
            "{}{}{}",
            client("token_lifetime = \"soon\""),
            client(""),
            client("").replace("\"a\"", "\"b\"").replace(HASH, "plain")
        );
        let source = Source {
            path: "clients.toml".into(),
            text,
        };
        let (registry, problems) = read_clients(&[source], &limits());
        let problems = problems.to_string();
        assert_eq!(problems.lines().count(), 3, "{problems}");
        assert!(
            problems.contains("client \"a\".id: duplicate id"),
            "{problems}"
        );
        assert!(
            registry.is_empty(),
            "neither of a duplicated pair is read as valid"
        );
    }
}
