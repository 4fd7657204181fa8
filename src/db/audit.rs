//! The audit trail's tables: `audit_log` (one row per audited request,
//! hash-chained) and `audit_head` (one row: the chain's head and the
//! fingerprint of the key the chain is made with).
//!
//! There is deliberately no UPDATE and no DELETE of `audit_log` here, and
//! none may be added: the trail is only ever appended to (the migration's
//! triggers refuse anything else). `audit_head` only moves forward.
//!
//! Appends are serialized by the database itself, so that several processes
//! (the server and the CLI on one SQLite file) or several nodes (on one
//! PostgreSQL) keep one linear chain: SQLite takes its write lock when the
//! transaction begins (`BEGIN IMMEDIATE`), PostgreSQL locks the head row
//! (`SELECT ... FOR UPDATE`) before reading it.

use sqlx::{QueryBuilder, Row};

use super::{Db, DbError};

/// One record of the audit trail as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at_us: i64,
    pub actor: String,
    pub role: Option<String>,
    pub client: Option<String>,
    pub action: String,
    /// The parameters as JSON text, exactly as hashed.
    pub params: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// The head of the chain: the last record's `seq` and `hash` (0 and 32 zero
/// bytes for an empty trail), and the fingerprint of the chain's key once
/// the first writer has claimed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHeadRow {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub key_fingerprint: Option<String>,
}

/// Which records a query returns. Every condition is optional; `limit` is not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRowFilter<'a> {
    pub actor: Option<&'a str>,
    pub action: Option<&'a str>,
    pub outcome: Option<&'a str>,
    /// `at_us >= from_us`
    pub from_us: Option<i64>,
    /// `at_us < to_us`
    pub to_us: Option<i64>,
    /// Records after this `seq` (before it when `newest_first`).
    pub cursor: Option<i64>,
    pub newest_first: bool,
    pub limit: i64,
}

/// How many records go in one multi-row INSERT (11 parameters each, well
/// under both engines' limits).
const ROWS_PER_INSERT: usize = 200;

const AUDIT_COLUMNS: &str =
    "seq, at_us, actor, role, client, action, params, outcome, detail, prev_hash, hash";

impl Db {
    /// The chain's head row; `None` only if someone deleted it.
    pub async fn audit_head(&self) -> Result<Option<AuditHeadRow>, DbError> {
        on_pool!(self, |pool| {
            let row = sqlx::query("SELECT seq, hash, key_fingerprint FROM audit_head WHERE id = 1")
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(audit_head_from_row).transpose()
        })
    }

