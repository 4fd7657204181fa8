//! `GET /api/v1/audit`: the audit trail, filtered, as JSON pages or CSV.

use std::str::FromStr;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::access::AuditNote;
use super::error::ApiError;
use crate::audit::{AuditAction, AuditFilter, AuditOutcome, AuditRecord, parse_time};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    user: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    /// RFC 3339 or YYYY-MM-DD (UTC), inclusive.
    since: Option<String>,
    /// RFC 3339 or YYYY-MM-DD (UTC), exclusive.
    until: Option<String>,
    cursor: Option<u64>,
    limit: Option<usize>,
    /// `newest` (default) or `oldest`.
    order: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

#[derive(Serialize)]
pub struct AuditRecordResponse {
    seq: u64,
    at: String,
    actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    action: String,
    params: Value,
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    hash: String,
}

fn record_response(record: AuditRecord) -> AuditRecordResponse {
    AuditRecordResponse {
        seq: record.seq,
        at: record
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        actor: record.actor,
        role: record.role,
        client: record.client,
        action: record.action.as_str().to_owned(),
        params: record.params,
        outcome: record.outcome.as_str().to_owned(),
        detail: record.detail,
        hash: record.hash.to_string(),
    }
}

/// Reads the trail (auditor, admin). Reading it is itself audited.
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let filter = AuditFilter {
        actor: params.user.clone(),
        action: params
            .action
            .as_deref()
            .map(AuditAction::from_str)
            .transpose()?,
        outcome: params
            .outcome
            .as_deref()
            .map(AuditOutcome::from_str)
            .transpose()?,
        from: params.since.as_deref().map(parse_time).transpose()?,
        to: params.until.as_deref().map(parse_time).transpose()?,
        cursor: params.cursor,
        newest_first: match params.order.as_deref() {
            None | Some("newest") => true,
            Some("oldest") => false,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "order must be newest or oldest, got {other:?}"
                )));
            }
        },
        limit: params.limit,
    };
    filter.validate()?;
    let filters = json!({
        "user": params.user, "action": params.action, "outcome": params.outcome,
        "since": params.since, "until": params.until,
    });
    match params.format.as_deref() {
        None | Some("json") => {
            let records = state.access.audit.query(&filter).await?;
            let next_cursor =
                if records.len() == filter.limit.unwrap_or(crate::audit::DEFAULT_QUERY_LIMIT) {
                    records.last().map(|record| record.seq)
                } else {
                    None
                };
            let count = records.len();
            let mut response = Json(json!({
                "records": records.into_iter().map(record_response).collect::<Vec<_>>(),
                "next_cursor": next_cursor,
            }))
            .into_response();
            response
                .extensions_mut()
                .insert(AuditNote(json!({"filters": filters, "records": count})));
            Ok(response)
        }
        Some("csv") => {
            let mut buffer: Vec<u8> = Vec::new();
            let rows = state.access.audit.export_csv(&filter, &mut buffer).await?;
            let mut response = buffer.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            response.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"holdfast-audit.csv\""),
            );
            response.extensions_mut().insert(AuditNote(
                json!({"filters": filters, "records": rows, "export": "csv"}),
            ));
            Ok(response)
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "format must be json or csv, got {other:?}"
        ))),
    }
}
