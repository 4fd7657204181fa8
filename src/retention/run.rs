//! Planning and running retention: which events are due, which of those a
//! hold keeps, and their deletion by crypto-shredding.
//!
//! A run, in stages that each survive a crash (`retention_runs.stage`):
//!
//! 1. **check floors**: a policy set that lowers a floor applied before is
//!    refused unless no live event it covered is younger than the old floor;
//!    otherwise the new floors are recorded;
//! 2. **plan**: the index catches up (so query holds see every event), then,
//!    a chunk of key epochs at a time (bounded memory), for every live key
//!    epoch old enough to hold anything due, its events are split into
//!    *delete* (due under their policy, past every floor, not held) and
//!    *keep*, and the chunk goes through stages 3 and 4;
//! 3. **carry**: an epoch with both re-encrypts its kept events under a new
//!    carry epoch of the same day (durably, before anything is destroyed);
//! 4. **destroy**: per batch of epochs, one transaction destroys their data
//!    keys and turns their events into tombstones, refusing when a hold
//!    changed since the plan (the batch is planned again) or when an epoch
//!    still holds an event not planned for deletion;
//! 5. **purge** the events from the search index, **scrub** the database
//!    files of the destroyed keys, **compact** the sealed segments;
//! 6. write the **certificate**.
//!
//! An interrupted run (kill -9) is finished by the next run or the next
//! `serve` start: stages 5 and 6 are idempotent, stages 3 and 4 are atomic
//! per step, and nothing is destroyed that was not planned in the same
//! transaction.
//!
//! Never deletes an event any active hold matches, never deletes an event
//! before its floor, never destroys a key whose epoch still holds an event
//! that is not being deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::holds::{self, HoldMatcher};
use super::policy::{Floor, FloorChange, PolicySet, lowered_floors};
use crate::db::retention::{AppliedFloor, DestroyOutcome, Destruction, EpochInfo, RunRow};
use crate::db::{Db, DbError, EventRow};
use crate::index::SearchIndex;
use crate::store::{Store, StoreError};

/// Epochs destroyed per database transaction.
const EPOCHS_PER_BATCH: usize = 256;
/// Epochs whose events are read at once while planning.
const EPOCHS_PER_READ: usize = 2_000;
/// How often a batch is planned again after holds changed under it.
const MAX_REPLANS: usize = 5;

/// Errors of retention.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    #[error(transparent)]
    Holds(#[from] holds::HoldError),
    /// The policy set lowers a floor that still protects data.
    #[error("{}", describe_lowered(.0))]
    FloorLowered(Vec<FloorChange>),
    /// Holds kept changing while the run tried to destroy a batch.
    #[error(
        "holds changed {MAX_REPLANS} times while the run was destroying; nothing more was deleted, run it again"
    )]
    HoldsKeptChanging,
    /// A safety check refused to destroy an epoch (a bug, never expected).
    #[error(
        "refused to destroy key epoch {epoch_id}: it still holds event seq {seq}, which was not planned for deletion"
    )]
    Refused { epoch_id: i64, seq: i64 },
    #[error("no retention run {0}")]
    NoSuchRun(i64),
    #[error("cannot write the certificate {path}: {source}")]
    Certificate {
        path: String,
        source: std::io::Error,
    },
}

fn describe_lowered(changes: &[FloorChange]) -> String {
    let parts: Vec<String> = changes
        .iter()
        .map(|change| {
            format!(
                "{} kind {}: from {} days ({}) to {} days ({})",
                change.scope_key,
                change.kind,
                change.old_days,
                change.old_policy,
                change.new_days,
                change.new_policy.as_deref().unwrap_or("no policy")
            )
        })
        .collect();
    format!(
        "the policies lower a retention floor that still protects data, refused: {}",
        parts.join("; ")
    )
}

/// Who asked for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Cli,
    Api,
    Schedule,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Api => "api",
            Trigger::Schedule => "schedule",
        }
    }
}

/// Counts of one policy in one channel on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelDay {
    pub team: String,
    pub channel: String,
    pub day: String,
    pub events: u64,
}

