//! `POST /api/v1/login`, `POST /api/v1/logout`, `GET /api/v1/me`,
//! `POST /api/v1/me/password`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::access::{self, AuditNote, Caller, CallerKind, now_ms};
use super::error::ApiError;
use crate::audit::{AuditAction, AuditEntry, AuditOutcome};
use crate::auth::{AuthError, Directory, Grant, Via};
use crate::event::format_at;
use crate::search::Scope;

/// Longest username or password accepted at sign-in.
const MAX_CREDENTIAL_BYTES: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize)]
pub struct GrantResponse {
    role: String,
    scope: String,
}

fn grant_responses(grants: &[Grant]) -> Vec<GrantResponse> {
    grants
        .iter()
        .map(|grant| GrantResponse {
            role: grant.role.as_str().to_owned(),
            scope: if grant.role.reads_messages() {
                grant.scope.to_string()
            } else {
                "n/a".to_owned()
            },
        })
        .collect()
}

#[derive(Serialize)]
pub struct LoginResponse {
    /// Absent for the web console, which gets the session as a cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    expires_at: String,
    username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    grants: Vec<GrantResponse>,
    must_change_password: bool,
}

/// Signs in with a username and password from the configured directory;
/// answers a session token. Audits itself (`login` or `login_failed`).
///
/// With the console's header (`X-Holdfast-Console`), the session is set as
/// an HttpOnly cookie instead and the body carries no token, so the
/// console's script never holds it.
pub async fn login(State(state): State<AppState>, request: Request) -> Response {
    let client = access::client_address(&request);
    let console = access::from_console(request.headers());
    let body = axum::body::to_bytes(request.into_body(), 64 * 1024).await;
    let parsed: Result<LoginRequest, String> = match body {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
            format!("the body must be JSON {{\"username\": ..., \"password\": ...}}: {error}")
        }),
        Err(_) => Err("the body is larger than 64 KiB".to_owned()),
    };
    let audit = |actor: &str, action: AuditAction, outcome: AuditOutcome, detail: &str| {
        let mut entry = AuditEntry::new(actor.to_owned(), action)
            .params(json!({"method": "POST", "path": "/api/v1/login"}))
            .outcome(outcome)
            .detail(detail.to_owned());
        if let Some(client) = client {
            entry = entry.client(client.to_string());
        }
        entry
    };
    let request = match parsed {
        Ok(request) => request,
        Err(message) => {
            if let Err(error) = access::audit_self(
                &state.access,
                audit(
                    "anonymous",
                    AuditAction::LoginFailed,
                    AuditOutcome::Failed,
                    "malformed request",
                ),
            )
            .await
            {
                return error.into_response();
            }
            return ApiError::BadRequest(message).into_response();
        }
    };
    // The attempted name goes into the trail, cut to a sane length.
    let actor: String = request.username.chars().take(256).collect();
    let actor = if actor.trim().is_empty() || actor.contains('\0') {
        "anonymous".to_owned()
    } else {
        actor
    };
    if request.username.len() > MAX_CREDENTIAL_BYTES
        || request.password.len() > MAX_CREDENTIAL_BYTES
    {
        if let Err(error) = access::audit_self(
            &state.access,
            audit(
                &actor,
                AuditAction::LoginFailed,
                AuditOutcome::Failed,
                "credentials too long",
            ),
        )
        .await
        {
            return error.into_response();
        }
        return ApiError::BadRequest(format!(
            "username and password must be at most {MAX_CREDENTIAL_BYTES} bytes"
        ))
        .into_response();
    }
    let Some(authenticator) = &state.access.authenticator else {
        if let Err(error) = access::audit_self(
            &state.access,
            audit(
                &actor,
                AuditAction::LoginFailed,
                AuditOutcome::Error,
                "sign-in not configured",
            ),
        )
        .await
        {
            return error.into_response();
        }
        return ApiError::SignInUnavailable.into_response();
    };
    let password = SecretString::from(request.password);
    let outcome = authenticator
        .login(&request.username, &password, client)
        .await;
    drop(password);
    let principal = match outcome {
        Ok(principal) => principal,
        Err(error) => {
            let (outcome, detail) = match &error {
                AuthError::InvalidCredentials => (AuditOutcome::Denied, "invalid credentials"),
                AuthError::Disabled => (AuditOutcome::Denied, "account disabled"),
                AuthError::RateLimited { .. } => (AuditOutcome::Denied, "rate limited"),
                AuthError::DirectoryUnavailable { .. } => {
                    (AuditOutcome::Error, "directory unavailable")
                }
                _ => (AuditOutcome::Error, "sign-in failed"),
            };
            if let Err(audit_error) = access::audit_self(
                &state.access,
                audit(&actor, AuditAction::LoginFailed, outcome, detail),
            )
            .await
            {
                return audit_error.into_response();
            }
            return ApiError::from(error).into_response();
        }
    };
    if !principal.has_grants() {
        if let Err(error) = access::audit_self(
            &state.access,
            audit(
                &principal.username,
                AuditAction::LoginFailed,
                AuditOutcome::Denied,
                "no role granted",
            ),
        )
        .await
        {
            return error.into_response();
        }
        return ApiError::Forbidden(
            "the directory knows this account, but none of its groups grants a role in holdfast"
                .to_owned(),
        )
        .into_response();
    }
    let now = now_ms();
    let expires_at_ms = now + state.access.session_length.as_millis() as i64;
    let token = match state
        .access
        .tokens
        .create_session(&principal, now, expires_at_ms)
        .await
    {
        Ok(token) => token,
        Err(error) => return ApiError::Internal(error.to_string()).into_response(),
    };
    let roles: Vec<&str> = principal.roles().iter().map(|role| role.as_str()).collect();
    let mut entry = AuditEntry::new(principal.username.clone(), AuditAction::Login)
        .role(roles.join(","))
        .params(
            json!({"method": "POST", "path": "/api/v1/login", "via": match principal.via {
                Via::Local => "local",
                Via::Ldap => "ldap",
                Via::Token => "token",
            }}),
        )
        .outcome(AuditOutcome::Ok);
    if let Some(client) = client {
        entry = entry.client(client.to_string());
    }
    if let Err(error) = access::audit_self(&state.access, entry).await {
        // The session exists but its holder never learns the token; end it.
        let _ = state
            .access
            .tokens
            .revoke_session(secrecy::ExposeSecret::expose_secret(&token), now_ms())
            .await;
        return error.into_response();
    }
    let token = secrecy::ExposeSecret::expose_secret(&token);
    let mut response = Json(LoginResponse {
        token: (!console).then(|| token.to_owned()),
        expires_at: format_at(expires_at_ms * 1000),
        username: principal.username.clone(),
        display_name: principal.display_name.clone(),
        grants: grant_responses(&principal.grants),
        must_change_password: principal.must_change_password,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if console {
        response.headers_mut().insert(
            header::SET_COOKIE,
            access::session_cookie_header(
                Some(token),
                state.access.session_length,
                state.access.secure_cookie,
            ),
        );
    }
    response
}

/// Ends the presented session (and removes the console's cookie).
pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let Some(token) = &caller.session_token else {
        return Err(ApiError::BadRequest(
            "only a sign-in session can sign out; revoke API tokens with `holdfast token revoke`"
                .to_owned(),
        ));
    };
    let ended = state
        .access
        .tokens
        .revoke_session(token, now_ms())
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let mut response = Json(json!({"signed_out": ended})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        access::session_cookie_header(None, std::time::Duration::ZERO, state.access.secure_cookie),
    );
    Ok(response)
}

