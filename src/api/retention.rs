//! `/api/v1/retention/*`: the policies in force, a dry-run plan, a run, and
//! past runs with their certificates (administrators: `ManagePolicies`).
//! A run started here goes on when the client disconnects.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::access::{Caller, noted};
use super::error::ApiError;
use crate::audit::{AuditAction, AuditEntry, AuditOutcome};
use crate::retention::{RetentionError, RetentionService, ServiceError, Trigger};

fn service(state: &AppState) -> Result<std::sync::Arc<RetentionService>, ApiError> {
    state
        .retention
        .clone()
        .ok_or_else(|| ApiError::Internal("this server has no retention service".to_owned()))
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Busy => ApiError::Conflict {
                code: "run_in_progress",
                message: error.to_string(),
            },
            ServiceError::Policy(error) => ApiError::Conflict {
                code: "invalid_policies",
                message: error.to_string(),
            },
            ServiceError::Retention(error @ RetentionError::FloorLowered(_)) => {
                ApiError::Conflict {
                    code: "floor_lowered",
                    message: error.to_string(),
                }
            }
            ServiceError::Retention(RetentionError::Store(error)) => ApiError::Store(error),
            ServiceError::Retention(error) => ApiError::Internal(error.to_string()),
        }
    }
}

/// `GET /api/v1/retention/policies`
pub async fn policies(State(state): State<AppState>) -> Response {
    let result = (|| {
        let policies = service(&state)?.policies().map_err(ServiceError::from)?;
        Ok(Json(json!({
            "digest": policies.digest(),
            "policies": policies.policies(),
        }))
        .into_response())
    })();
    noted(result, json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    as_of: Option<String>,
}

/// `GET /api/v1/retention/plan?as_of=YYYY-MM-DD`
pub async fn plan(
    State(state): State<AppState>,
    query: Result<Query<PlanQuery>, QueryRejection>,
) -> Response {
    let mut note = json!({});
    let result = async {
        let Query(query) =
            query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        let as_of = match &query.as_of {
            Some(text) => Some(chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(
                |_| ApiError::InvalidField {
                    field: "as_of".to_owned(),
                    message: format!("{text:?} is not a day like 2026-01-31"),
                },
            )?),
            None => None,
        };
        let plan = service(&state)?.plan(as_of).await?;
        note = json!({
            "as_of": plan.as_of,
            "events_to_delete": plan.events_to_delete,
            "events_kept_by_holds": plan.events_kept_by_holds,
        });
        Ok(Json(plan).into_response())
    }
    .await;
    noted(result, note)
}

/// `POST /api/v1/retention/runs`: runs now and answers with the certificate.
pub async fn start_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(error) => return noted(Err(error), json!({})),
    };
    let actor = caller.principal.username.clone();
    // Spawned: a client that goes away does not stop a run half-way.
    let task = tokio::spawn(async move { service.run(&actor, Trigger::Api).await });
    let result = match task.await {
        Ok(Ok(outcome)) => {
            let note = crate::retention::service::run_params(&outcome);
            return noted(Ok(Json(outcome.certificate).into_response()), note);
        }
        Ok(Err(ServiceError::Retention(RetentionError::FloorLowered(changes)))) => {
            // The refusal itself is recorded, besides the request's record.
            let error = RetentionError::FloorLowered(changes);
            let mut entry = AuditEntry::new(
                caller.principal.username.clone(),
                AuditAction::PolicyRefused,
            )
            .outcome(AuditOutcome::Failed)
            .params(json!({"trigger": "api"}))
            .detail(error.to_string());
            if let Some(client) = caller.client {
                entry = entry.client(client.to_string());
            }
            if let Err(audit_error) = super::access::audit_self(&state.access, entry).await {
                return noted(Err(audit_error), json!({}));
            }
            Err(ApiError::from(ServiceError::Retention(error)))
        }
        Ok(Err(error)) => Err(ApiError::from(error)),
        Err(error) => Err(ApiError::Internal(format!(
            "retention task failed: {error}"
        ))),
    };
    noted(result, json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/retention/runs`
pub async fn list_runs(
    State(state): State<AppState>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let Query(query) =
            query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        let limit = query.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::InvalidField {
                field: "limit".to_owned(),
                message: format!("must be between 1 and 1000, got {limit}"),
            });
        }
        let runs = state
            .store
            .db()
            .retention_runs(limit)
            .await
            .map_err(|error| ApiError::Internal(error.to_string()))?;
        let runs: Vec<Value> = runs
            .into_iter()
            .map(|run| crate::retention::run::run_summary(&run))
            .collect();
        Ok(Json(json!({ "runs": runs })).into_response())
    }
    .await;
    noted(result, json!({}))
}

/// `GET /api/v1/retention/runs/{id}`: the run and its certificate.
pub async fn show_run(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    let mut note = json!({});
    let result = async {
        let Path(id) = id.map_err(|_| ApiError::InvalidField {
            field: "id".to_owned(),
            message: "a run id is a number".to_owned(),
        })?;
        note = json!({"run_id": id});
        let run = state
            .store
            .db()
            .retention_run(id)
            .await
            .map_err(|error| ApiError::Internal(error.to_string()))?
            .ok_or_else(|| ApiError::NotFound {
                what: format!("retention run {id}"),
            })?;
        let certificate: Value = run
            .certificate
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null);
        Ok(Json(json!({
            "run_id": run.run_id,
            "status": run.status,
            "stage": run.stage,
            "as_of": run.as_of,
            "started_by": run.started_by,
            "trigger": run.trigger,
            "certificate": certificate,
        }))
        .into_response())
    }
    .await;
    noted(result, note)
}