/// What one policy deletes (or deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyCount {
    pub policy: String,
    pub events: u64,
    pub by_channel_day: Vec<ChannelDay>,
}

/// Events a hold keeps from deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HoldCount {
    pub hold_id: i64,
    pub name: String,
    pub matter: String,
    pub events: u64,
}

/// A dry run: what a run on `as_of` would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub as_of: String,
    pub policies_digest: String,
    /// Events that would be deleted.
    pub events_to_delete: u64,
    /// Due events kept by holds.
    pub events_kept_by_holds: u64,
    /// Live events re-encrypted under carry epochs first.
    pub events_to_carry: u64,
    pub epochs_to_destroy: u64,
    pub by_policy: Vec<PolicyCount>,
    pub kept_by_holds: Vec<HoldCount>,
    /// Floors the policy set lowers; a run refuses when `refused`.
    pub lowered_floors: Vec<FloorChange>,
    pub refused: bool,
}

/// The plan of one epoch.
#[derive(Debug, Clone)]
struct EpochPlan {
    epoch: EpochInfo,
    delete: Vec<(EventRow, String)>,
    keep: Vec<EventRow>,
}

/// The full plan: summary and per-epoch work.
struct Planned {
    summary: Plan,
    epochs: Vec<EpochPlan>,
}

/// What a run did; the certificate's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Certificate {
    pub certificate: &'static str,
    pub format_version: u32,
    pub archive_id: String,
    pub run_id: i64,
    pub started_at: String,
    pub finished_at: String,
    pub as_of: String,
    pub started_by: String,
    pub trigger: String,
    pub policies_digest: String,
    pub policies: serde_json::Value,
    pub events_deleted: u64,
    pub deleted_by_policy: Vec<PolicyCount>,
    pub epochs_destroyed: Vec<DestroyedEpoch>,
    pub events_carried: u64,
    pub kept_by_holds: Vec<HoldCount>,
    pub index: crate::index::PurgeReport,
    pub key_scrub: String,
    pub compaction: Option<crate::store::compact::CompactionReport>,
    pub chain_head: ChainHead,
    /// The run was interrupted and finished later.
    pub resumed: bool,
    /// How long each stage took (a resumed run times only what it redid).
    pub timings_ms: Timings,
}

/// Milliseconds per stage of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Timings {
    pub plan: u64,
    pub carry: u64,
    /// Key destruction: when it ends, the deleted events are unreadable.
    pub destroy: u64,
    /// Reading back what was deleted (for the index and the certificate).
    pub collect: u64,
    /// Until the events were gone from search (index delete and commit).
    pub index_delete: u64,
    /// Index merge that removes their words from the index files.
    pub index_merge: u64,
    pub scrub: u64,
    pub compact: u64,
    pub certificate: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestroyedEpoch {
    pub epoch_id: i64,
    pub team: String,
    pub channel: String,
    pub day: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

/// How a run is made.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The day the run deletes as of: today (UTC) in production; tests
    /// inject another (the clock).
    pub as_of: NaiveDate,
    pub started_by: String,
    pub trigger: Trigger,
    /// Reclaim the disk of shredded records afterwards.
    pub compact: bool,
}

impl RunOptions {
    pub fn today(started_by: &str, trigger: Trigger) -> RunOptions {
        RunOptions {
            as_of: Utc::now().date_naive(),
            started_by: started_by.to_owned(),
            trigger,
            compact: true,
        }
    }
}

/// A finished run.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub run_id: i64,
    pub certificate: Certificate,
    /// Where the certificate's JSON was written.
    pub certificate_path: PathBuf,
    /// SHA-256 of that file (recorded in the audit trail).
    pub certificate_sha256: String,
}