#[derive(Serialize)]
pub struct MeResponse {
    username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    via: &'static str,
    grants: Vec<GrantResponse>,
    /// What searches of this caller see.
    search_scope: String,
    must_change_password: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_expires_at: Option<String>,
}

/// Who the caller is and what they may do.
pub async fn me(Extension(caller): Extension<Caller>) -> Json<MeResponse> {
    let principal = &caller.principal;
    Json(MeResponse {
        username: principal.username.clone(),
        display_name: principal.display_name.clone(),
        email: principal.email.clone(),
        via: match (&caller.kind, principal.via) {
            (CallerKind::ApiToken { .. } | CallerKind::IngestToken, _) => "api_token",
            (_, Via::Local) => "local",
            (_, Via::Ldap) => "ldap",
            (_, Via::Token) => "api_token",
        },
        grants: grant_responses(&principal.grants),
        search_scope: principal
            .scope_for(crate::auth::Capability::SearchMessages)
            .to_string(),
        must_change_password: principal.must_change_password,
        session_expires_at: match caller.kind {
            CallerKind::Session { expires_at_ms } => Some(format_at(expires_at_ms * 1000)),
            _ => None,
        },
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    current_password: String,
    new_password: String,
}

/// Changes the caller's own password in the local directory; ends every
/// session of the caller (sign in again with the new password).
pub async fn change_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<PasswordRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    if caller.principal.via != Via::Local || caller.session_token.is_none() {
        return Err(ApiError::BadRequest(
            "only people of the local directory change their password here; LDAP passwords are changed in the directory".to_owned(),
        ));
    }
    let Some(authenticator) = &state.access.authenticator else {
        return Err(ApiError::SignInUnavailable);
    };
    let Directory::Local(local) = authenticator.directory() else {
        return Err(ApiError::BadRequest(
            "the configured directory is LDAP: change the password there".to_owned(),
        ));
    };
    let username = caller.principal.username.clone();
    // Guessing the current password here is limited like signing in.
    let limiter = authenticator.limiter();
    limiter
        .check(&username, caller.client)
        .map_err(|retry_after| ApiError::Auth(AuthError::RateLimited { retry_after }))?;
    let current = SecretString::from(body.current_password);
    match local.authenticate(&username, &current).await {
        Ok(_) => limiter.record_success(&username, caller.client),
        Err(error) => {
            if matches!(error, AuthError::InvalidCredentials) {
                limiter.record_failure(&username, caller.client);
            }
            return Err(ApiError::from(error));
        }
    }
    let new = SecretString::from(body.new_password);
    let local = local.clone();
    let changed_user = username.clone();
    tokio::task::spawn_blocking(move || {
        local.modify(|file| file.set_password(&changed_user, &new))
    })
    .await
    .map_err(|error| ApiError::Internal(error.to_string()))?
    .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let ended = state
        .access
        .tokens
        .revoke_sessions_of(&username, now_ms())
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let mut response = Json(json!({"changed": true, "sessions_ended": ended})).into_response();
    response
        .extensions_mut()
        .insert(AuditNote(json!({"change": "password", "user": username})));
    Ok(response)
}

/// The scope a caller's view of message data has (for handlers).
pub fn view_scope(caller: &Caller) -> Scope {
    caller.scope(crate::auth::Capability::ViewMessages)
}
