//! `GET <prefix>/openapi.json`: the OpenAPI 3.1 description of the management API.
//!
//! The schemas are derived from the very types the API reads and writes ([`super::views`],
//! [`super::problem::ProblemDetails`]); the operations come from one table, [`OPERATIONS`],
//! which `tests/manage.rs` holds against the running API (every operation answers as
//! described, every body fits its schema).

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder, Server};
use utoipa::OpenApi;

use super::problem::ProblemDetails;
use super::views::{
    ClientCreated, ClientList, ClientPatch, ClientView, NewClient, NewOrg, NewSecret, OrgList,
    OrgPatch, OrgView, SecretCreated, SecretView, TokensRevoked,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "credgate management API",
        description = "Each organisation's administrators manage its API clients; operators manage organisations. Authenticate with a credgate access token carrying the manage scope."
    ),
    components(schemas(
        ClientView,
        SecretView,
        OrgView,
        ClientList,
        OrgList,
        ClientCreated,
        SecretCreated,
        TokensRevoked,
        NewClient,
        ClientPatch,
        NewSecret,
        NewOrg,
        OrgPatch,
        ProblemDetails
    ))
)]
struct Schemas;

/// One operation of the API, as the document describes it.
pub struct Operation {
    pub method: &'static str,
    /// Below the prefix, with `{org}`, `{id}`, `{secret_id}` parameters.
    pub path: &'static str,
    pub summary: &'static str,
    /// The schema of its JSON body, if it takes one.
    pub body: Option<&'static str>,
    /// Its success status and the schema of that answer's body (none for 204).
    pub success: (u16, Option<&'static str>),
    /// The problems it may answer with, besides 400 (a path or body it cannot read), 401 and
    /// 403, which every operation may, and 429 (`max_writes_per_minute`), which every change may.
    pub problems: &'static [u16],
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    success: (u16, Option<&'static str>),
    problems: &'static [u16],
) -> Operation {
    Operation {
        method,
        path,
        summary,
        body,
        success,
        problems,
    }
}

/// Every operation of the API.
pub const OPERATIONS: [Operation; 15] = [
    op(
        "get",
        "/orgs",
        "List organisations (operators)",
        None,
        (200, Some("OrgList")),
        &[],
    ),
    op(
        "post",
        "/orgs",
        "Create an organisation (operators)",
        Some("NewOrg"),
        (201, Some("OrgView")),
        &[400, 409, 415, 422],
    ),
    op(
        "get",
        "/orgs/{org}",
        "Read an organisation's policy",
        None,
        (200, Some("OrgView")),
        &[404],
    ),
    op(
        "patch",
        "/orgs/{org}",
        "Change an organisation (operators)",
        Some("OrgPatch"),
        (200, Some("OrgView")),
        &[400, 404, 415, 422],
    ),
    op(
        "delete",
        "/orgs/{org}",
        "Remove an organisation (operators; with clients only with force=true)",
        None,
        (204, None),
        &[404, 409],
    ),
    op(
        "get",
        "/orgs/{org}/clients",
        "List an organisation's clients",
        None,
        (200, Some("ClientList")),
        &[404],
    ),
    op(
        "post",
        "/orgs/{org}/clients",
        "Create a client; its first secret is shown this once",
        Some("NewClient"),
        (201, Some("ClientCreated")),
        &[400, 404, 409, 415, 422],
    ),
    op(
        "get",
        "/orgs/{org}/clients/{id}",
        "Read a client",
        None,
        (200, Some("ClientView")),
        &[404],
    ),
    op(
        "patch",
        "/orgs/{org}/clients/{id}",
        "Change a client (If-Match honoured)",
        Some("ClientPatch"),
        (200, Some("ClientView")),
        &[400, 404, 412, 415, 422],
    ),
    op(
        "delete",
        "/orgs/{org}/clients/{id}",
        "Remove a client (If-Match honoured)",
        None,
        (204, None),
        &[404, 412],
    ),
    op(
        "post",
        "/orgs/{org}/clients/{id}/secrets",
        "Add a secret, shown this once",
        Some("NewSecret"),
        (201, Some("SecretCreated")),
        &[400, 404, 409, 412, 415],
    ),
    op(
        "post",
        "/orgs/{org}/clients/{id}/secrets/regenerate",
        "Replace every secret with one new one, shown this once",
        Some("NewSecret"),
        (200, Some("SecretCreated")),
        &[400, 404, 412, 415],
    ),
    op(
        "delete",
        "/orgs/{org}/clients/{id}/secrets/{secret_id}",
        "Remove a secret (the last valid one only with force=true)",
        None,
        (204, None),
        &[404, 409, 412],
    ),
    op(
        "post",
        "/orgs/{org}/clients/{id}/revoke-tokens",
        "Revoke every token issued to the client until now",
        None,
        (200, Some("TokensRevoked")),
        &[404, 412],
    ),
    op(
        "get",
        "/openapi.json",
        "This document (no token needed)",
        None,
        (200, None),
        &[],
    ),
];

/// The OpenAPI 3.1 document of the API served under `prefix`, as JSON.
pub fn document(prefix: &str) -> Vec<u8> {
    let mut doc = Schemas::openapi();
    doc.servers = Some(vec![Server::new(prefix)]);
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    for operation in &OPERATIONS {
        let method = match operation.method {
            "get" => HttpMethod::Get,
            "post" => HttpMethod::Post,
            "patch" => HttpMethod::Patch,
            _ => HttpMethod::Delete,
        };
        doc.paths
            .add_path_operation(operation.path, vec![method], describe(operation));
    }
    serde_json::to_vec_pretty(&doc).expect("the document serializes")
}

fn describe(operation: &Operation) -> utoipa::openapi::path::Operation {
    let json = |schema: &str, media: &str| {
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build();
        (media.to_owned(), content)
    };
    let mut builder = OperationBuilder::new().summary(Some(operation.summary));
    for name in ["org", "id", "secret_id"] {
        if operation.path.contains(&format!("{{{name}}}")) {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::String),
                    )),
            );
        }
    }
    if let Some(body) = operation.body {
        let (media, content) = json(body, "application/json");
        builder = builder.request_body(Some(
            RequestBodyBuilder::new().content(media, content).build(),
        ));
    }
    let (status, schema) = operation.success;
    let mut success = ResponseBuilder::new().description("done");
    if let Some(schema) = schema {
        let (media, content) = json(schema, "application/json");
        success = success.content(media, content);
    }
    builder = builder.response(status.to_string(), success.build());
    let anyone = if operation.path == "/openapi.json" {
        &[][..]
    } else {
        &[400, 401, 403][..]
    };
    let change = operation.method != "get";
    let limited = if change { &[429][..] } else { &[][..] };
    let mut problems: Vec<u16> = anyone
        .iter()
        .chain(operation.problems)
        .chain(limited)
        .copied()
        .collect();
    problems.sort_unstable();
    problems.dedup();
    for status in &problems {
        let (media, content) = json("ProblemDetails", "application/problem+json");
        let reason = http::StatusCode::from_u16(*status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error");
        builder = builder.response(
            status.to_string(),
            ResponseBuilder::new()
                .description(reason)
                .content(media, content)
                .build(),
        );
    }
    if operation.path != "/openapi.json" {
        builder = builder.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    }
    builder.build()
}
