//! Legal holds as stored (`holds`), and the reads of live events that hold
//! matching needs.
//!
//! Creating and releasing a hold first bump the one row of
//! `retention_lock`, in the same transaction as the change: the destruction
//! step of a retention run writes that row too, so a hold change and a
//! destruction never interleave, and a run that planned under an older
//! generation knows the holds moved under it. There is deliberately no
//! DELETE of a hold: a released hold stays, with who released it, when and
//! why.
//!
//! "Live" events are those retention has not deleted (`shredded_run IS
//! NULL`); tombstones are never returned here.

use sqlx::{Database, Pool, Postgres, QueryBuilder, Row, Sqlite};

use super::{Db, DbError, EVENT_COLUMNS, EventRow, event_from_row};

/// A hold as stored. `criteria` and `scope` are JSON text, read and written
/// by `retention::holds` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    pub hold_id: i64,
    pub name: String,
    pub matter: String,
    pub reason: String,
    pub criteria: String,
    pub scope: String,
    pub created_by: String,
    pub created_at_ms: i64,
    pub released_by: Option<String>,
    pub released_at_ms: Option<i64>,
    pub release_reason: Option<String>,
}

/// A hold about to be stored.
#[derive(Debug, Clone, Copy)]
pub struct NewHoldRow<'a> {
    pub name: &'a str,
    pub matter: &'a str,
    pub reason: &'a str,
    pub criteria: &'a str,
    pub scope: &'a str,
    pub created_by: &'a str,
    pub created_at_ms: i64,
}

/// Which live events a page read returns: `at_us` within
/// `from_us..=to_us`, and when a list is not empty, a value in it.
#[derive(Debug, Clone, Copy)]
pub struct LiveEventFilter<'a> {
    pub users: &'a [String],
    pub teams: &'a [String],
    pub from_us: i64,
    pub to_us: i64,
}

const HOLD_COLUMNS: &str = "hold_id, name, matter, reason, criteria, scope, created_by, \
     created_at_ms, released_by, released_at_ms, release_reason";

/// Opens a transaction that writes: SQLite takes its write lock at once
/// (`BEGIN IMMEDIATE`), so that the lock row is written before anything is
/// read; PostgreSQL locks the row when it is updated.
trait BeginWrite {
    type Database: Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Database>, DbError>;
}

impl BeginWrite for Pool<Sqlite> {
    type Database = Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, DbError> {
        Ok(self.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl BeginWrite for Pool<Postgres> {
    type Database = Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, DbError> {
        Ok(self.begin().await?)
    }
}

/// `AND column IN (list)`, with the list as one parameter: a JSON array on
/// SQLite, an array on PostgreSQL.
trait PushList {
    fn push_in_texts(&mut self, column: &str, values: &[String]);
    fn push_in_seqs(&mut self, column: &str, values: &[i64]);
}

impl PushList for QueryBuilder<'_, Sqlite> {
    fn push_in_texts(&mut self, column: &str, values: &[String]) {
        let list = serde_json::to_string(values).expect("a list of strings serializes");
        self.push(format!(" AND {column} IN (SELECT value FROM json_each("))
            .push_bind(list)
            .push("))");
    }

    fn push_in_seqs(&mut self, column: &str, values: &[i64]) {
        let list = serde_json::to_string(values).expect("a list of numbers serializes");
        self.push(format!(" AND {column} IN (SELECT value FROM json_each("))
            .push_bind(list)
            .push("))");
    }
}

impl PushList for QueryBuilder<'_, Postgres> {
    fn push_in_texts(&mut self, column: &str, values: &[String]) {
        self.push(format!(" AND {column} = ANY("))
            .push_bind(values.to_vec())
            .push(")");
    }

    fn push_in_seqs(&mut self, column: &str, values: &[i64]) {
        self.push(format!(" AND {column} = ANY("))
            .push_bind(values.to_vec())
            .push(")");
    }
}

/// A query builder for the database of `pool`.
fn builder<DB: Database>(_pool: &Pool<DB>, sql: String) -> QueryBuilder<'static, DB> {
    QueryBuilder::new(sql)
}

