//! What the management API reads and writes: the JSON of clients, secrets and organisations
//! (never a hash), the bodies it accepts, and each resource's `ETag`.

use aws_lc_rs::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::registry::{Client, OrgPolicy, Secret};
use crate::timefmt::format_instant;

/// A secret as the API shows it: metadata only.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    pub id: String,
    pub description: String,
    pub created: Option<String>,
    pub expires: Option<String>,
    pub expired: bool,
}

impl SecretView {
    pub fn of(secret: &Secret, now: OffsetDateTime) -> Self {
        SecretView {
            id: secret.id.clone(),
            description: secret.description.clone(),
            created: secret.created.map(format_instant),
            expires: secret.expires.map(format_instant),
            expired: !secret.is_valid_at(now),
        }
    }
}

/// A client as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// The client's own roles; every token also carries `default_roles`.
    pub roles: Vec<String>,
    /// The organisation's roles, carried by every token and not removable.
    pub default_roles: Vec<String>,
    /// Seconds; `null`: the issuer's default.
    pub token_lifetime: Option<u64>,
    pub expires: Option<String>,
    pub enabled: bool,
    /// `enabled`, `disabled` or `expired`.
    #[schema(value_type = String)]
    pub state: &'static str,
    pub tokens_not_before: Option<String>,
    pub secrets: Vec<SecretView>,
}

impl ClientView {
    pub fn of(client: &Client, policy: &OrgPolicy, now: OffsetDateTime) -> Self {
        ClientView {
            id: client.id.clone(),
            name: client.name.clone(),
            scopes: client.scopes.clone(),
            roles: client.roles.clone(),
            default_roles: policy.default_roles.clone(),
            token_lifetime: client.token_lifetime.map(|d| d.as_secs()),
            expires: client.expires.map(format_instant),
            enabled: client.enabled,
            state: if !client.enabled {
                "disabled"
            } else if client.is_active(now) {
                "enabled"
            } else {
                "expired"
            },
            tokens_not_before: client.tokens_not_before.map(format_instant),
            secrets: client
                .secrets
                .iter()
                .map(|s| SecretView::of(s, now))
                .collect(),
        }
    }
}

/// An organisation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub scopes: Vec<String>,
    pub default_roles: Vec<String>,
    pub require_role: bool,
    pub max_token_lifetime: Option<u64>,
    pub clients: usize,
}

impl OrgView {
    pub fn of(id: &str, policy: &OrgPolicy, clients: usize) -> Self {
        OrgView {
            id: id.to_owned(),
            name: policy.name.clone(),
            enabled: policy.enabled,
            scopes: policy.scopes.clone().unwrap_or_default(),
            default_roles: policy.default_roles.clone(),
            require_role: policy.require_role,
            max_token_lifetime: policy.max_token_lifetime.map(|d| d.as_secs()),
            clients,
        }
    }
}

/// `GET /orgs/{org}/clients`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientView>,
}

/// `GET /orgs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgList {
    pub organizations: Vec<OrgView>,
}

/// `201` of `POST .../clients`: the secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientCreated {
    pub client: ClientView,
    pub client_secret: String,
}

/// A new secret of `POST .../secrets` or `.../secrets/regenerate`, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretCreated {
    pub secret: SecretView,
    pub client_secret: String,
}

/// `POST .../revoke-tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokensRevoked {
    pub tokens_not_before: String,
}

/// `POST .../clients`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    pub id: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Seconds.
    pub token_lifetime: Option<u64>,
    /// RFC 3339 or a date; absent or `null`: never.
    pub expires: Option<String>,
    pub secret_description: Option<String>,
    /// RFC 3339 or a date; absent: one year from now; `"never"`: never.
    pub secret_expires: Option<String>,
}

/// `PATCH .../clients/{id}`: only the fields present change; `null` clears an optional one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub token_lifetime: Option<Option<u64>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub expires: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// `POST /orgs` (operators).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub default_roles: Vec<String>,
    #[serde(default)]
    pub require_role: bool,
    /// Seconds.
    pub max_token_lifetime: Option<u64>,
}

/// `PATCH /orgs/{org}` (operators): only the fields present change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub scopes: Option<Vec<String>>,
    pub default_roles: Option<Vec<String>>,
    pub require_role: Option<bool>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub max_token_lifetime: Option<Option<u64>>,
}

/// `POST .../secrets` and `.../secrets/regenerate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSecret {
    pub description: Option<String>,
    /// RFC 3339 or a date; absent: one year from now; `"never"`: never.
    pub expires: Option<String>,
}

/// A field that may be absent (no change), `null` (cleared) or set.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// A strong `ETag` of a resource's JSON.
pub fn etag(view: &impl Serialize) -> String {
    let json = serde_json::to_vec(view).expect("views serialize");
    format!("\"{}\"", sha256_hex(&json, 12))
}

/// The first `bytes` bytes of the SHA-256 of `data`, in hex: a name for a version of
/// something (an `ETag`, the console's asset folder).
pub fn sha256_hex(data: &[u8], bytes: usize) -> String {
    digest(&SHA256, data).as_ref()[..bytes]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A secret or client expiry as written in a body: a date or instant, `never`, or absent
/// (`default`, an expiry in the same words, or none).
pub fn expiry(
    text: Option<&str>,
    default: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, String> {
    match text.or(default) {
        None => Ok(None),
        Some(text) => crate::timefmt::parse_expiry(text, now),
    }
}
