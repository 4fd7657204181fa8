//! `GET /api/v1/search` and `GET /api/v1/posts/{post}/context`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use super::access::{AuditNote, Caller};
use super::error::ApiError;
use crate::auth::Capability;
use crate::event::format_at;
use crate::index::Sort;
use crate::search::{self, Hit, ParseOptions, SearchRequest, Versions};

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    sort: Option<String>,
    versions: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
    /// Zone of dates written without one: `+02:00`, `-05:00` or `Z`.
    tz: Option<String>,
}

#[derive(Serialize)]
pub struct SnippetResponse {
    text: String,
    highlights: Vec<(usize, usize)>,
}

#[derive(Serialize)]
pub struct ReactionResponse {
    emoji: String,
    users: Vec<String>,
}

/// One hit: the shown event's fields flattened, plus what search adds.
#[derive(Serialize)]
pub struct HitResponse {
    id: String,
    post: Option<String>,
    kind: String,
    team: String,
    channel: String,
    user: String,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<Value>,
    seq: u64,
    edited: bool,
    deleted: bool,
    versions: u32,
    matched_event_id: String,
    matched_versions: u32,
    reactions: Vec<ReactionResponse>,
    snippet: SnippetResponse,
    score: f32,
}

pub fn hit_response(hit: Hit) -> HitResponse {
    let event = hit.event;
    HitResponse {
        id: event.id,
        post: event.post,
        kind: event.kind.as_str().to_owned(),
        team: event.team,
        channel: event.channel,
        user: event.user,
        at: format_at(event.at_us),
        parent: event.parent,
        text: event.text,
        files: event
            .files
            .iter()
            .map(|file| serde_json::to_value(file).expect("file references serialize"))
            .collect(),
        seq: hit.seq,
        edited: hit.edited,
        deleted: hit.deleted,
        versions: hit.versions,
        matched_event_id: hit.matched_event_id,
        matched_versions: hit.matched_versions,
        reactions: hit
            .reactions
            .into_iter()
            .map(|(emoji, users)| ReactionResponse { emoji, users })
            .collect(),
        snippet: SnippetResponse {
            text: hit.snippet.text,
            highlights: hit.snippet.highlights,
        },
        score: hit.score,
    }
}

#[derive(Serialize)]
pub struct SearchResponse {
    query: String,
    total: u64,
    hits: Vec<HitResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

pub fn parse_sort(value: Option<&str>) -> Result<Sort, String> {
    match value.unwrap_or("newest") {
        "newest" | "time" => Ok(Sort::Newest),
        "oldest" => Ok(Sort::Oldest),
        "relevance" => Ok(Sort::Relevance),
        other => Err(format!(
            "sort must be newest, oldest or relevance, got {other:?}"
        )),
    }
}

pub fn parse_versions(value: Option<&str>) -> Result<Versions, String> {
    match value.unwrap_or("latest") {
        "latest" => Ok(Versions::Latest),
        "all" => Ok(Versions::All),
        other => Err(format!("versions must be latest or all, got {other:?}")),
    }
}

pub fn parse_zone(value: Option<&str>) -> Result<chrono::FixedOffset, String> {
    match value {
        None | Some("Z" | "z" | "UTC" | "utc") => Ok(ParseOptions::default().default_zone),
        Some(zone) => chrono::DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{zone}"))
            .map(|parsed| *parsed.offset())
            .map_err(|_| format!("tz must be an offset like +02:00 or Z, got {zone:?}")),
    }
}

/// Searches the archive (see `docs/search.md`).
pub async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<(Extension<AuditNote>, Json<SearchResponse>), ApiError> {
    let Query(params) = params.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let index = state.index()?;
    let text = params
        .q
        .ok_or_else(|| ApiError::BadRequest("the query parameter q is missing".to_owned()))?;
    let options = ParseOptions {
        default_zone: parse_zone(params.tz.as_deref()).map_err(ApiError::BadRequest)?,
        now: Some(chrono::Utc::now()),
    };
    let query = search::parse(&text, &options)?;
    let request = SearchRequest {
        query,
        versions: parse_versions(params.versions.as_deref()).map_err(ApiError::BadRequest)?,
        sort: parse_sort(params.sort.as_deref()).map_err(ApiError::BadRequest)?,
        cursor: params.cursor,
        limit: params.limit.unwrap_or(search::DEFAULT_PAGE),
    };
    let scope = caller.scope(Capability::SearchMessages);
    let page = search::search(&state.store, &index, &scope, &request).await?;
    let note = AuditNote(serde_json::json!({
        "query": page.query,
        "total": page.total,
        "hits": page.hits.len(),
        "scope": scope.to_string(),
    }));
    Ok((
        Extension(note),
        Json(SearchResponse {
            query: page.query,
            total: page.total,
            hits: page.hits.into_iter().map(hit_response).collect(),
            next_cursor: page.next_cursor,
        }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ContextParams {
    before: Option<usize>,
    after: Option<usize>,
}

#[derive(Serialize)]
pub struct ContextResponse {
    post: HitResponse,
    versions: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_root: Option<String>,
    thread: Vec<HitResponse>,
    before: Vec<HitResponse>,
    after: Vec<HitResponse>,
}

/// A post with its versions, its thread and the posts around it.
pub async fn context(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    post: Result<Path<String>, PathRejection>,
    params: Result<Query<ContextParams>, QueryRejection>,
) -> Result<(Extension<AuditNote>, Json<ContextResponse>), ApiError> {
    let Path(post) = post.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let Query(params) = params.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let (before, after) = (params.before.unwrap_or(5), params.after.unwrap_or(5));
    for (name, value) in [("before", before), ("after", after)] {
        if value > search::MAX_AROUND {
            return Err(ApiError::BadRequest(format!(
                "{name} must be at most {}, got {value}",
                search::MAX_AROUND
            )));
        }
    }
    let index = state.index()?;
    let scope = caller.scope(Capability::ViewMessages);
    let context = search::context(&state.store, &index, &scope, &post, before, after)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            what: format!("post {post:?}"),
        })?;
    let note = AuditNote(serde_json::json!({
        "post": post,
        "thread": context.thread.len(),
        "before": context.before.len(),
        "after": context.after.len(),
    }));
    Ok((
        Extension(note),
        Json(ContextResponse {
            post: hit_response(context.post),
            versions: context
                .versions
                .iter()
                .map(|event| serde_json::to_value(event).expect("events serialize"))
                .collect(),
            thread_root: context.thread_root,
            thread: context.thread.into_iter().map(hit_response).collect(),
            before: context.before.into_iter().map(hit_response).collect(),
            after: context.after.into_iter().map(hit_response).collect(),
        }),
    ))
}

/// `GET /api/v1/facets`: the teams, channels and people with events in the
/// caller's search scope, busiest first (for the console's filters).
pub async fn facets(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<(Extension<AuditNote>, Json<crate::index::Facets>), ApiError> {
    let index = state.index()?;
    let scope = caller.scope(Capability::SearchMessages);
    let note_scope = scope.to_string();
    let facets = tokio::task::spawn_blocking(move || index.facets(&scope))
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .map_err(ApiError::Index)?;
    let note = AuditNote(serde_json::json!({
        "scope": note_scope,
        "teams": facets.teams.len(),
        "channels": facets.channels.len(),
        "people": facets.people.len(),
    }));
    Ok((Extension(note), Json(facets)))
}