/// What the policy set's floors do against those applied before.
async fn check_floors(
    db: &Db,
    policies: &PolicySet,
    as_of: NaiveDate,
) -> Result<(Vec<FloorChange>, bool), RetentionError> {
    let applied: Vec<Floor> = db
        .applied_floors()
        .await?
        .into_iter()
        .map(|floor| Floor {
            scope_key: floor.scope_key,
            kind: floor.kind,
            min_keep_days: floor.min_keep_days.max(0) as u32,
            policy: floor.policy,
            source: floor.source,
        })
        .collect();
    let lowered = lowered_floors(&applied, policies);
    let mut refused = false;
    for change in &lowered {
        let (team, channel) = scope_filter(&change.scope_key);
        let since = as_of - chrono::Days::new(u64::from(change.old_days));
        let since_us = since
            .and_hms_opt(0, 0, 0)
            .map_or(0, |at| at.and_utc().timestamp_micros());
        if db
            .live_events_newer_than(&team, &channel, &change.kind, since_us)
            .await?
        {
            refused = true;
        }
    }
    Ok((lowered, refused))
}

/// The (team, channel) filter of a floor's scope key; empty matches all.
fn scope_filter(scope_key: &str) -> (String, String) {
    let unescape = |text: &str| text.replace("%2F", "/").replace("%25", "%");
    if let Some(team) = scope_key.strip_prefix("team:") {
        (unescape(team), String::new())
    } else if let Some(rest) = scope_key.strip_prefix("channel:") {
        match rest.split_once('/') {
            Some((team, channel)) => (unescape(team), unescape(channel)),
            None => (unescape(rest), String::new()),
        }
    } else {
        (String::new(), String::new())
    }
}

/// A dry run on `as_of`: nothing is changed (the index catches up).
pub async fn plan(
    store: &Store,
    index: &SearchIndex,
    policies: &PolicySet,
    as_of: NaiveDate,
) -> Result<Plan, RetentionError> {
    let (lowered, refused) = check_floors(store.db(), policies, as_of).await?;
    // Best effort: beside a running server the index is the server's to
    // update, and a plan is a forecast (the run itself catches up first).
    if let Err(error) = crate::index::catch_up(store, index, |_, _| {}).await {
        tracing::warn!(%error, "planning with the index as it is");
    }
    let candidates = candidate_epochs(store.db(), policies, as_of).await?;
    let mut planned = make_plan(store, index, policies, as_of, candidates).await?;
    planned.summary.lowered_floors = lowered;
    planned.summary.refused = refused;
    Ok(planned.summary)
}

/// The live epochs old enough to hold anything due on `as_of`.
async fn candidate_epochs(
    db: &Db,
    policies: &PolicySet,
    as_of: NaiveDate,
) -> Result<Vec<EpochInfo>, RetentionError> {
    Ok(db
        .epoch_infos()
        .await?
        .into_iter()
        .filter(|epoch| !epoch.destroyed)
        .filter(|epoch| {
            let Ok(day) = NaiveDate::parse_from_str(epoch.base_day(), "%Y-%m-%d") else {
                return false;
            };
            let age = super::policy::age_days(day, as_of);
            policies
                .earliest_due_age(&epoch.team, &epoch.channel)
                .is_some_and(|due_age| age >= i64::from(due_age))
        })
        .collect())
}

