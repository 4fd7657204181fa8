//! `/api/v1/holds`: create, list, show and release legal holds (role
//! `legal` within its scope, `admin` everywhere), over `retention::holds`.
//!
//! Every handler takes its scope from the [`Caller`]: a hold is created
//! with the caller's scope, and a hold outside the caller's scope is "not
//! found". Each answer carries an [`AuditNote`] naming the hold (id, name),
//! errors included, so the audit record says which hold a request was about.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::AppState;
use super::access::{Caller, noted};
use super::error::ApiError;
use crate::auth::Capability;
use crate::event::format_at;
use crate::index::IndexError;
use crate::retention::holds::{
    self, Hold, HoldCounts, HoldCriteria, HoldError, NewHold, StatusFilter,
};
use crate::search::ChannelRef;

/// The fields of a create request, and of its `criteria`.
const HOLD_FIELDS: [&str; 4] = ["name", "matter", "reason", "criteria"];
const CRITERIA_FIELDS: [&str; 6] = ["custodians", "teams", "channels", "from", "to", "query"];

impl From<HoldError> for ApiError {
    fn from(error: HoldError) -> Self {
        match error {
            HoldError::Invalid { field, problem } => ApiError::InvalidField {
                field: api_field(field),
                message: problem,
            },
            HoldError::BadQuery(error) => ApiError::BadQuery(error),
            HoldError::OutsideScope(what) => ApiError::Forbidden(format!(
                "the hold names teams or channels outside your scope: {what}"
            )),
            error @ HoldError::NameTaken(_) => ApiError::Conflict {
                code: "hold_exists",
                message: error.to_string(),
            },
            error @ HoldError::AlreadyReleased { .. } => ApiError::Conflict {
                code: "hold_released",
                message: error.to_string(),
            },
            HoldError::NotFound(what) => ApiError::NotFound {
                what: format!("hold {what}"),
            },
            HoldError::Index(error @ IndexError::PrefixTooBroad { .. }) => {
                ApiError::BadRequest(format!("the hold's query: {error}"))
            }
            HoldError::Index(error) => ApiError::Index(error),
            error @ (HoldError::BadStored { .. } | HoldError::Db(_) | HoldError::Task(_)) => {
                ApiError::Internal(error.to_string())
            }
        }
    }
}

/// The request's name of a field the library names.
fn api_field(field: &str) -> String {
    if CRITERIA_FIELDS.contains(&field) {
        format!("criteria.{field}")
    } else {
        field.to_owned()
    }
}

#[derive(Serialize)]
pub struct ChannelResponse {
    team: String,
    channel: String,
}

#[derive(Serialize)]
pub struct CriteriaResponse {
    custodians: Vec<String>,
    teams: Vec<String>,
    channels: Vec<ChannelResponse>,
    from: Option<String>,
    to: Option<String>,
    query: Option<String>,
}

#[derive(Serialize)]
pub struct CountsResponse {
    events: u64,
    matching_events: u64,
    posts: u64,
    custodians: u64,
    channels: u64,
}

#[derive(Serialize)]
pub struct HoldResponse {
    id: i64,
    name: String,
    matter: String,
    reason: String,
    status: &'static str,
    criteria: CriteriaResponse,
    /// The creator's scope, e.g. `all` or `team legal, channel sales/leads`.
    scope: String,
    created_by: String,
    created_at: String,
    released_by: Option<String>,
    released_at: Option<String>,
    release_reason: Option<String>,
    /// What the hold holds now (`GET /api/v1/holds/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<CountsResponse>,
}

fn format_ms(ms: i64) -> String {
    format_at(ms.saturating_mul(1000))
}

