//! Crash safety of retention with a real process: `holdfast retention run` is
//! killed with SIGKILL at delays spread over an uninterrupted run, on copies
//! of one prepared archive (SQLite; several sealed segments; a custodian hold
//! and a channel hold). After each kill, before anything else, `verify`
//! passes and every event is either readable (held and recent ones with their
//! text) or "deleted by retention policy", never damaged. A second run then
//! finishes the interrupted one (certificate marked `resumed`), and the end
//! state is exactly that of an uninterrupted run: every due, unheld event
//! deleted, everything else readable, no search hit for a word only deleted
//! messages had.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use chrono::{Days, NaiveDate, NaiveTime, Utc};
use holdfast::store::{Store, StoreError, StoreOptions};
use serde_json::{Value, json};

/// Events in the 40 old days (all due under keep_days = 30).
const OLD_EVENTS: usize = 20_000;
const OLD_DAYS: usize = 40;
/// Events in the last days (not due).
const RECENT_EVENTS: usize = 500;
const RECENT_DAYS: usize = 8;
/// The custodian of the custodian hold: posts rarely, never reacts or edits.
const CUSTODIAN: &str = "whistle-w";
/// The channel of the channel hold.
const HELD_TEAM: &str = "acme";
const HELD_CHANNEL: &str = "board";
/// A word only in due, unheld posts.
const MARKER: &str = "zanzibarquux";
/// Kills: at these fractions of an uninterrupted run's duration.
const KILL_FRACTIONS: [f64; 8] = [0.05, 0.2, 0.35, 0.5, 0.62, 0.72, 0.82, 0.92];
/// Held events, and as many others, checked through `holdfast get` after
/// each kill and each restart (every event is checked through the library).
const CLI_SAMPLE: usize = 50;

const CHANNELS: [(&str, &str); 8] = [
    ("acme", "general"),
    ("acme", "deals"),
    ("acme", "random"),
    ("acme", "eng"),
    ("globex", "ops"),
    ("globex", "sales"),
    ("globex", "support"),
    ("globex", "hr"),
];
const USERS: [&str; 10] = [
    "allen-p",
    "bass-e",
    "campbell-l",
    "dasovich-j",
    "farmer-d",
    "germany-c",
    "kaminski-v",
    "lay-k",
    "mann-k",
    "shively-h",
];
const WORDS: [&str; 48] = [
    "gas",
    "desk",
    "curve",
    "hedge",
    "basis",
    "storage",
    "pipeline",
    "nomination",
    "forward",
    "swap",
    "option",
    "volatility",
    "counterparty",
    "credit",
    "limit",
    "trader",
    "schedule",
    "tariff",
    "capacity",
    "imbalance",
    "settlement",
    "invoice",
    "contract",
    "deal",
    "ticket",
    "review",
    "meeting",
    "tomorrow",
    "morning",
    "numbers",
    "spread",
    "margin",
    "power",
    "henry",
    "hub",
    "index",
    "position",
    "risk",
    "report",
    "weather",
    "demand",
    "supply",
    "price",
    "bid",
    "offer",
    "close",
    "open",
    "book",
];

/// SplitMix64: deterministic, no dependency on a crate's stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What an event must read back as.
#[derive(Debug, Clone)]
struct Expected {
    kind: String,
    text: Option<String>,
    emoji: Option<String>,
}

/// The generated corpus and what retention must do with it.
struct Corpus {
    ndjson: String,
    expected: BTreeMap<String, Expected>,
    held: BTreeSet<String>,
    recent: BTreeSet<String>,
    /// Due (old) and not held: what a run must delete.
    doomed: BTreeSet<String>,
}

fn at_ms(day: NaiveDate, secs: u32) -> i64 {
    day.and_time(NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).unwrap())
        .and_utc()
        .timestamp_millis()
}

fn text(rng: &mut Rng, marker: bool) -> String {
    let mut words: Vec<&str> = Vec::new();
    let mut len = 0;
    while len < 200 {
        let word = WORDS[rng.below(WORDS.len())];
        len += word.len() + 1;
        words.push(word);
    }
    if marker {
        let at = rng.below(words.len());
        words[at] = MARKER;
    }
    words.join(" ")
}

