//! The operations of the management API: which one a request asks for (and whether the caller
//! may), then running it against the organisation's file through the registry editor.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use time::OffsetDateTime;

use super::problem::Problem;
use super::views::{
    etag, expiry, ClientCreated, ClientList, ClientPatch, ClientView, NewClient, NewOrg, NewSecret,
    OrgList, OrgPatch, OrgView, SecretCreated, SecretView, TokensRevoked,
};
use super::{Answer, Audited, Caller, Manage, ManageRequest};
use crate::oauth::issuer_url::is_valid_org_id;
use crate::registry::edit::RegistryDocument;
use crate::registry::editor::{EditError, Editor};
use crate::registry::file::Source;
use crate::registry::new_secret::new_secret;
use crate::registry::org_file::{read_org, read_orgs};
use crate::registry::validate::{client_id_from_name, is_valid_client_id};
use crate::registry::{Client, OrgPolicy, Registry};
use crate::timefmt::{format_duration, format_instant, DEFAULT_SECRET_EXPIRY};

/// What a request asks for.
#[derive(Debug)]
enum Op {
    ListOrgs,
    CreateOrg,
    GetOrg(String),
    PatchOrg(String),
    DeleteOrg(String),
    ListClients(String),
    CreateClient(String),
    GetClient(String, String),
    PatchClient(String, String),
    DeleteClient(String, String),
    AddSecret(String, String),
    RemoveSecret(String, String, String),
    RegenerateSecrets(String, String),
    RevokeTokens(String, String),
}

/// One authorised operation, ready to run.
pub struct Call {
    pub caller: Caller,
    op: Op,
    if_match: Option<String>,
    force: bool,
    body: Vec<u8>,
}

