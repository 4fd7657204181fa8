//! The HTTP API (axum): a thin shell over `ingest`, `store` and `search`.
//!
//! Only this module knows HTTP. Request and response types are its own
//! structs, converted by hand from the library's types. Every route except
//! `/healthz` and `/metrics` needs the bearer token; `docs/openapi.yaml`
//! describes them all.

pub mod auth;
pub mod error;
pub mod events;
pub mod metrics;
pub mod search;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::index::SearchIndex;
use crate::store::Store;
use auth::TokenHash;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub ingest_token: TokenHash,
    pub max_body_bytes: u64,
    pub metrics: Arc<metrics::ApiMetrics>,
    /// The search index, when this server searches (`serve` always does).
    pub index: Option<Arc<SearchIndex>>,
}

impl AppState {
    pub fn new(store: Store, ingest_token: TokenHash, max_body_bytes: u64) -> AppState {
        let metrics = Arc::new(metrics::ApiMetrics::new(store.metrics()));
        AppState {
            store,
            ingest_token,
            max_body_bytes,
            metrics,
            index: None,
        }
    }

    /// The same state, searching `index`.
    pub fn with_index(mut self, index: Arc<SearchIndex>) -> AppState {
        self.index = Some(index);
        self
    }

    /// The search index, or 503 when this server has none.
    pub fn index(&self) -> Result<Arc<SearchIndex>, error::ApiError> {
        self.index.clone().ok_or(error::ApiError::SearchUnavailable)
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let body_limit = usize::try_from(state.max_body_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route(
            "/api/v1/events",
            post(events::post_events).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/api/v1/events/{id}", get(events::get_event))
        .route("/api/v1/posts/{post}", get(events::get_post))
        .route("/api/v1/posts/{post}/context", get(search::context))
        .route("/api/v1/search", get(search::search))
        .route("/healthz", get(metrics::healthz))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::NotFound {
        what: format!("route {}", uri.path()),
    }
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