/// Events of `count` over `days` days from `first`, in time order.
#[allow(clippy::too_many_arguments, reason = "a test fixture")]
fn generate(
    rng: &mut Rng,
    prefix: &str,
    first: NaiveDate,
    days: usize,
    count: usize,
    markers: bool,
    events: &mut Vec<Value>,
) {
    let per_day = count / days;
    // Recent posts per channel (team, channel) -> post ids, for edits and reactions.
    let mut posts: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let spacing = 86_000 / per_day as u32;
    for i in 0..count {
        let day = first
            .checked_add_days(Days::new((i / per_day) as u64))
            .unwrap();
        let secs = (i % per_day) as u32 * spacing + rng.below(spacing as usize) as u32;
        let (team, channel) = if rng.below(1000) < 6 {
            (HELD_TEAM, HELD_CHANNEL)
        } else {
            CHANNELS[rng.below(CHANNELS.len())]
        };
        let custodian = rng.below(1000) < 7;
        let user = if custodian {
            CUSTODIAN
        } else {
            USERS[rng.below(USERS.len())]
        };
        let id = format!("{prefix}-{i:06}");
        let key = (team.to_owned(), channel.to_owned());
        let earlier = posts.get(&key).filter(|list| !list.is_empty()).cloned();
        let roll = rng.below(100);
        let mut event = json!({
            "id": id, "at": at_ms(day, secs), "team": team, "channel": channel, "user": user,
        });
        match (custodian, roll, earlier) {
            (true, 0..=9, _) | (false, 0..=1, _) => {
                event["kind"] = json!("member_join");
            }
            (false, 2..=13, Some(earlier)) => {
                let post = &earlier[rng.below(earlier.len())];
                event["kind"] = json!("edit");
                event["post"] = json!(post);
                event["text"] = json!(text(rng, false));
            }
            (false, 14..=27, Some(earlier)) => {
                let post = &earlier[rng.below(earlier.len())];
                event["kind"] = json!("reaction_add");
                event["post"] = json!(post);
                event["emoji"] = json!(["thumbsup", "fire", "eyes"][rng.below(3)]);
            }
            (false, 28..=30, Some(earlier)) => {
                let post = &earlier[rng.below(earlier.len())];
                event["kind"] = json!("reaction_remove");
                event["post"] = json!(post);
                event["emoji"] = json!("thumbsup");
            }
            _ => {
                let marker = markers
                    && !custodian
                    && (team, channel) != (HELD_TEAM, HELD_CHANNEL)
                    && rng.below(100) < 4;
                let post = format!("p-{id}");
                event["kind"] = json!("post");
                event["post"] = json!(post);
                event["text"] = json!(text(rng, marker));
                let list = posts.entry(key).or_default();
                list.push(post);
                if list.len() > 60 {
                    list.remove(0);
                }
            }
        }
        events.push(event);
    }
}

fn corpus() -> Corpus {
    let mut rng = Rng(0x5eed_2024);
    let today = Utc::now().date_naive();
    let old_first = today.checked_sub_days(Days::new(760)).unwrap();
    let recent_first = today
        .checked_sub_days(Days::new(RECENT_DAYS as u64))
        .unwrap();
    let mut events = Vec::new();
    generate(
        &mut rng,
        "old",
        old_first,
        OLD_DAYS,
        OLD_EVENTS,
        true,
        &mut events,
    );
    let old_count = events.len();
    generate(
        &mut rng,
        "new",
        recent_first,
        RECENT_DAYS,
        RECENT_EVENTS,
        false,
        &mut events,
    );

    // The holds: the custodian's events and the held channel's, and every
    // event of a post either of them touches.
    let directly = |event: &Value| {
        event["user"] == CUSTODIAN
            || (event["team"] == HELD_TEAM && event["channel"] == HELD_CHANNEL)
    };
    let post_key = |event: &Value| {
        event["post"].as_str().map(|post| {
            (
                event["team"].as_str().unwrap().to_owned(),
                event["channel"].as_str().unwrap().to_owned(),
                post.to_owned(),
            )
        })
    };
    let held_posts: BTreeSet<_> = events
        .iter()
        .filter(|event| directly(event))
        .filter_map(post_key)
        .collect();
    let mut corpus = Corpus {
        ndjson: String::new(),
        expected: BTreeMap::new(),
        held: BTreeSet::new(),
        recent: BTreeSet::new(),
        doomed: BTreeSet::new(),
    };
    for (i, event) in events.iter().enumerate() {
        let id = event["id"].as_str().unwrap().to_owned();
        let held = directly(event) || post_key(event).is_some_and(|key| held_posts.contains(&key));
        if i >= old_count {
            corpus.recent.insert(id.clone());
        } else if held {
            corpus.held.insert(id.clone());
        } else {
            corpus.doomed.insert(id.clone());
        }
        corpus.expected.insert(
            id,
            Expected {
                kind: event["kind"].as_str().unwrap().to_owned(),
                text: event["text"].as_str().map(str::to_owned),
                emoji: event["emoji"].as_str().map(str::to_owned),
            },
        );
        corpus.ndjson.push_str(&event.to_string());
        corpus.ndjson.push('\n');
    }
    corpus
}

