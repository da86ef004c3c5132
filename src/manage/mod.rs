//! The management API (DESIGN §3): each organisation's administrators manage their own API
//! clients over HTTP, under `[manage] prefix` on the main listener.
//!
//! A caller authenticates with one of credgate's own tokens (dogfooding): it must carry
//! `[manage] scope`, and it manages the organisation that issued it — or every organisation
//! when that is `[manage] operator_org`. Another organisation's resources answer 404, never
//! 403, so their existence does not leak. Every change goes through the one
//! [`registry::editor`](crate::registry::editor) the CLI uses (file lock, fresh read, whole
//! validation, atomic write), is audited ([`crate::registry::audit`]), and reaches every
//! instance sharing the files through their watchers. Secrets are made here, shown once, never
//! accepted from a caller. Every answer is JSON; every error RFC 9457 problem details.

pub mod console;
mod openapi;
mod ops;
pub mod problem;
mod rate;
pub mod views;

use std::path::PathBuf;
use std::sync::Arc;

use http::{header, HeaderValue, Method, StatusCode};

use crate::config::{Limits, ManageConfig};
use crate::oauth::TokenCheck;
use crate::registry::audit::{AuditLog, Entry};
use crate::registry::new_secret::random_token;
use crate::reply::{Outcome, Reply};
use problem::Problem;

/// The largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One request to the API, as read off the wire.
pub struct ManageRequest<'a> {
    pub method: &'a Method,
    /// The canonical path, prefix included.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authorization: Option<&'a [u8]>,
    pub if_match: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// Who is calling: the organisation and client of its token, and whether it is an operator.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org: String,
    pub client: String,
    pub operator: bool,
}

impl Caller {
    /// `org/client`, as the audit log names actors.
    pub fn actor(&self) -> String {
        format!("{}/{}", self.org, self.client)
    }

    /// Whether the caller may see and manage organisation `org`.
    fn manages(&self, org: &str) -> bool {
        self.operator || self.org == org
    }
}

/// Puts a change the API wrote to an organisation's file in force on this instance before the
/// API answers, so that what the answer says (a client disabled, a secret removed, a new client)
/// holds for the very next request here. `serve` gives the registry reloader; other instances
/// sharing the directory apply the file when their own watchers see it.
#[async_trait::async_trait]
pub trait Applies: Send + Sync {
    /// Reads the organisation file at `path` again and applies what it says.
    async fn apply(&self, path: PathBuf);
}

/// The management API, shared by all requests.
pub struct Manage {
    config: ManageConfig,
    /// `[organizations] dir`.
    orgs_dir: PathBuf,
    limits: Limits,
    tokens: Arc<dyn TokenCheck>,
    audit: AuditLog,
    /// `GET <prefix>/openapi.json`, made once.
    openapi: Vec<u8>,
    /// Changes per organisation per minute.
    writes: rate::WriteRate,
    /// The web console's files, when `[manage] console` serves them.
    console: Option<console::Console>,
    /// Applies each change before it is answered; without one, the watcher does.
    applier: Option<Arc<dyn Applies>>,
}

/// What one operation answers: the status, the JSON body, and its `ETag`, `Location` and
/// whether it carries a secret (`Cache-Control: no-store` is on every answer anyway).
pub struct Answer {
    pub status: StatusCode,
    pub body: Option<serde_json::Value>,
    pub etag: Option<String>,
    pub location: Option<String>,
}

/// A change to audit: action, target, secret concerned.
pub struct Audited {
    pub action: &'static str,
    /// `org` or `org/client`.
    pub target: String,
    pub secret_id: Option<String>,
}

impl Audited {
    /// The organisation the change was made to.
    fn org(&self) -> &str {
        self.target.split('/').next().unwrap_or_default()
    }
}

impl Manage {
    pub fn new(
        config: ManageConfig,
        orgs_dir: PathBuf,
        limits: Limits,
        tokens: Arc<dyn TokenCheck>,
    ) -> std::io::Result<Self> {
        let audit = AuditLog::open(&config.audit_log)?;
        let openapi = openapi::document(&config.prefix);
        Ok(Manage {
            openapi,
            writes: rate::WriteRate::new(config.max_writes_per_minute),
            config,
            orgs_dir,
            limits,
            tokens,
            audit,
            console: None,
            applier: None,
        })
    }

    /// The same API, putting each change in force through `applier` before answering it.
    pub fn with_applier(self, applier: Arc<dyn Applies>) -> Self {
        Manage {
            applier: Some(applier),
            ..self
        }
    }

