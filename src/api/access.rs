//! Who is calling and whether they may: every route of the API is an
//! [`Endpoint`] that declares its [`Access`] and its audit action, and the
//! router is built from that table only ([`super::router`]), so a route
//! without a declared requirement cannot exist.
//!
//! For each request the guard resolves the bearer token (a session, an API
//! token, or the configured ingest token), or else the web console's
//! session cookie, into a [`Caller`], refuses it
//! (401 / 403) when it may not use the endpoint, runs the handler, and
//! writes the audit record **before** the answer leaves: who, role, client
//! address, action, parameters (with what the handler adds: a query and
//! its hit count, an event id), outcome. If the audit write fails, the
//! caller gets a 500 and not the answer: no unaudited access.
//!
//! The console's cookie ([`SESSION_COOKIE`]: HttpOnly, SameSite=Strict) is
//! only honoured on a request that changes something (any method but GET and
//! HEAD) when it also carries the [`CONSOLE_HEADER`], which another site's
//! page cannot add without a CORS preflight this server never grants: a
//! forged cross-site form cannot act with the cookie.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::auth::TokenHash;
use super::error::ApiError;
use crate::audit::{AuditAction, AuditEntry, AuditLog, AuditOutcome};
use crate::auth::{
    AuthConfig, AuthError, Authenticator, Capability, Grant, Principal, Role, TokenKind, TokenStore,
};
use crate::search::Scope;
use crate::store::Store;

/// What an endpoint requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (health, metrics, sign-in).
    Public,
    /// Any valid token, whatever its grants (sign-out, who am I).
    Authenticated,
    /// A token whose grants carry this capability.
    Requires(Capability),
}

/// One route: method, path, requirement, audit action (`None`: not audited,
/// only for public operational routes and sign-in, which audits itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub action: Option<AuditAction>,
}

/// Everything authentication and auditing need, shared by all requests.
pub struct AccessState {
    pub tokens: TokenStore,
    /// Password sign-in; `None` when it could not be set up (the sign-in
    /// endpoint then answers 503, tokens still work).
    pub authenticator: Option<Authenticator>,
    pub audit: AuditLog,
    /// The configured ingest credential (`HOLDFAST_INGEST_TOKEN` or the
    /// ingest token file): it may post events and nothing else.
    pub ingest_token: Option<TokenHash>,
    pub session_length: Duration,
    /// Mark the console's session cookie `Secure` (`auth.secure_cookie`).
    pub secure_cookie: bool,
}

/// The web console's session cookie.
pub const SESSION_COOKIE: &str = "holdfast_session";
/// The header every console request carries (see the module documentation).
pub const CONSOLE_HEADER: &str = "x-holdfast-console";

impl std::fmt::Debug for AccessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessState").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessSetupError {
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl AccessState {
    /// Opens the audit trail (its key is `<data_dir>/audit.key`, created on
    /// first use) and the token store, and sets up password sign-in.
    pub async fn open(
        store: &Store,
        auth: &AuthConfig,
        ingest_token: Option<TokenHash>,
    ) -> Result<AccessState, AccessSetupError> {
        let data_dir = store.data_dir().to_path_buf();
        let key_path = data_dir.join(crate::audit::AUDIT_KEY_FILE);
        let (key, created) = crate::audit::key_for_appending(store.db(), &key_path).await?;
        if created {
            tracing::warn!(path = %key_path.display(), fingerprint = key.fingerprint(), "created the audit key; back it up with the master key");
        }
        let audit = AuditLog::open(store.db().clone(), key).await?;
        let authenticator = match auth.authenticator(&data_dir) {
            Ok(authenticator) => Some(authenticator),
            Err(error) => {
                tracing::error!(%error, "password sign-in is not available");
                None
            }
        };
        Ok(AccessState {
            tokens: TokenStore::new(store.db().clone()),
            authenticator,
            audit,
            ingest_token,
            session_length: auth.session_length()?,
            secure_cookie: auth.secure_cookie,
        })
    }
}

/// The checked caller of a request, for handlers (`Extension<Caller>`).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub client: Option<IpAddr>,
    /// The session token itself, for sign-out (never logged).
    pub session_token: Option<String>,
    pub kind: CallerKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKind {
    Session { expires_at_ms: i64 },
    ApiToken { token_id: i64 },
    IngestToken,
}

impl Caller {
    /// The scope of message data this caller may reach with `capability`.
    pub fn scope(&self, capability: Capability) -> Scope {
        self.principal.scope_for(capability)
    }

