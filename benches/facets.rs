//! The console's facets (`GET /api/v1/facets`): `cargo bench --bench facets`
//! (events: `HOLDFAST_BENCH_EVENTS`, default 1,000,000).
//!
//! On one generated corpus (`holdfast generate`, seed 42, 3 teams), stored
//! and indexed in a fresh data directory, in one run:
//!
//! - **baseline**: a search that counts every event of the scope
//!   (`NOT from:nobody`, every version, the newest 50 kept): the cost of
//!   visiting each document once, as a search of the whole archive does;
//! - **facets**: `SearchIndex::facets` for the whole archive and for one
//!   team (about a third of the events): the terms aggregations over teams,
//!   channels within teams and people.
//!
//! Each is run 7 times; the median and the fastest are printed with the
//! ratio to the baseline. Figures are printed, never asserted: the machine
//! is shared. Temporary files go to `HOLDFAST_BENCH_DIR` (default: the
//! system's temporary directory).
#![allow(clippy::unwrap_used, reason = "a benchmark binary")]

mod common;

use std::io::BufReader;
use std::time::{Duration, Instant};

use common::{env_number, log, thousands};
use holdfast::generate::{self, GenerateOptions};
use holdfast::index::{SearchIndex, Sort};
use holdfast::search::{self, ParseOptions, Scope};
use holdfast::store::{Store, StoreOptions};

const SEED: u64 = 42;
const RUNS: usize = 7;

fn timed<T>(mut run: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut times = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        last = Some(run());
        times.push(start.elapsed());
    }
    times.sort();
    (times[RUNS / 2], times[0], last.unwrap())
}

fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let n_events: u64 = env_number("HOLDFAST_BENCH_EVENTS", 1_000_000);
    let parent = std::env::var("HOLDFAST_BENCH_DIR").unwrap_or_else(|_| {
        std::env::temp_dir()
            .to_str()
            .expect("a UTF-8 temporary directory")
            .to_owned()
    });
    let dir = tempfile::tempdir_in(parent).unwrap();
    println!(
        "holdfast facets benchmark: {} generated events (seed {SEED}); {}",
        thousands(n_events),
        dir.path().display()
    );

    log("generating");
    let corpus = dir.path().join("corpus.ndjson");
    let options = GenerateOptions {
        events: n_events,
        seed: SEED,
        ..GenerateOptions::default()
    };
    generate::generate(&options, &mut std::fs::File::create(&corpus).unwrap()).unwrap();
    log("storing");
    let (store, _) = Store::open(&StoreOptions::for_data_dir(dir.path().join("data")))
        .await
        .unwrap();
    let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&corpus).unwrap());
    let report = holdfast::ingest::ingest_reader(&store, reader, 10_000, |_| {})
        .await
        .unwrap();
    assert_eq!(report.accepted, n_events);
    log("indexing");
    let index = SearchIndex::open_or_create(&dir.path().join("index")).unwrap();
    holdfast::index::catch_up(&store, &index, |_, _| {})
        .await
        .unwrap();
    index.reload().unwrap();
    store.close().await;

    let everything = search::parse("NOT from:nobody", &ParseOptions::default()).unwrap();
    let all = Scope::All;
    let team = Scope::Limited {
        teams: ["energy-trading".to_owned()].into(),
        channels: std::collections::BTreeSet::new(),
    };
    println!();
    println!(
        "| {} events | events in scope | median ms | fastest ms | × baseline (median) |",
        thousands(n_events)
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, scope) in [("whole archive", &all), ("one team", &team)] {
        let (base_median, base_fastest, page) = timed(|| {
            index
                .find(&everything, scope, false, Sort::Newest, None, 50)
                .unwrap()
        });
        println!(
            "| baseline: count every event, {name} | {} | {} | {} | 1.00 |",
            thousands(page.total),
            ms(base_median),
            ms(base_fastest)
        );
        let (median, fastest, facets) = timed(|| index.facets(scope).unwrap());
        let counted: u64 = facets.teams.iter().map(|team| team.events).sum();
        assert_eq!(counted, page.total, "the facets count every event once");
        println!(
            "| facets, {name}: {} teams, {} channels, {} people | {} | {} | {} | {:.2} |",
            facets.teams.len(),
            facets.channels.len(),
            facets.people.len(),
            thousands(counted),
            ms(median),
            ms(fastest),
            median.as_secs_f64() / base_median.as_secs_f64()
        );
    }
}