    /// The same API, serving the web console too.
    pub fn with_console(self, console: console::Console) -> Self {
        Manage {
            console: Some(console),
            ..self
        }
    }

    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    /// Answers one request: the console's files and the OpenAPI document need no token (they
    /// grant nothing); everything else is authenticated, authorised, run off the event loop
    /// and audited if it changes anything.
    pub async fn handle(self: &Arc<Self>, req: ManageRequest<'_>) -> Outcome {
        if let Some(console) = self.console.as_ref().filter(|c| c.owns(req.path)) {
            return Outcome::answer("served", console.serve(req.method, req.path, req.query));
        }
        if req.method == Method::GET
            && req.path.strip_prefix(self.prefix()) == Some("/openapi.json")
        {
            let document = crate::reply::json_bytes(StatusCode::OK, self.openapi.clone());
            return Outcome::answer("served", document);
        }
        let request_id = random_token(9);
        let mut actor = None;
        let (label, reply) = match self.answer(&req, &request_id, &mut actor).await {
            Ok(answer) => ("managed", self.reply(answer)),
            Err(problem) => (problem.code, problem.reply()),
        };
        let mut reply = reply;
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            reply.headers_mut().insert("x-request-id", id);
        }
        let outcome = Outcome::answer(label, reply);
        match actor {
            Some(actor) => outcome.by(&actor),
            None => outcome,
        }
    }

    /// The answer to `req`; `actor` learns who asked, once their token is verified (the
    /// request log names them).
    async fn answer(
        self: &Arc<Self>,
        req: &ManageRequest<'_>,
        request_id: &str,
        actor: &mut Option<String>,
    ) -> Result<Answer, Problem> {
        let caller = self.authenticate(req.authorization).await?;
        *actor = Some(caller.actor());
        let call = ops::Call::parse(self, req, caller)?;
        if let Some(org) = call.changes() {
            self.writes.admit(org).map_err(|wait| {
                let seconds = wait.as_secs().max(1);
                Problem {
                    retry_after: Some(seconds),
                    ..Problem::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_changes",
                        format!(
                            "organisation {org:?} made {} changes this minute; try again in {seconds} s",
                            self.config.max_writes_per_minute
                        ),
                    )
                }
            })?;
        }
        let this = self.clone();
        let request_id = request_id.to_owned();
        let (result, written) = tokio::task::spawn_blocking(move || this.run(call, &request_id))
            .await
            .map_err(|_| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the operation failed",
                )
            })?;
        if let (Some(path), Some(applier)) = (written, &self.applier) {
            applier.apply(path).await;
        }
        result
    }

    /// Runs `call` and records it in the audit log if it is a change (refused ones too); with
    /// the organisation file a change that was made went to (audited or not, it is on disk).
    fn run(&self, call: ops::Call, request_id: &str) -> (Result<Answer, Problem>, Option<PathBuf>) {
        let actor = call.caller.actor();
        let (result, audited) = call.run(self);
        let Some(audited) = audited else {
            return (result, None);
        };
        let written = result.is_ok().then(|| self.org_file(audited.org()));
        (self.audit(&actor, &audited, result, request_id), written)
    }

    /// The file of organisation `org`.
    fn org_file(&self, org: &str) -> PathBuf {
        self.orgs_dir.join(format!("{org}.toml"))
    }

    /// Records `audited` with its result; a change made but not recorded is answered as a
    /// failure.
    fn audit(
        &self,
        actor: &str,
        audited: &Audited,
        result: Result<Answer, Problem>,
        request_id: &str,
    ) -> Result<Answer, Problem> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(problem) => problem.code,
        };
        let entry = Entry {
            actor,
            action: audited.action,
            target: &audited.target,
            secret_id: audited.secret_id.as_deref(),
            result: outcome,
            request_id: Some(request_id),
        };
        if let Err(e) = self.audit.record(&entry) {
            tracing::error!(error = %e, "cannot write the audit log");
            if result.is_ok() {
                return Err(Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "audit_failed",
                    "the change was made but could not be audited; see the gateway log",
                ));
            }
        }
        result
    }

    /// The caller of a request with `authorization`: a valid token of ours with the manage
    /// scope, issued by an organisation.
    async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Caller, Problem> {
        let unauthorized = |detail: &str| {
            Problem::new(StatusCode::UNAUTHORIZED, "invalid_token", detail.to_owned())
        };
        let header = authorization.ok_or_else(|| unauthorized("a bearer token is required"))?;
        let token = std::str::from_utf8(header)
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("a bearer token is required"))?;
        let active = self.tokens.check_token(token).await.map_err(unauthorized)?;
        if !active.scope.split(' ').any(|s| s == self.config.scope) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("the token lacks the scope {:?}", self.config.scope),
            ));
        }
        let org = active
            .org_id
            .ok_or_else(|| Problem::forbidden("the token belongs to no organisation"))?;
        Ok(Caller {
            operator: self.config.operator_org.as_deref() == Some(org.as_str()),
            org,
            client: active.client_id,
        })
    }

    fn reply(&self, answer: Answer) -> Reply {
        let mut reply = match &answer.body {
            Some(body) => crate::reply::json(answer.status, body),
            None => {
                let mut empty = Reply::new(Vec::new());
                *empty.status_mut() = answer.status;
                empty
            }
        };
        let headers = reply.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(etag) = answer.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            headers.insert(header::ETAG, etag);
        }
        if let Some(location) = answer.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        reply
    }
}
