//! Metadata database: SQLite embedded by default, PostgreSQL by URL.
//!
//! Holds what the store needs to find and dedupe events (event id →
//! record location), the key epochs with their *wrapped* data keys, and the
//! segment checkpoints (the store's head). Only this module writes SQL; both
//! backends run the same statements (`$N` placeholders, in ascending order)
//! against their own migrations under `migrations/<backend>/`.
//!
//! It never holds message text, plaintext data keys or the master key.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row};

/// Errors of the metadata database, translated from sqlx at this boundary.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`, or does not parse.
    #[error("unsupported database url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        backend: &'static str,
        source: sqlx::Error,
    },
    /// A migration failed to apply.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row with the same key exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Query(#[source] sqlx::Error),
    /// Creating the SQLite file failed.
    #[error("cannot create database file {path}: {source}")]
    CreateFile {
        path: String,
        source: std::io::Error,
    },
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db_error) = &error
            && db_error.is_unique_violation()
        {
            return DbError::AlreadyExists(db_error.message().to_owned());
        }
        DbError::Query(error)
    }
}

/// Which engine holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A pool on one of the two backends.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code against whichever pool this is.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

pub mod audit; // after `on_pool!`, which it uses
pub mod auth;
pub mod exports;
pub mod holds;
pub mod retention;

/// A key epoch: the data key of one channel on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochRow {
    pub epoch_id: i64,
    pub team: String,
    pub channel: String,
    pub day: String,
    /// The data key wrapped by the master key; `None` once destroyed.
    pub wrapped_key: Option<Vec<u8>>,
    pub kek_fingerprint: String,
}

/// A key epoch about to be created.
#[derive(Debug, Clone)]
pub struct NewEpoch {
    pub team: String,
    pub channel: String,
    pub day: String,
    pub wrapped_key: Vec<u8>,
    pub kek_fingerprint: String,
}

/// Where one event's record is, plus the fields the store looks events up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub event_id: String,
    pub seq: i64,
    pub segment_no: i64,
    pub record_offset: i64,
    pub record_len: i64,
    pub epoch_id: i64,
    pub kind: String,
    pub at_us: i64,
    pub team: String,
    pub channel: String,
    pub user_name: String,
    pub post_id: Option<String>,
    /// The seq of the record that holds the event when retention re-encrypted
    /// it into a carry epoch; `None`: the record with the event's own seq.
    pub record_seq: Option<i64>,
    /// The retention run that deleted the event (a tombstone row).
    pub shredded_run: Option<i64>,
    /// The policy under which it was deleted.
    pub shredded_policy: Option<String>,
}

impl EventRow {
    /// The seq in the header (and associated data) of the event's record.
    pub fn record_seq(&self) -> i64 {
        self.record_seq.unwrap_or(self.seq)
    }
}

/// A segment checkpoint. For the active segment this is the store's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    pub segment_no: i64,
    pub created_at_ms: i64,
    pub sealed_at_ms: Option<i64>,
    pub first_seq: i64,
    pub n_records: i64,
    pub end_offset: i64,
    pub last_seq: i64,
    pub last_hash: Vec<u8>,
    pub file_sha256: Option<Vec<u8>>,
}

/// Counts for `holdfast stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DbStats {
    /// Live events (not deleted by retention).
    pub events: i64,
    /// Tombstones: events deleted by retention.
    pub deleted_events: i64,
    pub events_by_kind: Vec<(String, i64)>,
    pub posts: i64,
    pub teams: i64,
    pub channels: i64,
    pub key_epochs: i64,
    pub destroyed_key_epochs: i64,
    pub first_at_us: Option<i64>,
    pub last_at_us: Option<i64>,
}

/// How many rows go in one multi-row statement (well under both engines'
/// bound-parameter limits).
const ROWS_PER_STATEMENT: usize = 400;

/// The columns a new event row is inserted with.
const INSERT_COLUMNS: &str = "event_id, seq, segment_no, record_offset, record_len, epoch_id, \
     kind, at_us, team, channel, user_name, post_id";
/// The columns of an [`EventRow`].
const EVENT_COLUMNS: &str = "event_id, seq, segment_no, record_offset, record_len, epoch_id, \
     kind, at_us, team, channel, user_name, post_id, record_seq, shredded_run, shredded_policy";