impl Call {
    /// The operation `req` asks for, if `caller` may ask for it.
    pub fn parse(
        manage: &Manage,
        req: &ManageRequest<'_>,
        caller: Caller,
    ) -> Result<Call, Problem> {
        let rest = req
            .path
            .strip_prefix(manage.prefix())
            .unwrap_or("")
            .trim_start_matches('/');
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let owned = |s: &str| s.to_owned();
        let method = req.method;
        let not_allowed = |allowed: &str| {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this resource answers {allowed}"),
            )
        };
        let op = match (segments.as_slice(), method) {
            (["orgs"], &Method::GET) => Op::ListOrgs,
            (["orgs"], &Method::POST) => Op::CreateOrg,
            (["orgs"], _) => return Err(not_allowed("GET, POST")),
            (["orgs", org], m) => match *m {
                Method::GET => Op::GetOrg(owned(org)),
                Method::PATCH => Op::PatchOrg(owned(org)),
                Method::DELETE => Op::DeleteOrg(owned(org)),
                _ => return Err(not_allowed("GET, PATCH, DELETE")),
            },
            (["orgs", org, "clients"], &Method::GET) => Op::ListClients(owned(org)),
            (["orgs", org, "clients"], &Method::POST) => Op::CreateClient(owned(org)),
            (["orgs", _, "clients"], _) => return Err(not_allowed("GET, POST")),
            (["orgs", org, "clients", id], m) => match *m {
                Method::GET => Op::GetClient(owned(org), owned(id)),
                Method::PATCH => Op::PatchClient(owned(org), owned(id)),
                Method::DELETE => Op::DeleteClient(owned(org), owned(id)),
                _ => return Err(not_allowed("GET, PATCH, DELETE")),
            },
            (["orgs", org, "clients", id, "secrets"], &Method::POST) => {
                Op::AddSecret(owned(org), owned(id))
            }
            (["orgs", org, "clients", id, "secrets", "regenerate"], &Method::POST) => {
                Op::RegenerateSecrets(owned(org), owned(id))
            }
            (["orgs", org, "clients", id, "secrets", sid], &Method::DELETE) => {
                Op::RemoveSecret(owned(org), owned(id), owned(sid))
            }
            (["orgs", org, "clients", id, "revoke-tokens"], &Method::POST) => {
                Op::RevokeTokens(owned(org), owned(id))
            }
            (
                ["orgs", _, "clients", _, "secrets", ..]
                | ["orgs", _, "clients", _, "revoke-tokens"],
                _,
            ) => return Err(not_allowed("POST (DELETE for one secret)")),
            _ => return Err(Problem::not_found("no such resource")),
        };
        authorise(&caller, &op)?;
        Ok(Call {
            caller,
            op,
            if_match: req
                .if_match
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(|v| v.trim().to_owned()),
            force: req
                .query
                .is_some_and(|q| q.split('&').any(|p| p == "force=true")),
            body: if json_body(req.content_type, req.body)? {
                req.body.to_vec()
            } else {
                Vec::new()
            },
        })
    }

    /// The organisation a change is counted against (`None` for a read). A new organisation
    /// counts against its creator's.
    pub fn changes(&self) -> Option<&str> {
        match &self.op {
            Op::ListOrgs | Op::GetOrg(_) | Op::ListClients(_) | Op::GetClient(..) => None,
            Op::CreateOrg => Some(&self.caller.org),
            Op::PatchOrg(org)
            | Op::DeleteOrg(org)
            | Op::CreateClient(org)
            | Op::PatchClient(org, _)
            | Op::DeleteClient(org, _)
            | Op::AddSecret(org, _)
            | Op::RemoveSecret(org, _, _)
            | Op::RegenerateSecrets(org, _)
            | Op::RevokeTokens(org, _) => Some(org),
        }
    }

    /// Runs the operation; the answer, and what to audit when it is a change.
    pub fn run(self, manage: &Manage) -> (Result<Answer, Problem>, Option<Audited>) {
        let audited = self.audited();
        (self.execute(manage), audited)
    }

    fn audited(&self) -> Option<Audited> {
        let client = |org: &str, id: &str| format!("{org}/{id}");
        let (action, target, secret_id) = match &self.op {
            Op::ListOrgs | Op::GetOrg(_) | Op::ListClients(_) | Op::GetClient(..) => return None,
            Op::CreateOrg => {
                let body: serde_json::Value =
                    serde_json::from_slice(&self.body).unwrap_or_default();
                let id = body["id"].as_str().unwrap_or("").chars().take(64).collect();
                ("org.create", id, None)
            }
            Op::PatchOrg(org) => ("org.update", org.clone(), None),
            Op::DeleteOrg(org) => ("org.delete", org.clone(), None),
            Op::CreateClient(org) => ("client.create", org.clone(), None),
            Op::PatchClient(org, id) => ("client.update", client(org, id), None),
            Op::DeleteClient(org, id) => ("client.delete", client(org, id), None),
            Op::AddSecret(org, id) => ("secret.add", client(org, id), None),
            Op::RemoveSecret(org, id, sid) => ("secret.remove", client(org, id), Some(sid.clone())),
            Op::RegenerateSecrets(org, id) => ("secret.regenerate", client(org, id), None),
            Op::RevokeTokens(org, id) => ("client.revoke_tokens", client(org, id), None),
        };
        Some(Audited {
            action,
            target,
            secret_id,
        })
    }

    fn execute(&self, manage: &Manage) -> Result<Answer, Problem> {
        let now = OffsetDateTime::now_utc();
        match &self.op {
            Op::ListOrgs => list_orgs(manage),
            Op::GetOrg(org) => {
                let (policy, clients) = Org::read(manage, org)?;
                let view = OrgView::of(org, &policy, clients.len());
                Ok(ok(json!(view), Some(etag(&view))))
            }
            Op::ListClients(org) => {
                let (policy, clients) = Org::read(manage, org)?;
                let views: Vec<ClientView> = clients
                    .sorted()
                    .into_iter()
                    .map(|c| ClientView::of(c, &policy, now))
                    .collect();
                let body = json!(ClientList { clients: views });
                let tag = etag(&body);
                Ok(ok(body, Some(tag)))
            }
            Op::GetClient(org, id) => {
                let (policy, clients) = Org::read(manage, org)?;
                let client = clients.get(id).ok_or_else(|| no_client(id))?;
                let view = ClientView::of(client, &policy, now);
                let tag = etag(&view);
                Ok(ok(json!(view), Some(tag)))
            }
            Op::CreateOrg => self.create_org(manage),
            Op::PatchOrg(org) => {
                let patch: OrgPatch = self.input()?;
                let (_, editor) = Org::editor(manage, org)?;
                editor.edit_organization(|doc| apply_org_patch(doc, &patch))?;
                let (policy, clients) = Org::read(manage, org)?;
                let view = OrgView::of(org, &policy, clients.len());
                Ok(ok(json!(view), Some(etag(&view))))
            }
            Op::DeleteOrg(org) => {
                let (_, editor) = Org::editor(manage, org)?;
                editor.remove_organization(self.force)?;
                Ok(no_content())
            }
            Op::CreateClient(org) => self.create_client(manage, org, now),
            Op::PatchClient(org, id) => self.patch_client(manage, org, id, now),
            Op::DeleteClient(org, id) => {
                let (policy, editor) = Org::editor(manage, org)?;
                let check = |c: &Client| self.precondition(c, &policy, now);
                editor.edit_client_if(id, check, |doc| doc.remove_client(id))?;
                Ok(no_content())
            }
            Op::AddSecret(org, id) => {
                let input: NewSecret = self.input()?;
                let (plain, secret) = self.secret(&input, now)?;
                let (policy, editor) = Org::editor(manage, org)?;
                let max = manage.config.max_secrets_per_client;
                let check = |c: &Client| {
                    self.precondition(c, &policy, now)?;
                    if c.secrets.len() >= max {
                        return Err(EditError::Refused(format!(
                            "client {id:?} has {max} secrets, the most allowed; remove one first"
                        )));
                    }
                    Ok(())
                };
                editor.edit_client_if(id, check, |doc| doc.add_secret(id, &secret))?;
                let body = json!(SecretCreated {
                    secret: SecretView::of(&secret, now),
                    client_secret: plain.to_string(),
                });
                Ok(created(body, None, None))
            }
            Op::RemoveSecret(org, id, sid) => {
                let (policy, editor) = Org::editor(manage, org)?;
                let check = |c: &Client| {
                    self.precondition(c, &policy, now)?;
                    let secret = c.secrets.iter().find(|s| &s.id == sid).ok_or_else(|| {
                        EditError::Missing(format!("client {id:?} has no secret {sid:?}"))
                    })?;
                    let others_valid = c
                        .secrets
                        .iter()
                        .any(|s| s.id != secret.id && s.is_valid_at(now));
                    if !others_valid && !self.force {
                        return Err(EditError::Refused(format!(
                            "{sid:?} is the last valid secret of {id:?}: the client could no longer get tokens; pass ?force=true to remove it anyway"
                        )));
                    }
                    Ok(())
                };
                editor.edit_client_if(id, check, |doc| doc.remove_secret(id, sid))?;
                Ok(no_content())
            }
            Op::RegenerateSecrets(org, id) => {
                let input: NewSecret = self.input()?;
                let (plain, secret) = self.secret(&input, now)?;
                let (policy, editor) = Org::editor(manage, org)?;
                let check = |c: &Client| self.precondition(c, &policy, now);
                editor.edit_client_if(id, check, |doc| doc.replace_secrets(id, &secret))?;
                let body = json!(SecretCreated {
                    secret: SecretView::of(&secret, now),
                    client_secret: plain.to_string(),
                });
                Ok(ok(body, None))
            }
            Op::RevokeTokens(org, id) => {
                let (policy, editor) = Org::editor(manage, org)?;
                // Tokens carry whole seconds: revoke up to the start of the next second.
                let cutoff = now.replace_nanosecond(0).unwrap_or(now) + time::Duration::SECOND;
                let check = |c: &Client| self.precondition(c, &policy, now);
                editor.edit_client_if(id, check, |doc| doc.set_tokens_not_before(id, cutoff))?;
                let body = TokensRevoked {
                    tokens_not_before: format_instant(cutoff),
                };
                Ok(ok(json!(body), None))
            }
        }
    }

    fn create_org(&self, manage: &Manage) -> Result<Answer, Problem> {
        let input: NewOrg = self.input()?;
        if let Some(problem) = crate::oauth::issuer_url::org_id_problem(&input.id) {
            return Err(Problem::bad_request(problem));
        }
        let policy = OrgPolicy {
            name: input.name,
            enabled: true,
            scopes: Some(input.scopes),
            default_roles: input.default_roles,
            require_role: input.require_role,
            max_token_lifetime: input.max_token_lifetime.map(Duration::from_secs),
        };
        let editor = Editor {
            path: manage.org_file(&input.id),
            limits: manage.limits,
            may_create: false,
            org: Some(input.id.clone()),
        };
        editor.create_organization(&RegistryDocument::new_organization(&policy))?;
        let view = OrgView::of(&input.id, &policy, 0);
        let location = format!("{}/orgs/{}", manage.prefix(), input.id);
        Ok(created(json!(view), Some(etag(&view)), Some(location)))
    }

    fn create_client(
        &self,
        manage: &Manage,
        org: &str,
        now: OffsetDateTime,
    ) -> Result<Answer, Problem> {
        let input: NewClient = self.input()?;
        let id = match &input.id {
            Some(id) => id.clone(),
            None => client_id_from_name(&input.name).ok_or_else(|| {
                Problem::bad_request(format!(
                    "cannot derive an id from {:?}; give one",
                    input.name
                ))
            })?,
        };
        if !is_valid_client_id(&id) {
            return Err(Problem::bad_request(format!(
                "{id:?} is not a valid client id: use 1 to 128 of A-Z a-z 0-9 . _ ~ -"
            )));
        }
        self.may_grant(manage, &input.scopes)?;
        let expires = expiry(input.expires.as_deref(), None, now).map_err(Problem::bad_request)?;
        let secret_input = NewSecret {
            description: input.secret_description.clone(),
            expires: input.secret_expires.clone(),
        };
        let (plain, secret) = self.secret(&secret_input, now)?;
        let client = Client {
            id: id.clone(),
            name: input.name,
            scopes: input.scopes,
            roles: input.roles,
            token_lifetime: input.token_lifetime.map(Duration::from_secs),
            expires,
            enabled: true,
            tokens_not_before: None,
            secrets: vec![secret],
        };
        let (policy, editor) = Org::editor(manage, org)?;
        let max = manage.config.max_clients_per_org;
        editor.edit_new(&id, |doc| {
            if doc.client_count() >= max {
                return Err(format!(
                    "organisation {org:?} has {max} clients, the most allowed"
                ));
            }
            doc.add_client(&client)
        })?;
        let view = ClientView::of(&client, &policy, now);
        let tag = etag(&view);
        let location = format!("{}/orgs/{org}/clients/{id}", manage.prefix());
        let body = json!(ClientCreated {
            client: view,
            client_secret: plain.to_string(),
        });
        Ok(created(body, Some(tag), Some(location)))
    }

    fn patch_client(
        &self,
        manage: &Manage,
        org: &str,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Answer, Problem> {
        let patch: ClientPatch = self.input()?;
        if let Some(scopes) = &patch.scopes {
            self.may_grant(manage, scopes)?;
        }
        let expires = match &patch.expires {
            Some(Some(text)) => Some(expiry(Some(text), None, now).map_err(Problem::bad_request)?),
            Some(None) => Some(None),
            None => None,
        };
        let (policy, editor) = Org::editor(manage, org)?;
        let check = |c: &Client| self.precondition(c, &policy, now);
        editor.edit_client_if(id, check, |doc| apply_patch(doc, id, &patch, expires))?;
        let (_, clients) = Org::read(manage, org)?;
        let client = clients.get(id).ok_or_else(|| no_client(id))?;
        let view = ClientView::of(client, &policy, now);
        let tag = etag(&view);
        Ok(ok(json!(view), Some(tag)))
    }

    /// The request body as `T`; an empty body is `T`'s default, when it has one.
    fn input<T: serde::de::DeserializeOwned>(&self) -> Result<T, Problem> {
        let body: &[u8] = if self.body.is_empty() {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body)
            .map_err(|e| Problem::bad_request(format!("the JSON body does not fit: {e}")))
    }

    /// A fresh secret as `input` describes it (hashed here, on a blocking thread).
    fn secret(
        &self,
        input: &NewSecret,
        now: OffsetDateTime,
    ) -> Result<(zeroize::Zeroizing<String>, crate::registry::Secret), Problem> {
        let expires = expiry(input.expires.as_deref(), Some(DEFAULT_SECRET_EXPIRY), now)
            .map_err(Problem::bad_request)?;
        Ok(new_secret(input.description.clone(), expires, now))
    }

    /// Only an operator may grant the management scope; the organisation's `scopes` bound the
    /// rest (the editor's validation refuses a scope outside them).
    fn may_grant(&self, manage: &Manage, scopes: &[String]) -> Result<(), Problem> {
        if !self.caller.operator && scopes.contains(&manage.config.scope) {
            return Err(Problem::forbidden(format!(
                "only an operator may grant the scope {:?}",
                manage.config.scope
            )));
        }
        Ok(())
    }

    /// `If-Match`, checked against the client as the files describe it under the lock.
    fn precondition(
        &self,
        client: &Client,
        policy: &OrgPolicy,
        now: OffsetDateTime,
    ) -> Result<(), EditError> {
        match self.if_match.as_deref() {
            None | Some("*") => Ok(()),
            Some(tag) if tag == etag(&ClientView::of(client, policy, now)) => Ok(()),
            Some(_) => Err(EditError::Precondition(format!(
                "client {:?} has changed since that ETag; read it again",
                client.id
            ))),
        }
    }
}