pub fn hold_response(hold: Hold, counts: Option<HoldCounts>) -> HoldResponse {
    let status = hold.status().as_str();
    let criteria = hold.criteria;
    let (released_by, released_at, release_reason) = match hold.released {
        Some(release) => (
            Some(release.released_by),
            Some(format_ms(release.released_at_ms)),
            Some(release.reason),
        ),
        None => (None, None, None),
    };
    HoldResponse {
        id: hold.id,
        name: hold.name,
        matter: hold.matter,
        reason: hold.reason,
        status,
        criteria: CriteriaResponse {
            custodians: criteria.custodians,
            teams: criteria.teams,
            channels: criteria
                .channels
                .into_iter()
                .map(|channel| ChannelResponse {
                    team: channel.team,
                    channel: channel.channel,
                })
                .collect(),
            from: criteria.from,
            to: criteria.to,
            query: criteria.query,
        },
        scope: hold.scope.to_string(),
        created_by: hold.created_by,
        created_at: format_ms(hold.created_at_ms),
        released_by,
        released_at,
        release_reason,
        held: counts.map(|counts| CountsResponse {
            events: counts.events,
            matching_events: counts.matching_events,
            posts: counts.posts,
            custodians: counts.custodians,
            channels: counts.channels,
        }),
    }
}

// ------------------------------------------------------------------ create

/// The body as a JSON object; any other body is a 400 naming the problem.
fn object_body(body: Result<Json<Value>, JsonRejection>) -> Result<Map<String, Value>, ApiError> {
    let Json(value) = body.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(ApiError::BadRequest(
            "the body must be a JSON object".to_owned(),
        )),
    }
}

fn field_error(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Refuses keys other than `allowed`, naming the first one.
fn known_fields(
    object: &Map<String, Value>,
    prefix: &str,
    allowed: &[&str],
) -> Result<(), ApiError> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(unknown) => Err(field_error(
            &format!("{prefix}{unknown}"),
            format!("unknown field; expected one of {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A string field; absent or null is `None`.
fn text(object: &Map<String, Value>, key: &str, field: &str) -> Result<Option<String>, ApiError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(field_error(field, "must be a string")),
    }
}

/// An array of strings; absent or null is empty.
fn texts(object: &Map<String, Value>, key: &str, field: &str) -> Result<Vec<String>, ApiError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(values)) => values
            .iter()
            .map(|value| match value {
                Value::String(text) => Ok(text.clone()),
                _ => Err(field_error(field, "must be an array of strings")),
            })
            .collect(),
        Some(_) => Err(field_error(field, "must be an array of strings")),
    }
}

/// Channels: `{"team": ..., "channel": ...}` objects or `"team/channel"`.
fn channels(object: &Map<String, Value>) -> Result<Vec<ChannelRef>, ApiError> {
    let field = "criteria.channels";
    let shape =
        "must be an array of {\"team\": ..., \"channel\": ...} objects or \"team/channel\" strings";
    let values = match object.get("channels") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(values)) => values,
        Some(_) => return Err(field_error(field, shape)),
    };
    values
        .iter()
        .map(|value| match value {
            Value::String(text) => match text.split_once('/') {
                Some((team, channel)) => Ok(ChannelRef::new(team, channel)),
                None => Err(field_error(
                    field,
                    format!("{text:?} is not of the form \"team/channel\""),
                )),
            },
            Value::Object(channel) => {
                known_fields(channel, "criteria.channels.", &["team", "channel"])?;
                match (
                    text(channel, "team", "criteria.channels.team")?,
                    text(channel, "channel", "criteria.channels.channel")?,
                ) {
                    (Some(team), Some(channel)) => Ok(ChannelRef::new(team, channel)),
                    _ => Err(field_error(
                        field,
                        "each channel needs a team and a channel",
                    )),
                }
            }
            _ => Err(field_error(field, shape)),
        })
        .collect()
}

/// The hold a create request asks for. Missing texts are empty, which the
/// library refuses naming the field.
fn new_hold(object: &Map<String, Value>) -> Result<NewHold, ApiError> {
    known_fields(object, "", &HOLD_FIELDS)?;
    let criteria = match object.get("criteria") {
        None | Some(Value::Null) => HoldCriteria::default(),
        Some(Value::Object(criteria)) => {
            known_fields(criteria, "criteria.", &CRITERIA_FIELDS)?;
            HoldCriteria {
                custodians: texts(criteria, "custodians", "criteria.custodians")?,
                teams: texts(criteria, "teams", "criteria.teams")?,
                channels: channels(criteria)?,
                from: text(criteria, "from", "criteria.from")?,
                to: text(criteria, "to", "criteria.to")?,
                query: text(criteria, "query", "criteria.query")?,
            }
        }
        Some(_) => return Err(field_error("criteria", "must be an object")),
    };
    Ok(NewHold {
        name: text(object, "name", "name")?.unwrap_or_default(),
        matter: text(object, "matter", "matter")?.unwrap_or_default(),
        reason: text(object, "reason", "reason")?.unwrap_or_default(),
        criteria,
    })
}

