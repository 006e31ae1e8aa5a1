//! The OpenAPI 3 description served at `GET /openapi.json`.
//!
//! Paths come from the `#[utoipa::path]` attribute on each handler, and the
//! router registers each handler through that same attribute
//! (`utoipa_axum::routes!`), so a JSON route cannot exist without its
//! description. Response schemas are derived from the types the handlers
//! return. The request bodies below describe what the handlers accept: they
//! read a JSON object field by field (to name the field in every error), so
//! these types document the fields rather than parse them.

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::{NodeId, NodeStatus, StatusSource};

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
                       `{\"error\": \"...\", \"field\": \"...\"}`."
    ),
    tags(
        (name = "records", description = "Create and read customer records"),
        (name = "nodes", description = "Node statuses, queues and repair"),
        (name = "operations", description = "Health, readiness, metrics, events")
    )
)]
pub struct ApiDoc;

/// Every error: what went wrong, and the field to blame when there is one.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = "customer_zip_code_prefix must be 1000-99999")]
    pub error: String,
    #[schema(example = "customer_zip_code_prefix")]
    pub field: Option<String>,
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

/// Text fields: 1-200 characters once trimmed, no control characters.
fn text() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(200))
        .pattern(Some(
            "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        ))
        .build()
}

/// A zip prefix: a JSON number, or a string of digits (leading zeros and
/// spaces around allowed). It must fall in one of the configured regions
/// (by default 1000-99999), else 422.
fn zip_prefix() -> Schema {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1000))
                .maximum(Some(99999)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^ *0{0,4}[1-9][0-9]{3,4} *$")),
        )
        .examples([serde_json::json!("01310")])
        .build()
        .into()
}

/// `POST /create-customer`: one customer record (the Olist customers
/// file's columns). Text fields are trimmed. Writing an existing
/// `customer_id` again replaces the record (the newest write wins).
#[derive(Debug, ToSchema)]
pub struct CustomerBody {
    /// The record's id.
    #[schema(schema_with = text, example = "c1")]
    pub customer_id: String,
    #[schema(schema_with = text, example = "u1")]
    pub customer_unique_id: String,
    /// Chooses the home region.
    #[schema(schema_with = zip_prefix)]
    pub customer_zip_code_prefix: String,
    #[schema(schema_with = text, example = "sao paulo")]
    pub customer_city: String,
    #[schema(schema_with = text, example = "SP")]
    pub customer_state: String,
}

/// `POST /node-status`.
#[derive(Debug, ToSchema)]
pub struct NodeStatusBody {
    #[schema(example = "region_2")]
    pub node_id: String,
    pub status: NodeStatus,
}

/// The answer to `POST /node-status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeStatusAnswer {
    pub node_id: NodeId,
    pub status: NodeStatus,
    /// Records waiting in the node's Kafka topic; null if Kafka could not
    /// be asked.
    pub queued: Option<u64>,
    /// Always `manual`: an operator's switch.
    pub source: StatusSource,
    /// When it was set (RFC 3339, UTC).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
}

/// `GET /filter-records` query parameters (empty means "not given").
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// Lowest zip prefix (digits; at most zipRangeMax).
    #[serde(rename = "zipRangeMin")]
    #[param(rename = "zipRangeMin", pattern = "^ *[0-9]{0,9} *$")]
    pub zip_range_min: Option<String>,
    /// Highest zip prefix (digits).
    #[serde(rename = "zipRangeMax")]
    #[param(rename = "zipRangeMax", pattern = "^ *[0-9]{0,9} *$")]
    pub zip_range_max: Option<String>,
    /// Case-insensitive part of the city (plain text, not a pattern).
    #[param(max_length = 200)]
    pub city: Option<String>,
    /// Case-insensitive part of the state.
    #[param(max_length = 200)]
    pub state: Option<String>,
    /// Only this region (a node id; see `GET /nodes`).
    pub region: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Records to skip.
    #[param(minimum = 0, maximum = 1000000)]
    pub offset: Option<u64>,
}

/// A number in `min..=max`, as a JSON number or a string of its digits
/// (an empty string or null means "not given").
fn number_or_digits(min: u64, max: u64, digits: usize) -> Schema {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min))
                .maximum(Some(max)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(format!("^ *[0-9]{{0,{digits}}} *$"))),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

fn zip_bound() -> Schema {
    number_or_digits(0, 999_999_999, 9)
}

fn limit() -> Schema {
    // (as a string, any digits; values outside 1-500 answer 422)
    number_or_digits(1, 500, 3)
}

fn offset() -> Schema {
    number_or_digits(0, 1_000_000, 7)
}

/// `POST /filter-records`: the query parameters of `GET` in a JSON object
/// (the seed's form); numbers may be JSON numbers or strings of digits.
#[derive(Debug, ToSchema)]
pub struct FilterBody {
    #[schema(rename = "zipRangeMin", schema_with = zip_bound)]
    pub zip_range_min: Option<String>,
    #[schema(rename = "zipRangeMax", schema_with = zip_bound)]
    pub zip_range_max: Option<String>,
    #[schema(max_length = 200)]
    pub city: Option<String>,
    #[schema(max_length = 200)]
    pub state: Option<String>,
    pub region: Option<String>,
    #[schema(schema_with = limit)]
    pub limit: Option<String>,
    #[schema(schema_with = offset)]
    pub offset: Option<String>,
}

/// `POST /admin/repair` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RepairParams {
    /// Only this region (a node id; default: every region).
    pub region: Option<String>,
    /// Compare and report, change nothing: `true`/`1` or `false`/`0`
    /// (empty: false).
    #[param(schema_with = flag)]
    pub dry_run: Option<String>,
}

fn flag() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["true", "false", "1", "0", ""]))
        .build()
}

/// The answer to `POST /admin/repair`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepairAnswer {
    pub dry_run: bool,
    pub regions: Vec<crate::repair::RegionRepair>,
}

/// A 503 from `POST /admin/repair`: the report (a node could not be
/// read), or an error (the server is busy).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RepairUnavailable {
    Report(RepairAnswer),
    Busy(ErrorBody),
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /readyz`: `status` is `ready` or `not ready`; each dependency is
/// `ok` or `error: <reason>`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: String,
    #[schema(example = "ok")]
    pub redis: String,
    #[schema(example = "ok")]
    pub kafka: String,
    pub nodes: std::collections::BTreeMap<String, NodeReadiness>,
}

/// One node in `GET /readyz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeReadiness {
    pub status: NodeStatus,
    #[schema(example = "ok")]
    pub mongo: String,
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
