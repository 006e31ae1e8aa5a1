//! `GET` and `POST /filter-records`, and the parameters they read.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};

use crate::domain::RecordFilter;
use crate::http::AppState;
use crate::http::error::{ApiError, JsonObject};
use crate::http::openapi::{ErrorBody, JsonBodyErrors, QueryErrors, ReadsBusy};
use crate::reads::FilterResult;

/// `GET /filter-records?zipRangeMin=..&city=..` (query parameters).
#[utoipa::path(get, path = "/filter-records", tag = "records",
    params(FilterParams),
    responses(
        (status = 200, description = "One page of the matching records of every region that answered", body = FilterResult),
        QueryErrors,
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
        ReadsBusy,
    ))]
pub async fn filter_records_query(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<FilterResult>, ApiError> {
    let Query(params) = query?;
    let filter = RecordFilter::parse(|k| params.get(k).cloned(), &state.regions)?;
    Ok(Json(state.reads.filter(&filter).await))
}

/// `POST /filter-records` with the same parameters in a JSON body (the
/// seed's form).
#[utoipa::path(post, path = "/filter-records", tag = "records",
    request_body = FilterBody,
    responses(
        (status = 200, description = "As GET", body = FilterResult),
        JsonBodyErrors,
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
        ReadsBusy,
    ))]
pub async fn filter_records_json(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<FilterResult>, ApiError> {
    let filter = RecordFilter::parse_json(&body, &state.regions)?;
    Ok(Json(state.reads.filter(&filter).await))
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
    /// Page size: 1-500 (default 50; empty: the default).
    #[param(pattern = r"^ *(\+?0*([1-9][0-9]?|[1-4][0-9]{2}|500))? *$")]
    pub limit: Option<String>,
    /// Records to skip: 0-1000000 (default 0; empty: the default).
    #[param(pattern = r"^ *(\+?0*([0-9]{1,6}|1000000))? *$")]
    pub offset: Option<String>,
}

/// What the server accepts as a page size or an offset in a string: the
/// digits of a number in range (a `+` and leading zeros allowed), or
/// nothing at all ("not given").
const LIMIT_DIGITS: &str = r"^ *(\+?0*([1-9][0-9]?|[1-4][0-9]{2}|500))? *$";
const OFFSET_DIGITS: &str = r"^ *(\+?0*([0-9]{1,6}|1000000))? *$";
/// A zip bound as a string: at most nine digits, or nothing at all.
const ZIP_DIGITS: &str = "^ *[0-9]{0,9} *$";

/// A number in `min..=max`, as a JSON number or a string matching
/// `digits` (an empty string or null means "not given").
fn number_or_digits(min: u64, max: u64, digits: &str) -> Schema {
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
                .pattern(Some(digits)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

fn zip_bound() -> Schema {
    number_or_digits(0, 999_999_999, ZIP_DIGITS)
}

fn limit() -> Schema {
    number_or_digits(1, 500, LIMIT_DIGITS)
}

fn offset() -> Schema {
    number_or_digits(0, 1_000_000, OFFSET_DIGITS)
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
