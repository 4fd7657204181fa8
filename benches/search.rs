//! Search benchmark: `cargo bench --bench search` (events:
//! `HOLDFAST_BENCH_EVENTS`, default 5,000,000; a quick run:
//! `HOLDFAST_BENCH_EVENTS=200000 cargo bench --bench search`).
//!
//! On one generated corpus (the `holdfast generate` corpus, seed 42), in one
//! run, with the events streamed from the generator (never all in memory):
//!
//! 1. **store**: the events appended to a fresh archive (SQLite metadata,
//!    batches of 10,000), timed but not the subject;
//! 2. **index**: `index::catch_up` over the stored archive, which commits
//!    as it goes (the last seq as payload; at most once a second since
//!    `cdf0c21`), the step the `serve` follower takes whenever the store is
//!    ahead of it: events/s (reading and
//!    decrypting from the store included, waiting for tantivy's merges at the
//!    end included), the longest interval between two commits (what bounds
//!    visibility), index bytes per event, segments, peak RSS; and, for
//!    comparison, the same events read from the store alone. Then a **live
//!    tail**: the `serve` follower (`index::Follower`, `serve`'s default
//!    refresh) runs while more events are appended at a steady rate, and each
//!    batch's delay from acknowledgement to searchable is recorded;
//! 3. **queries**: a fixed mix through `search::search` (sorted by time, the
//!    top 20 hits read from the store, decrypted, with highlighted snippets,
//!    exact totals), at 1 and 4 concurrent clients (tokio tasks issuing the
//!    query in a loop): p50, p99, queries/s; and, at 1 client,
//!    `SearchIndex::find` alone and the store reads `search` makes alone, to
//!    split index time from store time;
//! 4. **baseline**: the same events in SQLite FTS5 (one row per event, text,
//!    user, channel, team and time indexed, `unicode61 remove_diacritics 2`),
//!    loaded 5,000 rows per transaction, then `optimize`d; the same queries in
//!    FTS5 syntax with SQL filters: an exact `COUNT(*)` and the top 20 by time
//!    with their text and `snippet()` (computed for those 20 only); the same
//!    latencies; ratios.
//!
//! Each measurement cell runs until `HOLDFAST_BENCH_CELL_QUERIES` queries
//! (default 1,000) or `HOLDFAST_BENCH_CELL_SECONDS` (default 8) have passed,
//! whichever comes first, and at least 3 queries per client. Temporary files
//! go to `HOLDFAST_BENCH_DIR` (default: the system's temporary directory).
#![allow(clippy::unwrap_used, reason = "a benchmark binary")]

mod common;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holdfast::event::Event;
use holdfast::generate::{EventGenerator, GenerateOptions};
use holdfast::index::{self, Follower, SearchIndex, Sort};
use holdfast::search::{self, Filter, ParseOptions, Query, Scope, SearchRequest, Versions};
use holdfast::store::{AppendStatus, Store, StoreOptions};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

const SEED: u64 = 42;
/// Events per batch from the generator thread (and per append of the tail).
const GENERATOR_BATCH: usize = 1_000;
/// Events per `Store::append` while storing the corpus.
const STORE_BATCH: usize = 10_000;
/// Rows per FTS5 transaction (a few hundred milliseconds of work).
const FTS_TRANSACTION_ROWS: usize = 5_000;
/// Rows per INSERT statement (8 bound values each).
const FTS_INSERT_ROWS: usize = 500;
/// The tail's offered rate, events per second.
const TAIL_EVENTS_PER_S: u64 = 10_000;
const PAGE: usize = 20;
const CONCURRENCY: [usize; 2] = [1, 4];

/// One query of the mix, in both languages.
struct QueryKind {
    kind: &'static str,
    holdfast: &'static str,
    /// The FTS5 MATCH expression; the filters of `holdfast` (if any) become
    /// SQL conditions.
    fts5: &'static str,
    /// `from:` and `in:` of the holdfast query, as SQL equalities.
    user_channel: Option<(&'static str, &'static str)>,
    /// The p50 target, milliseconds, snippets included.
    target_p50_ms: f64,
}

/// Words from the generator's vocabulary (`src/generate`): `fenlas` is one
/// of its rarest pseudo-words (about 0.06 % of messages), `need` one of its
/// 40 most frequent words (about 6 % of messages); `wire transfer`, `raptor`
/// and `offshore` are its planted phrases (about 1 % of messages each);
/// `trad*` stands for trade, trader, traders, trading and trade_date; the
/// user and channel are the busiest pair of the corpus's first weeks, which
/// every corpus of at least 200,000 events covers.
const QUERIES: [QueryKind; 8] = [
    QueryKind {
        kind: "rare term",
        holdfast: "fenlas",
        fts5: "fenlas",
        user_channel: None,
        target_p50_ms: 1.0,
    },
    QueryKind {
        kind: "common term",
        holdfast: "need",
        fts5: "need",
        user_channel: None,
        target_p50_ms: 1.0,
    },
    QueryKind {
        kind: "AND",
        holdfast: "gas AND price",
        fts5: "gas AND price",
        user_channel: None,
        target_p50_ms: 1.0,
    },
    QueryKind {
        kind: "OR",
        holdfast: "raptor OR offshore",
        fts5: "raptor OR offshore",
        user_channel: None,
        target_p50_ms: 1.0,
    },
    QueryKind {
        kind: "phrase",
        holdfast: "\"wire transfer\"",
        fts5: "\"wire transfer\"",
        user_channel: None,
        target_p50_ms: 25.0,
    },
    QueryKind {
        kind: "NEAR",
        holdfast: "credit NEAR(5) risk",
        fts5: "NEAR(credit risk, 5)",
        user_channel: None,
        target_p50_ms: 25.0,
    },
    QueryKind {
        kind: "prefix",
        holdfast: "trad*",
        fts5: "trad*",
        user_channel: None,
        target_p50_ms: 1.0,
    },
    QueryKind {
        kind: "term + user + channel + dates",
        holdfast: "price from:lokay-m in:it-help sent:2024-01-08..2024-01-21",
        fts5: "price",
        user_channel: Some(("lokay-m", "it-help")),
        target_p50_ms: 1.0,
    },
];

