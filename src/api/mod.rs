//! The HTTP API (axum): a thin shell over `ingest`, `store`, `search`,
//! `retention` (legal holds), `auth` and `audit`.
//!
//! Only this module knows HTTP. Request and response types are its own
//! structs, converted by hand from the library's types. Every route is an
//! entry of [`ENDPOINTS`] with its access requirement and audit action, and
//! the router is built from that table alone (`access.rs`): a route cannot
//! exist without a declared requirement. `docs/openapi.yaml` describes them.

pub mod access;
pub mod audit;
pub mod auth;
pub mod error;
pub mod events;
pub mod exports;
pub mod holds;
pub mod metrics;
pub mod retention;
pub mod search;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};

use crate::audit::AuditAction;
use crate::auth::Capability;
use crate::index::SearchIndex;
use crate::store::Store;
pub use access::{Access, AccessState, Caller, Endpoint};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub max_body_bytes: u64,
    pub metrics: Arc<metrics::ApiMetrics>,
    /// The search index, when this server searches (`serve` always does).
    pub index: Option<Arc<SearchIndex>>,
    pub access: Arc<AccessState>,
    /// Retention runs and plans, when this server runs them (`serve` does).
    pub retention: Option<Arc<crate::retention::RetentionService>>,
    /// Export jobs, when this server runs them (`serve` does).
    pub exports: Option<Arc<crate::export::service::ExportService>>,
}

impl AppState {
    pub fn new(store: Store, access: AccessState, max_body_bytes: u64) -> AppState {
        let metrics = Arc::new(metrics::ApiMetrics::new(store.metrics()));
        AppState {
            store,
            max_body_bytes,
            metrics,
            index: None,
            access: Arc::new(access),
            retention: None,
            exports: None,
        }
    }

    /// The same state, searching `index`.
    pub fn with_index(mut self, index: Arc<SearchIndex>) -> AppState {
        self.index = Some(index);
        self
    }

    pub fn with_retention(
        mut self,
        retention: Arc<crate::retention::RetentionService>,
    ) -> AppState {
        self.retention = Some(retention);
        self
    }

    pub fn with_exports(mut self, exports: Arc<crate::export::service::ExportService>) -> AppState {
        self.exports = Some(exports);
        self
    }

    /// The search index, or 503 when this server has none.
    pub fn index(&self) -> Result<Arc<SearchIndex>, error::ApiError> {
        self.index.clone().ok_or(error::ApiError::SearchUnavailable)
    }
}

const fn endpoint(
    method: &'static str,
    path: &'static str,
    access: Access,
    action: Option<AuditAction>,
) -> Endpoint {
    Endpoint {
        method,
        path,
        access,
        action,
    }
}

