//! `POST /create-customer` and the body it reads.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Schema, Type};

use crate::domain::Customer;
use crate::http::AppState;
use crate::http::actions::write_status;
use crate::http::error::{ApiError, JsonObject};
use crate::http::openapi::{ErrorBody, JsonBodyErrors};
use crate::writes::WriteReceipt;

/// `POST /create-customer`: 201 stored, 202 queued, 422 invalid, 409 refused
/// by the home node, 503 neither stored nor queued.
#[utoipa::path(post, path = "/create-customer", tag = "records",
    request_body = CustomerBody,
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
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<WriteReceipt>), ApiError> {
    let customer = Customer::parse(&body)?;
    let receipt = state.writes.create_customer(customer).await?;
    Ok((write_status(&receipt), Json(receipt)))
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
