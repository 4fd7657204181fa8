//! Retention benchmark: `cargo bench --bench retention` (events:
//! `HOLDFAST_BENCH_EVENTS`, default 5,000,000; a quick run:
//! `HOLDFAST_BENCH_EVENTS=200000 cargo bench --bench retention`).
//!
//! Expires the first month of a generated 12-month archive, in one run:
//!
//! 1. **archive**: the `holdfast generate` corpus (seed 42; its texts,
//!    threads, edits, reactions and joins), with every event's time spread
//!    evenly over 2025-01-01..2025-12-31 in generation order (as live ingest
//!    would write them), appended to a fresh store (SQLite metadata, segments
//!    of `HOLDFAST_BENCH_SEGMENT_MIB`, default 64 MiB, so that January sits in
//!    sealed segments even in a quick run) and indexed with
//!    `index::catch_up`. One text event in 40 of January gets the word
//!    `holdfastjanmark`, of February `holdfastfebmark`, so that search can
//!    check what went;
//! 2. **policy**: one global policy, `keep_days` such that on `as_of`
//!    (2026-01-01) every event of January 31 is due and none of February 1;
//!    and a custodian legal hold on the user with about 0.1 % of January's
//!    events, so that the run carries some events before destroying;
//! 3. **run**: `retention::run` with compaction; the figures come from the
//!    certificate's `timings_ms`, the segment directory's allocated blocks
//!    before and after, peak RSS; a watcher polls, every 20 ms, one late
//!    January event and a search for `holdfastjanmark`, to see from outside
//!    when the month became unreadable and left search. Then the checks: a
//!    sample of January reads as deleted (or is held), February reads, the
//!    January word finds only held events, the February word as many as
//!    before, and `Store::verify` passes (timed);
//! 4. **baseline**: the same events in SQLite (the one `sqlx` bundles): a
//!    table of events (team, channel, user, post and time indexed) and an
//!    external-content FTS5 index over the text, then the same deletion (the
//!    same held events kept) as FTS5 `delete` commands plus `DELETE` in one
//!    transaction, then FTS5 `optimize` (which drops the deleted rows'
//!    words from the FTS5 b-tree, as holdfast's index merge does), then
//!    `VACUUM` and a WAL checkpoint, each timed, with the file sizes.
//!
//! Temporary files go to `HOLDFAST_BENCH_DIR` (default: the system's
//! temporary directory).
#![allow(clippy::unwrap_used, reason = "a benchmark binary")]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::{allocated_bytes, dir_bytes, env_number, log, thousands};
use holdfast::event::Event;
use holdfast::generate::{EventGenerator, GenerateOptions};
use holdfast::index::{self, SearchIndex, Sort};
use holdfast::retention::holds::{self, HoldCriteria, NewHold};
use holdfast::retention::policy::PolicySet;
use holdfast::retention::{RunOptions, Trigger};
use holdfast::search::{self, ParseOptions, Query, Scope};
use holdfast::store::{AppendStatus, Store, StoreError, StoreOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

const SEED: u64 = 42;
const GENERATOR_BATCH: usize = 1_000;
const STORE_BATCH: usize = 10_000;
const SQL_TRANSACTION_ROWS: usize = 5_000;
const SQL_INSERT_ROWS: usize = 500;
/// One text event in this many of January (February) gets the marker word.
const MARK_EVERY: u64 = 40;
const JAN_MARK: &str = "holdfastjanmark";
const FEB_MARK: &str = "holdfastfebmark";
/// January and February events sampled for the read checks.
const SAMPLES: u64 = 1_000;
/// The hold's target share of January's events.
const HOLD_SHARE: f64 = 0.001;
const WATCH_EVERY: Duration = Duration::from_millis(20);

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn micros(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

/// The archive's time span and the month that expires.
struct Calendar {
    start_us: i64,
    span_us: i64,
    feb_us: i64,
    mar_us: i64,
    as_of: NaiveDate,
    keep_days: i64,
}

impl Calendar {
    fn new() -> Calendar {
        let as_of = day(2026, 1, 1);
        // Due iff age > keep_days: February 1 must not be, January 31 must.
        let keep_days = (as_of - day(2025, 2, 1)).num_days();
        assert!((as_of - day(2025, 1, 31)).num_days() > keep_days);
        Calendar {
            start_us: micros(day(2025, 1, 1)),
            span_us: micros(day(2026, 1, 1)) - micros(day(2025, 1, 1)),
            feb_us: micros(day(2025, 2, 1)),
            mar_us: micros(day(2025, 3, 1)),
            as_of,
            keep_days,
        }
    }
}

/// The corpus: the generator's events, re-timed evenly over the year, the
/// marker words added. Deterministic: the store and the baseline get the
/// same events.
fn corpus(n_events: usize, calendar: &Calendar) -> impl Iterator<Item = Event> + use<> {
    let (start_us, span_us, feb_us, mar_us) = (
        calendar.start_us,
        calendar.span_us,
        calendar.feb_us,
        calendar.mar_us,
    );
    let generator = EventGenerator::new(&GenerateOptions {
        events: n_events as u64,
        seed: SEED,
        ..GenerateOptions::default()
    });
    let mut texts = 0u64;
    generator.enumerate().map(move |(idx, value)| {
        let mut event = Event::from_json(value).unwrap();
        event.at_us = start_us + (i128::from(span_us) * idx as i128 / n_events as i128) as i64;
        if event.at_us < mar_us
            && let Some(text) = event.text.as_mut()
        {
            texts += 1;
            if texts.is_multiple_of(MARK_EVERY) {
                text.push(' ');
                text.push_str(if event.at_us < feb_us {
                    JAN_MARK
                } else {
                    FEB_MARK
                });
            }
        }
        event
    })
}

/// The corpus in batches, from a thread, through a bounded channel.
fn spawn_corpus(n_events: usize) -> tokio::sync::mpsc::Receiver<Vec<Event>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    std::thread::spawn(move || {
        let mut events = corpus(n_events, &Calendar::new());
        loop {
            let batch: Vec<Event> = events.by_ref().take(GENERATOR_BATCH).collect();
            if batch.is_empty() || sender.blocking_send(batch).is_err() {
                break;
            }
        }
    });
    receiver
}

/// What the store pass learns about January and February.
#[derive(Default)]
struct Census {
    stored: u64,
    january: u64,
    january_by_user: HashMap<String, u64>,
    /// (id, user, post) of sampled January events.
    january_samples: Vec<(String, String, Option<String>)>,
    february_samples: Vec<String>,
    /// The last January events (id, user), newest last.
    january_tail: Vec<(String, String)>,
}

struct Sizes {
    segments: u64,
    segments_allocated: u64,
    db: u64,
    index: u64,
}

impl Sizes {
    fn of(data: &Path, index: &Path) -> Sizes {
        Sizes {
            segments: dir_bytes(&data.join("segments")),
            segments_allocated: allocated_bytes(&data.join("segments")),
            db: ["holdfast.db", "holdfast.db-wal", "holdfast.db-shm"]
                .iter()
                .map(|name| dir_bytes(&data.join(name)))
                .sum(),
            index: dir_bytes(index),
        }
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

fn secs(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64())
}

fn main() {
    let n_events: usize = env_number("HOLDFAST_BENCH_EVENTS", 5_000_000);
    let segment_mib: u64 = env_number("HOLDFAST_BENCH_SEGMENT_MIB", 64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(n_events, segment_mib));
}

/// The searches of the markers: (January hits, February hits) as seqs.
fn marker_hits(index: &SearchIndex, jan: &Query, feb: &Query) -> (Vec<u64>, u64) {
    let jan_hits = index
        .find(jan, &Scope::All, false, Sort::Newest, None, 1_000_000)
        .unwrap();
    let feb_total = index
        .find(feb, &Scope::All, false, Sort::Newest, None, 1)
        .unwrap()
        .total;
    (jan_hits.hits.iter().map(|hit| hit.seq).collect(), feb_total)
}

/// What the watcher saw, from the call of `retention::run`.
#[derive(Default)]
struct Watched {
    unreadable: Option<Duration>,
    /// (time, January marker hits) at each change.
    search: Vec<(Duration, u64)>,
}

#[allow(clippy::too_many_lines, reason = "one benchmark, in order")]
async fn run(n_events: usize, segment_mib: u64) {
    let calendar = Calendar::new();
    println!(
        "holdfast retention benchmark: {} generated events (seed {SEED}) over 2025-01-01..2025-12-31, segments of {segment_mib} MiB",
        thousands(n_events as u64)
    );
    println!(
        "machine: {} cores; load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let parent = std::env::var("HOLDFAST_BENCH_DIR").unwrap_or_else(|_| {
        std::env::temp_dir()
            .to_str()
            .expect("a UTF-8 temp dir")
            .to_owned()
    });
    let dir = tempfile::tempdir_in(parent).unwrap();
    println!("working directory: {}", dir.path().display());
    let data_dir = dir.path().join("data");
    let index_dir = dir.path().join("index");

    // 1. The archive.
    log("storing the corpus");
    let mut options = StoreOptions::for_data_dir(&data_dir);
    options.segment_max_bytes = segment_mib * 1024 * 1024;
    let (store, _) = Store::open(&options).await.unwrap();
    let mut generated = spawn_corpus(n_events);
    let started = Instant::now();
    let mut census = Census::default();
    let sample_step = (n_events as u64 / 12 / SAMPLES).max(1);
    let mut february = 0u64;
    let mut batch = Vec::with_capacity(STORE_BATCH);
    let mut next_report = n_events as u64 / 10;
    loop {
        let events = generated.recv().await;
        let done = events.is_none();
        for event in events.unwrap_or_default() {
            if event.at_us < calendar.feb_us {
                if census.january.is_multiple_of(sample_step) {
                    census.january_samples.push((
                        event.id.clone(),
                        event.user.clone(),
                        event.post.clone(),
                    ));
                }
                census.january += 1;
                *census
                    .january_by_user
                    .entry(event.user.clone())
                    .or_default() += 1;
                if census.january_tail.len() == 64 {
                    census.january_tail.remove(0);
                }
                census
                    .january_tail
                    .push((event.id.clone(), event.user.clone()));
            } else if event.at_us < calendar.mar_us {
                if february.is_multiple_of(sample_step) {
                    census.february_samples.push(event.id.clone());
                }
                february += 1;
            }
            batch.push(event);
        }
        if batch.len() >= STORE_BATCH || (done && !batch.is_empty()) {
            let statuses = store.append(std::mem::take(&mut batch)).await.unwrap();
            for status in statuses {
                assert!(
                    matches!(status, AppendStatus::Stored { .. }),
                    "every generated event is new: {status:?}"
                );
                census.stored += 1;
            }
            if census.stored >= next_report {
                log(&format!("  stored {}", thousands(census.stored)));
                next_report += n_events as u64 / 10;
            }
        }
        if done {
            break;
        }
    }
    let store_elapsed = started.elapsed();
    log(&format!(
        "stored {} events in {:.1} s; January {} events, February {}",
        thousands(census.stored),
        store_elapsed.as_secs_f64(),
        thousands(census.january),
        thousands(february)
    ));
    log("indexing (catch_up)");
    let index = Arc::new(SearchIndex::open_or_create(&index_dir).unwrap());
    let started = Instant::now();
    let indexed = index::catch_up(&store, &index, |_, _| {}).await.unwrap();
    let index_elapsed = started.elapsed();
    index.reload().unwrap();
    log(&format!(
        "indexed {} events in {:.1} s",
        thousands(indexed),
        index_elapsed.as_secs_f64()
    ));
    let segments_sealed = store
        .db()
        .segments()
        .await
        .unwrap()
        .iter()
        .filter(|segment| segment.sealed_at_ms.is_some())
        .count();
    let before = Sizes::of(&data_dir, &index_dir);
    log(&format!(
        "archive: segments {} MB ({segments_sealed} sealed), database {} MB, index {} MB",
        mb(before.segments),
        mb(before.db),
        mb(before.index)
    ));

    // 2. Policy and hold.
    let policies = PolicySet::parse_files(&[(
        "bench.toml".to_owned(),
        format!(
            "version = 1\n\n[[policy]]\nname = \"bench-one-month\"\nkeep_days = {}\n",
            calendar.keep_days
        ),
    )])
    .unwrap();
    let target = (census.january as f64 * HOLD_SHARE).max(1.0);
    let (custodian, custodian_january) = census
        .january_by_user
        .iter()
        .min_by(|a, b| {
            let distance = |n: u64| (n as f64 - target).abs();
            distance(*a.1)
                .total_cmp(&distance(*b.1))
                .then_with(|| a.0.cmp(b.0))
        })
        .map(|(user, n)| (user.clone(), *n))
        .unwrap();
    holds::create_hold(
        store.db(),
        &Scope::All,
        "bench",
        &NewHold {
            name: "bench-custodian".to_owned(),
            matter: "bench".to_owned(),
            reason: "exercise carrying".to_owned(),
            criteria: HoldCriteria {
                custodians: vec![custodian.clone()],
                ..HoldCriteria::default()
            },
        },
    )
    .await
    .unwrap();
    log(&format!(
        "policy: keep_days = {} as of {}; hold on custodian {custodian} ({} January events by them)",
        calendar.keep_days, calendar.as_of, custodian_january
    ));
    let parse = |text: &str| search::parse(text, &ParseOptions::default()).unwrap();
    let (jan_query, feb_query) = (parse(JAN_MARK), parse(FEB_MARK));
    let (jan_before, feb_before) = marker_hits(&index, &jan_query, &feb_query);
    assert!(!jan_before.is_empty() && feb_before > 0);
    let watch_id = census
        .january_tail
        .iter()
        .rev()
        .find(|(_, user)| *user != custodian)
        .map(|(id, _)| id.clone())
        .unwrap();

    // 3. The run, watched.
    log("retention run");
    let stop = Arc::new(AtomicBool::new(false));
    let call = Instant::now();
    let watcher = {
        let (store, index, stop) = (store.clone(), Arc::clone(&index), Arc::clone(&stop));
        let (jan_query, feb_query) = (jan_query.clone(), feb_query.clone());
        let mut last = jan_before.len() as u64;
        tokio::spawn(async move {
            let mut watched = Watched::default();
            while !stop.load(Ordering::Acquire) {
                if watched.unreadable.is_none()
                    && matches!(
                        store.get_event(&watch_id).await,
                        Err(StoreError::Shredded(_))
                    )
                {
                    watched.unreadable = Some(call.elapsed());
                }
                let (hits, _) = marker_hits(&index, &jan_query, &feb_query);
                if hits.len() as u64 != last {
                    last = hits.len() as u64;
                    watched.search.push((call.elapsed(), last));
                }
                tokio::time::sleep(WATCH_EVERY).await;
            }
            watched
        })
    };
    let base_kib = common::reset_peak();
    let outcome = holdfast::retention::run(
        &store,
        &index,
        &policies,
        &RunOptions {
            as_of: calendar.as_of,
            started_by: "bench".to_owned(),
            trigger: Trigger::Cli,
            compact: true,
        },
    )
    .await
    .unwrap();
    let call_elapsed = call.elapsed();
    let run_peak_growth_mib = common::peak_growth_mib(base_kib);
    let run_peak_mib = common::proc_status_kib("VmHWM") as f64 / 1024.0;
    stop.store(true, Ordering::Release);
    let watched = watcher.await.unwrap();
    let certificate = &outcome.certificate;
    let timings = &certificate.timings_ms;
    let compaction = certificate.compaction.clone().unwrap_or_default();
    let after = Sizes::of(&data_dir, &index_dir);
    let kept_by_hold: u64 = certificate.kept_by_holds.iter().map(|h| h.events).sum();
    log(&format!(
        "run {}: {} events deleted, {} epochs destroyed, {} carried, {} kept by the hold; {} ms in all",
        outcome.run_id,
        thousands(certificate.events_deleted),
        thousands(certificate.epochs_destroyed.len() as u64),
        thousands(certificate.events_carried),
        thousands(kept_by_hold),
        timings.total
    ));
    println!(
        "  timings_ms: {}",
        serde_json::to_string(timings).unwrap_or_default()
    );
    println!(
        "  compaction: {}",
        serde_json::to_string(&compaction).unwrap_or_default()
    );
    println!(
        "  index: {}",
        serde_json::to_string(&certificate.index).unwrap_or_default()
    );
    println!("  key scrub: {}", certificate.key_scrub);

    // Checks.
    log("checking");
    assert_eq!(
        certificate.events_deleted + kept_by_hold,
        census.january,
        "every January event is deleted or held"
    );
    let mut shredded = 0u64;
    let mut held = 0u64;
    for (id, user, post) in &census.january_samples {
        match store.get_event(id).await {
            Err(StoreError::Shredded(_)) => shredded += 1,
            Ok(Some(_)) => {
                let by_custodian = *user == custodian
                    || match post {
                        Some(post) => store
                            .post_events(post)
                            .await
                            .unwrap()
                            .iter()
                            .any(|stored| stored.event.user == custodian),
                        None => false,
                    };
                assert!(by_custodian, "January event {id} is readable but not held");
                held += 1;
            }
            other => panic!("January event {id}: {other:?}"),
        }
    }
    for id in &census.february_samples {
        assert!(
            matches!(store.get_event(id).await, Ok(Some(_))),
            "February event {id} must be readable"
        );
    }
    let (jan_after, feb_after) = marker_hits(&index, &jan_query, &feb_query);
    let readable = store.events_by_seqs(&jan_after).await.unwrap();
    assert_eq!(
        readable.len(),
        jan_after.len(),
        "every remaining January hit is a held (live) event"
    );
    assert_eq!(feb_after, feb_before, "February's hits are all still there");
    let started = Instant::now();
    let verified = store.verify().await.unwrap();
    let verify_elapsed = started.elapsed();
    assert!(verified.ok, "verify: {:?}", verified.problems);
    println!(
        "  January sample: {shredded} read as deleted, {held} readable and held (of {}); February sample: {} readable",
        census.january_samples.len(),
        census.february_samples.len()
    );
    println!(
        "  search `{JAN_MARK}`: {} events before, {} after (all held and readable); `{FEB_MARK}`: {} before and after",
        jan_before.len(),
        jan_after.len(),
        feb_before
    );
    println!(
        "  verify: ok in {:.1} s; {} records, {} shredded, {} compacted",
        verify_elapsed.as_secs_f64(),
        thousands(verified.records),
        thousands(verified.shredded_records),
        thousands(verified.compacted_records)
    );
    drop(index);
    store.close().await;

    // 4. Baseline.
    let baseline = sqlite_baseline(dir.path(), n_events, &calendar, &custodian).await;
    if let Some(baseline) = &baseline {
        assert_eq!(
            baseline.deleted, certificate.events_deleted,
            "SQLite deleted what holdfast deleted"
        );
    }

    // 5. Report.
    let report = Report {
        n_events,
        segment_mib,
        census: &census,
        custodian: &custodian,
        before: &before,
        after: &after,
        segments_sealed,
        outcome: &outcome,
        call_elapsed,
        watched: &watched,
        run_peak: (run_peak_mib, run_peak_growth_mib),
        verify_elapsed,
        baseline: baseline.as_ref(),
        loading: (store_elapsed, index_elapsed),
    };
    report.print();
}

struct Baseline {
    version: String,
    load: Duration,
    bytes_before: u64,
    allocated_before: u64,
    deleted: u64,
    delete: Duration,
    optimize: Duration,
    vacuum: Duration,
    bytes_after_delete: u64,
    bytes_after: u64,
    allocated_after: u64,
    peak_mib: f64,
    peak_growth_mib: f64,
}

fn sqlite_files(path: &Path) -> (u64, u64) {
    let mut logical = 0;
    let mut allocated = 0;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        logical += dir_bytes(Path::new(&name));
        allocated += allocated_bytes(Path::new(&name));
    }
    (logical, allocated)
}