impl Db {
    /// Stores a new hold after bumping the retention lock, in one
    /// transaction; its id. A name in use is `AlreadyExists`.
    pub async fn insert_hold(&self, new: &NewHoldRow<'_>) -> Result<i64, DbError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            bump_retention_lock(&mut tx).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO holds (name, matter, reason, criteria, scope, created_by, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING hold_id",
            )
            .bind(new.name)
            .bind(new.matter)
            .bind(new.reason)
            .bind(new.criteria)
            .bind(new.scope)
            .bind(new.created_by)
            .bind(new.created_at_ms)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Releases a hold that is not released yet, after bumping the retention
    /// lock, in one transaction; whether it was active.
    pub async fn release_hold(
        &self,
        hold_id: i64,
        released_by: &str,
        released_at_ms: i64,
        reason: &str,
    ) -> Result<bool, DbError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            bump_retention_lock(&mut tx).await?;
            let done = sqlx::query(
                "UPDATE holds SET released_by = $1, released_at_ms = $2, release_reason = $3 \
                 WHERE hold_id = $4 AND released_at_ms IS NULL",
            )
            .bind(released_by)
            .bind(released_at_ms)
            .bind(reason)
            .bind(hold_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Every hold, released ones too, oldest first.
    pub async fn hold_rows(&self) -> Result<Vec<HoldRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {HOLD_COLUMNS} FROM holds ORDER BY hold_id"
            ))
            .fetch_all(pool)
            .await?;
            rows.iter().map(hold_from_row).collect()
        })
    }

    /// The holds not released, oldest first.
    pub async fn active_hold_rows(&self) -> Result<Vec<HoldRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {HOLD_COLUMNS} FROM holds WHERE released_at_ms IS NULL ORDER BY hold_id"
            ))
            .fetch_all(pool)
            .await?;
            rows.iter().map(hold_from_row).collect()
        })
    }

    pub async fn hold_by_id(&self, hold_id: i64) -> Result<Option<HoldRow>, DbError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(&format!(
                "SELECT {HOLD_COLUMNS} FROM holds WHERE hold_id = $1"
            ))
            .bind(hold_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(hold_from_row).transpose()
        })
    }

    pub async fn hold_by_name(&self, name: &str) -> Result<Option<HoldRow>, DbError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(&format!("SELECT {HOLD_COLUMNS} FROM holds WHERE name = $1"))
                .bind(name)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(hold_from_row).transpose()
        })
    }

    /// Live events with `seq > after_seq` that pass `filter`, in `seq`
    /// order, at most `limit`.
    pub async fn live_events_after(
        &self,
        filter: &LiveEventFilter<'_>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, DbError> {
        on_pool!(self, |pool| {
            let mut query = builder(
                pool,
                format!("SELECT {EVENT_COLUMNS} FROM events WHERE shredded_run IS NULL AND seq > "),
            );
            query
                .push_bind(after_seq)
                .push(" AND at_us >= ")
                .push_bind(filter.from_us)
                .push(" AND at_us <= ")
                .push_bind(filter.to_us);
            if !filter.users.is_empty() {
                query.push_in_texts("user_name", filter.users);
            }
            if !filter.teams.is_empty() {
                query.push_in_texts("team", filter.teams);
            }
            query.push(" ORDER BY seq LIMIT ").push_bind(limit);
            let rows = query.build().fetch_all(pool).await?;
            rows.iter().map(event_from_row).collect()
        })
    }

    /// The live events among `seqs`, in `seq` order.
    pub async fn live_events_by_seqs(&self, seqs: &[i64]) -> Result<Vec<EventRow>, DbError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, |pool| {
            let mut query = builder(
                pool,
                format!("SELECT {EVENT_COLUMNS} FROM events WHERE shredded_run IS NULL"),
            );
            query.push_in_seqs("seq", seqs);
            query.push(" ORDER BY seq");
            let rows = query.build().fetch_all(pool).await?;
            rows.iter().map(event_from_row).collect()
        })
    }

    /// Every live event about any of `posts` (post ids, whatever their team
    /// and channel), in `seq` order.
    pub async fn live_events_of_posts(&self, posts: &[String]) -> Result<Vec<EventRow>, DbError> {
        if posts.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, |pool| {
            let mut query = builder(
                pool,
                format!("SELECT {EVENT_COLUMNS} FROM events WHERE shredded_run IS NULL"),
            );
            query.push_in_texts("post_id", posts);
            query.push(" ORDER BY seq");
            let rows = query.build().fetch_all(pool).await?;
            rows.iter().map(event_from_row).collect()
        })
    }
}

/// Writes the retention lock row first (see the module documentation).
async fn bump_retention_lock<DB>(tx: &mut sqlx::Transaction<'_, DB>) -> Result<(), DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    sqlx::query("UPDATE retention_lock SET generation = generation + 1 WHERE lock_id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn hold_from_row<R: Row>(row: &R) -> Result<HoldRow, DbError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(HoldRow {
        hold_id: row.try_get("hold_id")?,
        name: row.try_get("name")?,
        matter: row.try_get("matter")?,
        reason: row.try_get("reason")?,
        criteria: row.try_get("criteria")?,
        scope: row.try_get("scope")?,
        created_by: row.try_get("created_by")?,
        created_at_ms: row.try_get("created_at_ms")?,
        released_by: row.try_get("released_by")?,
        released_at_ms: row.try_get("released_at_ms")?,
        release_reason: row.try_get("release_reason")?,
    })
}