impl Db {
    /// Connects and applies migrations. `sqlite:PATH` creates the file (0600)
    /// when missing; `postgres://...` connects to an existing database.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or(rest);
            if path.is_empty() || path == ":memory:" {
                return Err(DbError::BadUrl {
                    url: url.to_owned(),
                    reason: "an in-memory database would lose the archive's keys; give a file path"
                        .to_owned(),
                });
            }
            create_private_file(Path::new(path))?;
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|error| DbError::BadUrl {
                    url: url.to_owned(),
                    reason: error.to_string(),
                })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // Wrapped data keys must be durable before records use them.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30))
                // Destroyed keys must not linger in free pages.
                .pragma("secure_delete", "ON");
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .map_err(|source| DbError::Connect {
                    backend: "sqlite",
                    source,
                })?;
            sqlx::migrate!("migrations/sqlite").run(&pool).await?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|error| DbError::BadUrl {
                url: redact_url(url),
                reason: error.to_string(),
            })?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(|source| DbError::Connect {
                    backend: "postgres",
                    source,
                })?;
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
            Ok(Db::Postgres(pool))
        } else {
            Err(DbError::BadUrl {
                url: redact_url(url),
                reason: "expected sqlite:PATH or postgres://...".to_owned(),
            })
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
            Ok(())
        })
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }

    // ----- archive_meta -----

    pub async fn get_meta(&self, key: &str) -> Result<Option<String>, DbError> {
        on_pool!(self, |pool| {
            let row = sqlx::query("SELECT meta_value FROM archive_meta WHERE meta_key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?;
            Ok(row.map(|row| row.get::<String, _>(0)))
        })
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO archive_meta (meta_key, meta_value) VALUES ($1, $2) \
                 ON CONFLICT (meta_key) DO UPDATE SET meta_value = excluded.meta_value",
            )
            .bind(key)
            .bind(value)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    // ----- key epochs -----

    /// The epochs that exist among `keys` (team, channel, day).
    pub async fn find_epochs(
        &self,
        keys: &[(String, String, String)],
    ) -> Result<Vec<EpochRow>, DbError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            on_pool!(self, |pool| {
                let mut query = QueryBuilder::new(
                    "SELECT epoch_id, team, channel, day, wrapped_key, kek_fingerprint \
                     FROM key_epochs WHERE (team, channel, day) IN ",
                );
                query.push_tuples(chunk, |mut row, (team, channel, day)| {
                    row.push_bind(team).push_bind(channel).push_bind(day);
                });
                let rows = query.build().fetch_all(pool).await?;
                for row in rows {
                    found.push(epoch_from_row(&row)?);
                }
            });
        }
        Ok(found)
    }

    /// Creates epochs in one durable transaction; an epoch created
    /// concurrently by someone else is returned as it exists.
    pub async fn insert_epochs(&self, epochs: &[NewEpoch]) -> Result<Vec<EpochRow>, DbError> {
        let now = now_ms();
        let mut created = Vec::with_capacity(epochs.len());
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for epoch in epochs {
                sqlx::query(
                    "INSERT INTO key_epochs (team, channel, day, wrapped_key, kek_fingerprint, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (team, channel, day) DO NOTHING",
                )
                .bind(&epoch.team)
                .bind(&epoch.channel)
                .bind(&epoch.day)
                .bind(&epoch.wrapped_key)
                .bind(&epoch.kek_fingerprint)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(
                    "SELECT epoch_id, team, channel, day, wrapped_key, kek_fingerprint \
                     FROM key_epochs WHERE team = $1 AND channel = $2 AND day = $3",
                )
                .bind(&epoch.team)
                .bind(&epoch.channel)
                .bind(&epoch.day)
                .fetch_one(&mut *tx)
                .await?;
                created.push(epoch_from_row(&row)?);
            }
            tx.commit().await?;
        });
        Ok(created)
    }

    pub async fn get_epoch(&self, epoch_id: i64) -> Result<Option<EpochRow>, DbError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT epoch_id, team, channel, day, wrapped_key, kek_fingerprint \
                 FROM key_epochs WHERE epoch_id = $1",
            )
            .bind(epoch_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(epoch_from_row).transpose()
        })
    }

    pub async fn all_epochs(&self) -> Result<Vec<EpochRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT epoch_id, team, channel, day, wrapped_key, kek_fingerprint \
                 FROM key_epochs ORDER BY epoch_id",
            )
            .fetch_all(pool)
            .await?;
            rows.iter().map(epoch_from_row).collect()
        })
    }

    /// Replaces every wrapped key and the master-key check value in one
    /// transaction: either the whole archive moves to the new master key or
    /// none of it does.
    pub async fn rewrap_epochs(
        &self,
        rewrapped: &[(i64, Vec<u8>)],
        kek_fingerprint: &str,
        meta: &[(&str, &str)],
    ) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for (epoch_id, wrapped_key) in rewrapped {
                sqlx::query(
                    "UPDATE key_epochs SET wrapped_key = $1, kek_fingerprint = $2 WHERE epoch_id = $3",
                )
                .bind(wrapped_key)
                .bind(kek_fingerprint)
                .bind(epoch_id)
                .execute(&mut *tx)
                .await?;
            }
            for (key, value) in meta {
                sqlx::query(
                    "INSERT INTO archive_meta (meta_key, meta_value) VALUES ($1, $2) \
                     ON CONFLICT (meta_key) DO UPDATE SET meta_value = excluded.meta_value",
                )
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    // ----- events -----

    /// Which of `ids` are already stored.
    ///
    /// One statement for the whole list: SQLite reads it as a JSON array
    /// (`json_each`), PostgreSQL as a text array; binding one parameter per
    /// id costs more than the lookup itself.
    pub async fn existing_event_ids(&self, ids: &[&str]) -> Result<HashSet<String>, DbError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let rows: Vec<String> = match self {
            Db::Sqlite(pool) => {
                let list = serde_json::to_string(ids).expect("a list of strings serializes");
                sqlx::query_scalar(
                    "SELECT e.event_id FROM json_each($1) AS j JOIN events AS e ON e.event_id = j.value",
                )
                .bind(list)
                .fetch_all(pool)
                .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar("SELECT event_id FROM events WHERE event_id = ANY($1)")
                    .bind(ids)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows.into_iter().collect())
    }

    /// The events with these sequence numbers (those that exist), in `seq` order.
    pub async fn events_by_seqs(&self, seqs: &[i64]) -> Result<Vec<EventRow>, DbError> {
        self.events_where_in("seq", seqs).await
    }

    /// Every event about any of `posts`, in `seq` order.
    pub async fn events_of_posts(&self, posts: &[&str]) -> Result<Vec<EventRow>, DbError> {
        self.events_where_in("post_id", posts).await
    }

    /// Events whose `column` is one of `values`, in `seq` order, in one
    /// statement: SQLite reads the list as a JSON array, PostgreSQL as an
    /// array parameter.
    async fn events_where_in<T>(&self, column: &str, values: &[T]) -> Result<Vec<EventRow>, DbError>
    where
        T: serde::Serialize + Sync,
        for<'q> &'q [T]: sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Db::Sqlite(pool) => {
                let list = serde_json::to_string(values).expect("a list of ids serializes");
                let rows = sqlx::query(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE {column} IN (SELECT value FROM json_each($1)) ORDER BY seq"
                ))
                .bind(list)
                .fetch_all(pool)
                .await?;
                rows.iter().map(event_from_row).collect()
            }
            Db::Postgres(pool) => {
                let rows = sqlx::query(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE {column} = ANY($1) ORDER BY seq"
                ))
                .bind(values)
                .fetch_all(pool)
                .await?;
                rows.iter().map(event_from_row).collect()
            }
        }
    }

    /// For each of `posts` that has events, the smallest `seq` of an event
    /// about it: a post's stable number (the index groups versions by it).
    pub async fn first_seq_of_posts(
        &self,
        posts: &[&str],
    ) -> Result<HashMap<String, i64>, DbError> {
        if posts.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, i64)> = match self {
            Db::Sqlite(pool) => {
                let list = serde_json::to_string(posts).expect("a list of strings serializes");
                sqlx::query_as(
                    "SELECT post_id, MIN(seq) FROM events WHERE post_id IN (SELECT value FROM json_each($1)) GROUP BY post_id",
                )
                .bind(list)
                .fetch_all(pool)
                .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT post_id, MIN(seq) FROM events WHERE post_id = ANY($1) GROUP BY post_id",
                )
                .bind(posts)
                .fetch_all(pool)
                .await?
            }
        };
        Ok(rows.into_iter().collect())
    }

    /// Records a durable batch: its events' locations and the segment
    /// checkpoints it moved, in one transaction.
    pub async fn commit_batch(
        &self,
        events: &[EventRow],
        segments: &[SegmentRow],
    ) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            if !events.is_empty() {
                insert_events(&mut tx, events).await?;
            }
            for segment in segments {
                upsert_segment(&mut tx, segment).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn event_by_id(&self, event_id: &str) -> Result<Option<EventRow>, DbError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1"
            ))
            .bind(event_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(event_from_row).transpose()
        })
    }

    /// Every event about one post (the post, its edits and deletes,
    /// reactions, files), in store order.
    pub async fn events_of_post(&self, post_id: &str) -> Result<Vec<EventRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE post_id = $1 ORDER BY seq"
            ))
            .bind(post_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(event_from_row).collect()
        })
    }

    /// Events with `seq` in `from_seq..`, in order, at most `limit`.
    pub async fn events_from_seq(
        &self,
        from_seq: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq >= $1 ORDER BY seq LIMIT $2"
            ))
            .bind(from_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(event_from_row).collect()
        })
    }

    // ----- segments -----

    pub async fn segments(&self) -> Result<Vec<SegmentRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT segment_no, created_at_ms, sealed_at_ms, first_seq, n_records, end_offset, \
                 last_seq, last_hash, file_sha256 FROM segments ORDER BY segment_no",
            )
            .fetch_all(pool)
            .await?;
            rows.iter().map(segment_from_row).collect()
        })
    }

    // ----- stats -----

    pub async fn stats(&self) -> Result<DbStats, DbError> {
        on_pool!(self, |pool| {
            let totals = sqlx::query(
                "SELECT COUNT(*) - COUNT(shredded_run), COUNT(DISTINCT post_id), \
                 COUNT(DISTINCT team), MIN(at_us), MAX(at_us), COUNT(shredded_run) FROM events",
            )
            .fetch_one(pool)
            .await?;
            let channels = sqlx::query(
                "SELECT COUNT(*) FROM (SELECT DISTINCT team, channel FROM events) AS channels",
            )
            .fetch_one(pool)
            .await?;
            let epochs = sqlx::query("SELECT COUNT(*), COUNT(destroyed_at_ms) FROM key_epochs")
                .fetch_one(pool)
                .await?;
            let by_kind = sqlx::query(
                "SELECT kind, COUNT(*) FROM events WHERE shredded_run IS NULL GROUP BY kind ORDER BY kind",
            )
                    .fetch_all(pool)
                    .await?;
            Ok(DbStats {
                events: totals.try_get(0)?,
                posts: totals.try_get(1)?,
                teams: totals.try_get(2)?,
                first_at_us: totals.try_get(3)?,
                last_at_us: totals.try_get(4)?,
                deleted_events: totals.try_get(5)?,
                channels: channels.try_get(0)?,
                key_epochs: epochs.try_get(0)?,
                destroyed_key_epochs: epochs.try_get(1)?,
                events_by_kind: by_kind
                    .iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect::<Result<_, sqlx::Error>>()?,
            })
        })
    }
}