/// Applies a PATCH to the client's table.
fn apply_patch(
    doc: &mut RegistryDocument,
    id: &str,
    patch: &ClientPatch,
    expires: Option<Option<OffsetDateTime>>,
) -> Result<(), String> {
    let array = |items: &[String]| toml_edit::Value::Array(items.iter().collect());
    if let Some(name) = &patch.name {
        doc.set_client_field(id, "name", Some(name.as_str().into()))?;
    }
    if let Some(scopes) = &patch.scopes {
        doc.set_client_field(id, "scopes", Some(array(scopes)))?;
    }
    if let Some(roles) = &patch.roles {
        doc.set_client_field(id, "roles", Some(array(roles)))?;
    }
    if let Some(lifetime) = patch.token_lifetime {
        let text = lifetime.map(|s| format_duration(Duration::from_secs(s)).into());
        doc.set_client_field(id, "token_lifetime", text)?;
    }
    if let Some(expires) = expires {
        doc.set_client_field(id, "expires", expires.map(|e| format_instant(e).into()))?;
    }
    if let Some(enabled) = patch.enabled {
        doc.set_enabled(id, enabled)?;
    }
    Ok(())
}

/// Applies a PATCH to the `[organization]` table.
fn apply_org_patch(doc: &mut RegistryDocument, patch: &OrgPatch) -> Result<(), String> {
    let array = |items: &[String]| toml_edit::Value::Array(items.iter().collect());
    if let Some(name) = &patch.name {
        doc.set_organization_field("name", Some(name.as_str().into()))?;
    }
    if let Some(enabled) = patch.enabled {
        doc.set_organization_field("enabled", Some(enabled.into()))?;
    }
    if let Some(scopes) = &patch.scopes {
        doc.set_organization_field("scopes", Some(array(scopes)))?;
    }
    if let Some(roles) = &patch.default_roles {
        doc.set_organization_field("default_roles", Some(array(roles)))?;
    }
    if let Some(required) = patch.require_role {
        doc.set_organization_field("require_role", Some(required.into()))?;
    }
    if let Some(max) = patch.max_token_lifetime {
        let text = max.map(|s| format_duration(Duration::from_secs(s)).into());
        doc.set_organization_field("max_token_lifetime", text)?;
    }
    Ok(())
}