/// Plans over `candidates`.
async fn make_plan(
    store: &Store,
    index: &SearchIndex,
    policies: &PolicySet,
    as_of: NaiveDate,
    candidates: Vec<EpochInfo>,
) -> Result<Planned, RetentionError> {
    let db = store.db();
    let active = holds::active_holds(db).await?;
    // Query holds search the index: blocking work, kept off the other tasks
    // of a multi-threaded runtime.
    let matcher = if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread
    {
        tokio::task::block_in_place(|| HoldMatcher::prepare(index, &active))?
    } else {
        HoldMatcher::prepare(index, &active)?
    };
    let hold_names: HashMap<i64, (&str, &str)> = active
        .iter()
        .map(|hold| (hold.id, (hold.name.as_str(), hold.matter.as_str())))
        .collect();
    let mut epochs = Vec::new();
    let mut by_policy: BTreeMap<String, BTreeMap<(String, String, String), u64>> = BTreeMap::new();
    let mut kept: BTreeMap<i64, u64> = BTreeMap::new();
    let mut kept_total = 0u64;
    for chunk in candidates.chunks(EPOCHS_PER_READ) {
        let ids: Vec<i64> = chunk.iter().map(|epoch| epoch.epoch_id).collect();
        let rows = db.live_events_of_epochs(&ids).await?;
        let mut due: Vec<(EventRow, String)> = Vec::new();
        let mut not_due: Vec<EventRow> = Vec::new();
        for row in rows {
            let day = day_of(row.at_us);
            match policies.is_due(&row.team, &row.channel, &row.kind, day, as_of) {
                Some(policy) => {
                    let name = policy.name.clone();
                    due.push((row, name));
                }
                None => not_due.push(row),
            }
        }
        let due_rows: Vec<EventRow> = due.iter().map(|(row, _)| row.clone()).collect();
        let held = matcher.held(db, &due_rows).await?;
        drop(due_rows);
        let mut per_epoch: HashMap<i64, EpochPlan> = chunk
            .iter()
            .map(|epoch| {
                (
                    epoch.epoch_id,
                    EpochPlan {
                        epoch: epoch.clone(),
                        delete: Vec::new(),
                        keep: Vec::new(),
                    },
                )
            })
            .collect();
        for row in not_due {
            if let Some(plan) = per_epoch.get_mut(&row.epoch_id) {
                plan.keep.push(row);
            }
        }
        for (row, policy) in due {
            let Some(plan) = per_epoch.get_mut(&row.epoch_id) else {
                continue;
            };
            match held.get(&row.seq) {
                Some(hold_ids) if !hold_ids.is_empty() => {
                    kept_total += 1;
                    for hold_id in hold_ids {
                        *kept.entry(*hold_id).or_default() += 1;
                    }
                    plan.keep.push(row);
                }
                _ => {
                    let key = (
                        row.team.clone(),
                        row.channel.clone(),
                        day_of(row.at_us).to_string(),
                    );
                    *by_policy
                        .entry(policy.clone())
                        .or_default()
                        .entry(key)
                        .or_default() += 1;
                    plan.delete.push((row, policy));
                }
            }
        }
        let mut chunk_plans: Vec<EpochPlan> = per_epoch
            .into_values()
            .filter(|plan| !plan.delete.is_empty())
            .collect();
        chunk_plans.sort_by_key(|plan| plan.epoch.epoch_id);
        epochs.extend(chunk_plans);
    }
    let summary = Plan {
        as_of: as_of.to_string(),
        policies_digest: policies.digest().to_owned(),
        events_to_delete: epochs.iter().map(|e| e.delete.len() as u64).sum(),
        events_kept_by_holds: kept_total,
        events_to_carry: epochs.iter().map(|e| e.keep.len() as u64).sum(),
        epochs_to_destroy: epochs.len() as u64,
        by_policy: policy_counts(by_policy),
        kept_by_holds: kept
            .into_iter()
            .map(|(hold_id, events)| {
                let (name, matter) = hold_names.get(&hold_id).copied().unwrap_or(("", ""));
                HoldCount {
                    hold_id,
                    name: name.to_owned(),
                    matter: matter.to_owned(),
                    events,
                }
            })
            .collect(),
        lowered_floors: Vec::new(),
        refused: false,
    };
    Ok(Planned { summary, epochs })
}

fn policy_counts(
    by_policy: BTreeMap<String, BTreeMap<(String, String, String), u64>>,
) -> Vec<PolicyCount> {
    by_policy
        .into_iter()
        .map(|(policy, days)| PolicyCount {
            events: days.values().sum(),
            policy,
            by_channel_day: days
                .into_iter()
                .map(|((team, channel, day), events)| ChannelDay {
                    team,
                    channel,
                    day,
                    events,
                })
                .collect(),
        })
        .collect()
}

fn day_of(at_us: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_micros(at_us).map_or(NaiveDate::MIN, |at| at.date_naive())
}