/// Every route of the API, with what it requires and how it is audited.
pub static ENDPOINTS: &[Endpoint] = &[
    endpoint(
        "POST",
        "/api/v1/events",
        Access::Requires(Capability::IngestEvents),
        Some(AuditAction::Ingest),
    ),
    endpoint(
        "GET",
        "/api/v1/events/{id}",
        Access::Requires(Capability::ViewMessages),
        Some(AuditAction::ViewEvent),
    ),
    endpoint(
        "GET",
        "/api/v1/posts/{post}",
        Access::Requires(Capability::ViewMessages),
        Some(AuditAction::ViewPost),
    ),
    endpoint(
        "GET",
        "/api/v1/posts/{post}/context",
        Access::Requires(Capability::ViewMessages),
        Some(AuditAction::ViewContext),
    ),
    endpoint(
        "GET",
        "/api/v1/search",
        Access::Requires(Capability::SearchMessages),
        Some(AuditAction::Search),
    ),
    endpoint(
        "GET",
        "/api/v1/facets",
        Access::Requires(Capability::SearchMessages),
        Some(AuditAction::SearchFacets),
    ),
    endpoint(
        "GET",
        "/api/v1/audit",
        Access::Requires(Capability::ReadAudit),
        Some(AuditAction::AuditRead),
    ),
    endpoint(
        "POST",
        "/api/v1/holds",
        Access::Requires(Capability::ManageHolds),
        Some(AuditAction::HoldCreate),
    ),
    endpoint(
        "GET",
        "/api/v1/holds",
        Access::Requires(Capability::ManageHolds),
        Some(AuditAction::HoldList),
    ),
    endpoint(
        "GET",
        "/api/v1/holds/{id}",
        Access::Requires(Capability::ManageHolds),
        Some(AuditAction::HoldView),
    ),
    endpoint(
        "POST",
        "/api/v1/holds/{id}/release",
        Access::Requires(Capability::ManageHolds),
        Some(AuditAction::HoldRelease),
    ),
    endpoint(
        "GET",
        "/api/v1/retention/policies",
        Access::Requires(Capability::ManagePolicies),
        Some(AuditAction::RetentionView),
    ),
    endpoint(
        "GET",
        "/api/v1/retention/plan",
        Access::Requires(Capability::ManagePolicies),
        Some(AuditAction::RetentionPlan),
    ),
    endpoint(
        "POST",
        "/api/v1/retention/runs",
        Access::Requires(Capability::ManagePolicies),
        Some(AuditAction::PolicyRun),
    ),
    endpoint(
        "GET",
        "/api/v1/retention/runs",
        Access::Requires(Capability::ManagePolicies),
        Some(AuditAction::RetentionView),
    ),
    endpoint(
        "GET",
        "/api/v1/retention/runs/{id}",
        Access::Requires(Capability::ManagePolicies),
        Some(AuditAction::RetentionView),
    ),
    endpoint(
        "POST",
        "/api/v1/exports",
        Access::Requires(Capability::ExportMessages),
        Some(AuditAction::ExportCreate),
    ),
    endpoint(
        "GET",
        "/api/v1/exports",
        Access::Requires(Capability::ExportMessages),
        Some(AuditAction::ExportView),
    ),
    endpoint(
        "GET",
        "/api/v1/exports/{id}",
        Access::Requires(Capability::ExportMessages),
        Some(AuditAction::ExportView),
    ),
    endpoint(
        "POST",
        "/api/v1/exports/{id}/cancel",
        Access::Requires(Capability::ExportMessages),
        Some(AuditAction::ExportCancel),
    ),
    endpoint(
        "GET",
        "/api/v1/exports/{id}/download",
        Access::Requires(Capability::ExportMessages),
        Some(AuditAction::ExportDownload),
    ),
    // Signs in with a password; audits itself (login, login_failed).
    endpoint("POST", "/api/v1/login", Access::Public, None),
    endpoint(
        "POST",
        "/api/v1/logout",
        Access::Authenticated,
        Some(AuditAction::Logout),
    ),
    // The caller's own identity and grants: no archive data.
    endpoint("GET", "/api/v1/me", Access::Authenticated, None),
    endpoint(
        "POST",
        "/api/v1/me/password",
        Access::Authenticated,
        Some(AuditAction::UserChange),
    ),
    // Operational, no archive data, polled often: not audited.
    endpoint("GET", "/healthz", Access::Public, None),
    endpoint("GET", "/metrics", Access::Public, None),
];

