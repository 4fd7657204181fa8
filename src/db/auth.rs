//! Sessions and API tokens: only hashes of the tokens, the grants they
//! carry (JSON), and when they expire or were revoked.

use sqlx::Row;

use super::{Db, DbError};

/// An API token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    pub token_id: i64,
    pub name: String,
    pub grants: String,
    pub created_by: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub revoked_by: Option<String>,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub username: String,
    pub principal: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

const TOKEN_COLUMNS: &str =
    "token_id, name, grants, created_by, created_at_ms, expires_at_ms, revoked_at_ms, revoked_by";

fn token_from_row<R: Row>(row: &R) -> Result<ApiTokenRow, DbError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    Ok(ApiTokenRow {
        token_id: row.try_get("token_id")?,
        name: row.try_get("name")?,
        grants: row.try_get("grants")?,
        created_by: row.try_get("created_by")?,
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
        revoked_by: row.try_get("revoked_by")?,
    })
}

impl Db {
    /// Stores a new API token; returns its id.
    pub async fn insert_api_token(
        &self,
        name: &str,
        token_hash: &str,
        grants: &str,
        created_by: &str,
        created_at_ms: i64,
        expires_at_ms: Option<i64>,
    ) -> Result<i64, DbError> {
        on_pool!(self, |pool| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_tokens (name, token_hash, grants, created_by, created_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING token_id",
            )
            .bind(name)
            .bind(token_hash)
            .bind(grants)
            .bind(created_by)
            .bind(created_at_ms)
            .bind(expires_at_ms)
            .fetch_one(pool)
            .await?;
            Ok(id)
        })
    }

    /// Every API token (revoked ones too), oldest first.
    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY token_id"
            ))
            .fetch_all(pool)
            .await?;
            rows.iter().map(token_from_row).collect()
        })
    }

    /// The API token with this hash, revoked or not.
    pub async fn api_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiTokenRow>, DbError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"
            ))
            .bind(token_hash)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(token_from_row).transpose()
        })
    }

    /// Revokes a token that is not revoked yet; whether one was.
    pub async fn revoke_api_token(
        &self,
        token_id: i64,
        by: &str,
        at_ms: i64,
    ) -> Result<bool, DbError> {
        on_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE api_tokens SET revoked_at_ms = $1, revoked_by = $2 \
                 WHERE token_id = $3 AND revoked_at_ms IS NULL",
            )
            .bind(at_ms)
            .bind(by)
            .bind(token_id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    pub async fn insert_session(
        &self,
        token_hash: &str,
        username: &str,
        principal: &str,
        created_at_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO sessions (token_hash, username, principal, created_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(username)
            .bind(principal)
            .bind(created_at_ms)
            .bind(expires_at_ms)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn session_by_hash(&self, token_hash: &str) -> Result<Option<SessionRow>, DbError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT username, principal, created_at_ms, expires_at_ms, revoked_at_ms \
                 FROM sessions WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?;
            row.map(|row| {
                Ok(SessionRow {
                    username: row.try_get("username")?,
                    principal: row.try_get("principal")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                    expires_at_ms: row.try_get("expires_at_ms")?,
                    revoked_at_ms: row.try_get("revoked_at_ms")?,
                })
            })
            .transpose()
        })
    }

    /// Revokes one session; whether it was live.
    pub async fn revoke_session(&self, token_hash: &str, at_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE sessions SET revoked_at_ms = $1 WHERE token_hash = $2 AND revoked_at_ms IS NULL",
            )
            .bind(at_ms)
            .bind(token_hash)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Revokes every live session of a user (disabled, removed, password
    /// changed); how many.
    pub async fn revoke_sessions_of(&self, username: &str, at_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, |pool| {
            let done = sqlx::query(
                "UPDATE sessions SET revoked_at_ms = $1 WHERE username = $2 AND revoked_at_ms IS NULL",
            )
            .bind(at_ms)
            .bind(username)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Forgets sessions that ended before `before_ms` (sessions are not
    /// evidence: the audit trail records every login and logout).
    pub async fn prune_sessions(&self, before_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, |pool| {
            let done = sqlx::query("DELETE FROM sessions WHERE expires_at_ms < $1")
                .bind(before_ms)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }
}