async fn execute(pool: &SqlitePool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

/// The same events and the same deletion in SQLite + FTS5; `None` when
/// this SQLite has no FTS5.
async fn sqlite_baseline(
    dir: &Path,
    n_events: usize,
    calendar: &Calendar,
    custodian: &str,
) -> Option<Baseline> {
    log("SQLite baseline: loading");
    let path = dir.join("baseline.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&pool)
        .await
        .unwrap();
    for statement in [
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, \
         team TEXT NOT NULL, channel TEXT NOT NULL, user TEXT NOT NULL, post TEXT, \
         at INTEGER NOT NULL, text TEXT)",
        "CREATE INDEX events_team ON events (team)",
        "CREATE INDEX events_channel ON events (channel)",
        "CREATE INDEX events_user ON events (user)",
        "CREATE INDEX events_post ON events (post)",
        "CREATE INDEX events_at ON events (at)",
    ] {
        execute(&pool, statement).await;
    }
    if let Err(error) = sqlx::query(
        "CREATE VIRTUAL TABLE events_fts USING fts5(text, content='events', content_rowid='seq', \
         tokenize='unicode61 remove_diacritics 2')",
    )
    .execute(&pool)
    .await
    {
        println!(
            "FTS5 IS NOT AVAILABLE in this SQLite ({version}): {error}; no baseline in this run"
        );
        return None;
    }
    let mut events = corpus(n_events, calendar);
    let mut load = Duration::ZERO;
    let mut next_seq = 1i64;
    loop {
        let chunk: Vec<Event> = events.by_ref().take(SQL_TRANSACTION_ROWS).collect();
        if chunk.is_empty() {
            break;
        }
        let first_seq = next_seq;
        let started = Instant::now();
        let mut transaction = pool.begin().await.unwrap();
        for rows in chunk.chunks(SQL_INSERT_ROWS) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO events (seq, id, kind, team, channel, user, post, at, text) ",
            );
            insert.push_values(rows, |mut row, event| {
                row.push_bind(next_seq)
                    .push_bind(&event.id)
                    .push_bind(event.kind.as_str())
                    .push_bind(&event.team)
                    .push_bind(&event.channel)
                    .push_bind(&event.user)
                    .push_bind(event.post.as_deref())
                    .push_bind(event.at_us)
                    .push_bind(event.text.as_deref());
                next_seq += 1;
            });
            insert.build().execute(&mut *transaction).await.unwrap();
        }
        sqlx::query(
            "INSERT INTO events_fts (rowid, text) SELECT seq, text FROM events \
             WHERE seq >= ?1 AND seq < ?2 AND text IS NOT NULL",
        )
        .bind(first_seq)
        .bind(next_seq)
        .execute(&mut *transaction)
        .await
        .unwrap();
        transaction.commit().await.unwrap();
        load += started.elapsed();
    }
    execute(
        &pool,
        "INSERT INTO events_fts (events_fts) VALUES ('optimize')",
    )
    .await;
    execute(&pool, "PRAGMA wal_checkpoint(TRUNCATE)").await;
    let (bytes_before, allocated_before) = sqlite_files(&path);
    log(&format!(
        "SQLite {version}: {} rows loaded in {:.1} s, {} MB",
        thousands(next_seq as u64 - 1),
        load.as_secs_f64(),
        mb(bytes_before)
    ));

    // The deletion: January, except the custodian's events and every event
    // of a post the custodian touched (what the hold keeps in holdfast).
    let doomed = "at < ?1 AND user <> ?2 AND (post IS NULL OR post NOT IN \
                  (SELECT post FROM events WHERE user = ?2 AND post IS NOT NULL))";
    let base_kib = common::reset_peak();
    log("SQLite baseline: FTS5 delete + DELETE, one transaction");
    let started = Instant::now();
    let mut transaction = pool.begin().await.unwrap();
    sqlx::query(&format!(
        "CREATE TEMP TABLE doomed AS SELECT seq FROM events WHERE {doomed}"
    ))
    .bind(calendar.feb_us)
    .bind(custodian)
    .execute(&mut *transaction)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO events_fts (events_fts, rowid, text) SELECT 'delete', seq, text FROM events \
         WHERE seq IN (SELECT seq FROM doomed) AND text IS NOT NULL",
    )
    .execute(&mut *transaction)
    .await
    .unwrap();
    let deleted = sqlx::query("DELETE FROM events WHERE seq IN (SELECT seq FROM doomed)")
        .execute(&mut *transaction)
        .await
        .unwrap()
        .rows_affected();
    sqlx::query("DROP TABLE doomed")
        .execute(&mut *transaction)
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    let delete = started.elapsed();
    let (bytes_after_delete, _) = sqlite_files(&path);
    log("SQLite baseline: FTS5 optimize");
    let started = Instant::now();
    execute(
        &pool,
        "INSERT INTO events_fts (events_fts) VALUES ('optimize')",
    )
    .await;
    let optimize = started.elapsed();
    log("SQLite baseline: VACUUM + wal_checkpoint(TRUNCATE)");
    let started = Instant::now();
    execute(&pool, "VACUUM").await;
    execute(&pool, "PRAGMA wal_checkpoint(TRUNCATE)").await;
    let vacuum = started.elapsed();
    let peak_growth_mib = common::peak_growth_mib(base_kib);
    let peak_mib = common::proc_status_kib("VmHWM") as f64 / 1024.0;
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE at < ?1")
        .bind(calendar.feb_us)
        .fetch_one(&pool)
        .await
        .unwrap();
    let jan_hits: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events_fts WHERE events_fts MATCH ?1")
            .bind(JAN_MARK)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    let (bytes_after, allocated_after) = sqlite_files(&path);
    log(&format!(
        "SQLite: deleted {} rows ({} January rows left, {} FTS5 hits for {JAN_MARK}); delete {:.2} s, optimize {:.2} s, VACUUM {:.2} s; {} MB -> {} MB",
        thousands(deleted),
        thousands(remaining as u64),
        thousands(jan_hits as u64),
        delete.as_secs_f64(),
        optimize.as_secs_f64(),
        vacuum.as_secs_f64(),
        mb(bytes_before),
        mb(bytes_after)
    ));
    Some(Baseline {
        version,
        load,
        bytes_before,
        allocated_before,
        deleted,
        delete,
        optimize,
        vacuum,
        bytes_after_delete,
        bytes_after,
        allocated_after,
        peak_mib,
        peak_growth_mib,
    })
}