/// Inserts or updates a segment checkpoint inside a transaction.
async fn upsert_segment<DB>(
    tx: &mut sqlx::Transaction<'_, DB>,
    segment: &SegmentRow,
) -> Result<(), DbError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q Option<Vec<u8>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO segments (segment_no, created_at_ms, sealed_at_ms, first_seq, \
         n_records, end_offset, last_seq, last_hash, file_sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (segment_no) DO UPDATE SET sealed_at_ms = excluded.sealed_at_ms, \
         n_records = excluded.n_records, end_offset = excluded.end_offset, \
         last_seq = excluded.last_seq, last_hash = excluded.last_hash, \
         file_sha256 = excluded.file_sha256",
    )
    .bind(segment.segment_no)
    .bind(segment.created_at_ms)
    .bind(segment.sealed_at_ms)
    .bind(segment.first_seq)
    .bind(segment.n_records)
    .bind(segment.end_offset)
    .bind(segment.last_seq)
    .bind(&segment.last_hash)
    .bind(&segment.file_sha256)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts event rows with a constant number of bound parameters.
trait InsertEvents {
    async fn insert_events(&mut self, events: &[EventRow]) -> Result<(), DbError>;
}

async fn insert_events<C: InsertEvents>(conn: &mut C, events: &[EventRow]) -> Result<(), DbError> {
    conn.insert_events(events).await
}

