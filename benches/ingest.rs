//! Ingest benchmark: `cargo bench --bench ingest` (events: HOLDFAST_BENCH_EVENTS,
//! default 200000). Prints, on the same generated events:
//! (a) the physical limit: raw appends of the same bytes with the same fsync cadence,
//! (b) the store alone (SQLite metadata, and PostgreSQL metadata),
//! (c) HTTP ingest end to end with 1,000-event batches,
//! (d) baselines: the same events inserted into SQLite (WAL, synchronous=FULL)
//!     and PostgreSQL, 1,000 per transaction;
//! and ratios to (a) and (d). Peak memory is the growth of the resident set
//! high-water mark over the phase (Linux `VmHWM`, reset per phase).
#![allow(clippy::unwrap_used, reason = "a benchmark binary")]

mod common;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast::event::Event;
use holdfast::generate::{EventGenerator, GenerateOptions};
use holdfast::store::{Store, StoreOptions};

use common::{peak_growth_mib, reset_peak};

const BATCH: usize = 1000;
const PRODUCERS: usize = 4;
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

struct Phase {
    name: &'static str,
    events: usize,
    bytes: u64,
    elapsed: Duration,
    fsyncs: u64,
    peak_rss_growth_mib: f64,
}

impl Phase {
    fn events_per_s(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

fn main() {
    let n_events: usize = std::env::var("HOLDFAST_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "holdfast ingest benchmark: {n_events} generated events, batches of {BATCH}, {PRODUCERS} concurrent producers"
    );
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned())
            )
            .unwrap_or_default()
    );

    let values: Vec<serde_json::Value> = EventGenerator::new(&GenerateOptions {
        events: n_events as u64,
        seed: 42,
        ..GenerateOptions::default()
    })
    .collect();
    let lines: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    let events: Vec<Event> = values
        .into_iter()
        .map(|v| Event::from_json(v).unwrap())
        .collect();
    let input_bytes: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    println!("input: {:.1} MB of NDJSON", input_bytes as f64 / 1e6);

    let mut phases = Vec::new();
    let store_sqlite = runtime.block_on(bench_store(&events, None, "(b) store, SQLite metadata"));
    if std::env::var("HOLDFAST_BENCH_ONLY_STORE").is_ok() {
        println!(
            "(b) store, SQLite metadata: {:.0} events/s, {} fsyncs, peak RSS growth {:.0} MiB",
            store_sqlite.events_per_s(),
            store_sqlite.fsyncs,
            store_sqlite.peak_rss_growth_mib
        );
        return;
    }
    let written = store_sqlite.bytes;
    let n_groups = store_sqlite.fsyncs.max(1);
    phases.push(bench_raw(written, n_groups, events.len()));
    phases.push(store_sqlite);
    phases.push(runtime.block_on(bench_store(
        &events,
        Some(()),
        "(b) store, PostgreSQL metadata",
    )));
    phases.push(runtime.block_on(bench_http(&lines)));
    phases.push(runtime.block_on(bench_sqlite_baseline(&events, &lines)));
    phases.push(runtime.block_on(bench_postgres_baseline(&events, &lines)));

    let raw = phases[0].events_per_s();
    let sqlite_baseline = phases[4].events_per_s();
    let pg_baseline = phases[5].events_per_s();
    println!();
    println!(
        "| phase | events/s | MB/s | fsyncs | peak RSS growth MiB | vs (a) raw | vs (d) SQLite | vs (d) PostgreSQL |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for phase in &phases {
        println!(
            "| {} | {:.0} | {:.1} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            phase.name,
            phase.events_per_s(),
            phase.mb_per_s(),
            phase.fsyncs,
            phase.peak_rss_growth_mib,
            phase.events_per_s() / raw,
            phase.events_per_s() / sqlite_baseline,
            phase.events_per_s() / pg_baseline,
        );
    }
    let _ = std::io::stdout().flush();
}

/// (a) The bytes the store wrote for the same events, appended in as many
/// chunks as the store made fsyncs, one fdatasync per chunk.
fn bench_raw(bytes: u64, n_fsyncs: u64, n_events: usize) -> Phase {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("raw")).unwrap();
    let chunk = vec![0x5au8; (bytes / n_fsyncs).max(1) as usize];
    let base = reset_peak();
    let started = Instant::now();
    let mut offset = 0u64;
    for _ in 0..n_fsyncs {
        file.write_all_at(&chunk, offset).unwrap();
        file.sync_data().unwrap();
        offset += chunk.len() as u64;
    }
    let elapsed = started.elapsed();
    Phase {
        name: "(a) raw append + fdatasync",
        events: n_events,
        bytes: offset,
        elapsed,
        fsyncs: n_fsyncs,
        peak_rss_growth_mib: peak_growth_mib(base),
    }
}

