//! Import benchmark: `cargo bench --bench import`.
//!
//! Generates, deterministically (the `holdfast generate` corpus for users,
//! channels, times and text), a Slack export of N messages (zipped, one JSON
//! file per channel and day, with threads, edits, reactions and files) and a
//! Mattermost bulk export of N posts (plain JSONL, replies nested, with
//! reactions and edits), imports each into a fresh archive (SQLite metadata)
//! and prints events/s, MB/s of source read, and peak memory; then, for
//! comparison, the rate of reading and mapping alone (a dry run, no store).
//!
//! N is `HOLDFAST_BENCH_IMPORT_MESSAGES` (default 1,000,000); a quick run:
//! `HOLDFAST_BENCH_IMPORT_MESSAGES=20000 cargo bench --bench import`.
//! Peak RSS is the process's resident high-water mark (`VmHWM`) reset before
//! each import (`/proc/self/clear_refs`), and its growth over the resident
//! size at the import's start.
#![allow(clippy::unwrap_used, reason = "a benchmark binary")]

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use holdfast::generate::{EventGenerator, GenerateOptions};
use holdfast::import::{self, Format, ImportOptions, ImportReport};
use holdfast::store::{Store, StoreOptions};
use serde_json::{Value, json};

use common::{proc_status_kib, reset_peak};

const SLACK_TEAM: &str = "T0BENCH01";

/// The generator's posts: (user, channel, team, epoch ms, text, parent index).
struct Message {
    user: String,
    channel: String,
    team: String,
    at_ms: i64,
    text: String,
    /// Index (in the output order) of the thread root this replies to.
    root: Option<usize>,
}

/// `n` posts of the synthetic corpus, in time order, each with a unique
/// millisecond (Slack's `ts` is unique per channel).
fn messages(n: usize) -> impl Iterator<Item = Message> {
    let generator = EventGenerator::new(&GenerateOptions {
        events: (n as u64) * 2 + 1000,
        seed: 7,
        ..GenerateOptions::default()
    });
    let mut post_index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut roots = std::collections::VecDeque::new();
    let mut last_ms = 0i64;
    let mut count = 0usize;
    generator
        .filter(|event| event["kind"] == "post")
        .map(move |event| {
            let at_ms = match &event["at"] {
                Value::Number(ms) => ms.as_i64().unwrap(),
                Value::String(text) => chrono::DateTime::parse_from_rfc3339(text)
                    .unwrap()
                    .timestamp_millis(),
                _ => unreachable!("the generator writes at as a string or a number"),
            };
            let at_ms = at_ms.max(last_ms + 1);
            last_ms = at_ms;
            let root = event["parent"]
                .as_str()
                .and_then(|parent| post_index.get(parent).copied());
            // Only the most recent roots are kept: memory stays bounded.
            if event["parent"].is_null() {
                let post = event["post"].as_str().unwrap().to_owned();
                post_index.insert(post.clone(), count);
                roots.push_back(post);
                if roots.len() > 20_000
                    && let Some(oldest) = roots.pop_front()
                {
                    post_index.remove(&oldest);
                }
            }
            count += 1;
            Message {
                user: event["user"].as_str().unwrap().to_owned(),
                channel: event["channel"].as_str().unwrap().to_owned(),
                team: event["team"].as_str().unwrap().to_owned(),
                at_ms,
                text: event["text"].as_str().unwrap_or("").to_owned(),
                root,
            }
        })
        .take(n)
}

fn slack_ts(at_ms: i64, index: usize) -> String {
    format!("{}.{:03}{:03}", at_ms / 1000, at_ms % 1000, index % 1000)
}