/// The handler of an endpoint of [`ENDPOINTS`].
fn handler(endpoint: &Endpoint, body_limit: usize) -> MethodRouter<AppState> {
    match (endpoint.method, endpoint.path) {
        ("POST", "/api/v1/events") => {
            post(events::post_events).layer(DefaultBodyLimit::max(body_limit))
        }
        ("GET", "/api/v1/events/{id}") => get(events::get_event),
        ("GET", "/api/v1/posts/{post}") => get(events::get_post),
        ("GET", "/api/v1/posts/{post}/context") => get(search::context),
        ("GET", "/api/v1/search") => get(search::search),
        ("GET", "/api/v1/facets") => get(search::facets),
        ("GET", "/api/v1/audit") => get(audit::list),
        ("POST", "/api/v1/holds") => post(holds::create),
        ("GET", "/api/v1/holds") => get(holds::list),
        ("GET", "/api/v1/holds/{id}") => get(holds::show),
        ("POST", "/api/v1/holds/{id}/release") => post(holds::release),
        ("GET", "/api/v1/retention/policies") => get(retention::policies),
        ("GET", "/api/v1/retention/plan") => get(retention::plan),
        ("POST", "/api/v1/retention/runs") => post(retention::start_run),
        ("GET", "/api/v1/retention/runs") => get(retention::list_runs),
        ("GET", "/api/v1/retention/runs/{id}") => get(retention::show_run),
        ("POST", "/api/v1/exports") => {
            post(exports::create).layer(DefaultBodyLimit::max(body_limit))
        }
        ("GET", "/api/v1/exports") => get(exports::list),
        ("GET", "/api/v1/exports/{id}") => get(exports::show),
        ("POST", "/api/v1/exports/{id}/cancel") => post(exports::cancel),
        ("GET", "/api/v1/exports/{id}/download") => get(exports::download),
        ("POST", "/api/v1/login") => post(session::login),
        ("POST", "/api/v1/logout") => post(session::logout),
        ("GET", "/api/v1/me") => get(session::me),
        ("POST", "/api/v1/me/password") => post(session::change_password),
        ("GET", "/healthz") => get(metrics::healthz),
        ("GET", "/metrics") => get(metrics::metrics),
        (method, path) => panic!("endpoint {method} {path} has no handler"),
    }
}

/// The whole API, built from [`ENDPOINTS`].
pub fn router(state: AppState) -> Router {
    let body_limit = usize::try_from(state.max_body_bytes).unwrap_or(usize::MAX);
    let mut router = Router::new();
    for endpoint in ENDPOINTS {
        let method_router = handler(endpoint, body_limit);
        let method_router = match endpoint.access {
            Access::Public => method_router,
            Access::Authenticated | Access::Requires(_) => method_router.route_layer(
                axum::middleware::from_fn_with_state((state.clone(), endpoint), access::guard),
            ),
        };
        router = router.route(endpoint.path, method_router);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

/// Archive data is never kept in a browser's or proxy's cache (results,
/// downloads, the audit trail): every answer is `no-store` unless its
/// handler said otherwise.
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    response
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.yaml` describes exactly the routes of [`ENDPOINTS`].
    #[test]
    fn the_openapi_file_lists_every_endpoint_and_no_other() {
        let spec = include_str!("../../docs/openapi.yaml");
        let paths_section = &spec[spec.find("\npaths:\n").expect("a paths section")..];
        let paths_section =
            &paths_section[..paths_section.find("\ncomponents:").expect("components")];
        let mut documented = Vec::new();
        let mut current = None;
        for line in paths_section.lines() {
            if let Some(path) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
                && path.starts_with('/')
            {
                current = Some(path.to_owned());
            } else if let Some(method) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
                && ["get", "post", "put", "delete", "patch"].contains(&method)
                && let Some(path) = &current
            {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        documented.sort();
        let mut routed: Vec<(String, String)> = ENDPOINTS
            .iter()
            .map(|endpoint| (endpoint.method.to_owned(), endpoint.path.to_owned()))
            .collect();
        routed.sort();
        assert_eq!(documented, routed);
    }

    /// Every route has a handler, and message data is never public.
    #[test]
    fn every_endpoint_has_a_handler_and_data_routes_need_a_capability() {
        for endpoint in ENDPOINTS {
            let _ = handler(endpoint, 1024);
            if endpoint.path.starts_with("/api/v1/") && endpoint.path != "/api/v1/login" {
                assert_ne!(endpoint.access, Access::Public, "{}", endpoint.path);
            }
            if matches!(endpoint.access, Access::Requires(_)) {
                assert!(
                    endpoint.action.is_some(),
                    "{} is not audited",
                    endpoint.path
                );
            }
        }
    }
}