/// Where the archives are: removed at the end, or kept.
enum Root {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Root {
    fn path(&self) -> &Path {
        match self {
            Root::Temp(dir) => dir.path(),
            Root::Kept(path) => path,
        }
    }
}

/// The test's environment: the policy directory and the binary's settings.
struct Setup {
    root: Root,
    policy_dir: PathBuf,
}

impl Setup {
    fn holdfast(&self, data_dir: &Path) -> Command {
        let mut command = helpers::holdfast(data_dir);
        command
            .env("HOLDFAST_POLICY_DIR", &self.policy_dir)
            .env("HOLDFAST_SEGMENT_MAX_BYTES", "1048576")
            .stdin(Stdio::null());
        command
    }

    fn ok(&self, data_dir: &Path, args: &[&str]) -> Output {
        let output = self.holdfast(data_dir).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "holdfast {args:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// A copy of `from` (the prepared archive) named `name`.
    fn copy(&self, from: &Path, name: &str) -> PathBuf {
        let to = self.root.path().join(name);
        let status = Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(&to)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cp -a {} {}",
            from.display(),
            to.display()
        );
        to
    }
}

/// `holdfast verify --json` exits 0 and reports ok (a problem otherwise).
fn check_verify(setup: &Setup, data_dir: &Path, when: &str, problems: &mut Vec<String>) {
    let output = setup
        .holdfast(data_dir)
        .args(["verify", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{when}: verify printed no JSON ({error}; {}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    if !output.status.success() || report["ok"] != true {
        problems.push(format!(
            "{when}: verify failed ({}): {report:#}",
            output.status
        ));
    }
}

/// How `holdfast get ID` answered.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Readable,
    Deleted,
    /// Any other failure (what it said).
    Unreadable(String),
}

/// `holdfast get` for each id, on two threads: each either prints the
/// event as generated or says it was deleted by retention. Any other
/// failure, and a held or recent event not readable, is a problem.
fn check_with_cli(
    setup: &Setup,
    data_dir: &Path,
    corpus: &Corpus,
    ids: &[String],
    when: &str,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Got> {
    let check = |id: &String| -> (String, Got) {
        let output = setup.holdfast(data_dir).args(["get", id]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if !output.status.success() {
            if stderr.contains("deleted by retention policy") {
                return (id.clone(), Got::Deleted);
            }
            return (
                id.clone(),
                Got::Unreadable(format!("exit {}: {stderr}", output.status)),
            );
        }
        let event: Value = serde_json::from_slice(&output.stdout).unwrap();
        let expected = &corpus.expected[id];
        assert_eq!(event["id"], id.as_str(), "{when}");
        assert_eq!(event["kind"], expected.kind.as_str(), "{when}: {id}");
        assert_eq!(
            event["text"].as_str(),
            expected.text.as_deref(),
            "{when}: text of {id}"
        );
        assert_eq!(
            event["emoji"].as_str(),
            expected.emoji.as_deref(),
            "{when}: emoji of {id}"
        );
        (id.clone(), Got::Readable)
    };
    let half = ids.len() / 2;
    let (first, second) = ids.split_at(half);
    let results: BTreeMap<String, Got> = std::thread::scope(|scope| {
        let one = scope.spawn(|| first.iter().map(check).collect::<Vec<_>>());
        let two = scope.spawn(|| second.iter().map(check).collect::<Vec<_>>());
        let mut all = one.join().unwrap();
        all.extend(two.join().unwrap());
        all.into_iter().collect()
    });
    for (id, got) in &results {
        if let Got::Unreadable(why) = got {
            let what = if corpus.held.contains(id) {
                "held"
            } else if corpus.recent.contains(id) {
                "recent"
            } else {
                "due"
            };
            problems.push(format!("{when}: holdfast get {id} ({what}): {why}"));
        }
        assert!(
            *got != Got::Deleted || !(corpus.held.contains(id) || corpus.recent.contains(id)),
            "{when}: held or recent event {id} was deleted"
        );
    }
    results
}

/// Every event through the library (the code `holdfast get` runs): readable
/// as generated, or deleted by retention; anything else is a problem. Held
/// and recent events must not be deleted. Returns the deleted ids.
async fn check_every_event(
    data_dir: &Path,
    corpus: &Corpus,
    when: &str,
    problems: &mut Vec<String>,
) -> BTreeSet<String> {
    let store = Store::open_read_only(&StoreOptions::for_data_dir(data_dir.to_path_buf()))
        .await
        .unwrap();
    let mut deleted = BTreeSet::new();
    for (id, expected) in &corpus.expected {
        match store.get_event(id).await {
            Ok(Some(stored)) => {
                let event = serde_json::to_value(&stored.event).unwrap();
                assert_eq!(event["kind"], expected.kind.as_str(), "{when}: {id}");
                assert_eq!(
                    stored.event.text, expected.text,
                    "{when}: text of {id} differs"
                );
                assert_eq!(
                    stored.event.emoji, expected.emoji,
                    "{when}: emoji of {id} differs"
                );
            }
            Ok(None) => panic!("{when}: event {id} is missing"),
            Err(StoreError::Shredded(_)) => {
                assert!(
                    !corpus.held.contains(id),
                    "{when}: held event {id} was deleted"
                );
                assert!(
                    !corpus.recent.contains(id),
                    "{when}: recent event {id} was deleted"
                );
                deleted.insert(id.clone());
            }
            Err(error) => {
                let what = if corpus.held.contains(id) {
                    "held"
                } else if corpus.recent.contains(id) {
                    "recent"
                } else {
                    "due"
                };
                problems.push(format!("{when}: event {id} ({what}): {error}"));
            }
        }
    }
    store.close().await;
    deleted
}

/// A sample of ids for `holdfast get`: [`CLI_SAMPLE`] held ones and as
/// many others, chosen by `rng`.
fn sample(corpus: &Corpus, rng: &mut Rng) -> Vec<String> {
    let held: Vec<&String> = corpus.held.iter().collect();
    let others: Vec<&String> = corpus
        .expected
        .keys()
        .filter(|id| !corpus.held.contains(*id))
        .collect();
    let mut ids = Vec::new();
    for _ in 0..CLI_SAMPLE {
        ids.push(held[rng.below(held.len())].clone());
        ids.push(others[rng.below(others.len())].clone());
    }
    ids.sort();
    ids.dedup();
    ids
}

/// `holdfast retention runs --json`: one object per run.
fn runs(setup: &Setup, data_dir: &Path) -> Vec<Value> {
    let output = setup.ok(data_dir, &["retention", "runs", "--json"]);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The certificate of run `id`, from `holdfast retention show`.
fn certificate(setup: &Setup, data_dir: &Path, id: i64) -> Value {
    let output = setup.ok(data_dir, &["retention", "show", &id.to_string()]);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Search hits (the total) for `query`.
fn search_total(setup: &Setup, data_dir: &Path, query: &str) -> u64 {
    let output = setup.ok(data_dir, &["search", query, "--json"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    last["total"].as_u64().unwrap()
}

/// Runs retention to completion and checks the end state exactly; returns
/// the deleted ids.
async fn finish_and_check(
    setup: &Setup,
    data_dir: &Path,
    corpus: &Corpus,
    rng: &mut Rng,
    when: &str,
    problems: &mut Vec<String>,
) -> BTreeSet<String> {
    let output = setup.ok(data_dir, &["retention", "run", "--json"]);
    let certificate_of_run: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(certificate_of_run["resumed"], false, "{when}");

    let runs = runs(setup, data_dir);
    assert!(
        runs.iter().all(|run| run["status"] == "done"),
        "{when}: a run is not done: {runs:#?}"
    );
    let mut events_deleted = 0;
    for run in &runs {
        let certificate = certificate(setup, data_dir, run["run_id"].as_i64().unwrap());
        events_deleted += certificate["events_deleted"].as_u64().unwrap();
    }
    assert_eq!(
        events_deleted,
        corpus.doomed.len() as u64,
        "{when}: the certificates count other deletions than expected: {runs:#?}"
    );

    let deleted = check_every_event(data_dir, corpus, when, problems).await;
    assert_eq!(
        deleted.len(),
        corpus.doomed.len(),
        "{when}: deleted {} events, expected {}",
        deleted.len(),
        corpus.doomed.len()
    );
    assert!(deleted == corpus.doomed, "{when}: other events deleted");
    let ids = sample(corpus, rng);
    let got = check_with_cli(setup, data_dir, corpus, &ids, when, problems);
    for (id, got) in &got {
        if !matches!(got, Got::Unreadable(_)) {
            assert_eq!(
                *got == Got::Deleted,
                corpus.doomed.contains(id),
                "{when}: holdfast get {id}"
            );
        }
    }
    check_verify(setup, data_dir, when, problems);
    assert_eq!(search_total(setup, data_dir, MARKER), 0, "{when}: {MARKER}");
    deleted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_retention_run_deletes_nothing_half_and_finishes() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    // RETENTION_CRASH_KEEP=1 keeps the archives for a look after a failure.
    let root = if std::env::var_os("RETENTION_CRASH_KEEP").is_some() {
        eprintln!("keeping {}", root.path().display());
        Root::Kept(root.keep())
    } else {
        Root::Temp(root)
    };
    let policy_dir = root.path().join("policies");
    std::fs::create_dir(&policy_dir).unwrap();
    std::fs::write(
        policy_dir.join("global.toml"),
        "version = 1\n\n[[policy]]\nname = \"thirty-days\"\nkeep_days = 30\n",
    )
    .unwrap();
    let setup = Setup { root, policy_dir };

    // The prepared archive.
    let corpus = corpus();
    assert!(corpus.held.len() > 100, "{}", corpus.held.len());
    assert!(corpus.doomed.len() > 15_000, "{}", corpus.doomed.len());
    let input = setup.root.path().join("events.ndjson");
    std::fs::write(&input, &corpus.ndjson).unwrap();
    let prepared = setup.root.path().join("prepared");
    setup.ok(&prepared, &["ingest", input.to_str().unwrap()]);
    setup.ok(
        &prepared,
        &[
            "hold",
            "create",
            "--name",
            "custodian-hold",
            "--matter",
            "M-2024-17",
            "--reason",
            "custodian under investigation",
            "--custodian",
            CUSTODIAN,
        ],
    );
    setup.ok(
        &prepared,
        &[
            "hold",
            "create",
            "--name",
            "board-hold",
            "--matter",
            "M-2024-18",
            "--reason",
            "board communications",
            "--channel",
            &format!("{HELD_TEAM}/{HELD_CHANNEL}"),
        ],
    );
    setup.ok(&prepared, &["index", "update"]);
    let stats: Value =
        serde_json::from_slice(&setup.ok(&prepared, &["stats", "--json"]).stdout).unwrap();
    assert!(
        search_total(&setup, &prepared, MARKER) > 0,
        "the marker word is in the corpus"
    );
    let plan: Value =
        serde_json::from_slice(&setup.ok(&prepared, &["retention", "plan", "--json"]).stdout)
            .unwrap();
    assert_eq!(
        plan["events_to_delete"].as_u64().unwrap(),
        corpus.doomed.len() as u64,
        "{plan:#}"
    );
    eprintln!(
        "prepared in {:?}: {} events ({} held, {} recent, {} due unheld); plan: {} epochs, {} carried; stats {}",
        started.elapsed(),
        corpus.expected.len(),
        corpus.held.len(),
        corpus.recent.len(),
        corpus.doomed.len(),
        plan["epochs_to_destroy"],
        plan["events_to_carry"],
        stats
    );

    // Failures to read an event or to verify: collected, so that one
    // failing check does not hide what the other kills show.
    let mut problems: Vec<String> = Vec::new();

    // An uninterrupted run on a copy: how long it takes, and what it deletes.
    let mut rng = Rng(7);
    let reference = setup.copy(&prepared, "reference");
    let clock = Instant::now();
    let output = setup.ok(&reference, &["retention", "run", "--json"]);
    let full = clock.elapsed();
    let certificate_of_run: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        certificate_of_run["compaction"]["records"]
            .as_u64()
            .unwrap()
            > 0,
        "compaction had work: {:#}",
        certificate_of_run["compaction"]
    );
    eprintln!(
        "uninterrupted run: {full:?}, deleted {}, carried {}, compaction {}",
        certificate_of_run["events_deleted"],
        certificate_of_run["events_carried"],
        certificate_of_run["compaction"]
    );
    let reference_deleted = finish_and_check(
        &setup,
        &reference,
        &corpus,
        &mut rng,
        "reference",
        &mut problems,
    )
    .await;
    assert!(reference_deleted == corpus.doomed);

    // Kill at fractions of that duration.
    let mut landed = Vec::new();
    for (i, fraction) in KILL_FRACTIONS.iter().enumerate() {
        let delay = full.mul_f64(*fraction);
        let data_dir = setup.copy(&prepared, &format!("kill-{i}"));
        let when = format!("kill {i} after {delay:?}");
        let mut child = setup
            .holdfast(&data_dir)
            .args(["retention", "run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished_first = child.try_wait().unwrap().is_some();
        child.kill().unwrap();
        child.wait().unwrap();

        // Before anything else: nothing is half deleted.
        let killed = format!("{when}, before restart");
        let clock = Instant::now();
        check_verify(&setup, &data_dir, &killed, &mut problems);
        let verified = clock.elapsed();
        let deleted = check_every_event(&data_dir, &corpus, &killed, &mut problems).await;
        let library = clock.elapsed() - verified;
        let ids = sample(&corpus, &mut rng);
        let got = check_with_cli(&setup, &data_dir, &corpus, &ids, &killed, &mut problems);
        for (id, got) in &got {
            if !matches!(got, Got::Unreadable(_)) {
                assert_eq!(
                    *got == Got::Deleted,
                    deleted.contains(id),
                    "{killed}: holdfast get {id} and the library disagree"
                );
            }
        }
        assert!(
            deleted.is_subset(&corpus.doomed),
            "{when}: deleted what it must not"
        );

        let checked = clock.elapsed();

        // Where it was.
        let before = runs(&setup, &data_dir);
        let interrupted = before
            .iter()
            .find(|run| run["status"] == "running")
            .map(|run| run["run_id"].as_i64().unwrap());
        let stage = match interrupted {
            Some(id) => {
                let output = setup
                    .holdfast(&data_dir)
                    .args(["retention", "show", &id.to_string()])
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
                stderr
                    .split("(stage ")
                    .nth(1)
                    .and_then(|rest| rest.split(')').next())
                    .unwrap_or("?")
                    .to_owned()
            }
            None if before.is_empty() => "before the run was recorded".to_owned(),
            None => format!("after the run: {}", before[0]["status"]),
        };
        eprintln!(
            "{when}: {} deleted at the kill, stage {stage}{} (checks: verify {verified:?}, library {library:?}, all {checked:?})",
            deleted.len(),
            if finished_first {
                " (the run had already exited)"
            } else {
                ""
            }
        );

        // Restart: the run is finished, and the end state is exact.
        let restarted = format!("{when}, after restart");
        let after = finish_and_check(
            &setup,
            &data_dir,
            &corpus,
            &mut rng,
            &restarted,
            &mut problems,
        )
        .await;
        assert!(
            after == reference_deleted,
            "{when}: other deletions than uninterrupted"
        );
        if let Some(id) = interrupted {
            let certificate = certificate(&setup, &data_dir, id);
            assert_eq!(certificate["resumed"], true, "{when}: {certificate:#}");
        }
        eprintln!(
            "{when}: restarted and checked in {:?}",
            clock.elapsed() - checked
        );
        landed.push((delay, stage, deleted.len(), problems.len()));
        std::fs::remove_dir_all(&data_dir).unwrap();
    }
    eprintln!(
        "kills (delay, stage, deleted at the kill, problems so far): {landed:#?}; total {:?}",
        started.elapsed()
    );
    assert_eq!(landed.len(), KILL_FRACTIONS.len());
    let mut by_check: BTreeMap<&str, usize> = BTreeMap::new();
    for problem in &problems {
        *by_check
            .entry(problem.split(':').next().unwrap_or(""))
            .or_default() += 1;
    }
    assert!(
        problems.is_empty(),
        "{} problems ({by_check:#?}); the first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
