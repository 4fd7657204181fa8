//! `/healthz` and `/metrics` (Prometheus text format).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde_json::json;

use super::AppState;
use crate::store::StoreMetrics;

/// Counters of the HTTP layer, plus the store's, in one registry.
pub struct ApiMetrics {
    registry: Registry,
    pub ingest_requests: Counter,
    pub events_rejected: Counter,
}

impl ApiMetrics {
    pub fn new(store: &StoreMetrics) -> ApiMetrics {
        let mut registry = Registry::with_prefix("holdfast");
        let ingest_requests = Counter::default();
        let events_rejected = Counter::default();
        registry.register(
            "ingest_requests",
            "Ingest requests answered",
            ingest_requests.clone(),
        );
        registry.register(
            "events_rejected",
            "Events rejected by validation",
            events_rejected.clone(),
        );
        registry.register(
            "events_ingested",
            "Events stored durably",
            store.events_stored.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events already stored (same id)",
            store.duplicates.clone(),
        );
        registry.register(
            "store_fsyncs",
            "fsync calls on segment files",
            store.fsyncs.clone(),
        );
        registry.register(
            "store_bytes_written",
            "Bytes appended to segment files",
            store.bytes_written.clone(),
        );
        registry.register(
            "store_group_commits",
            "Group commits",
            store.group_commits.clone(),
        );
        registry.register(
            "store_last_seq",
            "Sequence number of the newest acknowledged event",
            store.last_seq.clone(),
        );
        let build_info = prometheus_client::metrics::family::Family::<
            Vec<(String, String)>,
            prometheus_client::metrics::gauge::Gauge,
        >::default();
        build_info
            .get_or_create(&vec![(
                "version".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            )])
            .set(1);
        registry.register("build_info", "holdfast build", build_info);
        registry.register(
            "store_dedupe_seconds",
            "Seconds per group commit looking up duplicate ids",
            store.dedupe_seconds.clone(),
        );
        registry.register(
            "store_append_seconds",
            "Seconds per group commit encrypting, appending and syncing",
            store.append_seconds.clone(),
        );
        registry.register(
            "store_metadata_seconds",
            "Seconds per group commit committing metadata",
            store.metadata_seconds.clone(),
        );
        registry.register(
            "store_group_commit_events",
            "Events per group commit (batch size)",
            store.group_commit_events.clone(),
        );
        ApiMetrics {
            registry,
            ingest_requests,
            events_rejected,
        }
    }
}

/// 200 when the metadata database answers, 503 otherwise. Unauthenticated,
/// so it says nothing about the archive.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.db().ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(error) => {
            tracing::error!(%error, "health check: the metadata database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "metadata database"})),
            )
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = String::new();
    encode(&mut text, &state.metrics.registry).expect("writing to a String cannot fail");
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
