//! The metadata of retention: carry epochs, the destruction of key epochs
//! (the one place anything is deleted), compacted ranges, runs and floors.
//!
//! Destruction is one transaction per batch that first takes the retention
//! lock row (hold creation takes it too), checks that no hold changed since
//! the run planned, and refuses to destroy an epoch that still holds an
//! event the batch does not delete.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::{Db, DbError, EVENT_COLUMNS, EpochRow, EventRow, NewEpoch, SegmentRow, epoch_from_row};
use super::{event_from_row, now_ms, upsert_segment};

/// A key epoch as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochInfo {
    pub epoch_id: i64,
    pub team: String,
    pub channel: String,
    /// `YYYY-MM-DD`, or `YYYY-MM-DD+N` for a later generation of that day
    /// (a carry epoch, or events stored after the day's epoch was destroyed).
    pub day: String,
    pub carried_from: Option<i64>,
    pub destroyed: bool,
}

impl EpochInfo {
    /// The UTC day the epoch's events belong to.
    pub fn base_day(&self) -> &str {
        base_day(&self.day)
    }
}

/// The day part of an epoch's `day` (`2025-01-31+2` → `2025-01-31`).
pub fn base_day(day: &str) -> &str {
    day.split('+').next().unwrap_or(day)
}

/// An event moved to a record of a carry epoch.
#[derive(Debug, Clone)]
pub struct Relocation {
    pub seq: i64,
    pub record_seq: i64,
    pub segment_no: i64,
    pub record_offset: i64,
    pub record_len: i64,
    pub epoch_id: i64,
}

/// Events to delete with the epochs that held them.
#[derive(Debug, Clone, Default)]
pub struct Destruction {
    pub run_id: i64,
    /// The retention lock generation the run planned under.
    pub generation: i64,
    pub epochs: Vec<i64>,
    /// (seq, policy) of every live event of those epochs.
    pub events: Vec<(i64, String)>,
}

/// How a destruction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestroyOutcome {
    Destroyed {
        epochs: u64,
        events: u64,
    },
    /// A hold was created or released since the run planned: nothing was
    /// destroyed; plan again.
    HoldsChanged,
    /// An epoch still holds an event that was not planned for deletion:
    /// nothing was destroyed.
    Refused {
        epoch_id: i64,
        seq: i64,
    },
}

/// A byte range of a sealed segment whose records were all shredded and
/// whose disk was reclaimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactedRange {
    pub segment_no: i64,
    pub start_offset: i64,
    pub end_offset: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub n_records: i64,
    pub prev_hash: Vec<u8>,
    pub last_hash: Vec<u8>,
    pub run_id: i64,
}

/// The highest floor applied for one scope and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedFloor {
    pub scope_key: String,
    pub kind: String,
    pub min_keep_days: i64,
    pub policy: String,
    pub source: String,
}

/// A retention run's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub run_id: i64,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub as_of: String,
    pub started_by: String,
    pub trigger: String,
    pub status: String,
    pub stage: String,
    pub policies: String,
    pub plan: String,
    pub certificate: Option<String>,
}

const RUN_COLUMNS: &str = "run_id, started_at_ms, finished_at_ms, as_of, started_by, run_trigger, \
     status, stage, policies, plan, certificate";

