//! The customers: `POST /create-customer` and the body it reads,
//! `GET /customers/{id}` (one record with every copy) and
//! `DELETE /customers/{id}`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};

use super::{flag, flag_value};
use crate::domain::{Customer, CustomerId, FieldError, NodeId, Text, Version};
use crate::http::AppState;
use crate::http::actions::{delete, delete_status, write_status};
use crate::http::error::{ApiError, JsonObject};
use crate::http::openapi::{AdminErrors, ErrorBody, JsonBodyErrors, QueryErrors, ReadsBusy};
use crate::lookup::{CopyView, Found};
use crate::writes::WriteReceipt;

/// `POST /create-customer`: 201 stored, 202 queued, 422 invalid, 409 refused
/// by the home node, 503 neither stored nor queued.
#[utoipa::path(post, path = "/create-customer", tag = "records",
    request_body = CustomerBody,
    params(("RegionDB-After-Version" = Option<i64>, Header, description = AFTER_VERSION_DOC)),
    responses(
        (status = 201, description = "Stored on its home node (the replica: see `replica`)", body = WriteReceipt),
        (status = 202, description = "Home node unavailable: queued in its Kafka topic, replayed when it is back", body = WriteReceipt),
        JsonBodyErrors,
        (status = 409, description = "Refused for good by the home node (e.g. a unique index); nothing written", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 503, description = "Neither stored nor queued, nothing written (see docs/losing-nothing.md for the unknown-outcome cases); or server busy (too many writes in progress, nothing done)", body = ErrorBody),
    ))]
pub async fn create_customer(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<WriteReceipt>), ApiError> {
    let customer = Customer::parse(&body)?;
    after_version(&state, &headers)?;
    let receipt = state.writes.create_customer(customer).await?;
    Ok((write_status(&receipt), Json(receipt)))
}

/// The request header by which a client closes the clock-skew window
/// exactly: the `version` of the last receipt it saw. The write is then
/// given a higher one, whichever instance takes it (MongoDB's
/// `afterClusterTime` is the model).
pub const AFTER_VERSION: &str = "regiondb-after-version";

const AFTER_VERSION_DOC: &str = "The `version` of the last receipt this client saw: \
    the write gets a higher one, whatever the hosts' clocks say (422 if it lies \
    more than 10 s ahead of the cluster's clock)";

/// Raises the version clock above the request's [`AFTER_VERSION`], if it
/// has one: 422 naming the header when it is not a version, or lies further
/// ahead of this instance's clock than any instance of the cluster follows.
fn after_version(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(AFTER_VERSION) else {
        return Ok(());
    };
    let field = "RegionDB-After-Version";
    let seen = (value.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            FieldError::new(
                field,
                "RegionDB-After-Version must be a version from a receipt (a positive integer)",
            )
        })?;
    state
        .writes
        .clock
        .observe(Version::new(seen))
        .map_err(|limit| {
            FieldError::new(
                field,
                format!(
                    "version {seen} is further ahead of this cluster's clock than any \
                     receipt can be (the limit now is {})",
                    limit.get()
                ),
            )
            .into()
        })
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

/// `GET /customers/{customer_id}` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupParams {
    /// Answer a deleted record too (its tombstones, no personal fields):
    /// `true`/`1` or `false`/`0` (empty: false).
    #[param(schema_with = flag)]
    pub include_deleted: Option<String>,
}

/// `GET /customers/{customer_id}`: the record's newest version (its fields
/// at the top level, like a row of `/filter-records`) and every copy.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerAnswer {
    pub customer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_unique_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_zip_code_prefix: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_state: Option<String>,
    /// The region the newest version is in.
    pub region: NodeId,
    pub version: Option<i64>,
    /// The node the fields were read from (null for a deleted record).
    pub served_by: Option<NodeId>,
    /// The newest version is a tombstone (only with `include_deleted`).
    pub deleted: bool,
    pub copies: Vec<CopyView>,
    /// The copies disagree (a repair makes them agree).
    pub divergent: bool,
    /// Regions no caught-up copy answered for (unavailable, unreachable,
    /// still replaying their queues, or lost their data): a newer version
    /// may still be on its way there.
    pub unconfirmed: Vec<NodeId>,
}