/// Writes a Slack export folder of `n` messages, then zips it; returns the zip.
fn generate_slack(dir: &Path, n: usize) -> PathBuf {
    let root = dir.join("slack");
    std::fs::create_dir_all(&root).unwrap();
    let mut users: BTreeMap<String, String> = BTreeMap::new();
    let mut channels: BTreeMap<String, String> = BTreeMap::new();
    // (channel, day) → open day file; a channel's day changes in time order.
    let mut open: BTreeMap<String, (String, BufWriter<File>, bool)> = BTreeMap::new();
    let mut ts_of: Vec<(String, String)> = Vec::with_capacity(n);
    for (index, message) in messages(n).enumerate() {
        let n_users = users.len();
        let user_id = users
            .entry(message.user.clone())
            .or_insert_with(|| format!("U{:05}", n_users + 1))
            .clone();
        let n_channels = channels.len();
        let channel_id = channels
            .entry(message.channel.clone())
            .or_insert_with(|| format!("C{:05}", n_channels + 1))
            .clone();
        let ts = slack_ts(message.at_ms, index);
        let day = chrono::DateTime::from_timestamp_millis(message.at_ms)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string();
        let mut value = json!({
            "client_msg_id": format!("00000000-0000-4000-8000-{index:012}"),
            "type": "message", "text": message.text, "user": user_id, "ts": ts,
            "team": SLACK_TEAM,
            "blocks": [{"type": "rich_text", "block_id": format!("b{index}"), "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": message.text}]}]}],
        });
        if let Some(root) = message.root
            && ts_of[root].1 == channel_id
        {
            value["thread_ts"] = json!(ts_of[root].0);
        }
        if index % 10 == 0 {
            value["reactions"] =
                json!([{"name": "thumbsup", "users": ["U00001", "U00002"], "count": 2}]);
        }
        if index % 20 == 0 {
            value["edited"] =
                json!({"user": user_id, "ts": slack_ts(message.at_ms + 60_000, index)});
        }
        if index % 25 == 0 {
            value["files"] = json!([{"id": format!("F{index:08}"), "name": "report.pdf",
                "mimetype": "application/pdf", "size": 10_000 + index, "mode": "hosted"}]);
        }
        ts_of.push((ts, channel_id.clone()));
        let folder = message.channel.clone();
        let entry = open.entry(folder.clone());
        let (open_day, writer, first) = match entry {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                std::fs::create_dir_all(root.join(&folder)).unwrap();
                let file = File::create(root.join(&folder).join(format!("{day}.json"))).unwrap();
                let mut writer = BufWriter::new(file);
                writer.write_all(b"[\n").unwrap();
                entry.insert((day.clone(), writer, true))
            }
        };
        if *open_day != day {
            writer.write_all(b"\n]\n").unwrap();
            writer.flush().unwrap();
            let file = File::create(root.join(&folder).join(format!("{day}.json"))).unwrap();
            *writer = BufWriter::new(file);
            writer.write_all(b"[\n").unwrap();
            *open_day = day;
            *first = true;
        }
        if !*first {
            writer.write_all(b",\n").unwrap();
        }
        *first = false;
        serde_json::to_writer(&mut *writer, &value).unwrap();
    }
    for (_, (_, mut writer, _)) in open {
        writer.write_all(b"\n]\n").unwrap();
        writer.flush().unwrap();
    }
    let users_json: Vec<Value> = users
        .iter()
        .map(|(name, id)| json!({"id": id, "team_id": SLACK_TEAM, "name": name, "real_name": name, "deleted": false, "is_bot": false}))
        .collect();
    std::fs::write(
        root.join("users.json"),
        serde_json::to_vec(&users_json).unwrap(),
    )
    .unwrap();
    let channels_json: Vec<Value> = channels
        .iter()
        .map(|(name, id)| json!({"id": id, "name": name, "created": 1_704_067_200, "creator": "U00001", "is_archived": false, "members": ["U00001", "U00002"]}))
        .collect();
    std::fs::write(
        root.join("channels.json"),
        serde_json::to_vec(&channels_json).unwrap(),
    )
    .unwrap();
    drop(ts_of);

    let zip_path = dir.join("slack-export.zip");
    let mut zip = zip::ZipWriter::new(BufWriter::new(File::create(&zip_path).unwrap()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(false);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for day in std::fs::read_dir(&path).unwrap() {
                names.push(day.unwrap().path());
            }
        } else {
            names.push(path);
        }
    }
    names.sort();
    for path in names {
        let name = path
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        zip.start_file(name, options).unwrap();
        let mut file = File::open(&path).unwrap();
        std::io::copy(&mut file, &mut zip).unwrap();
    }
    zip.finish().unwrap().flush().unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    zip_path
}