impl InsertEvents for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn insert_events(&mut self, events: &[EventRow]) -> Result<(), DbError> {
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::new(format!("INSERT INTO events ({INSERT_COLUMNS}) "));
            query.push_values(chunk, |mut row, e| {
                row.push_bind(&e.event_id)
                    .push_bind(e.seq)
                    .push_bind(e.segment_no)
                    .push_bind(e.record_offset)
                    .push_bind(e.record_len)
                    .push_bind(e.epoch_id)
                    .push_bind(&e.kind)
                    .push_bind(e.at_us)
                    .push_bind(&e.team)
                    .push_bind(&e.channel)
                    .push_bind(&e.user_name)
                    .push_bind(&e.post_id);
            });
            query.build().execute(&mut **self).await?;
        }
        Ok(())
    }
}

impl InsertEvents for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn insert_events(&mut self, events: &[EventRow]) -> Result<(), DbError> {
        // Twelve arrays, one parameter each, zipped by UNNEST.
        let column = |f: fn(&EventRow) -> i64| events.iter().map(f).collect::<Vec<i64>>();
        let text = |f: fn(&EventRow) -> &str| events.iter().map(f).collect::<Vec<&str>>();
        sqlx::query(&format!(
            "INSERT INTO events ({INSERT_COLUMNS}) SELECT * FROM UNNEST($1::text[], $2::int8[], \
             $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::text[], $8::int8[], $9::text[], \
             $10::text[], $11::text[], $12::text[])"
        ))
        .bind(text(|e| &e.event_id))
        .bind(column(|e| e.seq))
        .bind(column(|e| e.segment_no))
        .bind(column(|e| e.record_offset))
        .bind(column(|e| e.record_len))
        .bind(column(|e| e.epoch_id))
        .bind(text(|e| &e.kind))
        .bind(column(|e| e.at_us))
        .bind(text(|e| &e.team))
        .bind(text(|e| &e.channel))
        .bind(text(|e| &e.user_name))
        .bind(
            events
                .iter()
                .map(|e| e.post_id.as_deref())
                .collect::<Vec<Option<&str>>>(),
        )
        .execute(&mut **self)
        .await?;
        Ok(())
    }
}