impl CustomerAnswer {
    fn of(id: &str, found: Found) -> CustomerAnswer {
        let r = found.record;
        CustomerAnswer {
            customer_id: id.to_owned(),
            customer_unique_id: r.as_ref().map(|r| r.customer_unique_id.clone()),
            customer_zip_code_prefix: r.as_ref().map(|r| r.customer_zip_code_prefix),
            customer_city: r.as_ref().map(|r| r.customer_city.clone()),
            customer_state: r.as_ref().map(|r| r.customer_state.clone()),
            region: found.region,
            version: found.version,
            served_by: found.served_by,
            deleted: found.deleted,
            copies: found.copies,
            divergent: found.divergent,
            unconfirmed: found.unconfirmed,
        }
    }
}

/// The id in the path, checked like the field it is.
fn customer_id(path: Result<Path<String>, PathRejection>) -> Result<CustomerId, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::Body {
        status: StatusCode::BAD_REQUEST,
        message: format!("malformed path: {}", e.body_text()),
    })?;
    Ok(Text::parse("customer_id", &raw)?)
}

/// `GET /customers/{customer_id}[?include_deleted=true]`: 404 when no copy
/// holds it, or when it is deleted (unless `include_deleted`).
#[utoipa::path(get, path = "/customers/{customer_id}", tag = "records",
    params(("customer_id" = String, Path, description = "The record's id"), LookupParams),
    responses(
        (status = 200, description = "The newest version and every copy", body = CustomerAnswer),
        QueryErrors,
        (status = 404, description = "No copy holds it, or it is deleted", body = ErrorBody),
        (status = 422, description = "A bad id or include_deleted", body = ErrorBody),
        (status = 503, description = "No copy that could be read holds it, but a region could not be ruled out (its copies are unavailable, unreachable, still replaying their queues or lost their data)", body = ErrorBody),
        ReadsBusy,
    ))]
pub async fn lookup_customer(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<CustomerAnswer>, ApiError> {
    let id = customer_id(path)?;
    let Query(params) = query?;
    let include_deleted = flag_value(&params, "include_deleted")?;
    let lookup = state.lookup();
    let found = lookup
        .find(id.as_str())
        .await
        .map_err(|unsure| ApiError::Unavailable(format!("customer {}: {unsure}", id.as_str())))?;
    match found {
        Some(found) if !found.deleted || include_deleted => {
            Ok(Json(CustomerAnswer::of(id.as_str(), found)))
        }
        Some(_) => Err(ApiError::NotFound(format!(
            "customer {} is deleted (add ?include_deleted=true to see its tombstones)",
            id.as_str()
        ))),
        None => Err(ApiError::NotFound(format!(
            "no copy of customer {} was found",
            id.as_str()
        ))),
    }
}

/// `DELETE /customers/{customer_id}`: a tombstone (the id and the version,
/// nothing personal) on the home node and the replica of the record's
/// region, stored or queued.
#[utoipa::path(delete, path = "/customers/{customer_id}", tag = "records",
    params(("customer_id" = String, Path, description = "The record's id"),
        ("RegionDB-After-Version" = Option<i64>, Header, description = AFTER_VERSION_DOC)),
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "The tombstone is stored on the home node (the replica: see `replica`)", body = WriteReceipt),
        (status = 202, description = "Home node unavailable: the tombstone is queued in its Kafka topic", body = WriteReceipt),
        AdminErrors,
        (status = 404, description = "No region holds the record", body = ErrorBody),
        (status = 422, description = "A bad id, or a bad `RegionDB-After-Version`", body = ErrorBody),
        (status = 503, description = "Neither stored nor queued: nothing written; or server busy", body = ErrorBody),
    ))]
pub async fn delete_customer(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<WriteReceipt>), ApiError> {
    let id = customer_id(path)?;
    after_version(&state, &headers)?;
    match delete(&state, id).await? {
        Some(receipt) => Ok((delete_status(&receipt), Json(receipt))),
        None => Err(ApiError::NotFound("no region holds this customer".into())),
    }
}
