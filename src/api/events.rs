//! `POST /api/v1/events`, `GET /api/v1/events/{id}`, `GET /api/v1/posts/{post}`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::access::{AuditNote, Caller};
use super::error::ApiError;
use super::session::view_scope;
use crate::event::{EventKind, format_at};
use crate::ingest::{self, IngestReport};
use crate::store::StoreError;
use crate::store::StoredEvent;

#[derive(Serialize)]
pub struct RejectedEntry {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    id: Option<String>,
    error: String,
}

#[derive(Serialize)]
pub struct IngestResponse {
    accepted: u64,
    duplicates: u64,
    rejected: Vec<RejectedEntry>,
}

impl From<IngestReport> for IngestResponse {
    fn from(report: IngestReport) -> Self {
        IngestResponse {
            accepted: report.accepted,
            duplicates: report.duplicates,
            rejected: report
                .rejected
                .into_iter()
                .map(|r| RejectedEntry {
                    index: r.index,
                    line: r.line,
                    id: r.id,
                    error: r.error,
                })
                .collect(),
        }
    }
}

/// Takes NDJSON or a JSON array; answers once the accepted events are durable.
pub async fn post_events(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Extension<AuditNote>, Json<IngestResponse>), ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: state.max_body_bytes,
            }
        } else {
            ApiError::BadRequest(format!("cannot read the request body: {rejection}"))
        }
    })?;
    let report = ingest::ingest_body(&state.store, body).await?;
    state.metrics.ingest_requests.inc();
    state
        .metrics
        .events_rejected
        .inc_by(report.rejected.len() as u64);
    let note = AuditNote(serde_json::json!({
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "rejected": report.rejected.len(),
    }));
    Ok((Extension(note), Json(report.into())))
}

#[derive(Serialize)]
pub struct EventResponse {
    seq: u64,
    segment: u64,
    offset: u64,
    event: Value,
}

fn event_response(stored: &StoredEvent) -> EventResponse {
    EventResponse {
        seq: stored.seq,
        segment: stored.segment_no,
        offset: stored.offset,
        event: serde_json::to_value(&stored.event).expect("events serialize"),
    }
}

/// One event by id; an event outside the caller's scope is "not found".
pub async fn get_event(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<(Extension<AuditNote>, Json<EventResponse>), ApiError> {
    let Path(id) = id.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let scope = view_scope(&caller);
    let found = match state.store.get_event(&id).await {
        // Deleted by retention: said as such (410), within the scope only.
        Err(StoreError::Shredded(tombstone))
            if !scope.allows(&tombstone.team, &tombstone.channel) =>
        {
            Ok(None)
        }
        other => other,
    };
    let stored = found?
        .filter(|stored| scope.allows(&stored.event.team, &stored.event.channel))
        .ok_or_else(|| ApiError::NotFound {
            what: format!("event {id:?}"),
        })?;
    let note = AuditNote(
        serde_json::json!({"event": id, "team": stored.event.team, "channel": stored.event.channel}),
    );
    Ok((Extension(note), Json(event_response(&stored))))
}

#[derive(Serialize)]
pub struct PostVersion {
    version: usize,
    event_id: String,
    kind: EventKind,
    at: String,
    user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

#[derive(Serialize)]
pub struct ReactionSummary {
    emoji: String,
    users: Vec<String>,
}

#[derive(Serialize)]
pub struct PostResponse {
    post: String,
    team: String,
    channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    edited: bool,
    deleted: bool,
    /// The post, each edit and the delete, in order.
    versions: Vec<PostVersion>,
    /// Reactions in force now (adds minus removes).
    reactions: Vec<ReactionSummary>,
    /// Every event about the post, in store order.
    events: Vec<EventResponse>,
}

/// All versions of a post, its reactions and every event about it.
pub async fn get_post(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    post: Result<Path<String>, PathRejection>,
) -> Result<(Extension<AuditNote>, Json<PostResponse>), ApiError> {
    let Path(post) = post.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let scope = view_scope(&caller);
    let mut events = state.store.post_events(&post).await?;
    // Events about this post id from outside the scope do not exist here.
    events.retain(|stored| scope.allows(&stored.event.team, &stored.event.channel));
    let Some(first) = events.first() else {
        return Err(ApiError::NotFound {
            what: format!("post {post:?}"),
        });
    };
    let mut versions = Vec::new();
    let mut reactions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut parent = None;
    for stored in &events {
        let event = &stored.event;
        if parent.is_none() {
            parent.clone_from(&event.parent);
        }
        match event.kind {
            EventKind::Post | EventKind::Edit | EventKind::Delete => versions.push(PostVersion {
                version: versions.len() + 1,
                event_id: event.id.clone(),
                kind: event.kind,
                at: format_at(event.at_us),
                user: event.user.clone(),
                text: event.text.clone(),
            }),
            EventKind::ReactionAdd => {
                let users = reactions
                    .entry(event.emoji.clone().unwrap_or_default())
                    .or_default();
                if !users.contains(&event.user) {
                    users.push(event.user.clone());
                }
            }
            EventKind::ReactionRemove => {
                if let Some(users) = reactions.get_mut(event.emoji.as_deref().unwrap_or_default()) {
                    users.retain(|user| user != &event.user);
                }
            }
            _ => {}
        }
    }
    let note = AuditNote(serde_json::json!({"post": post, "events": events.len()}));
    Ok((
        Extension(note),
        Json(PostResponse {
            post,
            team: first.event.team.clone(),
            channel: first.event.channel.clone(),
            parent,
            edited: versions.iter().any(|v| v.kind == EventKind::Edit),
            deleted: versions.iter().any(|v| v.kind == EventKind::Delete),
            versions,
            reactions: reactions
                .into_iter()
                .filter(|(_, users)| !users.is_empty())
                .map(|(emoji, users)| ReactionSummary { emoji, users })
                .collect(),
            events: events.iter().map(event_response).collect(),
        }),
    ))
}
