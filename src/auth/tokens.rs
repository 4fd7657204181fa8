//! Bearer tokens: sign-in sessions of people and API tokens of service
//! accounts (the chat system's ingest connector, an export robot).
//!
//! A token is 32 random bytes, base64url, behind a prefix that says what it
//! is (`hfs_` a session, `hft_` an API token). Only its SHA-256 is stored
//! (a token has 256 bits of entropy, so a plain hash cannot be reversed);
//! the token itself is shown once, when created. Each carries its grants:
//! a session those of the person at sign-in, an API token those it was
//! created with. Sessions expire; both can be revoked, which takes effect
//! on the next request (every request looks the token up).
//!
//! This module must never store or log a token, and never resolve an
//! expired or revoked one.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::roles::{Grant, Principal, Role, Via};
use crate::db::auth::ApiTokenRow;
use crate::db::{Db, DbError};
use crate::search::{ChannelRef, Scope};

pub const SESSION_PREFIX: &str = "hfs_";
pub const API_TOKEN_PREFIX: &str = "hft_";
/// Longest token name.
pub const MAX_TOKEN_NAME: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "token name must be 1 to {MAX_TOKEN_NAME} characters of letters, digits, '-', '_' or '.', got {0:?}"
    )]
    BadName(String),
    #[error("an API token needs a scope for role {0}: give teams, channels or all")]
    MissingScope(&'static str),
    #[error("stored grants of {what} are unreadable: {problem}")]
    BadStoredGrants { what: String, problem: String },
    #[error("no API token with id {0}")]
    NoSuchToken(i64),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The grants of a token as stored (JSON). Versioned by its shape: do not
/// change field names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct StoredGrant {
    role: Role,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    teams: Vec<String>,
    /// `[team, channel]` pairs.
    #[serde(default)]
    channels: Vec<(String, String)>,
}

fn store_grants(grants: &[Grant]) -> String {
    let stored: Vec<StoredGrant> = grants
        .iter()
        .map(|grant| match &grant.scope {
            Scope::All => StoredGrant {
                role: grant.role,
                all: true,
                teams: Vec::new(),
                channels: Vec::new(),
            },
            Scope::Nothing => StoredGrant {
                role: grant.role,
                all: false,
                teams: Vec::new(),
                channels: Vec::new(),
            },
            Scope::Limited { teams, channels } => StoredGrant {
                role: grant.role,
                all: false,
                teams: teams.iter().cloned().collect(),
                channels: channels
                    .iter()
                    .map(|channel| (channel.team.clone(), channel.channel.clone()))
                    .collect(),
            },
        })
        .collect();
    serde_json::to_string(&stored).expect("grants serialize")
}

fn load_grants(json: &str, what: &str) -> Result<Vec<Grant>, TokenError> {
    let stored: Vec<StoredGrant> =
        serde_json::from_str(json).map_err(|error| TokenError::BadStoredGrants {
            what: what.to_owned(),
            problem: error.to_string(),
        })?;
    Ok(stored
        .into_iter()
        .map(|grant| Grant {
            role: grant.role,
            scope: if grant.all {
                Scope::All
            } else {
                Scope::teams(grant.teams).union(Scope::channels(
                    grant
                        .channels
                        .into_iter()
                        .map(|(team, channel)| ChannelRef::new(team, channel)),
                ))
            },
        })
        .collect())
}

/// The person a session stands for, as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSession {
    username: String,
    display_name: Option<String>,
    email: Option<String>,
    via: Via,
    grants: String,
    must_change_password: bool,
}

fn new_token(prefix: &str) -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    zeroize::Zeroize::zeroize(&mut bytes);
    SecretString::from(token)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What a presented token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub principal: Principal,
    pub kind: TokenKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    Session { expires_at_ms: i64 },
    Api { token_id: i64, name: String },
}

/// An API token's description (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub name: String,
    pub roles: Vec<String>,
    /// The scope of message data, e.g. `all`, `team legal, channel sales/leads`.
    pub scope: String,
    pub created_by: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub revoked_by: Option<String>,
}

fn token_info(row: ApiTokenRow) -> Result<ApiTokenInfo, TokenError> {
    let grants = load_grants(&row.grants, &format!("API token {}", row.token_id))?;
    let roles: BTreeSet<&str> = grants.iter().map(|grant| grant.role.as_str()).collect();
    let scope = grants.iter().fold(Scope::Nothing, |scope, grant| {
        scope.union(grant.scope.clone())
    });
    Ok(ApiTokenInfo {
        id: row.token_id,
        name: row.name,
        roles: roles.into_iter().map(str::to_owned).collect(),
        scope: scope.to_string(),
        created_by: row.created_by,
        created_at_ms: row.created_at_ms,
        expires_at_ms: row.expires_at_ms,
        revoked_at_ms: row.revoked_at_ms,
        revoked_by: row.revoked_by,
    })
}

/// A new API token's request.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// What it is for (`mattermost-connector`); shown in lists and the audit trail.
    pub name: String,
    pub role: Role,
    /// The message data it may reach (ignored for roles that reach none).
    pub scope: Scope,
    pub created_by: String,
    pub expires_at_ms: Option<i64>,
}

/// Sessions and API tokens in the metadata database.
#[derive(Debug, Clone)]
pub struct TokenStore {
    db: Db,
}

impl TokenStore {
    pub fn new(db: Db) -> TokenStore {
        TokenStore { db }
    }

