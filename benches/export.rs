//! Export benchmark: `cargo bench --bench export` (events:
//! `HOLDFAST_BENCH_EVENTS`, default 100,000; the larger size:
//! `HOLDFAST_BENCH_EVENTS=1000000 cargo bench --bench export`).
//!
//! On one generated corpus (the `holdfast generate` corpus, seed 42), in one
//! run:
//!
//! 1. **archive**: the events appended to a fresh store (SQLite metadata,
//!    batches of 10,000), timed but not the subject;
//! 2. **store read** (the baseline of the end-to-end figures): every event
//!    read and decrypted with `Store::events_from`, 5,000 at a time, in seq
//!    order; and again in the order an export reads them (channel by
//!    channel, pages of 2,000 rows from `Db::export_channel_page`, each read
//!    with `Store::read_event_rows`), counting the reads of adjacent records
//!    that makes;
//! 3. **end to end**: `ExportService::run_now` on the store opened read-only
//!    (what `holdfast export create` does) with a time range selecting every
//!    event, scope all, once with `csv` alone and once with `pdf` alone:
//!    counting, the channel walk, reading and decrypting, the writer thread,
//!    hashing and signing the manifest, the audit entry. Rows/s, pages/s,
//!    peak RSS;
//! 4. **writers**: the same events (read back from the store, so with the
//!    same seqs) held in memory, grouped per channel (team, then channel) in
//!    (`at`, `seq`) order as the job hands them over, fed to one format's
//!    writer (`ExportFormat::writer`) alone: create, every event, finish
//!    (which syncs the files). CSV rows/s, PDF pages/s (pages counted with
//!    `pdfinfo` of poppler-utils), JSONL, Actiance and EML events/s, peak
//!    RSS growth over the events already resident;
//! 5. **CSV baseline**, after the CSV writer: its `events.csv` read back
//!    into `Vec<String>` records, then written again by the `csv` crate
//!    alone with the writer's settings (CRLF, quote when necessary, the same
//!    buffers) and synced: the floor cost of CSV serialisation. Its output
//!    is checked byte for byte against the writer's, and the writer's
//!    against the end-to-end export's.
//!
//! Steps 2 to 5 each run in a fresh process (this binary, started again
//! with `HOLDFAST_BENCH_EXPORT_STEP`), so that the peak RSS (`VmHWM`) of
//! one is not hidden by memory another freed but the allocator kept.
//! Figures are printed, never asserted: the machine is shared. Temporary
//! files go to `HOLDFAST_BENCH_DIR` (default: the system's temporary
//! directory).
#![allow(clippy::unwrap_used, reason = "a benchmark binary")]

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dir_bytes, env_number, log, thousands};
use holdfast::audit::{AuditKey, AuditLog};
use holdfast::db::EventRow;
use holdfast::db::exports::ExportFilter;
use holdfast::event::Event;
use holdfast::export::job::{ExportRequest, Exporter, Progress, Requester, Source};
use holdfast::export::service::ExportService;
use holdfast::export::sign::Signer;
use holdfast::export::{ChannelInfo, ExportEvent, ExportFormat, PackageInfo, Warnings};
use holdfast::generate::{EventGenerator, GenerateOptions};
use holdfast::index::SearchIndex;
use holdfast::retention::holds::HoldCriteria;
use holdfast::search::Scope;
use holdfast::store::{AppendStatus, Store, StoreOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const SEED: u64 = 42;
const GENERATOR_BATCH: usize = 1_000;
const STORE_BATCH: usize = 10_000;
const READ_PAGE: usize = 5_000;
/// Rows per page of a channel walk (`PAGE_ROWS` of `src/export/job.rs`).
const EXPORT_PAGE_ROWS: i64 = 2_000;
/// The targets.
const TARGET_CSV_ROWS_PER_S: f64 = 500_000.0;
const TARGET_PDF_PAGES_PER_S: f64 = 500.0;
const TARGET_PDF_PEAK_MB: f64 = 200.0;
/// Size of the buffers of `src/export/csv.rs`, for the baseline.
const CSV_FILE_BUFFER_BYTES: usize = 1024 * 1024;
const CSV_ENCODER_BUFFER_BYTES: usize = 64 * 1024;
/// Set in a child process: the step it runs (see [`Step`]).
const STEP_VAR: &str = "HOLDFAST_BENCH_EXPORT_STEP";
/// Set in a child process: the working directory of the run.
const WORK_DIR_VAR: &str = "HOLDFAST_BENCH_EXPORT_WORK_DIR";

/// A measured step, run in a process of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    StoreRead,
    ChannelRead,
    EndToEnd(ExportFormat),
    Writer(ExportFormat),
}

