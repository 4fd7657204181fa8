//! Exports as stored (`exports`, `export_schedules`, `export_deliveries`),
//! and the reads of live events an export walks.
//!
//! An export reads only live events (`shredded_run IS NULL`). A schedule's
//! watermark only moves forward, and only from the value the run started
//! from (compare and set), in the same transaction that records the run's
//! export: two runs of one schedule can never both export a range.

use sqlx::Row;

use super::{Db, DbError, EVENT_COLUMNS, EventRow, event_from_row};

/// Which live events an export walks: `at_us` in `from_us..=to_us`, `seq`
/// in `seq_after+1..=seq_upto`, and when `teams` is `Some`, a team in it.
#[derive(Debug, Clone, Copy)]
pub struct ExportFilter<'a> {
    pub from_us: i64,
    pub to_us: i64,
    pub seq_after: i64,
    pub seq_upto: i64,
    pub teams: Option<&'a [String]>,
}

/// An export as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub export_id: i64,
    pub requested_by: String,
    pub schedule: Option<String>,
    /// The request as JSON text (read and written by `export` only).
    pub request: String,
    pub status: String,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub total_events: i64,
    pub exported_events: i64,
    pub seq_from: Option<i64>,
    pub seq_to: Option<i64>,
    pub package_dir: Option<String>,
    pub manifest_sha256: Option<String>,
    pub warnings: i64,
    pub error: Option<String>,
}

/// How an export ended.
#[derive(Debug, Clone)]
pub struct ExportEnd<'a> {
    pub status: &'a str,
    pub finished_at_ms: i64,
    pub total_events: i64,
    pub exported_events: i64,
    pub package_dir: Option<&'a str>,
    pub manifest_sha256: Option<&'a str>,
    pub warnings: i64,
    pub error: Option<&'a str>,
}

/// One delivery of one package to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub export_id: i64,
    pub target: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at_ms: Option<i64>,
    pub delivered_at_ms: Option<i64>,
}

const EXPORT_COLUMNS: &str = "export_id, requested_by, schedule, request, status, created_at_ms, \
     finished_at_ms, total_events, exported_events, seq_from, seq_to, package_dir, \
     manifest_sha256, warnings, error";

const DELIVERY_COLUMNS: &str =
    "export_id, target, status, attempts, last_error, next_attempt_at_ms, delivered_at_ms";

fn export_from_row<R: Row>(row: &R) -> Result<ExportRow, DbError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> Option<i64>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> Option<String>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ExportRow {
        export_id: row.try_get("export_id")?,
        requested_by: row.try_get("requested_by")?,
        schedule: row.try_get("schedule")?,
        request: row.try_get("request")?,
        status: row.try_get("status")?,
        created_at_ms: row.try_get("created_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
        total_events: row.try_get("total_events")?,
        exported_events: row.try_get("exported_events")?,
        seq_from: row.try_get("seq_from")?,
        seq_to: row.try_get("seq_to")?,
        package_dir: row.try_get("package_dir")?,
        manifest_sha256: row.try_get("manifest_sha256")?,
        warnings: row.try_get("warnings")?,
        error: row.try_get("error")?,
    })
}

fn delivery_from_row<R: Row>(row: &R) -> Result<DeliveryRow, DbError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> Option<i64>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> Option<String>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    Ok(DeliveryRow {
        export_id: row.try_get("export_id")?,
        target: row.try_get("target")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        next_attempt_at_ms: row.try_get("next_attempt_at_ms")?,
        delivered_at_ms: row.try_get("delivered_at_ms")?,
    })
}

/// The `WHERE` clause of [`ExportFilter`], with its binds from `$first`.
fn filter_sql(filter: &ExportFilter<'_>, first: usize) -> String {
    let mut sql = format!(
        "shredded_run IS NULL AND at_us >= ${} AND at_us <= ${} AND seq > ${} AND seq <= ${}",
        first,
        first + 1,
        first + 2,
        first + 3
    );
    if let Some(teams) = filter.teams {
        if teams.is_empty() {
            sql.push_str(" AND 1 = 0");
        } else {
            let marks: Vec<String> = (0..teams.len())
                .map(|i| format!("${}", first + 4 + i))
                .collect();
            sql.push_str(&format!(" AND team IN ({})", marks.join(", ")));
        }
    }
    sql
}