/// `POST /api/v1/holds`: creates a hold within the caller's scope (201).
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let mut note = json!({});
    let result = async {
        let object = object_body(body)?;
        if let Some(Value::String(name)) = object.get("name") {
            note["name"] = json!(name);
        }
        let new = new_hold(&object)?;
        let hold = holds::create_hold(
            state.store.db(),
            &caller.scope(Capability::ManageHolds),
            &caller.principal.username,
            &new,
        )
        .await?;
        note["hold_id"] = json!(hold.id);
        note["matter"] = json!(hold.matter);
        note["criteria"] = json!(hold.criteria.to_string());
        Ok::<_, ApiError>((StatusCode::CREATED, Json(hold_response(hold, None))).into_response())
    }
    .await;
    noted(result, note)
}

// ------------------------------------------------------------------ list

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `active` (default), `released` or `all`.
    status: Option<String>,
}

#[derive(Serialize)]
pub struct ListResponse {
    status: &'static str,
    holds: Vec<HoldResponse>,
}

/// `GET /api/v1/holds`: the holds within the caller's scope.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let mut note = json!({});
    let result = async {
        let Query(params) =
            params.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        let status = params
            .status
            .as_deref()
            .map(str::parse::<StatusFilter>)
            .transpose()?
            .unwrap_or_default();
        note["hold_status"] = json!(status.as_str());
        let found = holds::list_holds(
            state.store.db(),
            &caller.scope(Capability::ManageHolds),
            status,
        )
        .await?;
        note["holds"] = json!(found.len());
        Ok::<_, ApiError>(
            Json(ListResponse {
                status: status.as_str(),
                holds: found
                    .into_iter()
                    .map(|hold| hold_response(hold, None))
                    .collect(),
            })
            .into_response(),
        )
    }
    .await;
    noted(result, note)
}

// ------------------------------------------------------------------ show, release

/// The hold id of the path (a number, as lists show it).
fn hold_id(path: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let Path(id) = path.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    id.parse().map_err(|_| ApiError::InvalidField {
        field: "id".to_owned(),
        message: format!("{id:?} is not a hold id: give the number a list shows"),
    })
}

/// `GET /api/v1/holds/{id}`: one hold with what it holds now.
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let mut note = json!({});
    let result = async {
        let id = hold_id(path)?;
        note["hold_id"] = json!(id);
        let hold =
            holds::get_hold(state.store.db(), &caller.scope(Capability::ManageHolds), id).await?;
        note["name"] = json!(hold.name);
        let index: Arc<_> = state.index()?;
        let counts = holds::count_held(state.store.db(), &index, &hold).await?;
        note["held_events"] = json!(counts.events);
        Ok::<_, ApiError>(Json(hold_response(hold, Some(counts))).into_response())
    }
    .await;
    noted(result, note)
}

/// `POST /api/v1/holds/{id}/release`: ends a hold's protection, with a
/// reason. Deletes nothing.
pub async fn release(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let mut note = json!({});
    let result = async {
        let id = hold_id(path)?;
        note["hold_id"] = json!(id);
        let object = object_body(body)?;
        known_fields(&object, "", &["reason"])?;
        let reason = text(&object, "reason", "reason")?.unwrap_or_default();
        note["reason"] = json!(reason);
        let hold = holds::release_hold(
            state.store.db(),
            &caller.scope(Capability::ManageHolds),
            id,
            &caller.principal.username,
            &reason,
        )
        .await
        .inspect_err(|error| {
            if let HoldError::AlreadyReleased { name, .. } = error {
                note["name"] = json!(name);
            }
        })?;
        note["name"] = json!(hold.name);
        Ok::<_, ApiError>(Json(hold_response(hold, None)).into_response())
    }
    .await;
    noted(result, note)
}