struct Report<'a> {
    n_events: usize,
    segment_mib: u64,
    census: &'a Census,
    custodian: &'a str,
    before: &'a Sizes,
    after: &'a Sizes,
    segments_sealed: usize,
    outcome: &'a holdfast::retention::RunOutcome,
    call_elapsed: Duration,
    watched: &'a Watched,
    run_peak: (f64, f64),
    verify_elapsed: Duration,
    baseline: Option<&'a Baseline>,
    loading: (Duration, Duration),
}

impl Report<'_> {
    #[allow(clippy::too_many_lines, reason = "one table after another")]
    fn print(&self) {
        let certificate = &self.outcome.certificate;
        let t = &certificate.timings_ms;
        let compaction = certificate.compaction.clone().unwrap_or_default();
        let ms = |n: u64| Duration::from_millis(n);
        let unreadable = ms(t.plan + t.carry + t.destroy);
        let unsearchable = unreadable + ms(t.index_delete);
        let total = ms(t.total);
        let kept: u64 = certificate.kept_by_holds.iter().map(|h| h.events).sum();
        let reclaimed_allocated = self
            .before
            .segments_allocated
            .saturating_sub(self.after.segments_allocated);
        println!();
        println!(
            "## Results: {} events (seed {SEED}), 2025-01-01..2025-12-31, segments of {} MiB; January: {} events",
            thousands(self.n_events as u64),
            self.segment_mib,
            thousands(self.census.january)
        );
        println!();
        println!(
            "archive before: segments {} MB ({} sealed; {} MB allocated), database {} MB, index {} MB; stored in {:.1} s, indexed in {:.1} s",
            mb(self.before.segments),
            self.segments_sealed,
            mb(self.before.segments_allocated),
            mb(self.before.db),
            mb(self.before.index),
            self.loading.0.as_secs_f64(),
            self.loading.1.as_secs_f64()
        );
        println!(
            "archive after: segments {} MB allocated, database {} MB, index {} MB",
            mb(self.after.segments_allocated),
            mb(self.after.db),
            mb(self.after.index)
        );
        println!(
            "run: {} deleted, {} key epochs destroyed, hold on {} kept {} (carried {}); {} index documents purged, {} index segments merged",
            thousands(certificate.events_deleted),
            thousands(certificate.epochs_destroyed.len() as u64),
            self.custodian,
            thousands(kept),
            thousands(certificate.events_carried),
            thousands(certificate.index.requested),
            certificate.index.segments_merged
        );
        println!();
        println!("| holdfast stage | ms |");
        println!("|---|---:|");
        for (stage, value) in [
            ("plan (index catch-up + plan)", t.plan),
            ("carry", t.carry),
            ("destroy", t.destroy),
            ("index delete (gone from search)", t.index_delete),
            ("index merge (words gone from the files)", t.index_merge),
            ("scrub", t.scrub),
            ("compact", t.compact),
            ("certificate", t.certificate),
            ("total", t.total),
        ] {
            println!("| {stage} | {} |", thousands(value));
        }
        println!();
        let watched_search = self.watched.search.last().map(|(at, _)| *at);
        println!(
            "watcher (from the call of `run`, polling every {} ms): late-January event unreadable after {}, January word's hits at their final count after {}; `run` returned after {} s",
            WATCH_EVERY.as_millis(),
            self.watched
                .unreadable
                .map_or("(never seen)".to_owned(), |at| format!("{} s", secs(at))),
            watched_search.map_or("(no change seen)".to_owned(), |at| format!(
                "{} s",
                secs(at)
            )),
            secs(self.call_elapsed)
        );
        println!();
        println!("| | holdfast | SQLite + FTS5 | holdfast / SQLite |");
        println!("|---|---:|---:|---:|");
        let b = self.baseline;
        let ratio = |ours: Duration, theirs: Option<Duration>| {
            theirs.map_or("-".to_owned(), |theirs| {
                format!("{:.2}×", ours.as_secs_f64() / theirs.as_secs_f64())
            })
        };
        let cell =
            |theirs: Option<Duration>| theirs.map_or("-".to_owned(), |d| format!("{} s", secs(d)));
        let b_delete = b.map(|b| b.delete);
        let b_total = b.map(|b| b.delete + b.optimize + b.vacuum);
        let b_vacuum_only = b.map(|b| b.delete + b.vacuum);
        println!(
            "| events deleted | {} | {} | |",
            thousands(certificate.events_deleted),
            b.map_or("-".to_owned(), |b| thousands(b.deleted))
        );
        println!(
            "| until unreadable (plan + carry + destroy; SQLite: FTS5 delete + DELETE committed) | {} s | {} | {} |",
            secs(unreadable),
            cell(b_delete),
            ratio(unreadable, b_delete)
        );
        println!(
            "| until gone from search (+ index delete; SQLite: the same commit) | {} s | {} | {} |",
            secs(unsearchable),
            cell(b_delete),
            ratio(unsearchable, b_delete)
        );
        println!(
            "| words gone from the index files (+ merge; SQLite: + FTS5 optimize) | {} s | {} | {} |",
            secs(unsearchable + ms(t.index_merge)),
            cell(b.map(|b| b.delete + b.optimize)),
            ratio(
                unsearchable + ms(t.index_merge),
                b.map(|b| b.delete + b.optimize)
            )
        );
        println!(
            "| disk reclaiming step (compact; SQLite: VACUUM + checkpoint) | {} s | {} | {} |",
            secs(ms(t.compact)),
            cell(b.map(|b| b.vacuum)),
            ratio(ms(t.compact), b.map(|b| b.vacuum))
        );
        println!(
            "| total (run; SQLite: delete + optimize + VACUUM) | {} s | {} | {} |",
            secs(total),
            cell(b_total),
            ratio(total, b_total)
        );
        println!(
            "| total without optimize (SQLite: delete + VACUUM) | | {} | {} |",
            cell(b_vacuum_only),
            ratio(total, b_vacuum_only)
        );
        let reclaimed_sqlite = b.map(|b| b.allocated_before.saturating_sub(b.allocated_after));
        println!(
            "| disk reclaimed (holdfast: compaction.bytes_reclaimed; SQLite: allocated size before - after) | {} MB | {} | |",
            mb(compaction.bytes_reclaimed),
            reclaimed_sqlite.map_or("-".to_owned(), |bytes| format!("{} MB", mb(bytes)))
        );
        println!(
            "| disk reclaimed per second of the reclaiming step | {} MB/s | {} | |",
            if t.compact == 0 {
                "-".to_owned()
            } else {
                format!(
                    "{:.0}",
                    compaction.bytes_reclaimed as f64 / 1e6 / (t.compact as f64 / 1e3)
                )
            },
            b.zip(reclaimed_sqlite)
                .map_or("-".to_owned(), |(b, bytes)| format!(
                    "{:.0} MB/s",
                    bytes as f64 / 1e6 / b.vacuum.as_secs_f64()
                ))
        );
        println!(
            "| disk reclaimed per second of the whole run | {:.0} MB/s | {} | |",
            compaction.bytes_reclaimed as f64 / 1e6 / total.as_secs_f64(),
            b.zip(reclaimed_sqlite).zip(b_total).map_or(
                "-".to_owned(),
                |((_, bytes), total)| format!(
                    "{:.0} MB/s",
                    bytes as f64 / 1e6 / total.as_secs_f64()
                )
            )
        );
        println!(
            "| size before → after | segments {} → {} MB allocated (database {} → {} MB, index {} → {} MB) | {} | |",
            mb(self.before.segments_allocated),
            mb(self.after.segments_allocated),
            mb(self.before.db),
            mb(self.after.db),
            mb(self.before.index),
            mb(self.after.index),
            b.map_or("-".to_owned(), |b| format!(
                "{} → {} MB (after the DELETE: {} MB)",
                mb(b.bytes_before),
                mb(b.bytes_after),
                mb(b.bytes_after_delete)
            ))
        );
        println!(
            "| peak RSS during the deletion, MiB (growth) | {:.0} ({:.0}) | {} | |",
            self.run_peak.0,
            self.run_peak.1,
            b.map_or("-".to_owned(), |b| format!(
                "{:.0} ({:.0})",
                b.peak_mib, b.peak_growth_mib
            ))
        );
        println!();
        println!(
            "compaction: {} segments scanned, {} compacted, {} ranges, {} records, {} MB of ranges, {} MB reclaimed ({}), segment dir allocated size down by {} MB",
            compaction.segments_scanned,
            compaction.segments_compacted,
            compaction.ranges,
            thousands(compaction.records),
            mb(compaction.range_bytes),
            mb(compaction.bytes_reclaimed),
            if compaction.holes_punched {
                "holes punched"
            } else {
                "zeroed"
            },
            mb(reclaimed_allocated)
        );
        println!(
            "verify after the run: ok, {:.1} s",
            self.verify_elapsed.as_secs_f64()
        );
        if let Some(b) = b {
            println!(
                "SQLite {}: loaded in {:.1} s; allocated {} → {} MB",
                b.version,
                b.load.as_secs_f64(),
                mb(b.allocated_before),
                mb(b.allocated_after)
            );
        }
    }
}