async fn bench_store(events: &[Event], postgres: Option<()>, name: &'static str) -> Phase {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StoreOptions::for_data_dir(dir.path().join("data"));
    let schema = format!("hf_bench_{}", std::process::id());
    if postgres.is_some() {
        let pool = sqlx::PgPool::connect(POSTGRES_URL).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        options.database_url = format!("{POSTGRES_URL}?options=-c%20search_path%3D{schema}");
    }
    let (store, _) = Store::open(&options).await.unwrap();
    let batches: Vec<Vec<Event>> = events.chunks(BATCH).map(<[Event]>::to_vec).collect();
    let batches = Arc::new(std::sync::Mutex::new(batches.into_iter()));
    let base = reset_peak();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let (store, batches) = (store.clone(), Arc::clone(&batches));
        tasks.push(tokio::spawn(async move {
            loop {
                let next = batches.lock().unwrap().next();
                let Some(batch) = next else { break };
                store.append(batch).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let phase = Phase {
        name,
        events: events.len(),
        bytes: store.metrics().bytes_written.get(),
        elapsed,
        fsyncs: store.metrics().fsyncs.get(),
        peak_rss_growth_mib: peak_growth_mib(base),
    };
    assert_eq!(store.metrics().events_stored.get(), events.len() as u64);
    let mut text = String::new();
    let registry = {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("dedupe_seconds", "", store.metrics().dedupe_seconds.clone());
        registry.register("append_seconds", "", store.metrics().append_seconds.clone());
        registry.register(
            "metadata_seconds",
            "",
            store.metrics().metadata_seconds.clone(),
        );
        registry
    };
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in text
        .lines()
        .filter(|l| l.contains("_sum") || l.contains("_count"))
    {
        println!("  {name}: {line}");
    }
    store.close().await;
    if postgres.is_some() {
        let pool = sqlx::PgPool::connect(POSTGRES_URL).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    phase
}

async fn bench_http(lines: &[String]) -> Phase {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::for_data_dir(dir.path().join("data"));
    let (store, _) = Store::open(&options).await.unwrap();
    let token = secrecy::SecretString::from("bench-token-0123456789".to_owned());
    // Every request is authenticated and audited, as in `serve`.
    let access = holdfast::api::AccessState::open(
        &store,
        &holdfast::auth::AuthConfig::default(),
        Some(holdfast::api::auth::TokenHash::of(&token)),
    )
    .await
    .unwrap();
    let state = holdfast::api::AppState::new(store.clone(), access, 64 * 1024 * 1024);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, holdfast::api::router(state))
            .await
            .unwrap();
    });
    let bodies: Vec<String> = lines.chunks(BATCH).map(|chunk| chunk.join("\n")).collect();
    let bodies = Arc::new(std::sync::Mutex::new(bodies.into_iter()));
    let client = reqwest::Client::new();
    let base = reset_peak();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let (client, bodies) = (client.clone(), Arc::clone(&bodies));
        tasks.push(tokio::spawn(async move {
            loop {
                let next = bodies.lock().unwrap().next();
                let Some(body) = next else { break };
                let response = client
                    .post(format!("http://{address}/api/v1/events"))
                    .bearer_auth("bench-token-0123456789")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let phase = Phase {
        name: "(c) HTTP end to end",
        events: lines.len(),
        bytes: lines.iter().map(|l| l.len() as u64 + 1).sum(),
        elapsed,
        fsyncs: store.metrics().fsyncs.get(),
        peak_rss_growth_mib: peak_growth_mib(base),
    };
    assert_eq!(store.metrics().events_stored.get(), lines.len() as u64);
    server.abort();
    phase
}

/// Inserts the events as (id, JSON text) rows, `BATCH` per transaction, on
/// either pool; returns (elapsed, transactions, peak RSS growth).
macro_rules! timed_inserts {
    ($pool:expr, $table:expr, $events:expr, $lines:expr) => {{
        let base = reset_peak();
        let started = Instant::now();
        let mut transactions = 0;
        for (chunk_events, chunk_lines) in $events.chunks(BATCH).zip($lines.chunks(BATCH)) {
            let mut tx = $pool.begin().await.unwrap();
            let rows: Vec<_> = chunk_events.iter().zip(chunk_lines).collect();
            for part in rows.chunks(400) {
                let mut query =
                    sqlx::QueryBuilder::new(format!("INSERT INTO {} (id, body) ", $table));
                query.push_values(part, |mut row, (event, line)| {
                    row.push_bind(&event.id).push_bind(line.as_str());
                });
                query.build().execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
            transactions += 1;
        }
        (started.elapsed(), transactions, peak_growth_mib(base))
    }};
}

async fn bench_sqlite_baseline(events: &[Event], lines: &[String]) -> Phase {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("baseline.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("CREATE TABLE events (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let (elapsed, fsyncs, peak_rss_growth_mib) = timed_inserts!(pool, "events", events, lines);
    Phase {
        name: "(d) SQLite WAL synchronous=FULL",
        events: events.len(),
        bytes: lines.iter().map(|l| l.len() as u64).sum(),
        elapsed,
        fsyncs,
        peak_rss_growth_mib,
    }
}

async fn bench_postgres_baseline(events: &[Event], lines: &[String]) -> Phase {
    let pool = sqlx::PgPool::connect(POSTGRES_URL).await.unwrap();
    let table = format!("hf_bench_baseline_{}", std::process::id());
    sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!(
        "CREATE TABLE {table} (id TEXT PRIMARY KEY, body TEXT NOT NULL)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let (elapsed, fsyncs, peak_rss_growth_mib) = timed_inserts!(pool, table, events, lines);
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    Phase {
        name: "(d) PostgreSQL",
        events: events.len(),
        bytes: lines.iter().map(|l| l.len() as u64).sum(),
        elapsed,
        fsyncs,
        peak_rss_growth_mib,
    }
}