    /// Records `fingerprint` as the chain's key if no key is recorded yet and
    /// the trail is empty, then returns the head row as it now is (its
    /// `key_fingerprint` is the one that counts, whoever claimed it first).
    pub async fn audit_claim_key(
        &self,
        fingerprint: &str,
    ) -> Result<Option<AuditHeadRow>, DbError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE audit_head SET key_fingerprint = $1 \
                 WHERE id = 1 AND key_fingerprint IS NULL AND seq = 0",
            )
            .bind(fingerprint)
            .execute(pool)
            .await?;
        });
        self.audit_head().await
    }

    /// Appends records in one durable transaction, holding the chain's lock
    /// (see the module comment) from reading the head until commit.
    ///
    /// `build` is given the head row read under that lock (`None` if it is
    /// missing) and returns the records to insert; they must continue the
    /// chain from that head, in `seq` order. An error from `build` rolls
    /// the transaction back and is returned as is. The returned rows are
    /// committed when this returns `Ok`.
    pub async fn audit_append<E, F>(&self, build: F) -> Result<Vec<AuditRow>, E>
    where
        E: From<DbError>,
        F: FnOnce(Option<AuditHeadRow>) -> Result<Vec<AuditRow>, E>,
    {
        let db_error = |error: sqlx::Error| E::from(DbError::from(error));
        match self {
            Db::Sqlite(pool) => {
                // Take the write lock now: a deferred transaction that reads
                // first fails (SQLITE_BUSY) if anyone writes in between.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
                let head =
                    sqlx::query("SELECT seq, hash, key_fingerprint FROM audit_head WHERE id = 1")
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_error)?;
                let head = head.as_ref().map(audit_head_from_row).transpose()?;
                let rows = build(head)?;
                insert_audit_rows(&mut tx, &rows).await?;
                tx.commit().await.map_err(db_error)?;
                Ok(rows)
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(db_error)?;
                // Other nodes wait here until this transaction ends, then
                // read the head it wrote.
                let head = sqlx::query(
                    "SELECT seq, hash, key_fingerprint FROM audit_head WHERE id = 1 FOR UPDATE",
                )
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
                let head = head.as_ref().map(audit_head_from_row).transpose()?;
                let rows = build(head)?;
                insert_audit_rows(&mut tx, &rows).await?;
                tx.commit().await.map_err(db_error)?;
                Ok(rows)
            }
        }
    }

    /// Records with `seq > after_seq`, in `seq` order, at most `limit` (for
    /// walking the whole trail in bounded memory).
    pub async fn audit_rows(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(audit_row_from_row).collect()
        })
    }

    /// The records matching `filter`, in `seq` order (descending when
    /// `newest_first`), at most `filter.limit`.
    pub async fn audit_query(&self, filter: &AuditRowFilter<'_>) -> Result<Vec<AuditRow>, DbError> {
        on_pool!(self, |pool| {
            let mut query =
                QueryBuilder::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE TRUE"));
            if let Some(actor) = filter.actor {
                query.push(" AND actor = ").push_bind(actor);
            }
            if let Some(action) = filter.action {
                query.push(" AND action = ").push_bind(action);
            }
            if let Some(outcome) = filter.outcome {
                query.push(" AND outcome = ").push_bind(outcome);
            }
            if let Some(from_us) = filter.from_us {
                query.push(" AND at_us >= ").push_bind(from_us);
            }
            if let Some(to_us) = filter.to_us {
                query.push(" AND at_us < ").push_bind(to_us);
            }
            if let Some(cursor) = filter.cursor {
                query
                    .push(if filter.newest_first {
                        " AND seq < "
                    } else {
                        " AND seq > "
                    })
                    .push_bind(cursor);
            }
            query
                .push(if filter.newest_first {
                    " ORDER BY seq DESC LIMIT "
                } else {
                    " ORDER BY seq LIMIT "
                })
                .push_bind(filter.limit);
            let rows = query.build().fetch_all(pool).await?;
            rows.iter().map(audit_row_from_row).collect()
        })
    }
}

/// Inserts the rows and moves the head to the last of them.
trait InsertAuditRows {
    async fn insert_audit_rows(&mut self, rows: &[AuditRow]) -> Result<(), DbError>;
}

async fn insert_audit_rows<C: InsertAuditRows>(
    conn: &mut C,
    rows: &[AuditRow],
) -> Result<(), DbError> {
    conn.insert_audit_rows(rows).await
}

macro_rules! impl_insert_audit_rows {
    ($database:ty) => {
        impl InsertAuditRows for sqlx::Transaction<'_, $database> {
            async fn insert_audit_rows(&mut self, rows: &[AuditRow]) -> Result<(), DbError> {
                let Some(last) = rows.last() else {
                    return Ok(());
                };
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    let mut query =
                        QueryBuilder::new(format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) "));
                    query.push_values(chunk, |mut row, r| {
                        row.push_bind(r.seq)
                            .push_bind(r.at_us)
                            .push_bind(&r.actor)
                            .push_bind(&r.role)
                            .push_bind(&r.client)
                            .push_bind(&r.action)
                            .push_bind(&r.params)
                            .push_bind(&r.outcome)
                            .push_bind(&r.detail)
                            .push_bind(&r.prev_hash)
                            .push_bind(&r.hash);
                    });
                    query.build().execute(&mut **self).await?;
                }
                sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                    .bind(last.seq)
                    .bind(&last.hash)
                    .execute(&mut **self)
                    .await?;
                Ok(())
            }
        }
    };
}

impl_insert_audit_rows!(sqlx::Sqlite);
impl_insert_audit_rows!(sqlx::Postgres);

fn audit_head_from_row<R: Row>(row: &R) -> Result<AuditHeadRow, DbError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AuditHeadRow {
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
        key_fingerprint: row.try_get("key_fingerprint")?,
    })
}

fn audit_row_from_row<R: Row>(row: &R) -> Result<AuditRow, DbError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AuditRow {
        seq: row.try_get("seq")?,
        at_us: row.try_get("at_us")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        client: row.try_get("client")?,
        action: row.try_get("action")?,
        params: row.try_get("params")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}
