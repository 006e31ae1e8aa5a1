//! The OpenAPI 3 description served at `GET /openapi.json`.
//!
//! Paths come from the `#[utoipa::path]` attribute on each handler, and the
//! router registers each handler through that same attribute
//! (`utoipa_axum::routes!`), so a JSON route cannot exist without its
//! description. Response schemas are derived from the types the handlers
//! return. The request bodies below describe what the handlers accept: they
//! read a JSON object field by field (to name the field in every error), so
//! these types document the fields rather than parse them.

use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The admin token's scheme (`Authorization: Bearer <ADMIN_TOKEN>`), named
/// by the operations that need it when `ADMIN_TOKEN` is set.
struct AdminSecurity;

impl utoipa::Modify for AdminSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The ADMIN_TOKEN the service runs with; not needed when it has none",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&AdminSecurity),
    info(
        title = "regiondb",
        description = "Customer records in their home region's MongoDB, with hinted handoff \
                       through Kafka while a node is down. Every error is \
                       `{\"error\": \"...\", \"field\": \"...\", \"code\": \"...\"}` \
                       (`code`: see ErrorCode)."
    ),
    tags(
        (name = "records", description = "Create and read customer records"),
        (name = "nodes", description = "Node statuses, queues and repair"),
        (name = "operations", description = "Health, readiness, metrics, events")
    )
)]
pub struct ApiDoc;

/// Every error: what went wrong, the field to blame when there is one, and
/// a stable machine-readable `code`. Among the 503s, `unavailable` and
/// `no_version` (nothing written) and `outcome_unknown` (the write may have
/// landed, with a version any retry supersedes) tell a client what a retry
/// means; `busy` was refused before anything started.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = "customer_zip_code_prefix must be 1000-99999")]
    pub error: String,
    #[schema(example = "customer_zip_code_prefix")]
    pub field: Option<String>,
    #[schema(example = "invalid_field", value_type = ErrorCode)]
    pub code: String,
}

/// The `code` of an error body.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidField,
    MalformedRequest,
    InvalidBody,
    BodyTooLarge,
    NotJson,
    NotFound,
    MethodNotAllowed,
    Unavailable,
    NoVersion,
    OutcomeUnknown,
    Conflict,
    Rejected,
    Busy,
    Unauthorized,
    Forbidden,
    TooManyAttempts,
    CrossSite,
    HostNotAllowed,
}

/// How the admin calls answer without the admin token (see `auth`).
#[derive(Debug, utoipa::IntoResponses)]
pub enum AdminErrors {
    #[response(
        status = 401,
        description = "ADMIN_TOKEN is set and the request has no valid `Authorization: Bearer` token"
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 403,
        description = "A signed-in page's call without its CSRF token"
    )]
    Forbidden(ErrorBody),
    #[response(
        status = 429,
        description = "Too many wrong admin tokens from this address (SIGN_IN_MAX_FAILURES);                        nothing was checked",
        headers(("retry-after" = u64, description = "Seconds until the address may try again"))
    )]
    TooManyAttempts(ErrorBody),
}

/// How every read answers when too many reads are in progress (see
/// `class_limit!`): at once, never queued.
#[derive(Debug, utoipa::IntoResponses)]
pub enum ReadsBusy {
    #[response(
        status = 503,
        description = "Server busy (too many reads in progress); retry shortly"
    )]
    Busy(ErrorBody),
}

/// How every operation with query parameters answers a query string it
/// cannot read.
#[derive(Debug, utoipa::IntoResponses)]
pub enum QueryErrors {
    #[response(status = 400, description = "Malformed query string")]
    Malformed(ErrorBody),
}

/// How every operation with a JSON body answers a body it cannot read
/// (see `error::JsonObject`).
#[derive(Debug, utoipa::IntoResponses)]
pub enum JsonBodyErrors {
    #[response(status = 400, description = "Malformed JSON")]
    Malformed(ErrorBody),
    #[response(status = 408, description = "Body did not arrive within 5 s")]
    TooSlow(ErrorBody),
    #[response(status = 413, description = "Body over 64 KiB")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Not declared as JSON")]
    NotJson(ErrorBody),
}

/// The document as served: `region` parameters and fields list this
/// deployment's region ids (they come from its configuration, not from
/// types), and the empty string, which means "not given".
pub fn with_regions(document: &utoipa::openapi::OpenApi, regions: &[&str]) -> serde_json::Value {
    let mut doc = serde_json::to_value(document).unwrap_or_default();
    let ids: Vec<&str> = regions.iter().copied().chain([""]).collect();
    let ids = serde_json::json!(ids);
    if let Some(paths) = doc["paths"].as_object_mut() {
        for operation in paths.values_mut().filter_map(|p| p.as_object_mut()) {
            for op in operation.values_mut() {
                let params = op.get_mut("parameters").and_then(|p| p.as_array_mut());
                for param in params.into_iter().flatten() {
                    if param["name"] == "region" {
                        param["schema"]["enum"] = ids.clone();
                    }
                }
            }
        }
    }
    let region = &mut doc["components"]["schemas"]["FilterBody"]["properties"]["region"];
    if region.is_object() {
        region["enum"] = ids;
    }
    doc
}
