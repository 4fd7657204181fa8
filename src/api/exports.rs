//! `/api/v1/exports*`: start an export in the background, watch its
//! progress, cancel it, list exports, and download a package as a zip
//! (streamed from a temporary file, never held in memory).
//!
//! Exports need `ExportMessages` and run within the caller's export scope
//! (compliance officers and legal staff within their scope; admins over the
//! whole archive). A caller sees and downloads their own exports; an
//! admin sees every export, scheduled ones included.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::access::{Caller, noted};
use super::error::ApiError;
use crate::auth::{Capability, Role};
use crate::db::exports::ExportRow;
use crate::export::job::{BuildError, ExportRequest, Requester, export_name};
use crate::export::service::{ExportService, ServiceError};

fn service(state: &AppState) -> Result<std::sync::Arc<ExportService>, ApiError> {
    state
        .exports
        .clone()
        .ok_or_else(|| ApiError::Internal("this server has no export service".to_owned()))
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Build(BuildError::Invalid(invalid)) => ApiError::InvalidField {
                field: invalid.field,
                message: invalid.message,
            },
            ServiceError::Build(BuildError::Hold(error)) => error.into(),
            ServiceError::Db(error) => ApiError::Internal(error.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn is_admin(caller: &Caller) -> bool {
    caller.principal.roles().contains(&Role::Admin)
}

/// The export `id` if the caller may see it (their own, or any for an
/// admin); 404 otherwise, so ids of others' exports reveal nothing.
/// The export a `{id}` path names, if the caller may see it; the id goes
/// into the audit note first, so a refusal is audited with it.
async fn export_of_path(
    state: &AppState,
    caller: &Caller,
    id: Result<Path<String>, PathRejection>,
    note: &mut Value,
) -> Result<ExportRow, ApiError> {
    let Path(id) = id.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    *note = json!({ "export": id });
    visible_export(state, caller, &id).await
}

async fn visible_export(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ExportRow, ApiError> {
    let not_found = || ApiError::NotFound {
        what: format!("export {id}"),
    };
    let export_id = id
        .strip_prefix("exp-")
        .unwrap_or(id)
        .parse::<i64>()
        .map_err(|_| ApiError::InvalidField {
            field: "id".to_owned(),
            message: format!("{id:?} is not an export id (42 or exp-000042)"),
        })?;
    let row = service(state)?
        .get(export_id)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .ok_or_else(not_found)?;
    if row.requested_by != caller.principal.username && !is_admin(caller) {
        return Err(not_found());
    }
    Ok(row)
}

fn export_view(state: &AppState, row: &ExportRow) -> Value {
    let mut view = crate::export::service::export_json(row, &[]);
    if let Some(progress) = state
        .exports
        .as_ref()
        .and_then(|s| s.progress(row.export_id))
    {
        view["progress"] = json!({
            "stage": progress.stage(),
            "exported": progress.exported.load(std::sync::atomic::Ordering::SeqCst),
            "total": progress.total.load(std::sync::atomic::Ordering::SeqCst),
        });
    }
    view["links"] = json!({
        "self": format!("/api/v1/exports/{}", export_name(row.export_id)),
        "download": format!("/api/v1/exports/{}/download", export_name(row.export_id)),
    });
    view
}

/// `POST /api/v1/exports`: 202 with the export's id; it runs in the
/// background.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let mut note = json!({});
    let result = async {
        let mut reader = serde_json::Deserializer::from_slice(&body);
        let request: ExportRequest =
            serde_path_to_error::deserialize(&mut reader).map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner();
                if path.is_empty() || path == "." || inner.is_syntax() || inner.is_eof() {
                    ApiError::BadRequest(format!("the body is not an export request: {inner}"))
                } else {
                    ApiError::InvalidField {
                        field: path,
                        message: inner.to_string(),
                    }
                }
            })?;
        note = json!({ "request": request });
        let requester = Requester {
            name: caller.principal.username.clone(),
            scope: caller.scope(Capability::ExportMessages),
        };
        note["scope"] = json!(requester.scope.to_string());
        let service = service(&state)?;
        let export_id = service
            .start(request, requester, Some(caller.roles()))
            .await?;
        note["export_id"] = json!(export_id);
        let row = service
            .get(export_id)
            .await
            .map_err(|error| ApiError::Internal(error.to_string()))?
            .ok_or_else(|| ApiError::Internal("the export just stored is missing".to_owned()))?;
        Ok((StatusCode::ACCEPTED, Json(export_view(&state, &row))).into_response())
    }
    .await;
    noted(result, note)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/exports?limit=N`: newest first.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let Query(query) =
            query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        let limit = query.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::InvalidField {
                field: "limit".to_owned(),
                message: format!("{limit}: between 1 and 1000"),
            });
        }
        let who = (!is_admin(&caller)).then(|| caller.principal.username.clone());
        let rows = state
            .store
            .db()
            .list_exports(who.as_deref(), limit)
            .await
            .map_err(|error| ApiError::Internal(error.to_string()))?;
        let exports: Vec<Value> = rows.iter().map(|row| export_view(&state, row)).collect();
        Ok(Json(json!({ "exports": exports })).into_response())
    }
    .await;
    noted(result, json!({}))
}

/// `GET /api/v1/exports/{id}`: status, progress, deliveries, manifest.
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let mut note = json!({});
    let result = async {
        let row = export_of_path(&state, &caller, id, &mut note).await?;
        let deliveries = state
            .store
            .db()
            .deliveries_of(row.export_id)
            .await
            .map_err(|error| ApiError::Internal(error.to_string()))?;
        let mut view = export_view(&state, &row);
        view["deliveries"] =
            crate::export::service::export_json(&row, &deliveries)["deliveries"].clone();
        if let Some(dir) = &row.package_dir {
            let path = std::path::Path::new(dir).join(crate::export::manifest::MANIFEST_FILE);
            if let Ok(bytes) = tokio::fs::read(&path).await {
                view["manifest"] = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            }
        }
        Ok(Json(view).into_response())
    }
    .await;
    noted(result, note)
}

/// `POST /api/v1/exports/{id}/cancel`
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let mut note = json!({});
    let result = async {
        let row = export_of_path(&state, &caller, id, &mut note).await?;
        if row.status != "running" || !service(&state)?.cancel(row.export_id) {
            return Err(ApiError::Conflict {
                code: "not_running",
                message: format!(
                    "export {} is {}, not running",
                    export_name(row.export_id),
                    row.status
                ),
            });
        }
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "id": export_name(row.export_id), "status": "cancelling" })),
        )
            .into_response())
    }
    .await;
    noted(result, note)
}

/// `GET /api/v1/exports/{id}/download`: the package as a zip, streamed.
pub async fn download(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let mut note = json!({});
    let result = async {
        let row = export_of_path(&state, &caller, id, &mut note).await?;
        let (Some(dir), "done") = (row.package_dir.clone(), row.status.as_str()) else {
            return Err(ApiError::Conflict {
                code: "not_ready",
                message: format!(
                    "export {} is {}: only a finished export can be downloaded",
                    export_name(row.export_id),
                    row.status
                ),
            });
        };
        note["manifest_sha256"] = json!(row.manifest_sha256);
        let package = std::path::PathBuf::from(&dir);
        if !tokio::fs::try_exists(&package).await.unwrap_or(false) {
            return Err(ApiError::Gone {
                code: "package_missing",
                message: format!(
                    "the package of export {} is no longer on the server (it was removed); start the export again",
                    export_name(row.export_id)
                ),
            });
        }
        let exports_dir = service(&state)?.exporter().exports_dir.clone();
        let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, String> {
            // A temporary file, unlinked once open: the stream keeps it
            // alive, nothing is left behind.
            let mut temp = tempfile::tempfile_in(&exports_dir)
                .map_err(|error| format!("{}: {error}", exports_dir.display()))?;
            crate::export::delivery::zip_package(&package, &mut temp)
                .map_err(|error| error.to_string())?;
            use std::io::Seek;
            temp.seek(std::io::SeekFrom::Start(0))
                .map_err(|error| error.to_string())?;
            Ok(temp)
        })
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .map_err(ApiError::Internal)?;
        let length = file
            .metadata()
            .map_err(|error| ApiError::Internal(error.to_string()))?
            .len();
        let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
        let name = format!("{}.zip", export_name(row.export_id));
        Ok((
            [
                (header::CONTENT_TYPE, "application/zip".to_owned()),
                (header::CONTENT_LENGTH, length.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            Body::from_stream(stream),
        )
            .into_response())
    }
    .await;
    noted(result, note)
}