/// Runs retention: finishes interrupted runs first, then plans, carries,
/// destroys, purges, scrubs, compacts and writes the certificate.
pub async fn run(
    store: &Store,
    index: &SearchIndex,
    policies: &PolicySet,
    options: &RunOptions,
) -> Result<RunOutcome, RetentionError> {
    resume_unfinished(store, index).await?;
    let db = store.db();
    let (lowered, refused) = check_floors(db, policies, options.as_of).await?;
    if refused {
        return Err(RetentionError::FloorLowered(lowered));
    }
    let floors: Vec<AppliedFloor> = policies
        .floors()
        .into_iter()
        .map(|floor| AppliedFloor {
            scope_key: floor.scope_key,
            kind: floor.kind,
            min_keep_days: i64::from(floor.min_keep_days),
            policy: floor.policy,
            source: floor.source,
        })
        .collect();
    db.apply_floors(&floors).await?;
    let policies_json = serde_json::json!({
        "digest": policies.digest(),
        "policies": policies.policies(),
    })
    .to_string();
    let run_id = db
        .create_run(
            &options.as_of.to_string(),
            &options.started_by,
            options.trigger.as_str(),
            &policies_json,
        )
        .await?;
    let result = execute(store, index, policies, options, run_id).await;
    if let Err(error) = &result {
        tracing::error!(run_id, %error, "retention run failed");
        db.finish_run(run_id, "failed", None).await?;
    }
    result
}

async fn execute(
    store: &Store,
    index: &SearchIndex,
    policies: &PolicySet,
    options: &RunOptions,
    run_id: i64,
) -> Result<RunOutcome, RetentionError> {
    let db = store.db();
    let started = std::time::Instant::now();
    let mut timings = Timings::default();
    let mut generation = db.retention_generation().await?;
    crate::index::catch_up(store, index, |_, _| {}).await?;
    let candidates = candidate_epochs(db, policies, options.as_of).await?;
    timings.plan = elapsed_ms(started);
    db.set_run_stage(run_id, "destroying", None).await?;
    let mut carried = 0u64;
    let mut kept_by_holds: BTreeMap<i64, HoldCount> = BTreeMap::new();
    // Planned and destroyed a chunk of epochs at a time: memory stays
    // bounded by one chunk's events, whatever is due.
    for chunk in candidates.chunks(EPOCHS_PER_BATCH) {
        let planning = std::time::Instant::now();
        let planned = make_plan(store, index, policies, options.as_of, chunk.to_vec()).await?;
        timings.plan += elapsed_ms(planning);
        let mut chunk_kept = planned.summary.kept_by_holds.clone();
        let mut pending: Vec<EpochPlan> = planned.epochs;
        let mut replans = 0;
        while !pending.is_empty() {
            let batch: Vec<EpochPlan> = std::mem::take(&mut pending);
            // Carry what each epoch keeps, then destroy the batch at once.
            let carrying = std::time::Instant::now();
            for plan in &batch {
                if !plan.keep.is_empty() {
                    let events = store.read_for_carry(plan.keep.clone()).await?;
                    carried += store.carry(plan.epoch.epoch_id, events).await?;
                }
            }
            timings.carry += elapsed_ms(carrying);
            let destroying = std::time::Instant::now();
            let destruction = Destruction {
                run_id,
                generation,
                epochs: batch.iter().map(|plan| plan.epoch.epoch_id).collect(),
                events: batch
                    .iter()
                    .flat_map(|plan| {
                        plan.delete
                            .iter()
                            .map(|(row, policy)| (row.seq, policy.clone()))
                    })
                    .collect(),
            };
            let destroyed = store.destroy(destruction).await?;
            timings.destroy += elapsed_ms(destroying);
            match destroyed {
                DestroyOutcome::Destroyed { .. } => {}
                DestroyOutcome::HoldsChanged => {
                    replans += 1;
                    if replans > MAX_REPLANS {
                        return Err(RetentionError::HoldsKeptChanging);
                    }
                    // Plan these epochs again under the new holds.
                    generation = db.retention_generation().await?;
                    crate::index::catch_up(store, index, |_, _| {}).await?;
                    let again: Vec<EpochInfo> =
                        batch.iter().map(|plan| plan.epoch.clone()).collect();
                    let replanned = make_plan(store, index, policies, options.as_of, again).await?;
                    chunk_kept = merge_holds(&chunk_kept, &replanned.summary.kept_by_holds);
                    pending = replanned.epochs;
                }
                DestroyOutcome::Refused { epoch_id, seq } => {
                    return Err(RetentionError::Refused { epoch_id, seq });
                }
            }
        }
        for count in chunk_kept {
            kept_by_holds
                .entry(count.hold_id)
                .and_modify(|total| total.events += count.events)
                .or_insert(count);
        }
        // What a resumed run needs to certify what the holds kept.
        let progress = serde_json::json!({
            "kept_by_holds": kept_by_holds.values().collect::<Vec<_>>(),
        });
        db.set_run_stage(run_id, "destroying", Some(&progress.to_string()))
            .await?;
    }
    let kept_by_holds: Vec<HoldCount> = kept_by_holds.into_values().collect();
    let kept_json = serde_json::to_string(&kept_by_holds).unwrap_or_default();
    db.set_run_stage(run_id, "finishing", None).await?;
    finish(
        store,
        index,
        run_id,
        options.compact,
        carried,
        &kept_json,
        false,
        (timings, started),
    )
    .await
}