impl Db {
    /// When a retention run started (ms), if it exists.
    pub async fn retention_run_started(&self, run_id: i64) -> Result<Option<i64>, DbError> {
        on_pool!(self, |pool| {
            Ok(
                sqlx::query_scalar("SELECT started_at_ms FROM retention_runs WHERE run_id = $1")
                    .bind(run_id)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    /// Every key epoch, destroyed or not, in id order.
    pub async fn epoch_infos(&self) -> Result<Vec<EpochInfo>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT epoch_id, team, channel, day, carried_from, wrapped_key IS NULL AS destroyed \
                 FROM key_epochs ORDER BY epoch_id",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(EpochInfo {
                        epoch_id: row.try_get("epoch_id")?,
                        team: row.try_get("team")?,
                        channel: row.try_get("channel")?,
                        day: row.try_get("day")?,
                        carried_from: row.try_get("carried_from")?,
                        destroyed: row.try_get("destroyed")?,
                    })
                })
                .collect::<Result<_, DbError>>()
        })
    }

    /// The ids of destroyed epochs.
    pub async fn destroyed_epoch_ids(&self) -> Result<HashSet<i64>, DbError> {
        on_pool!(self, |pool| {
            let ids: Vec<i64> =
                sqlx::query_scalar("SELECT epoch_id FROM key_epochs WHERE wrapped_key IS NULL")
                    .fetch_all(pool)
                    .await?;
            Ok(ids.into_iter().collect())
        })
    }

    /// The live (not deleted) events of these epochs, in seq order.
    pub async fn live_events_of_epochs(&self, epochs: &[i64]) -> Result<Vec<EventRow>, DbError> {
        let mut rows = Vec::new();
        for chunk in epochs.chunks(5_000) {
            rows.extend(self.events_where_in("epoch_id", chunk).await?);
        }
        rows.retain(|row| row.shredded_run.is_none());
        rows.sort_by_key(|row| row.seq);
        Ok(rows)
    }

    /// Every row whose event was moved to a carry record, by record seq.
    pub async fn relocated_rows(&self) -> Result<HashMap<i64, EventRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE record_seq IS NOT NULL"
            ))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| event_from_row(row).map(|row| (row.record_seq(), row)))
                .collect()
        })
    }

    /// The rows of these event ids (for recovery of a carry).
    pub async fn events_by_ids(&self, ids: &[&str]) -> Result<Vec<EventRow>, DbError> {
        self.events_where_in("event_id", ids).await
    }

    /// The epoch that new events of a day go to when its first epoch was
    /// destroyed: the newest live, non-carry epoch of that day.
    pub async fn live_day_epoch(
        &self,
        team: &str,
        channel: &str,
        day: &str,
    ) -> Result<Option<EpochRow>, DbError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT epoch_id, team, channel, day, wrapped_key, kek_fingerprint FROM key_epochs \
                 WHERE team = $1 AND channel = $2 AND (day = $3 OR day LIKE $4) \
                 AND wrapped_key IS NOT NULL AND carried_from IS NULL \
                 ORDER BY epoch_id DESC LIMIT 1",
            )
            .bind(team)
            .bind(channel)
            .bind(day)
            .bind(format!("{day}+%"))
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(epoch_from_row).transpose()
        })
    }

    /// The `day` of the next generation of a day's epochs: `DAY+N`.
    pub async fn next_generation_day(
        &self,
        team: &str,
        channel: &str,
        day: &str,
    ) -> Result<String, DbError> {
        let days: Vec<String> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT day FROM key_epochs WHERE team = $1 AND channel = $2 AND day LIKE $3",
            )
            .bind(team)
            .bind(channel)
            .bind(format!("{day}+%"))
            .fetch_all(pool)
            .await?
        });
        let highest = days
            .iter()
            .filter_map(|d| d.rsplit_once('+').and_then(|(_, n)| n.parse::<u64>().ok()))
            .max()
            .unwrap_or(0);
        Ok(format!("{day}+{}", highest + 1))
    }

    /// Creates one epoch (a later generation of a day), durably.
    pub async fn create_generation_epoch(
        &self,
        epoch: &NewEpoch,
        carried_from: Option<i64>,
    ) -> Result<EpochRow, DbError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO key_epochs (team, channel, day, wrapped_key, kek_fingerprint, \
                 created_at_ms, carried_from) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&epoch.team)
            .bind(&epoch.channel)
            .bind(&epoch.day)
            .bind(&epoch.wrapped_key)
            .bind(&epoch.kek_fingerprint)
            .bind(now_ms())
            .bind(carried_from)
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
            tx.commit().await?;
            epoch_from_row(&row)
        })
    }

    /// Points events at their carry records and moves the head, in one
    /// transaction.
    pub async fn commit_relocations(
        &self,
        relocations: &[Relocation],
        segments: &[SegmentRow],
    ) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for moved in relocations {
                sqlx::query(
                    "UPDATE events SET record_seq = $1, segment_no = $2, record_offset = $3, \
                     record_len = $4, epoch_id = $5 WHERE seq = $6 AND shredded_run IS NULL",
                )
                .bind(moved.record_seq)
                .bind(moved.segment_no)
                .bind(moved.record_offset)
                .bind(moved.record_len)
                .bind(moved.epoch_id)
                .bind(moved.seq)
                .execute(&mut *tx)
                .await?;
            }
            for segment in segments {
                upsert_segment(&mut tx, segment).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The retention lock's generation: it changes whenever a hold is
    /// created or released.
    pub async fn retention_generation(&self) -> Result<i64, DbError> {
        on_pool!(self, |pool| {
            Ok(
                sqlx::query_scalar("SELECT generation FROM retention_lock WHERE lock_id = 1")
                    .fetch_one(pool)
                    .await?,
            )
        })
    }

    /// Destroys the data keys of `epochs` and turns their events into
    /// tombstones (no user, no post), in one transaction, after checking
    /// that no hold changed and that every live event of each epoch is
    /// among `events`.
    pub async fn destroy_epochs(
        &self,
        destruction: &Destruction,
    ) -> Result<DestroyOutcome, DbError> {
        let planned: HashMap<i64, &str> = destruction
            .events
            .iter()
            .map(|(seq, policy)| (*seq, policy.as_str()))
            .collect();
        let now = now_ms();
        on_pool!(self, |pool| {
            let mut epoch_of: HashMap<i64, i64> = HashMap::new();
            let mut epoch_policies: Vec<(i64, String)> = Vec::new();
            let mut tx = pool.begin().await?;
            // A write first: serializes with hold creation on both engines.
            sqlx::query("UPDATE retention_lock SET generation = generation WHERE lock_id = 1")
                .execute(&mut *tx)
                .await?;
            let generation: i64 =
                sqlx::query_scalar("SELECT generation FROM retention_lock WHERE lock_id = 1")
                    .fetch_one(&mut *tx)
                    .await?;
            if generation != destruction.generation {
                tx.rollback().await?;
                return Ok(DestroyOutcome::HoldsChanged);
            }
            for &epoch_id in &destruction.epochs {
                let live: Vec<i64> = sqlx::query_scalar(
                    "SELECT seq FROM events WHERE epoch_id = $1 AND shredded_run IS NULL",
                )
                .bind(epoch_id)
                .fetch_all(&mut *tx)
                .await?;
                if let Some(&seq) = live.iter().find(|seq| !planned.contains_key(seq)) {
                    tx.rollback().await?;
                    return Ok(DestroyOutcome::Refused { epoch_id, seq });
                }
                for seq in live {
                    epoch_of.insert(seq, epoch_id);
                    if let Some(policy) = planned.get(&seq) {
                        epoch_policies.push((epoch_id, (*policy).to_owned()));
                    }
                }
                sqlx::query(
                    "UPDATE key_epochs SET wrapped_key = NULL, destroyed_at_ms = $1, \
                     destroyed_by_run = $2 WHERE epoch_id = $3",
                )
                .bind(now)
                .bind(destruction.run_id)
                .bind(epoch_id)
                .execute(&mut *tx)
                .await?;
            }
            // Every live event of these epochs is planned (checked above):
            // an epoch whose events all go under one policy is one statement.
            let mut policies_of: HashMap<i64, HashSet<&str>> = HashMap::new();
            for &epoch_id in &destruction.epochs {
                policies_of.insert(epoch_id, HashSet::new());
            }
            for (epoch_id, policy) in &epoch_policies {
                if let Some(set) = policies_of.get_mut(epoch_id) {
                    set.insert(policy.as_str());
                }
            }
            for (seq, policy) in &destruction.events {
                let single = epoch_of
                    .get(seq)
                    .and_then(|epoch_id| policies_of.get(epoch_id))
                    .is_some_and(|set| set.len() == 1);
                if single {
                    continue;
                }
                sqlx::query(
                    "UPDATE events SET shredded_run = $1, shredded_policy = $2, user_name = '', \
                     post_id = NULL WHERE seq = $3 AND shredded_run IS NULL",
                )
                .bind(destruction.run_id)
                .bind(policy)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
            for (epoch_id, set) in &policies_of {
                let Some(policy) = set.iter().next().filter(|_| set.len() == 1) else {
                    continue;
                };
                sqlx::query(
                    "UPDATE events SET shredded_run = $1, shredded_policy = $2, user_name = '', \
                     post_id = NULL WHERE epoch_id = $3 AND shredded_run IS NULL",
                )
                .bind(destruction.run_id)
                .bind(*policy)
                .bind(epoch_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(DestroyOutcome::Destroyed {
                epochs: destruction.epochs.len() as u64,
                events: destruction.events.len() as u64,
            })
        })
    }

    /// Makes sure destroyed keys are gone from the database files: SQLite
    /// (with `secure_delete`) checkpoints and truncates its write-ahead log;
    /// PostgreSQL rewrites `key_epochs` (`VACUUM FULL`) and vacuums `events`.
    /// Returns how, for the run's certificate.
    pub async fn scrub_destroyed(&self) -> Result<String, DbError> {
        match self {
            Db::Sqlite(pool) => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(pool)
                    .await?;
                Ok("sqlite: secure_delete=ON overwrote the freed key bytes; the write-ahead log was checkpointed and truncated".to_owned())
            }
            Db::Postgres(pool) => {
                sqlx::query("VACUUM FULL key_epochs").execute(pool).await?;
                sqlx::query("VACUUM events").execute(pool).await?;
                Ok("postgres: VACUUM FULL key_epochs rewrote the table without the old key versions; VACUUM events; WAL segments and base backups keep old versions until they are recycled".to_owned())
            }
        }
    }

    /// (policy, team, channel, at_us) of every event a run deleted.
    pub async fn shredded_by_run(
        &self,
        run_id: i64,
    ) -> Result<Vec<(String, String, String, i64)>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT shredded_policy, team, channel, at_us FROM events WHERE shredded_run = $1",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                    ))
                })
                .collect::<Result<_, DbError>>()
        })
    }

    /// The seqs of the events a run deleted.
    pub async fn shredded_seqs_of_run(&self, run_id: i64) -> Result<Vec<u64>, DbError> {
        on_pool!(self, |pool| {
            let seqs: Vec<i64> =
                sqlx::query_scalar("SELECT seq FROM events WHERE shredded_run = $1 ORDER BY seq")
                    .bind(run_id)
                    .fetch_all(pool)
                    .await?;
            Ok(seqs.into_iter().map(|seq| seq as u64).collect())
        })
    }

    /// The segments holding records of events a run deleted.
    pub async fn segments_of_run(&self, run_id: i64) -> Result<HashSet<i64>, DbError> {
        on_pool!(self, |pool| {
            let segments: Vec<i64> = sqlx::query_scalar(
                "SELECT DISTINCT segment_no FROM events WHERE shredded_run = $1",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?;
            Ok(segments.into_iter().collect())
        })
    }

    /// (epoch id, team, channel, day) of every epoch a run destroyed.
    pub async fn epochs_destroyed_by_run(
        &self,
        run_id: i64,
    ) -> Result<Vec<(i64, String, String, String)>, DbError> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT epoch_id, team, channel, day FROM key_epochs WHERE destroyed_by_run = $1 \
                 ORDER BY epoch_id",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Whether any live event matched by `(team, channel)` filters is at or
    /// after `since_us` (an event at exactly that instant is still protected): empty `team` matches every team, empty `channel`
    /// every channel of the team; `kind` "*" every kind.
    pub async fn live_events_newer_than(
        &self,
        team: &str,
        channel: &str,
        kind: &str,
        since_us: i64,
    ) -> Result<bool, DbError> {
        on_pool!(self, |pool| {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM events WHERE shredded_run IS NULL AND at_us >= $1 \
                 AND ($2 = '' OR team = $2) AND ($3 = '' OR channel = $3) \
                 AND ($4 = '*' OR kind = $4) LIMIT 1",
            )
            .bind(since_us)
            .bind(team)
            .bind(channel)
            .bind(kind)
            .fetch_optional(pool)
            .await?;
            Ok(found.is_some())
        })
    }

    // ----- compaction -----

    pub async fn compacted_ranges(&self) -> Result<Vec<CompactedRange>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT segment_no, start_offset, end_offset, first_seq, last_seq, n_records, \
                 prev_hash, last_hash, run_id FROM compacted_ranges ORDER BY segment_no, start_offset",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(CompactedRange {
                        segment_no: row.try_get(0)?,
                        start_offset: row.try_get(1)?,
                        end_offset: row.try_get(2)?,
                        first_seq: row.try_get(3)?,
                        last_seq: row.try_get(4)?,
                        n_records: row.try_get(5)?,
                        prev_hash: row.try_get(6)?,
                        last_hash: row.try_get(7)?,
                        run_id: row.try_get(8)?,
                    })
                })
                .collect::<Result<_, DbError>>()
        })
    }

    /// Records new compacted ranges of one sealed segment and its file hash
    /// with those ranges zeroed, before the bytes are reclaimed.
    pub async fn record_compaction(
        &self,
        segment_no: i64,
        ranges: &[CompactedRange],
        file_sha256: &[u8],
    ) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for range in ranges {
                sqlx::query(
                    "INSERT INTO compacted_ranges (segment_no, start_offset, end_offset, first_seq, \
                     last_seq, n_records, prev_hash, last_hash, run_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(range.segment_no)
                .bind(range.start_offset)
                .bind(range.end_offset)
                .bind(range.first_seq)
                .bind(range.last_seq)
                .bind(range.n_records)
                .bind(&range.prev_hash)
                .bind(&range.last_hash)
                .bind(range.run_id)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE segments SET original_sha256 = COALESCE(original_sha256, file_sha256), \
                 file_sha256 = $1 WHERE segment_no = $2",
            )
            .bind(file_sha256)
            .bind(segment_no)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    // ----- runs -----

    pub async fn create_run(
        &self,
        as_of: &str,
        started_by: &str,
        trigger: &str,
        policies: &str,
    ) -> Result<i64, DbError> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_scalar(
                "INSERT INTO retention_runs (started_at_ms, as_of, started_by, run_trigger, status, \
                 stage, policies, plan) VALUES ($1, $2, $3, $4, 'running', 'planning', $5, '{}') \
                 RETURNING run_id",
            )
            .bind(now_ms())
            .bind(as_of)
            .bind(started_by)
            .bind(trigger)
            .bind(policies)
            .fetch_one(pool)
            .await?)
        })
    }

    pub async fn set_run_stage(
        &self,
        run_id: i64,
        stage: &str,
        plan: Option<&str>,
    ) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE retention_runs SET stage = $1, plan = COALESCE($2, plan) WHERE run_id = $3",
            )
            .bind(stage)
            .bind(plan)
            .bind(run_id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn finish_run(
        &self,
        run_id: i64,
        status: &str,
        certificate: Option<&str>,
    ) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE retention_runs SET status = $1, stage = 'finished', finished_at_ms = $2, \
                 certificate = $3 WHERE run_id = $4",
            )
            .bind(status)
            .bind(now_ms())
            .bind(certificate)
            .bind(run_id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn retention_runs(&self, limit: i64) -> Result<Vec<RunRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {RUN_COLUMNS} FROM retention_runs ORDER BY run_id DESC LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(run_from_row).collect()
        })
    }

    pub async fn retention_run(&self, run_id: i64) -> Result<Option<RunRow>, DbError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(&format!(
                "SELECT {RUN_COLUMNS} FROM retention_runs WHERE run_id = $1"
            ))
            .bind(run_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(run_from_row).transpose()
        })
    }

    /// Runs that were interrupted (status `running`), oldest first.
    pub async fn unfinished_runs(&self) -> Result<Vec<RunRow>, DbError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {RUN_COLUMNS} FROM retention_runs WHERE status = 'running' ORDER BY run_id"
            ))
            .fetch_all(pool)
            .await?;
            rows.iter().map(run_from_row).collect()
        })
    }

    // ----- floors -----

    pub async fn applied_floors(&self) -> Result<Vec<AppliedFloor>, DbError> {
        on_pool!(self, |pool| {
            let rows: Vec<(String, String, i64, String, String)> = sqlx::query_as(
                "SELECT scope_key, kind, min_keep_days, policy, source FROM retention_floors \
                 ORDER BY scope_key, kind",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(scope_key, kind, min_keep_days, policy, source)| AppliedFloor {
                        scope_key,
                        kind,
                        min_keep_days,
                        policy,
                        source,
                    },
                )
                .collect())
        })
    }

    /// Replaces the applied floors with `floors` (the caller has checked
    /// that none is lowered, or that what it covered is past it).
    pub async fn apply_floors(&self, floors: &[AppliedFloor]) -> Result<(), DbError> {
        let now = now_ms();
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM retention_floors")
                .execute(&mut *tx)
                .await?;
            for floor in floors {
                sqlx::query(
                    "INSERT INTO retention_floors (scope_key, kind, min_keep_days, policy, source, \
                     applied_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&floor.scope_key)
                .bind(&floor.kind)
                .bind(floor.min_keep_days)
                .bind(&floor.policy)
                .bind(&floor.source)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

fn run_from_row<R: Row>(row: &R) -> Result<RunRow, DbError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RunRow {
        run_id: row.try_get("run_id")?,
        started_at_ms: row.try_get("started_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
        as_of: row.try_get("as_of")?,
        started_by: row.try_get("started_by")?,
        trigger: row.try_get("run_trigger")?,
        status: row.try_get("status")?,
        stage: row.try_get("stage")?,
        policies: row.try_get("policies")?,
        plan: row.try_get("plan")?,
        certificate: row.try_get("certificate")?,
    })
}