fn epoch_from_row<R: Row>(row: &R) -> Result<EpochRow, DbError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(EpochRow {
        epoch_id: row.try_get("epoch_id")?,
        team: row.try_get("team")?,
        channel: row.try_get("channel")?,
        day: row.try_get("day")?,
        wrapped_key: row.try_get("wrapped_key")?,
        kek_fingerprint: row.try_get("kek_fingerprint")?,
    })
}

fn event_from_row<R: Row>(row: &R) -> Result<EventRow, DbError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(EventRow {
        event_id: row.try_get("event_id")?,
        seq: row.try_get("seq")?,
        segment_no: row.try_get("segment_no")?,
        record_offset: row.try_get("record_offset")?,
        record_len: row.try_get("record_len")?,
        epoch_id: row.try_get("epoch_id")?,
        kind: row.try_get("kind")?,
        at_us: row.try_get("at_us")?,
        team: row.try_get("team")?,
        channel: row.try_get("channel")?,
        user_name: row.try_get("user_name")?,
        post_id: row.try_get("post_id")?,
        record_seq: row.try_get("record_seq")?,
        shredded_run: row.try_get("shredded_run")?,
        shredded_policy: row.try_get("shredded_policy")?,
    })
}

fn segment_from_row<R: Row>(row: &R) -> Result<SegmentRow, DbError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(SegmentRow {
        segment_no: row.try_get("segment_no")?,
        created_at_ms: row.try_get("created_at_ms")?,
        sealed_at_ms: row.try_get("sealed_at_ms")?,
        first_seq: row.try_get("first_seq")?,
        n_records: row.try_get("n_records")?,
        end_offset: row.try_get("end_offset")?,
        last_seq: row.try_get("last_seq")?,
        last_hash: row.try_get("last_hash")?,
        file_sha256: row.try_get("file_sha256")?,
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Creates `path` with mode 0600 if it does not exist, so that SQLite (and
/// its `-wal`/`-shm` files, which copy the mode) never widen it.
fn create_private_file(path: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|error| {
            if error.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(error)
            }
        })
        .map_err(|source| DbError::CreateFile {
            path: path.display().to_string(),
            source,
        })
}

/// The URL without its password (in the user part or a `password=`
/// query parameter), for error messages and `holdfast config`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = redact_userinfo(base);
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => parameter.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://holdfast:s3cret@db:5432/archive"),
            "postgres://holdfast:***@db:5432/archive"
        );
        assert_eq!(redact_url("postgres://db/archive"), "postgres://db/archive");
        assert_eq!(
            redact_url("postgres://u@db/archive?sslmode=require&password=s3cret"),
            "postgres://u@db/archive?sslmode=require&password=***"
        );
    }
}