/// Writes a Mattermost bulk export of `n` posts (replies nested: every
/// tenth root gets two) as plain JSONL.
fn generate_mattermost(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("mattermost-export.jsonl");
    let mut out = BufWriter::new(File::create(&path).unwrap());
    let mut line = |value: Value| {
        serde_json::to_writer(&mut out, &value).unwrap();
        out.write_all(b"\n").unwrap();
    };
    line(json!({"type": "version", "version": 1, "info": {"generator": "holdfast-bench"}}));
    let mut teams = std::collections::BTreeSet::new();
    let mut channels = std::collections::BTreeSet::new();
    let mut users = std::collections::BTreeSet::new();
    let mut posts = Vec::new();
    let mut written = 0usize;
    let flush_posts = |posts: &mut Vec<Message>, line: &mut dyn FnMut(Value)| {
        for (index, message) in posts.drain(..).enumerate() {
            let mut post = json!({
                "team": message.team, "channel": message.channel, "user": message.user, "type": "",
                "message": message.text, "create_at": message.at_ms, "props": {},
            });
            if index % 10 == 0 {
                post["reactions"] = json!([{"user": "allen-p", "emoji_name": "+1", "create_at": message.at_ms + 1000}]);
            }
            if index % 20 == 0 {
                post["edit_at"] = json!(message.at_ms + 60_000);
            }
            if index % 10 == 5 {
                post["replies"] = json!([
                    {"user": "kean-s", "message": format!("re: {}", message.text.chars().take(40).collect::<String>()), "create_at": message.at_ms + 2000},
                    {"user": message.user, "message": "thanks", "create_at": message.at_ms + 3000},
                ]);
            }
            line(json!({"type": "post", "post": post}));
        }
    };
    // Directory lines first, as Mattermost writes them: one pass to learn
    // the names (cheap), a second to write the posts.
    for message in messages(n) {
        teams.insert(message.team.clone());
        channels.insert((message.team, message.channel));
        users.insert(message.user);
    }
    users.insert("allen-p".to_owned());
    users.insert("kean-s".to_owned());
    for team in &teams {
        line(json!({"type": "team", "team": {"name": team, "display_name": team, "type": "O"}}));
    }
    for (team, channel) in &channels {
        line(
            json!({"type": "channel", "channel": {"team": team, "name": channel, "display_name": channel, "type": "O"}}),
        );
    }
    for user in &users {
        line(
            json!({"type": "user", "user": {"username": user, "email": format!("{user}@example.org"), "teams": []}}),
        );
    }
    // Every tenth root carries two nested replies: count them as posts.
    let mut budget = n;
    for message in messages(n) {
        if budget == 0 {
            break;
        }
        let replies = if written % 10 == 5 { 2 } else { 0 };
        budget = budget.saturating_sub(1 + replies);
        written += 1;
        posts.push(message);
        if posts.len() >= 10_000 {
            flush_posts(&mut posts, &mut line);
        }
    }
    flush_posts(&mut posts, &mut line);
    out.flush().unwrap();
    path
}

async fn bench_import(
    name: &str,
    format: Format,
    path: &Path,
) -> (ImportReport, Duration, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::for_data_dir(dir.path().join("data"));
    let (store, _) = Store::open(&options).await.unwrap();
    let base = reset_peak();
    let started = Instant::now();
    let report = import::import(&store, format, path, &ImportOptions::default(), &mut |_| {})
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let peak = proc_status_kib("VmHWM");
    store.close().await;
    assert!(report.is_complete(), "{name}: {:#?}", report.problems);
    assert_eq!(report.totals.accepted, report.totals.mapped);
    (report, elapsed, peak, base)
}

fn main() {
    let n: usize = std::env::var("HOLDFAST_BENCH_IMPORT_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "holdfast import benchmark: {n} messages per export, batches of {}",
        import::DEFAULT_BATCH_EVENTS
    );
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let slack = generate_slack(dir.path(), n);
    println!(
        "generated the Slack export: {:.1} MB zipped in {:.1} s",
        std::fs::metadata(&slack).unwrap().len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mattermost = generate_mattermost(dir.path(), n);
    println!(
        "generated the Mattermost export: {:.1} MB of JSONL in {:.1} s",
        std::fs::metadata(&mattermost).unwrap().len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    println!();
    println!(
        "| export | source | messages | events | seconds | events/s | MB/s (source, uncompressed) | peak RSS MiB | peak RSS growth MiB | read and map only, events/s |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, format, path, source) in [
        ("Slack", Format::Slack, &slack, "zip"),
        ("Mattermost", Format::Mattermost, &mattermost, "JSONL"),
    ] {
        // The reader alone (a dry run): what the importer costs without the store.
        let started = Instant::now();
        let mapped = import::map_export(format, path, &ImportOptions::default(), &mut |_, _| {})
            .unwrap()
            .totals
            .mapped;
        let map_rate = mapped as f64 / started.elapsed().as_secs_f64();
        let (report, elapsed, peak, base) = runtime.block_on(bench_import(name, format, path));
        let seconds = elapsed.as_secs_f64();
        let messages = report.by_kind.get("post").map_or(0, |counts| counts.mapped);
        println!(
            "| {name} | {source} | {messages} | {} | {seconds:.1} | {:.0} | {:.1} | {:.0} | {:.0} | {map_rate:.0} |",
            report.totals.accepted,
            report.totals.accepted as f64 / seconds,
            report.bytes_read as f64 / 1e6 / seconds,
            peak as f64 / 1024.0,
            peak.saturating_sub(base) as f64 / 1024.0,
        );
    }
    let _ = std::io::stdout().flush();
}