struct Settings {
    n_events: usize,
    tail_events: usize,
    refresh_ms: u64,
    cell_seconds: f64,
    cell_queries: usize,
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Latencies of one measurement cell.
#[derive(Clone)]
struct Cell {
    n: usize,
    p50: Duration,
    p99: Duration,
    mean: Duration,
    per_s: f64,
}

impl Cell {
    fn of(mut latencies: Vec<Duration>, wall: Duration) -> Cell {
        latencies.sort_unstable();
        let n = latencies.len();
        let rank = |p: f64| latencies[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Cell {
            n,
            p50: rank(0.50),
            p99: rank(0.99),
            mean: latencies.iter().sum::<Duration>() / n as u32,
            per_s: n as f64 / wall.as_secs_f64(),
        }
    }
}

fn ms(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (idx, digit) in digits.chars().enumerate() {
        if idx > 0 && (digits.len() - idx).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn log(what: &str) {
    println!("[{}] {what}", chrono::Utc::now().format("%H:%M:%S"));
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The corpus, streamed by a thread in batches of [`GENERATOR_BATCH`]
/// through a bounded channel.
fn spawn_generator(n_events: usize) -> tokio::sync::mpsc::Receiver<Vec<Event>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    std::thread::spawn(move || {
        let mut generator = EventGenerator::new(&GenerateOptions {
            events: n_events as u64,
            seed: SEED,
            ..GenerateOptions::default()
        });
        loop {
            let batch: Vec<Event> = generator
                .by_ref()
                .take(GENERATOR_BATCH)
                .map(|value| Event::from_json(value).unwrap())
                .collect();
            if batch.is_empty() || sender.blocking_send(batch).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Appends `events`, all of which must be new; returns the last seq.
async fn append_all(store: &Store, events: Vec<Event>) -> u64 {
    let statuses = store.append(events).await.unwrap();
    let mut last = 0;
    for status in statuses {
        match status {
            AppendStatus::Stored { seq } => last = last.max(seq),
            other => panic!("the generated corpus must store every event: {other:?}"),
        }
    }
    last
}

/// Runs `query` in a loop on `clients` tasks until the cell's budget is
/// spent; the latencies of every call.
async fn measure<F, Fut>(clients: usize, settings: &Settings, query: F) -> Cell
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let query = Arc::new(query);
    let issued = Arc::new(AtomicUsize::new(0));
    let budget = Duration::from_secs_f64(settings.cell_seconds);
    let (max, min) = (settings.cell_queries.max(clients * 3), clients * 3);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (query, issued) = (Arc::clone(&query), Arc::clone(&issued));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let issued = issued.fetch_add(1, Ordering::Relaxed);
                if issued >= max || (issued >= min && started.elapsed() >= budget) {
                    break;
                }
                let at = Instant::now();
                query().await;
                latencies.push(at.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Cell::of(latencies, started.elapsed())
}

/// The time range of a parsed query's `sent:` filter.
fn time_range(query: &Query) -> Option<(i64, i64)> {
    match query {
        Query::Filter(Filter::TimeRange {
            from_us: Some(from),
            to_us: Some(to),
        }) => Some((*from, *to)),
        Query::And(children) => children.iter().find_map(time_range),
        _ => None,
    }
}

/// The SQL of one query of the mix: an exact count and a page.
struct FtsQuery {
    count_sql: String,
    page_sql: String,
    match_expr: &'static str,
    /// user, channel, from (inclusive), to (exclusive).
    filter: Option<(&'static str, &'static str, i64, i64)>,
}

impl FtsQuery {
    fn new(kind: &QueryKind, parsed: &Query) -> FtsQuery {
        let filter = kind.user_channel.map(|(user, channel)| {
            let (from, to) = time_range(parsed).expect("the filtered query has a sent: range");
            (user, channel, from, to)
        });
        let conditions = if filter.is_some() {
            " AND e.user = ?2 AND e.channel = ?3 AND e.at >= ?4 AND e.at < ?5"
        } else {
            ""
        };
        let count_sql = if filter.is_some() {
            format!(
                "SELECT count(*) FROM events_fts CROSS JOIN events e ON e.seq = events_fts.rowid \
                 WHERE events_fts MATCH ?1{conditions}"
            )
        } else {
            "SELECT count(*) FROM events_fts WHERE events_fts MATCH ?1".to_owned()
        };
        // The 20 newest first (sorting keys only), then the text and
        // snippet() of those 20: computing snippet() for every match before
        // sorting would be a handicap, not a baseline. CROSS JOIN keeps the
        // FTS5 match as the outer loop: left to itself, SQLite starts the
        // filtered query from the user index and probes FTS5 row by row,
        // 50 times slower on this corpus.
        let page_sql = format!(
            "SELECT e.seq, e.id, e.team, e.channel, e.user, e.at, e.text, \
             snippet(events_fts, 0, '[', ']', '…', 40) AS snippet \
             FROM events_fts JOIN events e ON e.seq = events_fts.rowid \
             WHERE events_fts MATCH ?1 AND events_fts.rowid IN ( \
               SELECT e.seq FROM events_fts CROSS JOIN events e ON e.seq = events_fts.rowid \
               WHERE events_fts MATCH ?1{conditions} ORDER BY e.at DESC, e.seq DESC LIMIT {PAGE}) \
             ORDER BY e.at DESC, e.seq DESC"
        );
        FtsQuery {
            count_sql,
            page_sql,
            match_expr: kind.fts5,
            filter,
        }
    }

    /// The exact count and the first page: (count, [(seq, text, snippet)]).
    async fn run(&self, pool: &SqlitePool) -> (i64, Vec<(i64, String, String)>) {
        let mut count = sqlx::query_scalar::<_, i64>(&self.count_sql).bind(self.match_expr);
        let mut page = sqlx::query(&self.page_sql).bind(self.match_expr);
        if let Some((user, channel, from, to)) = self.filter {
            count = count.bind(user).bind(channel).bind(from).bind(to);
            page = page.bind(user).bind(channel).bind(from).bind(to);
        }
        let total = count.fetch_one(pool).await.unwrap();
        let rows = page.fetch_all(pool).await.unwrap();
        let hits = rows
            .iter()
            .map(|row| {
                (
                    row.get::<i64, _>("seq"),
                    row.get::<String, _>("text"),
                    row.get::<String, _>("snippet"),
                )
            })
            .collect();
        (total, hits)
    }
}

struct IndexFigures {
    events: usize,
    /// `Store::events_from` alone over the same events: catch-up's input.
    read_elapsed: Duration,
    elapsed: Duration,
    to_last_commit: Duration,
    commits: u64,
    max_commit_interval: Duration,
    bytes: u64,
    segments: usize,
    peak_rss_mib: f64,
    peak_rss_growth_mib: f64,
}

struct TailFigures {
    events: usize,
    batches: usize,
    offered_per_s: f64,
    lag_p50: Duration,
    lag_p99: Duration,
    lag_max: Duration,
}

struct FtsLoadFigures {
    events: usize,
    load: Duration,
    max_transaction: Duration,
    optimize: Duration,
    bytes_total: u64,
    bytes_fts: u64,
    peak_rss_growth_mib: f64,
}

/// Figures of one query kind.
struct QueryFigures {
    total_posts: u64,
    total_events: u64,
    fts_total: Option<i64>,
    holdfast: Vec<Cell>,
    find_only: Cell,
    store_only: Cell,
    fts: Vec<Cell>,
}

fn main() {
    let settings = Settings {
        n_events: env_number("HOLDFAST_BENCH_EVENTS", 5_000_000),
        tail_events: 0,
        refresh_ms: env_number(
            "HOLDFAST_BENCH_REFRESH_MS",
            holdfast::config::DEFAULT_INDEX_REFRESH_MS,
        ),
        cell_seconds: env_number("HOLDFAST_BENCH_CELL_SECONDS", 8.0),
        cell_queries: env_number("HOLDFAST_BENCH_CELL_QUERIES", 1_000),
    };
    let default_tail = (settings.n_events / 20).min(100_000) / GENERATOR_BATCH * GENERATOR_BATCH;
    let settings = Settings {
        tail_events: env_number("HOLDFAST_BENCH_TAIL_EVENTS", default_tail) / GENERATOR_BATCH
            * GENERATOR_BATCH,
        ..settings
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(&settings));
}

async fn run(settings: &Settings) {
    let n_events = settings.n_events;
    println!(
        "holdfast search benchmark: {} generated events (seed {SEED}), live tail of {} at {TAIL_EVENTS_PER_S}/s",
        thousands(n_events as u64),
        thousands(settings.tail_events as u64)
    );
    println!(
        "machine: {} cores, {}, {} MiB memory",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|cpuinfo| cpuinfo
                .lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned()))
            .unwrap_or_default(),
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|meminfo| meminfo
                .lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()))
            .unwrap_or(0)
            / 1024,
    );
    let parent = std::env::var("HOLDFAST_BENCH_DIR").unwrap_or_else(|_| {
        std::env::temp_dir()
            .to_str()
            .expect("a UTF-8 temp dir")
            .to_owned()
    });
    let dir = tempfile::tempdir_in(parent).unwrap();
    println!("working directory: {}", dir.path().display());

    // 1. Store.
    log("storing the corpus");
    let mut generated = spawn_generator(n_events);
    let options = StoreOptions::for_data_dir(dir.path().join("data"));
    let (store, _) = Store::open(&options).await.unwrap();
    let main_events = n_events - settings.tail_events;
    let started = Instant::now();
    let mut stored = 0;
    let mut batch = Vec::with_capacity(STORE_BATCH);
    while stored < main_events {
        let Some(events) = generated.recv().await else {
            break;
        };
        stored += events.len();
        batch.extend(events);
        if batch.len() >= STORE_BATCH || stored >= main_events {
            append_all(&store, std::mem::take(&mut batch)).await;
        }
    }
    let store_elapsed = started.elapsed();
    let store_bytes = dir_bytes(&dir.path().join("data"));
    log(&format!(
        "stored {} events in {:.1} s ({:.0} events/s, generation running alongside), {:.0} bytes an event on disk",
        thousands(stored as u64),
        store_elapsed.as_secs_f64(),
        stored as f64 / store_elapsed.as_secs_f64(),
        store_bytes as f64 / stored as f64
    ));

    // 2. Index: catch_up (progress is reported at each commit).
    log("indexing (catch_up)");
    let index_path = dir.path().join("index");
    let index = Arc::new(SearchIndex::open_or_create(&index_path).unwrap());
    let base = common::reset_peak();
    let started = Instant::now();
    let mut commits = 0u64;
    let mut last_commit = started;
    let mut max_commit_interval = Duration::ZERO;
    let mut next_report = main_events / 10;
    let indexed = index::catch_up(&store, &index, |done, _total| {
        let now = Instant::now();
        commits += 1;
        max_commit_interval = max_commit_interval.max(now - last_commit);
        last_commit = now;
        if done as usize >= next_report {
            log(&format!(
                "  indexed {} ({:.0} events/s so far)",
                thousands(done),
                done as f64 / started.elapsed().as_secs_f64()
            ));
            next_report += main_events / 10;
        }
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    let peak_rss_mib = common::proc_status_kib("VmHWM") as f64 / 1024.0;
    let peak_rss_growth_mib = common::peak_growth_mib(base);
    assert_eq!(indexed as usize, stored);
    index.reload().unwrap();
    log("reading the store alone (events_from, 5,000 at a time), for comparison");
    let read_elapsed = {
        let started = Instant::now();
        let mut next = 1;
        loop {
            let events = store.events_from(next, 5_000).await.unwrap();
            let Some(last) = events.last() else { break };
            next = last.seq + 1;
        }
        started.elapsed()
    };
    log(&format!(
        "read {} events in {:.1} s: {:.0} events/s",
        thousands(stored as u64),
        read_elapsed.as_secs_f64(),
        stored as f64 / read_elapsed.as_secs_f64()
    ));
    let index_figures = IndexFigures {
        events: stored,
        read_elapsed,
        elapsed,
        to_last_commit: last_commit - started,
        commits,
        max_commit_interval,
        bytes: dir_bytes(&index_path),
        segments: index.searcher().unwrap().segment_readers().len(),
        peak_rss_mib,
        peak_rss_growth_mib,
    };
    log(&format!(
        "indexed {} events in {:.1} s: {:.0} events/s; {} commits, longest interval {} ms; {:.0} bytes an event; {} segments; peak RSS {:.0} MiB",
        thousands(stored as u64),
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64(),
        commits,
        max_commit_interval.as_millis(),
        index_figures.bytes as f64 / stored as f64,
        index_figures.segments,
        peak_rss_mib
    ));

    // 2b. Live tail with the serve follower.
    let tail = live_tail(settings, &store, &index, &mut generated).await;
    let total_events = stored + tail.as_ref().map_or(0, |tail| tail.events);
    let index_bytes_all = dir_bytes(&index_path);
    index.reload().unwrap();
    let segments_all = index.searcher().unwrap().segment_readers().len();
    let store_bytes_all = dir_bytes(&dir.path().join("data"));
    log(&format!(
        "archive: {} events; index {:.1} MB ({:.0} bytes an event, {segments_all} segments); store {:.1} MB",
        thousands(total_events as u64),
        index_bytes_all as f64 / 1e6,
        index_bytes_all as f64 / total_events as f64,
        store_bytes_all as f64 / 1e6
    ));

    // 3. holdfast queries.
    let parse_options = ParseOptions::default();
    let parsed: Vec<Query> = QUERIES
        .iter()
        .map(|kind| search::parse(kind.holdfast, &parse_options).unwrap())
        .collect();
    let mut figures = Vec::new();
    for (kind, query) in QUERIES.iter().zip(&parsed) {
        log(&format!("holdfast: {} `{}`", kind.kind, kind.holdfast));
        let latest = Arc::new(SearchRequest::new(query.clone()));
        let first = search::search(&store, &index, &Scope::All, &latest)
            .await
            .unwrap();
        let all_versions = SearchRequest {
            versions: Versions::All,
            ..SearchRequest::new(query.clone())
        };
        let total_events = search::search(&store, &index, &Scope::All, &all_versions)
            .await
            .unwrap()
            .total;
        assert!(first.total > 0, "{}: no hits", kind.holdfast);
        assert_eq!(first.hits.len(), (first.total as usize).min(PAGE));
        assert!(
            first.hits.iter().all(|hit| !hit.snippet.text.is_empty()),
            "every hit has a snippet"
        );
        println!(
            "  {} posts ({} matching events); newest hit {} by {} in {}: {:?}",
            thousands(first.total),
            thousands(total_events),
            first.hits[0].event.id,
            first.hits[0].event.user,
            first.hits[0].event.channel,
            first.hits[0]
                .snippet
                .text
                .chars()
                .take(100)
                .collect::<String>()
        );
        let mut cells = Vec::new();
        for clients in CONCURRENCY {
            let (store, index, request) = (store.clone(), Arc::clone(&index), Arc::clone(&latest));
            let cell = measure(clients, settings, move || {
                let (store, index, request) =
                    (store.clone(), Arc::clone(&index), Arc::clone(&request));
                async move {
                    let page = search::search(&store, &index, &Scope::All, &request)
                        .await
                        .unwrap();
                    std::hint::black_box(page);
                }
            })
            .await;
            println!(
                "  {clients} client(s): p50 {} ms, p99 {} ms, {:.0} queries/s ({} queries)",
                ms(cell.p50),
                ms(cell.p99),
                cell.per_s,
                cell.n
            );
            cells.push(cell);
        }
        let find_only = {
            let (index, query) = (Arc::clone(&index), Arc::new(query.clone()));
            measure(1, settings, move || {
                let (index, query) = (Arc::clone(&index), Arc::clone(&query));
                async move {
                    let page = tokio::task::spawn_blocking(move || {
                        index.find(&query, &Scope::All, true, Sort::Newest, None, PAGE)
                    })
                    .await
                    .unwrap()
                    .unwrap();
                    std::hint::black_box(page);
                }
            })
            .await
        };
        let store_only = {
            let found = index
                .find(query, &Scope::All, true, Sort::Newest, None, PAGE)
                .unwrap();
            let seqs: Arc<Vec<u64>> = Arc::new(found.hits.iter().map(|hit| hit.seq).collect());
            let store = store.clone();
            measure(1, settings, move || {
                let (store, seqs) = (store.clone(), Arc::clone(&seqs));
                async move {
                    let page = store.events_by_seqs(&seqs).await.unwrap();
                    let mut posts: Vec<&str> = page
                        .iter()
                        .filter_map(|stored| stored.event.post.as_deref())
                        .collect();
                    posts.sort_unstable();
                    posts.dedup();
                    std::hint::black_box(store.events_of_posts(&posts).await.unwrap());
                }
            })
            .await
        };
        println!(
            "  1 client, index find alone (no store reads, no snippets): p50 {} ms, p99 {} ms; store reads alone (the page's events, then its posts' events): p50 {} ms, p99 {} ms",
            ms(find_only.p50),
            ms(find_only.p99),
            ms(store_only.p50),
            ms(store_only.p99)
        );
        figures.push(QueryFigures {
            total_posts: first.total,
            total_events,
            fts_total: None,
            holdfast: cells,
            find_only,
            store_only,
            fts: Vec::new(),
        });
    }
    let holdfast_rss_mib = common::proc_status_kib("VmHWM") as f64 / 1024.0;
    drop(index);
    store.close().await;

    // 4. FTS5 baseline.
    let fts_load = fts5_baseline(settings, dir.path(), total_events, &parsed, &mut figures).await;

    print_report(
        settings,
        total_events,
        (store_elapsed, stored, store_bytes_all),
        &index_figures,
        tail.as_ref(),
        (index_bytes_all, segments_all),
        &figures,
        fts_load.as_ref(),
        holdfast_rss_mib,
    );
}

/// Appends the rest of the corpus at [`TAIL_EVENTS_PER_S`] while the
/// `serve` follower runs; records how long after its acknowledgement each
/// batch became searchable.
async fn live_tail(
    settings: &Settings,
    store: &Store,
    index: &Arc<SearchIndex>,
    generated: &mut tokio::sync::mpsc::Receiver<Vec<Event>>,
) -> Option<TailFigures> {
    if settings.tail_events == 0 {
        return None;
    }
    log(&format!(
        "live tail: follower every {} ms, {} events at {TAIL_EVENTS_PER_S} events/s",
        settings.refresh_ms,
        thousands(settings.tail_events as u64)
    ));
    let follower = Arc::new(Follower::start(
        store.clone(),
        Arc::clone(index),
        Duration::from_millis(settings.refresh_ms),
    ));
    let acknowledged: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (follower, acknowledged, done) = (
            Arc::clone(&follower),
            Arc::clone(&acknowledged),
            Arc::clone(&done),
        );
        tokio::spawn(async move {
            let mut lags = Vec::new();
            loop {
                let visible = follower.indexed_seq();
                let now = Instant::now();
                let finished = done.load(Ordering::Acquire);
                {
                    let acknowledged = acknowledged.lock().unwrap();
                    while lags.len() < acknowledged.len() && acknowledged[lags.len()].0 <= visible {
                        lags.push(now - acknowledged[lags.len()].1);
                    }
                    if finished && lags.len() == acknowledged.len() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lags
        })
    };
    let interval = Duration::from_secs_f64(GENERATOR_BATCH as f64 / TAIL_EVENTS_PER_S as f64);
    let mut ticker = tokio::time::interval(interval);
    let started = Instant::now();
    let mut events = 0;
    while let Some(batch) = generated.recv().await {
        ticker.tick().await;
        events += batch.len();
        let last = append_all(store, batch).await;
        acknowledged.lock().unwrap().push((last, Instant::now()));
    }
    let offered = started.elapsed();
    done.store(true, Ordering::Release);
    let mut lags = watcher.await.unwrap();
    let batches = lags.len();
    Arc::try_unwrap(follower)
        .ok()
        .expect("the watcher is done")
        .stop()
        .await;
    lags.sort_unstable();
    let rank = |p: f64| lags[((p * batches as f64).ceil() as usize).clamp(1, batches) - 1];
    let figures = TailFigures {
        events,
        batches,
        offered_per_s: events as f64 / offered.as_secs_f64(),
        lag_p50: rank(0.5),
        lag_p99: rank(0.99),
        lag_max: lags[batches - 1],
    };
    log(&format!(
        "live tail: {} events in {batches} batches at {:.0} events/s; acknowledged to searchable: p50 {} ms, p99 {} ms, max {} ms",
        thousands(events as u64),
        figures.offered_per_s,
        ms(figures.lag_p50),
        ms(figures.lag_p99),
        ms(figures.lag_max)
    ));
    Some(figures)
}

/// Loads the corpus into SQLite FTS5 and runs the mix there; `None` when
/// this SQLite has no FTS5.
async fn fts5_baseline(
    settings: &Settings,
    dir: &Path,
    n_events: usize,
    parsed: &[Query],
    figures: &mut [QueryFigures],
) -> Option<FtsLoadFigures> {
    log("FTS5 baseline: loading");
    let path = dir.join("fts5.db");
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
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, kind TEXT NOT NULL, \
         team TEXT NOT NULL, channel TEXT NOT NULL, user TEXT NOT NULL, at INTEGER NOT NULL, text TEXT)",
        "CREATE INDEX events_team ON events (team)",
        "CREATE INDEX events_channel ON events (channel)",
        "CREATE INDEX events_user ON events (user)",
        "CREATE INDEX events_at ON events (at)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
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
    println!("SQLite {version} with FTS5");

    // Load, 5,000 rows per transaction, generation untimed.
    let mut generator = EventGenerator::new(&GenerateOptions {
        events: n_events as u64,
        seed: SEED,
        ..GenerateOptions::default()
    });
    let base = common::reset_peak();
    let mut load = Duration::ZERO;
    let mut max_transaction = Duration::ZERO;
    let mut next_seq = 1i64;
    let mut next_report = n_events / 10;
    loop {
        let events: Vec<Event> = generator
            .by_ref()
            .take(FTS_TRANSACTION_ROWS)
            .map(|value| Event::from_json(value).unwrap())
            .collect();
        if events.is_empty() {
            break;
        }
        let first_seq = next_seq;
        let started = Instant::now();
        let mut transaction = pool.begin().await.unwrap();
        for chunk in events.chunks(FTS_INSERT_ROWS) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO events (seq, id, kind, team, channel, user, at, text) ",
            );
            insert.push_values(chunk, |mut row, event| {
                row.push_bind(next_seq)
                    .push_bind(&event.id)
                    .push_bind(event.kind.as_str())
                    .push_bind(&event.team)
                    .push_bind(&event.channel)
                    .push_bind(&event.user)
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
        let took = started.elapsed();
        load += took;
        max_transaction = max_transaction.max(took);
        if next_seq as usize > next_report {
            log(&format!(
                "  FTS5 loaded {} ({:.0} rows/s so far)",
                thousands(next_seq as u64 - 1),
                (next_seq - 1) as f64 / load.as_secs_f64()
            ));
            next_report += n_events / 10;
        }
    }
    let loaded = (next_seq - 1) as usize;
    log("FTS5: optimize");
    let started = Instant::now();
    sqlx::query("INSERT INTO events_fts (events_fts) VALUES ('optimize')")
        .execute(&pool)
        .await
        .unwrap();
    let optimize = started.elapsed();
    let peak_rss_growth_mib = common::peak_growth_mib(base);
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .unwrap();
    let sizes: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    let bytes_fts: i64 = sizes
        .iter()
        .filter(|(name, _)| name.starts_with("events_fts"))
        .map(|(_, bytes)| bytes)
        .sum();
    let load_figures = FtsLoadFigures {
        events: loaded,
        load,
        max_transaction,
        optimize,
        bytes_total: dir_bytes_of_file(&path),
        bytes_fts: bytes_fts as u64,
        peak_rss_growth_mib,
    };
    log(&format!(
        "FTS5 loaded {} rows in {:.1} s ({:.0} rows/s, longest transaction {} ms), optimize {:.1} s; {:.0} bytes an event in all, {:.0} for the FTS5 index",
        thousands(loaded as u64),
        load.as_secs_f64(),
        loaded as f64 / load.as_secs_f64(),
        max_transaction.as_millis(),
        optimize.as_secs_f64(),
        load_figures.bytes_total as f64 / loaded as f64,
        load_figures.bytes_fts as f64 / loaded as f64
    ));

    // Queries: 4 read-only connections, the database mapped like tantivy maps its files.
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true)
        .journal_mode(SqliteJournalMode::Wal)
        .pragma("mmap_size", "17179869184")
        .pragma("cache_size", "-65536");
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    for ((kind, query), figure) in QUERIES.iter().zip(parsed).zip(figures.iter_mut()) {
        log(&format!("FTS5: {} `{}`", kind.kind, kind.fts5));
        let fts_query = Arc::new(FtsQuery::new(kind, query));
        let (total, hits) = fts_query.run(&pool).await;
        assert!(total > 0, "{}: no FTS5 hits", kind.fts5);
        assert_eq!(hits.len(), (total as usize).min(PAGE));
        println!(
            "  {} matching events; newest hit seq {}: {:?}",
            thousands(total as u64),
            hits[0].0,
            hits[0].2.chars().take(100).collect::<String>()
        );
        figure.fts_total = Some(total);
        for clients in CONCURRENCY {
            let (pool, fts_query) = (pool.clone(), Arc::clone(&fts_query));
            let cell = measure(clients, settings, move || {
                let (pool, fts_query) = (pool.clone(), Arc::clone(&fts_query));
                async move {
                    std::hint::black_box(fts_query.run(&pool).await);
                }
            })
            .await;
            println!(
                "  {clients} client(s): p50 {} ms, p99 {} ms, {:.1} queries/s ({} queries)",
                ms(cell.p50),
                ms(cell.p99),
                cell.per_s,
                cell.n
            );
            figure.fts.push(cell);
        }
    }
    pool.close().await;
    Some(load_figures)
}

fn dir_bytes_of_file(path: &Path) -> u64 {
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |meta| meta.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    size(path) + size(Path::new(&wal))
}

#[allow(clippy::too_many_arguments, reason = "one report of one run")]
fn print_report(
    settings: &Settings,
    total_events: usize,
    (store_elapsed, stored, store_bytes): (Duration, usize, u64),
    index: &IndexFigures,
    tail: Option<&TailFigures>,
    (index_bytes, segments): (u64, usize),
    figures: &[QueryFigures],
    fts: Option<&FtsLoadFigures>,
    holdfast_rss_mib: f64,
) {
    let yes_no = |met: bool| if met { "met" } else { "**missed**" };
    println!();
    println!(
        "## Results: {} events (seed {SEED}), cells of up to {} queries or {} s",
        thousands(total_events as u64),
        settings.cell_queries,
        settings.cell_seconds
    );
    println!();
    println!("| loading | events | seconds | events/s | bytes per event | peak RSS MiB (growth) |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| holdfast store (generation alongside; not the subject) | {} | {:.1} | {} | {:.0} (store) | |",
        thousands(stored as u64),
        store_elapsed.as_secs_f64(),
        thousands((stored as f64 / store_elapsed.as_secs_f64()) as u64),
        store_bytes as f64 / total_events as f64
    );
    let index_rate = index.events as f64 / index.elapsed.as_secs_f64();
    println!(
        "| holdfast index (`catch_up`) | {} | {:.1} | {} | {:.0} (index) | {:.0} ({:.0}) |",
        thousands(index.events as u64),
        index.elapsed.as_secs_f64(),
        thousands(index_rate as u64),
        index_bytes as f64 / total_events as f64,
        index.peak_rss_mib,
        index.peak_rss_growth_mib
    );
    if let Some(fts) = fts {
        println!(
            "| FTS5 load (rows + FTS5, 5,000 rows per transaction) | {} | {:.1} | {} | {:.0} (FTS5 index), {:.0} (whole database) | ({:.0}) |",
            thousands(fts.events as u64),
            fts.load.as_secs_f64(),
            thousands((fts.events as f64 / fts.load.as_secs_f64()) as u64),
            fts.bytes_fts as f64 / fts.events as f64,
            fts.bytes_total as f64 / fts.events as f64,
            fts.peak_rss_growth_mib
        );
        println!(
            "| FTS5 load + `optimize` | {} | {:.1} | {} | | |",
            thousands(fts.events as u64),
            (fts.load + fts.optimize).as_secs_f64(),
            thousands((fts.events as f64 / (fts.load + fts.optimize).as_secs_f64()) as u64),
        );
    }
    println!();
    println!(
        "reading the same events from the store alone (`Store::events_from`, catch-up's input): {:.1} s, {} events/s",
        index.read_elapsed.as_secs_f64(),
        thousands((index.events as f64 / index.read_elapsed.as_secs_f64()) as u64)
    );
    println!(
        "holdfast index: {} commits, longest interval between commits {} ms, last commit after {:.1} s (the rest is waiting for merges); {segments} segments at the end",
        index.commits,
        index.max_commit_interval.as_millis(),
        index.to_last_commit.as_secs_f64()
    );
    if let Some(fts) = fts {
        println!(
            "FTS5: longest transaction {} ms; optimize {:.1} s",
            fts.max_transaction.as_millis(),
            fts.optimize.as_secs_f64()
        );
    }
    if let Some(tail) = tail {
        println!(
            "live tail (serve follower, refresh {} ms): {} events in {} batches at {:.0} events/s; acknowledged to searchable p50 {} ms, p99 {} ms, max {} ms",
            settings.refresh_ms,
            thousands(tail.events as u64),
            tail.batches,
            tail.offered_per_s,
            ms(tail.lag_p50),
            ms(tail.lag_p99),
            ms(tail.lag_max)
        );
    }
    println!(
        "peak RSS of the process by the end of the holdfast queries: {holdfast_rss_mib:.0} MiB"
    );
    println!();
    println!("| query | holdfast | FTS5 MATCH | holdfast posts | holdfast events | FTS5 events |");
    println!("|---|---|---|---:|---:|---:|");
    for (kind, figure) in QUERIES.iter().zip(figures) {
        let fts_match = match kind.user_channel {
            Some((user, channel)) => format!(
                "`{}` + user = '{user}' AND channel = '{channel}' AND at in range",
                kind.fts5
            ),
            None => format!("`{}`", kind.fts5),
        };
        println!(
            "| {} | `{}` | {} | {} | {} | {} |",
            kind.kind,
            kind.holdfast,
            fts_match,
            thousands(figure.total_posts),
            thousands(figure.total_events),
            figure
                .fts_total
                .map_or("-".to_owned(), |total| thousands(total as u64))
        );
    }
    println!();
    println!(
        "| query | holdfast p50 / p99 ms, 1 client | q/s | holdfast p50 / p99 ms, 4 clients | q/s | index find alone p50 ms | store reads alone p50 ms | FTS5 p50 / p99 ms, 1 client | q/s | FTS5 p50 / p99 ms, 4 clients | q/s | speedup p50, 1 client | speedup q/s, 4 clients | target p50 | met |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut mix_holdfast = [0.0f64; 2];
    let mut mix_fts = [0.0f64; 2];
    for (kind, figure) in QUERIES.iter().zip(figures) {
        let (one, four) = (&figure.holdfast[0], &figure.holdfast[1]);
        mix_holdfast[0] += one.mean.as_secs_f64();
        mix_holdfast[1] += 1.0 / four.per_s;
        let fts_cells = match figure.fts.as_slice() {
            [one, four] => {
                mix_fts[0] += one.mean.as_secs_f64();
                mix_fts[1] += 1.0 / four.per_s;
                Some((one, four))
            }
            _ => None,
        };
        let met = one.p50.as_secs_f64() * 1e3 <= kind.target_p50_ms;
        println!(
            "| {} | {} / {} | {:.0} | {} / {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} ms | {} |",
            kind.kind,
            ms(one.p50),
            ms(one.p99),
            one.per_s,
            ms(four.p50),
            ms(four.p99),
            four.per_s,
            ms(figure.find_only.p50),
            ms(figure.store_only.p50),
            fts_cells.map_or("-".to_owned(), |(f, _)| format!(
                "{} / {}",
                ms(f.p50),
                ms(f.p99)
            )),
            fts_cells.map_or("-".to_owned(), |(f, _)| format!("{:.1}", f.per_s)),
            fts_cells.map_or("-".to_owned(), |(_, f)| format!(
                "{} / {}",
                ms(f.p50),
                ms(f.p99)
            )),
            fts_cells.map_or("-".to_owned(), |(_, f)| format!("{:.1}", f.per_s)),
            fts_cells.map_or("-".to_owned(), |(f, _)| format!(
                "{:.1}×",
                f.p50.as_secs_f64() / one.p50.as_secs_f64()
            )),
            fts_cells.map_or("-".to_owned(), |(_, f)| format!(
                "{:.1}×",
                four.per_s / f.per_s
            )),
            kind.target_p50_ms,
            yes_no(met)
        );
    }
    println!();
    println!(
        "whole mix (each query once, in turn): holdfast {:.1} ms at 1 client (sum of means), {:.1} ms of wall time per mix at 4 clients",
        mix_holdfast[0] * 1e3,
        mix_holdfast[1] * 1e3
    );
    if fts.is_some() {
        println!(
            "whole mix: FTS5 {:.1} ms at 1 client, {:.1} ms at 4 clients; holdfast is {:.1}× faster at 1 client and {:.1}× at 4 clients (target ≥ 10×: {} / {})",
            mix_fts[0] * 1e3,
            mix_fts[1] * 1e3,
            mix_fts[0] / mix_holdfast[0],
            mix_fts[1] / mix_holdfast[1],
            yes_no(mix_fts[0] / mix_holdfast[0] >= 10.0),
            yes_no(mix_fts[1] / mix_holdfast[1] >= 10.0)
        );
    }
    println!(
        "indexing: {:.0} events/s (target ≥ 120,000: {}), peak RSS {:.0} MiB (target < 3 GB: {})",
        index_rate,
        yes_no(index_rate >= 120_000.0),
        index.peak_rss_mib,
        yes_no(index.peak_rss_mib * 1024.0 * 1024.0 < 3e9)
    );
}
