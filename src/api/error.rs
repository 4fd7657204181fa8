//! One error type for every handler: a status and a stable machine-readable
//! code for each module error. Internal details are logged, never sent.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::audit::AuditError;
use crate::auth::AuthError;
use crate::index::IndexError;
use crate::ingest::IngestError;
use crate::search::{QueryError, SearchError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    /// A field of the request is wrong; the body names it (`field`).
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    /// The request conflicts with what exists (a name in use, a hold
    /// released already); `code` says which.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("{what} not found")]
    NotFound { what: String },
    /// It existed and is gone from the server (a removed export package).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the query is not valid: {0}")]
    BadQuery(#[from] QueryError),
    #[error("this server has no search index")]
    SearchUnavailable,
    #[error(transparent)]
    Index(IndexError),
    #[error("search failed: {0}")]
    SearchFailed(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Internal(String),
    #[error("the audit trail cannot be written; nothing is answered without it")]
    AuditUnavailable,
    #[error("password sign-in is not available on this server; see the server log")]
    SignInUnavailable,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<SearchError> for ApiError {
    fn from(error: SearchError) -> Self {
        match error {
            SearchError::Store(error) => ApiError::Store(error),
            SearchError::Index(error @ IndexError::PrefixTooBroad { .. }) => {
                ApiError::BadRequest(error.to_string())
            }
            SearchError::Index(IndexError::Store(error)) => ApiError::Store(error),
            SearchError::Index(error) => ApiError::Index(error),
            SearchError::BadCursor(_) | SearchError::BadLimit { .. } => {
                ApiError::BadRequest(error.to_string())
            }
            SearchError::Task(message) => ApiError::SearchFailed(message),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Batch(error) => ApiError::BadRequest(error.to_string()),
            IngestError::Store(error) => ApiError::Store(error),
            IngestError::Read { .. } => ApiError::BadRequest(error.to_string()),
        }
    }
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, *code),
            ApiError::Gone { code, .. } => (StatusCode::GONE, *code),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ApiError::Store(StoreError::Damaged { .. } | StoreError::Unreadable { .. }) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "archive_damaged")
            }
            ApiError::Store(StoreError::WriteFailed(_) | StoreError::Closed) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            ApiError::Store(StoreError::Shredded(_)) => (StatusCode::GONE, "deleted_by_retention"),
            ApiError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::BadQuery(_) => (StatusCode::BAD_REQUEST, "bad_query"),
            ApiError::SearchUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "search_unavailable"),
            ApiError::Index(_) | ApiError::SearchFailed(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::AuditUnavailable => (StatusCode::INTERNAL_SERVER_ERROR, "audit_unavailable"),
            ApiError::SignInUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "sign_in_unavailable"),
            ApiError::Auth(AuthError::InvalidCredentials) => {
                (StatusCode::UNAUTHORIZED, "invalid_credentials")
            }
            ApiError::Auth(AuthError::Disabled) => (StatusCode::FORBIDDEN, "account_disabled"),
            ApiError::Auth(AuthError::RateLimited { .. }) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            ApiError::Auth(AuthError::DirectoryUnavailable { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "directory_unavailable")
            }
            ApiError::Auth(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Audit(
                AuditError::UnknownAction { .. }
                | AuditError::UnknownOutcome { .. }
                | AuditError::BadFilter(..)
                | AuditError::BadTime { .. },
            ) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Audit(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, code, "request failed");
            match code {
                "store_unavailable" => {
                    "the store is not accepting writes; nothing in this request was stored"
                        .to_owned()
                }
                "search_unavailable" => "search is not available on this server".to_owned(),
                "audit_unavailable" => {
                    "the audit trail cannot be written; nothing is answered without it".to_owned()
                }
                "sign_in_unavailable" => {
                    "password sign-in is not available on this server; see the server log"
                        .to_owned()
                }
                "directory_unavailable" => {
                    "the directory cannot be reached; try again later".to_owned()
                }
                "archive_damaged" => {
                    "the archive could not read this record; run holdfast verify".to_owned()
                }
                _ => "internal error; see the server log".to_owned(),
            }
        } else {
            self.to_string()
        };
        let mut body = json!({"error": {"code": code, "message": message}});
        if let ApiError::InvalidField { field, .. } = &self {
            body["error"]["field"] = json!(field);
        }
        if let ApiError::BadQuery(error) = &self {
            body["error"]["position"] = json!(error.position);
            body["error"]["column"] = json!(error.column);
            body["error"]["expected"] = json!(error.expected);
            body["error"]["found"] = json!(error.found);
        }
        let mut response = (status, Json(body)).into_response();
        if let ApiError::Auth(AuthError::RateLimited { retry_after }) = &self
            && let Ok(value) =
                header::HeaderValue::from_str(&retry_after.0.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if code == "unauthorized" {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