impl Step {
    const ALL: [Step; 9] = [
        Step::StoreRead,
        Step::ChannelRead,
        Step::EndToEnd(ExportFormat::Csv),
        Step::EndToEnd(ExportFormat::Pdf),
        Step::Writer(ExportFormat::Csv),
        Step::Writer(ExportFormat::Pdf),
        Step::Writer(ExportFormat::Jsonl),
        Step::Writer(ExportFormat::Actiance),
        Step::Writer(ExportFormat::Eml),
    ];

    fn name(self) -> String {
        match self {
            Step::StoreRead => "store-read".to_owned(),
            Step::ChannelRead => "channel-read".to_owned(),
            Step::EndToEnd(format) => format!("end-to-end-{format}"),
            Step::Writer(format) => format!("writer-{format}"),
        }
    }

    fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.name() == name)
    }
}

/// What a step measured, handed from the child to the parent as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Measured {
    events: u64,
    /// CSV: data rows; PDF: pages; channel read: runs of adjacent records.
    units: Option<u64>,
    /// Writers: creating the writer; end to end: 0.
    create_s: f64,
    /// Writers: every event; store read and end to end: the whole step.
    write_s: f64,
    /// Writers: `finish` (flush and sync).
    finish_s: f64,
    /// Bytes written (the package, or the writer's files).
    bytes: u64,
    /// Resident set when the step started, MiB.
    base_mib: f64,
    /// Resident high-water mark of the process during the step, MiB.
    peak_mib: f64,
    warnings: u64,
    channels: usize,
    /// SHA-256 of `events.csv` (CSV steps).
    csv_sha256: Option<String>,
    /// The `csv` crate baseline (after the CSV writer).
    csv_baseline: Option<CsvBaseline>,
}

impl Measured {
    fn elapsed(&self) -> Duration {
        Duration::from_secs_f64(self.create_s + self.write_s + self.finish_s)
    }

    fn growth_mib(&self) -> f64 {
        (self.peak_mib - self.base_mib).max(0.0)
    }
}

/// The `csv` crate alone, writing the writer's rows.
#[derive(Debug, Serialize, Deserialize)]
struct CsvBaseline {
    rows: u64,
    write_s: f64,
    sync_s: f64,
    identical: bool,
}

impl CsvBaseline {
    fn elapsed(&self) -> Duration {
        Duration::from_secs_f64(self.write_s + self.sync_s)
    }
}

/// The corpus, streamed by a thread in batches through a bounded channel.
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

/// Starts a measurement: resets the high-water mark; the resident set now.
fn start_memory() -> f64 {
    common::reset_peak() as f64 / 1024.0
}

fn peak_mib() -> f64 {
    common::proc_status_kib("VmHWM") as f64 / 1024.0
}

/// The page count of a PDF file, by `pdfinfo`; `None` when it cannot say.
fn pdf_pages(path: &Path) -> Option<u64> {
    let output = std::process::Command::new("pdfinfo")
        .arg(path)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("Pages:"))
        .and_then(|pages| pages.trim().parse().ok())
}

/// The pages of the transcript volumes among `files` (relative to `dir`).
fn transcript_pages(dir: &Path, files: &[PathBuf]) -> Option<u64> {
    let mut pages = 0;
    for file in files {
        if file.extension().is_some_and(|ext| ext == "pdf") {
            pages += pdf_pages(&dir.join(file))?;
        }
    }
    Some(pages)
}