    /// The roles, comma-separated, for the audit trail.
    pub fn roles(&self) -> String {
        self.principal
            .roles()
            .iter()
            .map(|role| role.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What a handler adds to its audit record (a response extension).
#[derive(Debug, Clone)]
pub struct AuditNote(pub Value);

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The bearer token of a request, if it has one.
pub fn bearer(request_headers: &axum::http::HeaderMap) -> Option<&str> {
    request_headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            // The scheme is case-insensitive (RFC 9110, section 11.1).
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
}

/// The console's session cookie of a request, if it has one.
pub fn session_cookie(request_headers: &axum::http::HeaderMap) -> Option<&str> {
    request_headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether a request says it comes from the console's own script.
pub fn from_console(request_headers: &axum::http::HeaderMap) -> bool {
    request_headers.contains_key(CONSOLE_HEADER)
}

/// The `Set-Cookie` value that hands the console its session (or, with
/// `None`, removes it).
pub fn session_cookie_header(
    token: Option<&str>,
    max_age: Duration,
    secure: bool,
) -> axum::http::HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = match token {
        Some(token) => format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            max_age.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    axum::http::HeaderValue::from_str(&value).expect("session tokens are cookie-safe")
}

pub fn client_address(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Resolves a presented token into a caller.
async fn resolve(
    access: &AccessState,
    presented: &str,
    client: Option<IpAddr>,
) -> Result<Option<Caller>, ApiError> {
    if let Some(ingest) = &access.ingest_token
        && ingest.matches(presented)
    {
        return Ok(Some(Caller {
            principal: Principal::token(
                "ingest-token",
                vec![Grant {
                    role: Role::Ingest,
                    scope: Scope::Nothing,
                }],
            ),
            client,
            session_token: None,
            kind: CallerKind::IngestToken,
        }));
    }
    let resolved = access
        .tokens
        .resolve(presented, now_ms())
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(resolved.map(|resolved| Caller {
        principal: resolved.principal,
        client,
        session_token: matches!(resolved.kind, TokenKind::Session { .. })
            .then(|| presented.to_owned()),
        kind: match resolved.kind {
            TokenKind::Session { expires_at_ms } => CallerKind::Session { expires_at_ms },
            TokenKind::Api { token_id, .. } => CallerKind::ApiToken { token_id },
        },
    }))
}

/// The guard around every non-public route (see the module documentation).
pub async fn guard(
    State((state, endpoint)): State<(AppState, &'static Endpoint)>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = client_address(&request);
    let mut params = json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
    });
    if let Some(query) = request.uri().query() {
        params["query_string"] = json!(query);
    }
    let by_cookie = bearer(request.headers()).is_none();
    let presented = bearer(request.headers())
        .or_else(|| session_cookie(request.headers()))
        .map(str::to_owned);
    let cross_site = by_cookie
        && presented.is_some()
        && !matches!(*request.method(), Method::GET | Method::HEAD)
        && !from_console(request.headers());
    let dead_cookie_possible = by_cookie && presented.is_some();
    let caller = match presented {
        Some(presented) => match resolve(&state.access, &presented, client).await {
            Ok(caller) => caller,
            Err(error) => return error.into_response(),
        },
        None => None,
    };
    let refusal = match &caller {
        None => Some(ApiError::Unauthorized),
        Some(_) if cross_site => Some(ApiError::Forbidden(format!(
            "a request authenticated by the console's cookie must carry the {CONSOLE_HEADER} header (cross-site requests are refused)"
        ))),
        Some(caller) => match endpoint.access {
            Access::Public | Access::Authenticated => None,
            Access::Requires(capability) => {
                if caller.principal.must_change_password {
                    Some(ApiError::Forbidden(
                        "change the one-time password first (POST /api/v1/me/password)".to_owned(),
                    ))
                } else if caller.principal.can(capability) {
                    None
                } else {
                    Some(ApiError::Forbidden(format!(
                        "this needs a role with {capability:?} (roles held: {})",
                        if caller.roles().is_empty() {
                            "none".to_owned()
                        } else {
                            caller.roles()
                        }
                    )))
                }
            }
        },
    };
    let (response, note) = match refusal {
        Some(refusal) => {
            let mut response = refusal.into_response();
            // A cookie that no longer signs anyone in is removed.
            if dead_cookie_possible && caller.is_none() {
                response.headers_mut().insert(
                    axum::http::header::SET_COOKIE,
                    session_cookie_header(None, Duration::ZERO, state.access.secure_cookie),
                );
            }
            (response, None)
        }
        None => {
            if let Some(caller) = &caller {
                request.extensions_mut().insert(caller.clone());
            }
            let response = next.run(request).await;
            let note = response.extensions().get::<AuditNote>().cloned();
            (response, note)
        }
    };
    let Some(action) = endpoint.action else {
        return response;
    };
    if let Some(AuditNote(Value::Object(extra))) = note
        && let Some(object) = params.as_object_mut()
    {
        object.extend(extra);
    }
    let status = response.status();
    params["status"] = json!(status.as_u16());
    let outcome = outcome_of(status);
    let (actor, roles) = match &caller {
        Some(caller) => (caller.principal.username.clone(), caller.roles()),
        None => ("anonymous".to_owned(), String::new()),
    };
    let mut entry = AuditEntry::new(actor, action)
        .params(params)
        .outcome(outcome);
    if !roles.is_empty() {
        entry = entry.role(roles);
    }
    if let Some(client) = client {
        entry = entry.client(client.to_string());
    }
    match state.access.audit.append(entry).await {
        Ok(_) => response,
        Err(error) => {
            tracing::error!(%error, "audit write failed; the answer is withheld");
            ApiError::AuditUnavailable.into_response()
        }
    }
}

pub fn outcome_of(status: StatusCode) -> AuditOutcome {
    if status.is_success() {
        AuditOutcome::Ok
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        AuditOutcome::Denied
    } else if status.is_client_error() {
        AuditOutcome::Failed
    } else {
        AuditOutcome::Error
    }
}

/// A handler's answer with its audit note, whether success or error.
pub fn noted(
    result: Result<axum::response::Response, ApiError>,
    note: serde_json::Value,
) -> axum::response::Response {
    let mut response = result.unwrap_or_else(axum::response::IntoResponse::into_response);
    response.extensions_mut().insert(AuditNote(note));
    response
}

/// Writes one audit record for a route that audits itself (sign-in);
/// an error when the write fails.
pub async fn audit_self(access: &Arc<AccessState>, entry: AuditEntry) -> Result<(), ApiError> {
    access.audit.append(entry).await.map(drop).map_err(|error| {
        tracing::error!(%error, "audit write failed; the answer is withheld");
        ApiError::AuditUnavailable
    })
}

/// The method of an endpoint as axum's type.
pub fn method_of(endpoint: &Endpoint) -> Method {
    Method::from_bytes(endpoint.method.as_bytes()).expect("endpoint methods are valid")
}