    /// Creates an API token; the token is in the answer and nowhere else.
    pub async fn create_api_token(
        &self,
        new: NewApiToken,
        now_ms: i64,
    ) -> Result<(ApiTokenInfo, SecretString), TokenError> {
        let name_ok = !new.name.is_empty()
            && new.name.chars().count() <= MAX_TOKEN_NAME
            && new
                .name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(TokenError::BadName(new.name));
        }
        let scoped = new.role.reads_messages();
        if scoped && new.scope.is_empty() {
            return Err(TokenError::MissingScope(new.role.as_str()));
        }
        let grant = Grant {
            role: new.role,
            scope: if scoped { new.scope } else { Scope::Nothing },
        };
        let token = new_token(API_TOKEN_PREFIX);
        let grants = store_grants(&[grant]);
        let id = self
            .db
            .insert_api_token(
                &new.name,
                &token_hash(token.expose_secret()),
                &grants,
                &new.created_by,
                now_ms,
                new.expires_at_ms,
            )
            .await?;
        let info = token_info(ApiTokenRow {
            token_id: id,
            name: new.name,
            grants,
            created_by: new.created_by,
            created_at_ms: now_ms,
            expires_at_ms: new.expires_at_ms,
            revoked_at_ms: None,
            revoked_by: None,
        })?;
        Ok((info, token))
    }

    /// Every API token, revoked and expired ones too.
    pub async fn list_api_tokens(&self) -> Result<Vec<ApiTokenInfo>, TokenError> {
        self.db
            .api_tokens()
            .await?
            .into_iter()
            .map(token_info)
            .collect()
    }

    /// Revokes an API token; `Ok(false)` when it already was.
    pub async fn revoke_api_token(
        &self,
        token_id: i64,
        by: &str,
        now_ms: i64,
    ) -> Result<bool, TokenError> {
        if self.db.revoke_api_token(token_id, by, now_ms).await? {
            return Ok(true);
        }
        if self
            .db
            .api_tokens()
            .await?
            .iter()
            .any(|row| row.token_id == token_id)
        {
            Ok(false)
        } else {
            Err(TokenError::NoSuchToken(token_id))
        }
    }

    /// Opens a session for `principal` until `expires_at_ms`.
    pub async fn create_session(
        &self,
        principal: &Principal,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<SecretString, TokenError> {
        let token = new_token(SESSION_PREFIX);
        let stored = StoredSession {
            username: principal.username.clone(),
            display_name: principal.display_name.clone(),
            email: principal.email.clone(),
            via: principal.via,
            grants: store_grants(&principal.grants),
            must_change_password: principal.must_change_password,
        };
        self.db
            .insert_session(
                &token_hash(token.expose_secret()),
                &principal.username,
                &serde_json::to_string(&stored).expect("sessions serialize"),
                now_ms,
                expires_at_ms,
            )
            .await?;
        Ok(token)
    }

    /// Ends the session of `token`; whether it was live.
    pub async fn revoke_session(&self, token: &str, now_ms: i64) -> Result<bool, TokenError> {
        Ok(self.db.revoke_session(&token_hash(token), now_ms).await?)
    }

    /// Ends every session of `username` (after a password change, a
    /// disable or a removal).
    pub async fn revoke_sessions_of(&self, username: &str, now_ms: i64) -> Result<u64, TokenError> {
        Ok(self.db.revoke_sessions_of(username, now_ms).await?)
    }

    /// What `presented` stands for, if it is a live token.
    pub async fn resolve(
        &self,
        presented: &str,
        now_ms: i64,
    ) -> Result<Option<Resolved>, TokenError> {
        let hash = token_hash(presented);
        if presented.starts_with(SESSION_PREFIX) {
            let Some(row) = self.db.session_by_hash(&hash).await? else {
                return Ok(None);
            };
            if row.revoked_at_ms.is_some() || row.expires_at_ms <= now_ms {
                return Ok(None);
            }
            let stored: StoredSession = serde_json::from_str(&row.principal).map_err(|error| {
                TokenError::BadStoredGrants {
                    what: format!("a session of {}", row.username),
                    problem: error.to_string(),
                }
            })?;
            let grants = load_grants(&stored.grants, &format!("a session of {}", row.username))?;
            return Ok(Some(Resolved {
                principal: Principal {
                    username: stored.username,
                    display_name: stored.display_name,
                    email: stored.email,
                    grants,
                    via: stored.via,
                    must_change_password: stored.must_change_password,
                },
                kind: TokenKind::Session {
                    expires_at_ms: row.expires_at_ms,
                },
            }));
        }
        if presented.starts_with(API_TOKEN_PREFIX) {
            let Some(row) = self.db.api_token_by_hash(&hash).await? else {
                return Ok(None);
            };
            if row.revoked_at_ms.is_some() || row.expires_at_ms.is_some_and(|at| at <= now_ms) {
                return Ok(None);
            }
            let grants = load_grants(&row.grants, &format!("API token {}", row.token_id))?;
            return Ok(Some(Resolved {
                principal: Principal::token(format!("token:{}", row.name), grants),
                kind: TokenKind::Api {
                    token_id: row.token_id,
                    name: row.name,
                },
            }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_round_trip_through_storage() {
        let grants = vec![
            Grant {
                role: Role::ComplianceOfficer,
                scope: Scope::teams(["legal"])
                    .union(Scope::channels([ChannelRef::new("sales", "leads")])),
            },
            Grant {
                role: Role::Admin,
                scope: Scope::All,
            },
            Grant {
                role: Role::Ingest,
                scope: Scope::Nothing,
            },
        ];
        let stored = store_grants(&grants);
        assert_eq!(load_grants(&stored, "test").expect("valid"), grants);
        assert!(load_grants("{not json", "test").is_err());
    }

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = new_token(API_TOKEN_PREFIX);
        let b = new_token(API_TOKEN_PREFIX);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().starts_with("hft_"));
        assert_eq!(a.expose_secret().len(), 4 + 43);
        assert_eq!(token_hash("x").len(), 64);
        assert_ne!(token_hash(a.expose_secret()), token_hash(b.expose_secret()));
    }
}