/// Whether the caller may ask for `op` at all: operators anything, an organisation's
/// administrators their own organisation's clients and policy (another's is "not found").
fn authorise(caller: &Caller, op: &Op) -> Result<(), Problem> {
    let operators_only = |what: &str| Err(Problem::forbidden(format!("only operators {what}")));
    let org = match op {
        Op::ListOrgs | Op::CreateOrg | Op::PatchOrg(_) | Op::DeleteOrg(_) if caller.operator => {
            return Ok(())
        }
        Op::ListOrgs => return operators_only("list organisations"),
        Op::CreateOrg => return operators_only("create organisations"),
        Op::PatchOrg(org) | Op::DeleteOrg(org) if caller.org == *org => {
            return operators_only("change organisations")
        }
        Op::PatchOrg(org) | Op::DeleteOrg(org) => org,
        Op::GetOrg(org)
        | Op::ListClients(org)
        | Op::CreateClient(org)
        | Op::GetClient(org, _)
        | Op::PatchClient(org, _)
        | Op::DeleteClient(org, _)
        | Op::AddSecret(org, _)
        | Op::RemoveSecret(org, _, _)
        | Op::RegenerateSecrets(org, _)
        | Op::RevokeTokens(org, _) => org,
    };
    if is_valid_org_id(org) && caller.manages(org) {
        Ok(())
    } else {
        Err(no_org(org))
    }
}