fn elapsed_ms(since: std::time::Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Keeps, per hold, the larger of two counts (a replan sees fewer epochs).
fn merge_holds(before: &[HoldCount], after: &[HoldCount]) -> Vec<HoldCount> {
    let mut merged: BTreeMap<i64, HoldCount> = before
        .iter()
        .map(|count| (count.hold_id, count.clone()))
        .collect();
    for count in after {
        let entry = merged.entry(count.hold_id).or_insert_with(|| count.clone());
        entry.events = entry.events.max(count.events);
    }
    merged.into_values().collect()
}

/// Finishes runs a crash interrupted: purges, scrubs, compacts and
/// certifies what they destroyed.
pub async fn resume_unfinished(store: &Store, index: &SearchIndex) -> Result<u64, RetentionError> {
    let unfinished = store.db().unfinished_runs().await?;
    for run in &unfinished {
        tracing::warn!(
            run_id = run.run_id,
            stage = %run.stage,
            "finishing a retention run that was interrupted"
        );
        let kept = serde_json::from_str::<serde_json::Value>(&run.plan)
            .ok()
            .and_then(|plan| plan.get("kept_by_holds").map(ToString::to_string))
            .unwrap_or_else(|| "[]".to_owned());
        finish(
            store,
            index,
            run.run_id,
            true,
            0,
            &kept,
            true,
            (Timings::default(), std::time::Instant::now()),
        )
        .await?;
    }
    Ok(unfinished.len() as u64)
}

/// Stages 5 and 6: idempotent.
#[allow(clippy::too_many_arguments)] // two callers, each with its own run state
async fn finish(
    store: &Store,
    index: &SearchIndex,
    run_id: i64,
    compact: bool,
    carried: u64,
    kept_json: &str,
    resumed: bool,
    (mut timings, started): (Timings, std::time::Instant),
) -> Result<RunOutcome, RetentionError> {
    let db = store.db();
    let collecting = std::time::Instant::now();
    let seqs = db.shredded_seqs_of_run(run_id).await?;
    timings.collect = elapsed_ms(collecting);
    let purge = index.purge(&seqs).await?;
    let collecting = std::time::Instant::now();
    let shredded = db.shredded_by_run(run_id).await?;
    timings.collect += elapsed_ms(collecting);
    timings.index_delete = purge.deleted_ms;
    timings.index_merge = purge.merged_ms;
    let scrubbing = std::time::Instant::now();
    let key_scrub = db.scrub_destroyed().await?;
    timings.scrub = elapsed_ms(scrubbing);
    let compacting = std::time::Instant::now();
    let compaction = if compact && !seqs.is_empty() {
        let segments: HashSet<i64> = db.segments_of_run(run_id).await?;
        Some(store.compact(run_id, Some(&segments)).await?)
    } else {
        None
    };
    timings.compact = elapsed_ms(compacting);
    let certifying = std::time::Instant::now();
    let run = db
        .retention_run(run_id)
        .await?
        .ok_or(RetentionError::NoSuchRun(run_id))?;
    let mut by_policy: BTreeMap<String, BTreeMap<(String, String, String), u64>> = BTreeMap::new();
    for (policy, team, channel, at_us) in &shredded {
        *by_policy
            .entry(policy.clone())
            .or_default()
            .entry((team.clone(), channel.clone(), day_of(*at_us).to_string()))
            .or_default() += 1;
    }
    let head = db.segments().await?.last().cloned();
    let certificate = Certificate {
        certificate: "holdfast retention certificate of destruction",
        format_version: 1,
        archive_id: db.get_meta("archive_id").await?.unwrap_or_default(),
        run_id,
        started_at: format_ms(run.started_at_ms),
        finished_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        as_of: run.as_of.clone(),
        started_by: run.started_by.clone(),
        trigger: run.trigger.clone(),
        policies_digest: serde_json::from_str::<serde_json::Value>(&run.policies)
            .ok()
            .and_then(|value| {
                value
                    .get("digest")
                    .and_then(|d| d.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default(),
        policies: serde_json::from_str::<serde_json::Value>(&run.policies)
            .ok()
            .and_then(|value| value.get("policies").cloned())
            .unwrap_or_default(),
        events_deleted: shredded.len() as u64,
        deleted_by_policy: policy_counts(by_policy),
        epochs_destroyed: db
            .epochs_destroyed_by_run(run_id)
            .await?
            .into_iter()
            .map(|(epoch_id, team, channel, day)| DestroyedEpoch {
                epoch_id,
                team,
                channel,
                day,
            })
            .collect(),
        events_carried: carried,
        kept_by_holds: serde_json::from_str(kept_json).unwrap_or_default(),
        index: purge,
        key_scrub,
        compaction,
        chain_head: ChainHead {
            seq: head.as_ref().map_or(0, |h| h.last_seq as u64),
            hash: head.map(|h| hex::encode(h.last_hash)).unwrap_or_default(),
        },
        resumed,
        timings_ms: timings,
    };
    let mut certificate = certificate;
    certificate.timings_ms.certificate = elapsed_ms(certifying);
    certificate.timings_ms.total = elapsed_ms(started);
    let json = serde_json::to_string_pretty(&certificate).unwrap_or_default();
    let path = write_certificate(store.data_dir(), run_id, &json)?;
    db.finish_run(run_id, "done", Some(&json)).await?;
    tracing::info!(
        run_id,
        events = certificate.events_deleted,
        epochs = certificate.epochs_destroyed.len(),
        "retention run finished"
    );
    Ok(RunOutcome {
        run_id,
        certificate_sha256: hex::encode(Sha256::digest(json.as_bytes())),
        certificate,
        certificate_path: path,
    })
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Writes `<data_dir>/certificates/run-<id>.json` (0600, via a temporary
/// name and a rename).
fn write_certificate(data_dir: &Path, run_id: i64, json: &str) -> Result<PathBuf, RetentionError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = data_dir.join("certificates");
    let error = |path: &Path| {
        let path = path.display().to_string();
        move |source| RetentionError::Certificate { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(error(&dir))?;
    let path = dir.join(format!("run-{run_id:06}.json"));
    let temporary = dir.join(format!(".run-{run_id:06}.json.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(error(&temporary))?;
    file.write_all(json.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(error(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(error(&path))?;
    Ok(path)
}

/// What lists of runs show of one run (API and CLI).
pub fn run_summary(run: &RunRow) -> serde_json::Value {
    serde_json::json!({
        "run_id": run.run_id,
        "started_at_ms": run.started_at_ms,
        "finished_at_ms": run.finished_at_ms,
        "as_of": run.as_of,
        "started_by": run.started_by,
        "trigger": run.trigger,
        "status": run.status,
        "stage": run.stage,
    })
}

/// The runs, newest first.
pub async fn runs(db: &Db, limit: i64) -> Result<Vec<RunRow>, RetentionError> {
    Ok(db.retention_runs(limit).await?)
}