fn sha256_of(path: &Path) -> String {
    let mut file = File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    hex::encode(hasher.finalize())
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn per_s(n: u64, elapsed: Duration) -> String {
    thousands(rate(n, elapsed).round() as u64)
}

fn ratio(ours: f64, theirs: f64) -> String {
    format!("{:.2}", ours / theirs)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|cpuinfo| {
            cpuinfo
                .lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_default();
    let memory_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            meminfo
                .lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .unwrap_or(0)
        / 1024;
    format!(
        "{} cores, {cpu}, {memory_mib} MiB memory",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match std::env::var(STEP_VAR) {
        Ok(name) => {
            let step = Step::parse(&name).unwrap_or_else(|| panic!("unknown step {name:?}"));
            let work_dir = PathBuf::from(std::env::var(WORK_DIR_VAR).unwrap());
            let measured = runtime.block_on(run_step(step, &work_dir));
            std::fs::write(
                result_path(&work_dir, step),
                serde_json::to_vec(&measured).unwrap(),
            )
            .unwrap();
        }
        Err(_) => runtime.block_on(run(env_number("HOLDFAST_BENCH_EVENTS", 100_000))),
    }
}

fn result_path(work_dir: &Path, step: Step) -> PathBuf {
    work_dir.join(format!("{}.json", step.name()))
}

fn store_options(work_dir: &Path) -> StoreOptions {
    StoreOptions::for_data_dir(work_dir.join("data"))
}

async fn run(n_events: usize) {
    println!(
        "holdfast export benchmark: {} generated events (seed {SEED})",
        thousands(n_events as u64)
    );
    println!("machine: {}; load average {}", machine(), load_average());
    if std::process::Command::new("pdfinfo")
        .arg("-v")
        .output()
        .is_err()
    {
        println!("NOTE: pdfinfo (poppler-utils) is not installed: PDF pages cannot be counted");
    }
    let parent = std::env::var("HOLDFAST_BENCH_DIR").unwrap_or_else(|_| {
        std::env::temp_dir()
            .to_str()
            .expect("a UTF-8 temp dir")
            .to_owned()
    });
    let dir = tempfile::tempdir_in(parent).unwrap();
    println!("working directory: {}", dir.path().display());
    let store_elapsed = store_corpus(n_events, dir.path()).await;

    let exe = std::env::current_exe().unwrap();
    let mut results = Vec::new();
    for step in Step::ALL {
        let status = std::process::Command::new(&exe)
            .env(STEP_VAR, step.name())
            .env(WORK_DIR_VAR, dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "step {} failed: {status}", step.name());
        let bytes = std::fs::read(result_path(dir.path(), step)).unwrap();
        let measured: Measured = serde_json::from_slice(&bytes).unwrap();
        results.push((step, measured));
    }
    Report {
        n_events,
        store_elapsed,
        results: &results,
    }
    .print();
    println!("load average at the end: {}", load_average());
}

/// Appends the corpus to a fresh store in `work_dir`; the time it took.
async fn store_corpus(n_events: usize, work_dir: &Path) -> Duration {
    log("storing the corpus");
    let options = store_options(work_dir);
    let (store, _) = Store::open(&options).await.unwrap();
    let mut generated = spawn_generator(n_events);
    let started = Instant::now();
    let mut stored = 0u64;
    let mut batch = Vec::with_capacity(STORE_BATCH);
    let mut next_report = n_events as u64 / 10;
    loop {
        let events = generated.recv().await;
        let done = events.is_none();
        batch.extend(events.unwrap_or_default());
        if batch.len() >= STORE_BATCH || (done && !batch.is_empty()) {
            for status in store.append(std::mem::take(&mut batch)).await.unwrap() {
                stored += 1;
                assert!(
                    matches!(status, AppendStatus::Stored { seq } if seq == stored),
                    "every generated event is new, seqs from 1: {status:?}"
                );
            }
            if stored >= next_report {
                log(&format!("  stored {}", thousands(stored)));
                next_report += n_events as u64 / 10;
            }
        }
        if done {
            break;
        }
    }
    let elapsed = started.elapsed();
    store.close().await;
    log(&format!(
        "stored {} events in {:.1} s; segments and database {} MB",
        thousands(stored),
        elapsed.as_secs_f64(),
        mb(dir_bytes(&options.data_dir))
    ));
    elapsed
}

async fn run_step(step: Step, work_dir: &Path) -> Measured {
    let store = Store::open_read_only(&store_options(work_dir))
        .await
        .unwrap();
    let measured = match step {
        Step::StoreRead => store_read(&store).await,
        Step::ChannelRead => channel_read(&store).await,
        Step::EndToEnd(format) => end_to_end(&store, work_dir, format).await,
        Step::Writer(format) => {
            let events = load_events(&store).await;
            writer(&events, &work_dir.join("writers"), format)
        }
    };
    store.close().await;
    measured
}

/// Every event read and decrypted, in seq order, 5,000 at a time.
async fn store_read(store: &Store) -> Measured {
    log("store read: events_from, 5,000 at a time");
    let base_mib = start_memory();
    let started = Instant::now();
    let mut read = 0u64;
    let mut next = 1;
    loop {
        let events = store.events_from(next, READ_PAGE).await.unwrap();
        let Some(last) = events.last() else { break };
        next = last.seq + 1;
        read += events.len() as u64;
    }
    let elapsed = started.elapsed();
    log(&format!(
        "  {} events in {:.2} s: {} events/s",
        thousands(read),
        elapsed.as_secs_f64(),
        per_s(read, elapsed)
    ));
    Measured {
        events: read,
        write_s: elapsed.as_secs_f64(),
        base_mib,
        peak_mib: peak_mib(),
        ..Measured::default()
    }
}

/// Every event read and decrypted in the order an export reads them:
/// channel by channel, pages of 2,000 rows in (`at`, `seq`) order
/// (`Db::export_channel_page`), each page by `Store::read_event_rows`, as
/// `src/export/job.rs` does; no writer.
async fn channel_read(store: &Store) -> Measured {
    log("store read in export order: export_channel_page + read_event_rows");
    let filter = ExportFilter {
        from_us: i64::MIN,
        to_us: i64::MAX,
        seq_after: 0,
        seq_upto: i64::MAX,
        teams: None,
    };
    let base_mib = start_memory();
    let started = Instant::now();
    let channels = store.db().export_channel_counts(&filter).await.unwrap();
    let mut read = 0u64;
    let mut runs = 0u64;
    for (team, channel, _) in &channels {
        let mut after = None;
        loop {
            let rows = store
                .db()
                .export_channel_page(team, channel, &filter, after, EXPORT_PAGE_ROWS)
                .await
                .unwrap();
            let Some(last) = rows.last() else { break };
            after = Some((last.at_us, last.seq));
            runs += adjacent_runs(&rows);
            read += store.read_event_rows(&rows).await.unwrap().len() as u64;
            if (rows.len() as i64) < EXPORT_PAGE_ROWS {
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    log(&format!(
        "  {} events in {:.2} s: {} events/s; {} reads of adjacent records",
        thousands(read),
        elapsed.as_secs_f64(),
        per_s(read, elapsed),
        thousands(runs)
    ));
    Measured {
        events: read,
        units: Some(runs),
        write_s: elapsed.as_secs_f64(),
        base_mib,
        peak_mib: peak_mib(),
        channels: channels.len(),
        ..Measured::default()
    }
}

/// The runs of adjacent records in `rows` (one read each in
/// `Store::read_event_rows`, which reads in (segment, offset) order).
fn adjacent_runs(rows: &[EventRow]) -> u64 {
    let mut places: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|row| (row.segment_no, row.record_offset, row.record_len))
        .collect();
    places.sort_unstable();
    let mut runs = 0;
    let mut end = None;
    for (segment, offset, len) in places {
        if end != Some((segment, offset)) {
            runs += 1;
        }
        end = Some((segment, offset + len));
    }
    runs
}

/// One export of every event in `format`, by `ExportService::run_now`.
async fn end_to_end(store: &Store, work_dir: &Path, format: ExportFormat) -> Measured {
    log(&format!(
        "end to end: ExportService::run_now, {format} alone"
    ));
    let data_dir = work_dir.join("data");
    let exporter = Exporter {
        store: store.clone(),
        index: Arc::new(SearchIndex::open_or_create(&work_dir.join("index")).unwrap()),
        signer: Arc::new(Signer::ed25519_in(&data_dir).unwrap()),
        exports_dir: work_dir.join("exports"),
        template_dir: None,
    };
    let (audit_key, _) = AuditKey::load_or_create(&work_dir.join("audit.key")).unwrap();
    let audit = AuditLog::open(store.db().clone(), audit_key).await.unwrap();
    let service = ExportService::new(exporter, audit, Vec::new());
    let request = ExportRequest {
        source: Source::Criteria {
            criteria: HoldCriteria {
                from: Some("2000-01-01".to_owned()),
                to: Some("2099-12-31".to_owned()),
                ..HoldCriteria::default()
            },
        },
        formats: vec![format],
        matter: "benchmark".to_owned(),
        bates: None,
    };
    let requester = Requester {
        name: "bench".to_owned(),
        scope: Scope::All,
    };
    let base_mib = start_memory();
    let started = Instant::now();
    let (_, built) = service
        .run_now(request, requester, Arc::new(Progress::default()))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let peak_mib = peak_mib();
    let files: Vec<PathBuf> = built
        .manifest
        .files
        .iter()
        .map(|file| PathBuf::from(&file.name))
        .collect();
    let measured = Measured {
        events: built.manifest.counts.events,
        units: (format == ExportFormat::Pdf)
            .then(|| transcript_pages(&built.package_dir, &files))
            .flatten(),
        write_s: elapsed.as_secs_f64(),
        bytes: dir_bytes(&built.package_dir),
        base_mib,
        peak_mib,
        warnings: built.manifest.counts.warnings,
        channels: built.manifest.counts.channels.len(),
        csv_sha256: (format == ExportFormat::Csv)
            .then(|| sha256_of(&built.package_dir.join(holdfast::export::csv::FILE_NAME))),
        ..Measured::default()
    };
    log(&format!(
        "  {} events in {:.2} s ({} events/s{}), {} MB, peak RSS {peak_mib:.0} MiB (growth {:.0}), {} warnings",
        thousands(measured.events),
        elapsed.as_secs_f64(),
        per_s(measured.events, elapsed),
        measured.units.map_or(String::new(), |pages| format!(
            "; {} pages, {} pages/s",
            thousands(pages),
            per_s(pages, elapsed)
        )),
        mb(measured.bytes),
        measured.growth_mib(),
        measured.warnings
    ));
    std::fs::remove_dir_all(&built.package_dir).unwrap();
    measured
}

/// Every event of the store, in memory, in seq order.
async fn load_events(store: &Store) -> Vec<ExportEvent> {
    let mut events = Vec::new();
    let mut next = 1;
    loop {
        let page = store.events_from(next, READ_PAGE).await.unwrap();
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        events.extend(page.into_iter().map(|stored| ExportEvent {
            seq: stored.seq,
            event: stored.event,
        }));
    }
    events
}

/// `events` fed to `format`'s writer alone, in package order.
fn writer(events: &[ExportEvent], writers_dir: &Path, format: ExportFormat) -> Measured {
    let mut by_channel: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (idx, event) in events.iter().enumerate() {
        by_channel
            .entry((&event.event.team, &event.event.channel))
            .or_default()
            .push(idx);
    }
    let channels: Vec<(ChannelInfo, Vec<usize>)> = by_channel
        .into_iter()
        .map(|((team, channel), mut order)| {
            order.sort_by_key(|&idx| (events[idx].event.at_us, events[idx].seq));
            let info = ChannelInfo {
                team: team.to_owned(),
                channel: channel.to_owned(),
                events: order.len() as u64,
            };
            (info, order)
        })
        .collect();
    let info = PackageInfo {
        export_id: "exp-000001".to_owned(),
        matter: "benchmark".to_owned(),
        selection: "every event".to_owned(),
        requested_by: "bench".to_owned(),
        created_at_us: chrono::Utc::now().timestamp_micros(),
        channels: channels.iter().map(|(info, _)| info.clone()).collect(),
        total_events: events.len() as u64,
        bates: None,
        template_dir: None,
    };
    let package_dir = writers_dir.join(format.as_str());
    std::fs::create_dir_all(&package_dir).unwrap();
    log(&format!(
        "writer: {format}, {} events in {} channels in memory (resident {:.0} MiB)",
        thousands(events.len() as u64),
        channels.len(),
        common::proc_status_kib("VmRSS") as f64 / 1024.0
    ));

    let mut warnings = Warnings::default();
    let base_mib = start_memory();
    let started = Instant::now();
    let mut writer = format.writer(&package_dir, &info).unwrap();
    let create = started.elapsed();
    let started = Instant::now();
    for (channel, order) in &channels {
        writer.begin_channel(channel).unwrap();
        for &idx in order {
            writer.write(&events[idx], &mut warnings).unwrap();
        }
        writer.end_channel(&mut warnings).unwrap();
    }
    let write = started.elapsed();
    let started = Instant::now();
    let files = writer.finish(&mut warnings).unwrap();
    let finish = started.elapsed();
    let mut measured = Measured {
        events: events.len() as u64,
        create_s: create.as_secs_f64(),
        write_s: write.as_secs_f64(),
        finish_s: finish.as_secs_f64(),
        bytes: dir_bytes(&package_dir),
        base_mib,
        peak_mib: peak_mib(),
        warnings: warnings.len(),
        channels: channels.len(),
        ..Measured::default()
    };
    match format {
        ExportFormat::Pdf => measured.units = transcript_pages(&package_dir, &files),
        ExportFormat::Csv => {
            let csv_path = package_dir.join(holdfast::export::csv::FILE_NAME);
            measured.csv_sha256 = Some(sha256_of(&csv_path));
            let baseline = csv_crate_baseline(&csv_path, &writers_dir.join("baseline.csv"));
            measured.units = Some(baseline.rows);
            measured.csv_baseline = Some(baseline);
        }
        _ => {}
    }
    log(&format!(
        "  {:.2} s (create {:.3}, write {:.2}, finish {:.2}): {} events/s{}; {} MB; peak RSS {:.0} MiB, growth {:.0} MiB; {} warnings",
        measured.elapsed().as_secs_f64(),
        create.as_secs_f64(),
        write.as_secs_f64(),
        finish.as_secs_f64(),
        per_s(measured.events, measured.elapsed()),
        measured.units.map_or(String::new(), |units| format!(
            "; {} {}, {}/s",
            thousands(units),
            if format == ExportFormat::Pdf {
                "pages"
            } else {
                "rows"
            },
            per_s(units, measured.elapsed())
        )),
        mb(measured.bytes),
        measured.peak_mib,
        measured.growth_mib(),
        measured.warnings
    ));
    std::fs::remove_dir_all(&package_dir).unwrap();
    measured
}

/// Reads `csv_path` back into `Vec<String>` records, then times the `csv`
/// crate writing them to `out_path` with the CSV writer's settings.
fn csv_crate_baseline(csv_path: &Path, out_path: &Path) -> CsvBaseline {
    log("  csv crate baseline: reading the rows back");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(csv_path)
        .unwrap();
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|record| record.unwrap().iter().map(str::to_owned).collect())
        .collect();
    drop(reader);
    log("  csv crate baseline: writing");
    let started = Instant::now();
    let file = File::create(out_path).unwrap();
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .buffer_capacity(CSV_ENCODER_BUFFER_BYTES)
        .from_writer(BufWriter::with_capacity(CSV_FILE_BUFFER_BYTES, file));
    for record in &records {
        writer.write_record(record).unwrap();
    }
    let mut buffered = writer.into_inner().unwrap();
    buffered.flush().unwrap();
    let write = started.elapsed();
    let started = Instant::now();
    buffered.into_inner().unwrap().sync_all().unwrap();
    let sync = started.elapsed();
    let identical = sha256_of(csv_path) == sha256_of(out_path);
    std::fs::remove_file(out_path).unwrap();
    let baseline = CsvBaseline {
        // The header is not a data row.
        rows: records.len().saturating_sub(1) as u64,
        write_s: write.as_secs_f64(),
        sync_s: sync.as_secs_f64(),
        identical,
    };
    log(&format!(
        "  csv crate: {} rows in {:.2} s (sync {:.2}): {} rows/s; output identical to the writer's: {}",
        thousands(baseline.rows),
        baseline.elapsed().as_secs_f64(),
        sync.as_secs_f64(),
        per_s(baseline.rows, baseline.elapsed()),
        if identical { "yes" } else { "NO" }
    ));
    baseline
}

struct Report<'a> {
    n_events: usize,
    store_elapsed: Duration,
    results: &'a [(Step, Measured)],
}

fn yes_no(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

impl Report<'_> {
    fn get(&self, step: Step) -> Option<&Measured> {
        self.results
            .iter()
            .find(|(of, _)| *of == step)
            .map(|(_, measured)| measured)
    }

    #[allow(clippy::too_many_lines, reason = "one table after another")]
    fn print(&self) {
        let units_name = |format| {
            if format == ExportFormat::Pdf {
                "pages"
            } else {
                "rows"
            }
        };
        println!();
        println!(
            "## Results: {} events (seed {SEED}), {} channels; stored in {:.1} s",
            thousands(self.n_events as u64),
            self.get(Step::Writer(ExportFormat::Csv))
                .map_or(0, |measured| measured.channels),
            self.store_elapsed.as_secs_f64()
        );
        println!();
        println!(
            "### Writers (events in memory, package order; create + write + finish, which syncs)"
        );
        println!();
        println!(
            "| format | events | s | of which finish | events/s | rows or pages | rows/s or pages/s | output MB | peak RSS MiB (growth) | warnings |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (step, run) in self.results {
            let Step::Writer(format) = *step else {
                continue;
            };
            let elapsed = run.elapsed();
            println!(
                "| {format} | {} | {:.2} | {:.2} | {} | {} | {} | {} | {:.0} ({:.0}) | {} |",
                thousands(run.events),
                elapsed.as_secs_f64(),
                run.finish_s,
                per_s(run.events, elapsed),
                run.units.map_or("-".to_owned(), |units| format!(
                    "{} {}",
                    thousands(units),
                    units_name(format)
                )),
                run.units
                    .map_or("-".to_owned(), |units| per_s(units, elapsed)),
                mb(run.bytes),
                run.peak_mib,
                run.growth_mib(),
                thousands(run.warnings)
            );
        }
        let csv_writer = self.get(Step::Writer(ExportFormat::Csv));
        let baseline = csv_writer.and_then(|run| run.csv_baseline.as_ref());
        if let Some(baseline) = baseline {
            println!(
                "| baseline: `csv` crate, the same rows from `Vec<String>` | {} | {:.2} | {:.2} (sync) | | {} rows | {} | | | |",
                thousands(baseline.rows),
                baseline.elapsed().as_secs_f64(),
                baseline.sync_s,
                thousands(baseline.rows),
                per_s(baseline.rows, baseline.elapsed())
            );
        }
        println!();
        println!(
            "### End to end (`ExportService::run_now`, store opened read-only, one format each)"
        );
        println!();
        println!(
            "| export | events | s | events/s | pages | pages/s | package MB | peak RSS MiB (growth) | warnings |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let read = self.get(Step::StoreRead);
        if let Some(read) = read {
            println!(
                "| baseline: `Store::events_from` (read + decrypt, seq order) | {} | {:.2} | {} | | | | {:.0} ({:.0}) | |",
                thousands(read.events),
                read.write_s,
                per_s(read.events, read.elapsed()),
                read.peak_mib,
                read.growth_mib()
            );
        }
        let channel_read = self.get(Step::ChannelRead);
        if let Some(read) = channel_read {
            println!(
                "| baseline: export order (`export_channel_page` + `read_event_rows`, no writer; {} reads of adjacent records) | {} | {:.2} | {} | | | | {:.0} ({:.0}) | |",
                read.units.map_or("-".to_owned(), thousands),
                thousands(read.events),
                read.write_s,
                per_s(read.events, read.elapsed()),
                read.peak_mib,
                read.growth_mib()
            );
        }
        for (step, run) in self.results {
            let Step::EndToEnd(format) = *step else {
                continue;
            };
            println!(
                "| {format} | {} | {:.2} | {} | {} | {} | {} | {:.0} ({:.0}) | {} |",
                thousands(run.events),
                run.write_s,
                per_s(run.events, run.elapsed()),
                run.units.map_or("-".to_owned(), thousands),
                run.units
                    .map_or("-".to_owned(), |pages| per_s(pages, run.elapsed())),
                mb(run.bytes),
                run.peak_mib,
                run.growth_mib(),
                thousands(run.warnings)
            );
        }
        println!();
        println!("### Ratios and targets");
        println!();
        let pdf_writer = self.get(Step::Writer(ExportFormat::Pdf));
        let csv_e2e = self.get(Step::EndToEnd(ExportFormat::Csv));
        let pdf_e2e = self.get(Step::EndToEnd(ExportFormat::Pdf));
        let read_rate = read.map(|read| rate(read.events, read.elapsed()));
        let channel_read_rate = channel_read.map(|read| rate(read.events, read.elapsed()));
        if let (Some(read_rate), Some(channel_read_rate)) = (read_rate, channel_read_rate) {
            println!(
                "- store read in export order / in seq order (events/s): {}",
                ratio(channel_read_rate, read_rate)
            );
        }
        if let (Some(run), Some(baseline)) = (csv_writer, baseline) {
            let ours = rate(run.events, run.elapsed());
            let floor = rate(baseline.rows, baseline.elapsed());
            println!(
                "- CSV writer / `csv` crate floor (rows/s): {} ({} / {}); without the sync: {}; the floor's output identical to the writer's: {}",
                ratio(ours, floor),
                thousands(ours.round() as u64),
                thousands(floor.round() as u64),
                ratio(
                    rate(
                        run.events,
                        Duration::from_secs_f64(run.create_s + run.write_s)
                    ),
                    rate(baseline.rows, Duration::from_secs_f64(baseline.write_s))
                ),
                yes_no(baseline.identical)
            );
        }
        if let Some(run) = csv_e2e {
            let ours = rate(run.events, run.elapsed());
            println!(
                "- CSV end to end / store read (events/s): {}; / store read in export order: {}; / CSV writer: {}; its events.csv identical to the writer's: {}",
                read_rate.map_or("-".to_owned(), |read_rate| ratio(ours, read_rate)),
                channel_read_rate.map_or("-".to_owned(), |rate| ratio(ours, rate)),
                csv_writer.map_or("-".to_owned(), |writer| ratio(
                    ours,
                    rate(writer.events, writer.elapsed())
                )),
                yes_no(
                    run.csv_sha256.is_some()
                        && run.csv_sha256 == csv_writer.and_then(|w| w.csv_sha256.clone())
                )
            );
        }
        if let Some(run) = pdf_e2e {
            println!(
                "- PDF end to end / store read (events/s): {}; PDF end to end / PDF writer (pages/s): {}",
                read_rate.map_or("-".to_owned(), |read_rate| ratio(
                    rate(run.events, run.elapsed()),
                    read_rate
                )),
                pdf_writer
                    .and_then(|writer| Some(rate(writer.units?, writer.elapsed())))
                    .zip(run.units)
                    .map_or("-".to_owned(), |(writer_rate, pages)| ratio(
                        rate(pages, run.elapsed()),
                        writer_rate
                    ))
            );
        }
        if let Some(run) = csv_writer {
            let rows_per_s = rate(run.events, run.elapsed());
            println!(
                "- target CSV ≥ {} rows/s: writer {} rows/s, {}; end to end {}",
                thousands(TARGET_CSV_ROWS_PER_S as u64),
                thousands(rows_per_s.round() as u64),
                met(rows_per_s >= TARGET_CSV_ROWS_PER_S),
                csv_e2e.map_or("-".to_owned(), |run| {
                    let rows_per_s = rate(run.events, run.elapsed());
                    format!(
                        "{} rows/s, {}",
                        thousands(rows_per_s.round() as u64),
                        met(rows_per_s >= TARGET_CSV_ROWS_PER_S)
                    )
                })
            );
        }
        let pdf_target = |run: &Measured, memory_mib: f64| {
            run.units.map_or("pages not counted".to_owned(), |pages| {
                let pages_per_s = rate(pages, run.elapsed());
                let memory_mb = memory_mib * 1.048_576;
                format!(
                    "{} pages/s, {}; {memory_mb:.0} MB, {}",
                    thousands(pages_per_s.round() as u64),
                    met(pages_per_s >= TARGET_PDF_PAGES_PER_S),
                    met(memory_mb < TARGET_PDF_PEAK_MB)
                )
            })
        };
        if let Some(run) = pdf_writer {
            println!(
                "- target PDF ≥ {TARGET_PDF_PAGES_PER_S:.0} pages/s under {TARGET_PDF_PEAK_MB:.0} MB: writer (peak RSS growth over the resident events) {}; end to end (peak RSS of the process) {}",
                pdf_target(run, run.growth_mib()),
                pdf_e2e.map_or("-".to_owned(), |run| pdf_target(run, run.peak_mib))
            );
        }
    }
}