/// Whether a request carries a JSON body (an empty one is none); anything else is refused.
fn json_body(content_type: Option<&[u8]>, body: &[u8]) -> Result<bool, Problem> {
    if body.is_empty() {
        return Ok(false);
    }
    let json = content_type
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    Ok(true)
}

/// An organisation's file, read or opened for editing.
struct Org;

impl Org {
    /// The organisation's policy and clients, as its file says now.
    fn read(manage: &Manage, org: &str) -> Result<(OrgPolicy, Registry), Problem> {
        let path = manage.org_file(org);
        let text = std::fs::read_to_string(&path).map_err(|_| no_org(org))?;
        let read = read_org(&Source { path, text }, &manage.limits);
        match (read.policy, read.problems.is_empty()) {
            (Some(policy), true) => Ok((policy, read.clients)),
            _ => Err(Problem::new(
                StatusCode::CONFLICT,
                "organisation_invalid",
                format!(
                    "the organisation's file has problems an operator must fix first: {}",
                    super::problem::described(&read.problems)
                ),
            )),
        }
    }

    /// The organisation's policy, and the editor of its file.
    fn editor(manage: &Manage, org: &str) -> Result<(OrgPolicy, Editor), Problem> {
        let (policy, _) = Self::read(manage, org)?;
        let editor = Editor {
            path: manage.org_file(org),
            limits: manage.limits,
            may_create: false,
            org: Some(org.to_owned()),
        };
        Ok((policy, editor))
    }
}