macro_rules! bind_filter {
    ($query:expr, $filter:expr) => {{
        let mut query = $query
            .bind($filter.from_us)
            .bind($filter.to_us)
            .bind($filter.seq_after)
            .bind($filter.seq_upto);
        if let Some(teams) = $filter.teams {
            for team in teams {
                query = query.bind(team.as_str());
            }
        }
        query
    }};
}

impl Db {
    /// Live events per channel that `filter` selects: (team, channel,
    /// count), sorted by team then channel.
    pub async fn export_channel_counts(
        &self,
        filter: &ExportFilter<'_>,
    ) -> Result<Vec<(String, String, i64)>, DbError> {
        let sql = format!(
            "SELECT team, channel, COUNT(*) AS n FROM events WHERE {} \
             GROUP BY team, channel ORDER BY team, channel",
            filter_sql(filter, 1)
        );
        on_pool!(self, |pool| {
            let rows = bind_filter!(sqlx::query(&sql), filter)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect()
        })
    }

    /// A page of one channel's live events that `filter` selects, in
    /// (`at_us`, `seq`) order, after `after` (an (`at_us`, `seq`) key).
    pub async fn export_channel_page(
        &self,
        team: &str,
        channel: &str,
        filter: &ExportFilter<'_>,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<EventRow>, DbError> {
        let n = 4 + filter.teams.map_or(0, <[String]>::len);
        let (after_at, after_seq) = after.unwrap_or((i64::MIN, i64::MIN));
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {} AND team = ${} AND channel = ${} \
             AND (at_us, seq) > (${}, ${}) ORDER BY at_us, seq LIMIT ${}",
            filter_sql(filter, 1),
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5
        );
        on_pool!(self, |pool| {
            let rows = bind_filter!(sqlx::query(&sql), filter)
                .bind(team)
                .bind(channel)
                .bind(after_at)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(event_from_row).collect()
        })
    }

    /// The (team, channel, post id) of these seqs (live events with a post).
    pub async fn post_ids_of_seqs(
        &self,
        seqs: &[i64],
    ) -> Result<Vec<(String, String, String)>, DbError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=seqs.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT DISTINCT team, channel, post_id FROM events WHERE post_id IS NOT NULL \
             AND shredded_run IS NULL AND seq IN ({})",
            marks.join(", ")
        );
        on_pool!(self, |pool| {
            let mut query = sqlx::query(&sql);
            for seq in seqs {
                query = query.bind(*seq);
            }
            let rows = query.fetch_all(pool).await?;
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect()
        })
    }

    // ----- exports -----

    /// Stores a new export (status `running`); its id.
    pub async fn insert_export(
        &self,
        requested_by: &str,
        schedule: Option<&str>,
        request: &str,
        created_at_ms: i64,
        seq_range: Option<(i64, i64)>,
    ) -> Result<i64, DbError> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_scalar(
                "INSERT INTO exports (requested_by, schedule, request, status, created_at_ms, \
                 seq_from, seq_to) VALUES ($1, $2, $3, 'running', $4, $5, $6) RETURNING export_id",
            )
            .bind(requested_by)
            .bind(schedule)
            .bind(request)
            .bind(created_at_ms)
            .bind(seq_range.map(|range| range.0))
            .bind(seq_range.map(|range| range.1))
            .fetch_one(pool)
            .await?)
        })
    }

    /// Records how an export ended (only a `running` export ends).
    pub async fn finish_export(&self, export_id: i64, end: &ExportEnd<'_>) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE exports SET status = $1, finished_at_ms = $2, total_events = $3, \
                 exported_events = $4, package_dir = $5, manifest_sha256 = $6, warnings = $7, \
                 error = $8 WHERE export_id = $9 AND status = 'running'",
            )
            .bind(end.status)
            .bind(end.finished_at_ms)
            .bind(end.total_events)
            .bind(end.exported_events)
            .bind(end.package_dir)
            .bind(end.manifest_sha256)
            .bind(end.warnings)
            .bind(end.error)
            .bind(export_id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Exports left `running` by a process that stopped: marked failed.
    pub async fn fail_interrupted_exports(&self, now_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, |pool| {
            Ok(sqlx::query(
                "UPDATE exports SET status = 'failed', finished_at_ms = $1, \
                 error = 'interrupted: the service stopped while the export ran' \
                 WHERE status = 'running'",
            )
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected())
        })
    }

    pub async fn get_export(&self, export_id: i64) -> Result<Option<ExportRow>, DbError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(&format!(
                "SELECT {EXPORT_COLUMNS} FROM exports WHERE export_id = $1"
            ))
            .bind(export_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(export_from_row).transpose()
        })
    }

    /// The newest exports first, at most `limit`, optionally of one
    /// requester only.
    pub async fn list_exports(
        &self,
        requested_by: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ExportRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = match requested_by {
                Some(who) => {
                    sqlx::query(&format!(
                        "SELECT {EXPORT_COLUMNS} FROM exports WHERE requested_by = $1 \
                         ORDER BY export_id DESC LIMIT $2"
                    ))
                    .bind(who)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                }
                None => {
                    sqlx::query(&format!(
                        "SELECT {EXPORT_COLUMNS} FROM exports ORDER BY export_id DESC LIMIT $1"
                    ))
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                }
            };
            rows.iter().map(export_from_row).collect()
        })
    }

    // ----- schedules -----

    /// How far schedule `name` has exported (0 before its first run).
    pub async fn schedule_watermark(&self, name: &str) -> Result<i64, DbError> {
        on_pool!(self, |pool| {
            let seq: Option<i64> =
                sqlx::query_scalar("SELECT exported_seq FROM export_schedules WHERE name = $1")
                    .bind(name)
                    .fetch_optional(pool)
                    .await?;
            Ok(seq.unwrap_or(0))
        })
    }

    /// Moves schedule `name`'s watermark from `from` to `to` and marks its
    /// export done, in one transaction; false (and nothing changed) when
    /// the watermark is no longer `from` (another run got there first).
    pub async fn commit_schedule_run(
        &self,
        name: &str,
        from: i64,
        to: i64,
        now_ms: i64,
        export_id: i64,
        end: &ExportEnd<'_>,
    ) -> Result<bool, DbError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let moved = if from == 0 {
                let inserted = sqlx::query(
                    "INSERT INTO export_schedules (name, exported_seq, updated_at_ms) \
                     VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(to)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    1
                } else {
                    sqlx::query(
                        "UPDATE export_schedules SET exported_seq = $1, updated_at_ms = $2 \
                         WHERE name = $3 AND exported_seq = 0",
                    )
                    .bind(to)
                    .bind(now_ms)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                }
            } else {
                sqlx::query(
                    "UPDATE export_schedules SET exported_seq = $1, updated_at_ms = $2 \
                     WHERE name = $3 AND exported_seq = $4",
                )
                .bind(to)
                .bind(now_ms)
                .bind(name)
                .bind(from)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            };
            if moved != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(
                "UPDATE exports SET status = $1, finished_at_ms = $2, total_events = $3, \
                 exported_events = $4, package_dir = $5, manifest_sha256 = $6, warnings = $7, \
                 error = $8 WHERE export_id = $9",
            )
            .bind(end.status)
            .bind(end.finished_at_ms)
            .bind(end.total_events)
            .bind(end.exported_events)
            .bind(end.package_dir)
            .bind(end.manifest_sha256)
            .bind(end.warnings)
            .bind(end.error)
            .bind(export_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    // ----- deliveries -----

    /// Records a delivery attempt's outcome (creating the row on the first).
    pub async fn record_delivery(&self, row: &DeliveryRow) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO export_deliveries (export_id, target, status, attempts, last_error, \
                 next_attempt_at_ms, delivered_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (export_id, target) DO UPDATE SET status = excluded.status, \
                 attempts = excluded.attempts, last_error = excluded.last_error, \
                 next_attempt_at_ms = excluded.next_attempt_at_ms, \
                 delivered_at_ms = excluded.delivered_at_ms",
            )
            .bind(row.export_id)
            .bind(&row.target)
            .bind(&row.status)
            .bind(row.attempts)
            .bind(&row.last_error)
            .bind(row.next_attempt_at_ms)
            .bind(row.delivered_at_ms)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Deliveries of one export.
    pub async fn deliveries_of(&self, export_id: i64) -> Result<Vec<DeliveryRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM export_deliveries WHERE export_id = $1 \
                 ORDER BY target"
            ))
            .bind(export_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(delivery_from_row).collect()
        })
    }

    /// Deliveries not yet done, whose next attempt is due at `now_ms`.
    pub async fn due_deliveries(&self, now_ms: i64) -> Result<Vec<DeliveryRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM export_deliveries WHERE status = 'pending' \
                 AND (next_attempt_at_ms IS NULL OR next_attempt_at_ms <= $1) \
                 ORDER BY export_id, target"
            ))
            .bind(now_ms)
            .fetch_all(pool)
            .await?;
            rows.iter().map(delivery_from_row).collect()
        })
    }
}
