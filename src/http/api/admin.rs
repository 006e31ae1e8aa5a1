//! `POST /admin/repair`: a repair now, answered with its report.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{flag, flag_value};
use crate::domain::{CustomerId, FieldError, Text};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::openapi::{AdminErrors, ErrorBody, QueryErrors};
use crate::repair::{RegionRepair, RepairRecord, RepairTrigger, repair, repair_record};

/// `POST /admin/repair[?region=R][&dry_run=true]` or
/// `POST /admin/repair?customer_id=ID` (one record): runs a repair now and
/// answers its report per region; 503 if a region could not be fully
/// compared.
#[utoipa::path(post, path = "/admin/repair", tag = "nodes",
    params(RepairParams),
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "Every region compared (and fixed unless dry_run)", body = RepairAnswer),
        QueryErrors,
        AdminErrors,
        (status = 422, description = "Unknown region, bad dry_run or customer_id", body = ErrorBody),
        (status = 503, description = "A node could not be read (the report says which), or the server is busy (an error)", body = RepairUnavailable),
    ))]
pub async fn admin_repair(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<(StatusCode, Json<RepairAnswer>), ApiError> {
    let Query(params) = query?;
    let only = match params.get("region").map(|r| r.trim()) {
        None | Some("") => None,
        Some(r) => Some(
            state
                .regions
                .get(r)
                .map(|region| region.id.clone())
                .ok_or_else(|| FieldError::new("region", format!("unknown region {r:?}")))?,
        ),
    };
    let dry_run = flag_value(&params, "dry_run")?;
    let reports = match one_record(&params, only.is_some(), dry_run)? {
        Some(id) => {
            repair_record(
                &state.regions,
                &state.stores,
                Some(&state.hints),
                id.as_str(),
            )
            .await
        }
        None => {
            repair(
                &state.regions,
                &state.stores,
                Some(&state.hints),
                only.as_ref(),
                dry_run,
            )
            .await
        }
    };
    if !dry_run {
        RepairRecord::new(RepairTrigger::Api, Vec::new(), reports.clone())
            .save(&state.statuses)
            .await;
    }
    let code = if reports.iter().any(|r| r.unreachable.is_some()) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        Json(RepairAnswer {
            dry_run,
            regions: reports,
        }),
    ))
}

/// The record `customer_id` names, if any (alone: not with `region` or
/// `dry_run`).
fn one_record(
    params: &HashMap<String, String>,
    region: bool,
    dry_run: bool,
) -> Result<Option<CustomerId>, FieldError> {
    let Some(raw) = params.get("customer_id").filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    if region || dry_run {
        return Err(FieldError::new(
            "customer_id",
            "customer_id repairs one record: give it without region and dry_run",
        ));
    }
    Text::parse("customer_id", raw).map(Some)
}

/// `POST /admin/repair` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RepairParams {
    /// Only this region (a node id; default: every region).
    pub region: Option<String>,
    /// Only this record, in every region (empty: not given; not with
    /// `region` or `dry_run`).
    #[param(max_length = 200)]
    pub customer_id: Option<String>,
    /// Compare and report, change nothing: `true`/`1` or `false`/`0`
    /// (empty: false).
    #[param(schema_with = flag)]
    pub dry_run: Option<String>,
}

/// The answer to `POST /admin/repair`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepairAnswer {
    pub dry_run: bool,
    pub regions: Vec<RegionRepair>,
}

/// A 503 from `POST /admin/repair`: the report (a node could not be
/// read), or an error (the server is busy).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RepairUnavailable {
    Report(RepairAnswer),
    Busy(ErrorBody),
}