fn list_orgs(manage: &Manage) -> Result<Answer, Problem> {
    let (reads, _) = read_orgs(&manage.orgs_dir, &manage.limits);
    let mut views: Vec<OrgView> = reads
        .into_iter()
        .filter_map(|r| {
            Some(OrgView::of(
                r.id.as_deref()?,
                r.policy.as_ref()?,
                r.clients.len(),
            ))
        })
        .collect();
    views.sort_by(|a, b| a.id.cmp(&b.id));
    let body = json!(OrgList {
        organizations: views
    });
    let tag = etag(&body);
    Ok(ok(body, Some(tag)))
}

fn no_org(org: &str) -> Problem {
    Problem::not_found(format!("no organisation {org:?}"))
}

fn no_client(id: &str) -> Problem {
    Problem::not_found(format!("no client {id:?}"))
}

fn ok(body: serde_json::Value, etag: Option<String>) -> Answer {
    Answer {
        status: StatusCode::OK,
        body: Some(body),
        etag,
        location: None,
    }
}

fn created(body: serde_json::Value, etag: Option<String>, location: Option<String>) -> Answer {
    Answer {
        status: StatusCode::CREATED,
        body: Some(body),
        etag,
        location,
    }
}

fn no_content() -> Answer {
    Answer {
        status: StatusCode::NO_CONTENT,
        body: None,
        etag: None,
        location: None,
    }
}
