//! Importers: Slack and Mattermost exports, written by hand in the real
//! formats under `tests/fixtures/`, imported into real archives and read
//! back event by event; re-import idempotence; zip and folder alike;
//! malformed inputs reported with their file and position, losing nothing.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use holdfast::db::Backend;
use holdfast::event::{Event, EventKind};
use holdfast::import::{self, Format, ImportError, ImportOptions, ImportReport, Severity};
use holdfast::store::Store;
use serde_json::{Value, json};

const TEAM: &str = "T0HOLDFST";
const SLACK_EVENTS: u64 = 29;
const MATTERMOST_EVENTS: u64 = 16;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn slack_fixture() -> PathBuf {
    fixture("slack/export")
}

fn mattermost_fixture() -> PathBuf {
    fixture("mattermost/export")
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                out.push(relative.to_str().unwrap().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for name in files_under(from) {
        let target = to.join(&name);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(from.join(&name), target).unwrap();
    }
}

/// Zips every file of `dir` under `prefix` (deflated, or stored when asked).
fn zip_dir(dir: &Path, zip_path: &Path, prefix: &str, stored: bool) {
    let file = fs::File::create(zip_path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let method = if stored {
        zip::CompressionMethod::Stored
    } else {
        zip::CompressionMethod::Deflated
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for name in files_under(dir) {
        zip.start_file(format!("{prefix}{name}"), options).unwrap();
        zip.write_all(&fs::read(dir.join(&name)).unwrap()).unwrap();
    }
    zip.finish().unwrap();
}

async fn import_into(store: &Store, format: Format, path: &Path) -> ImportReport {
    try_import(store, format, path).await.unwrap()
}

async fn try_import(
    store: &Store,
    format: Format,
    path: &Path,
) -> Result<ImportReport, ImportError> {
    let options = ImportOptions {
        batch_events: 7, // several batches even for the small fixtures
        ..ImportOptions::default()
    };
    import::import(store, format, path, &options, &mut |_| {}).await
}

/// The events an import would store, in order, without a store.
fn mapped_events(format: Format, path: &Path) -> (Vec<Event>, ImportReport) {
    let mut events = Vec::new();
    let report = import::map_export(format, path, &ImportOptions::default(), &mut |batch, _| {
        events.extend(batch);
    })
    .unwrap();
    (events, report)
}

/// Every event in the archive, in store order, read back through the store.
async fn archive_events(store: &Store) -> Vec<Event> {
    let rows = store.db().events_from_seq(0, 1_000_000).await.unwrap();
    let mut events = Vec::new();
    for row in rows {
        let stored = store.get_event(&row.event_id).await.unwrap().unwrap();
        events.push(stored.event);
    }
    events
}

async fn get(store: &Store, id: &str) -> Event {
    store
        .get_event(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no event {id}"))
        .event
}

fn slack_id(channel: &str, rest: &str) -> String {
    format!("slack:{TEAM}:{channel}:{rest}")
}

fn problems_of(report: &ImportReport, severity: Severity) -> Vec<String> {
    report
        .problems
        .iter()
        .filter(|problem| problem.severity == severity)
        .map(ToString::to_string)
        .collect()
}

fn kinds(report: &ImportReport) -> BTreeMap<String, u64> {
    report
        .by_kind
        .iter()
        .map(|(kind, counts)| (kind.clone(), counts.mapped))
        .collect()
}

/// The message at `index` of a Slack day file of the fixture, as written.
fn slack_message(file: &str, index: usize) -> Value {
    let text = fs::read_to_string(slack_fixture().join(file)).unwrap();
    let messages: Vec<Value> = serde_json::from_str(&text).unwrap();
    messages[index].clone()
}

fn mm_hash(message: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(message.as_bytes()))[..16].to_owned()
}

fn mm_id(team: &str, channel: &str, create_at: i64, user: &str, message: &str) -> String {
    format!(
        "mm:{team}:{channel}:{create_at}:{user}:{}",
        mm_hash(message)
    )
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn hf(data_dir: &Path, args: &[&str]) -> Run {
    let output = helpers::holdfast(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Run {
    fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ---------------------------------------------------------------------------
// Slack
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_export_is_imported_event_by_event() {
    let archive = helpers::TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let report = import_into(&store, Format::Slack, &slack_fixture()).await;

    assert_eq!(report.team.as_deref(), Some(TEAM));
    assert_eq!(report.totals.mapped, SLACK_EVENTS);
    assert_eq!(report.totals.accepted, SLACK_EVENTS);
    assert_eq!(report.totals.duplicates, 0);
    assert_eq!(report.totals.rejected, 0);
    assert_eq!(report.errors, 0, "{:#?}", report.problems);
    assert!(report.is_complete());
    assert_eq!(
        kinds(&report),
        BTreeMap::from(
            [
                ("channel_archive", 1),
                ("channel_create", 5),
                ("channel_rename", 1),
                ("delete", 1),
                ("edit", 1),
                ("member_join", 1),
                ("member_leave", 1),
                ("post", 15),
                ("reaction_add", 3),
            ]
            .map(|(kind, n)| (kind.to_owned(), n))
        )
    );
    // Counts per channel, with the Slack name beside the id.
    let general = report
        .channels
        .iter()
        .find(|channel| channel.channel == "C01GENERAL")
        .unwrap();
    assert_eq!(general.team, TEAM);
    assert_eq!(general.name.as_deref(), Some("general"));
    assert_eq!(general.total.accepted, 18);
    assert_eq!(general.kinds["post"].accepted, 9);
    assert_eq!(report.directory["users"], 5);
    assert_eq!(report.directory["public_channel"], 2);
    assert_eq!(report.directory["im"], 1);
    // A user missing from users.json is kept as its id, and reported once.
    assert_eq!(report.unknown_users.len(), 1);
    assert_eq!(report.unknown_users[0].user, "U99GHOST");
    assert_eq!(report.unknown_users[0].events, 2);
    assert_eq!(
        report.unknown_users[0].first_seen.file,
        "general/2024-01-02.json"
    );
    let warnings = problems_of(&report, Severity::Warning).join("\n");
    assert!(
        warnings.contains("integration_logs.json: not imported: app and integration activity log"),
        "{warnings}"
    );
    assert!(warnings.contains("\"U99GHOST\""), "{warnings}");

    // Every event is in the archive, readable, filed under the workspace.
    let events = archive_events(&store).await;
    assert_eq!(events.len() as u64, SLACK_EVENTS);
    for event in &events {
        assert_eq!(event.team, TEAM, "{}", event.id);
        assert!(event.id.starts_with("slack:T0HOLDFST:"), "{}", event.id);
    }

    // The thread root: text, microseconds, unmapped fields in props.
    let root_id = slack_id("C01GENERAL", "1704164645.123456");
    let root = get(&store, &root_id).await;
    assert_eq!(root.kind, EventKind::Post);
    assert_eq!(root.at_rfc3339(), "2024-01-02T03:04:05.123456Z");
    assert_eq!(root.channel, "C01GENERAL");
    assert_eq!(root.user, "alice");
    assert_eq!(root.post.as_deref(), Some(root_id.as_str()));
    assert_eq!(root.parent, None);
    assert_eq!(
        root.text.as_deref(),
        Some("Quarterly numbers are in — café meeting at 10? Привет всем! 你好 🎉")
    );
    let source = slack_message("general/2024-01-02.json", 1);
    for kept in [
        "client_msg_id",
        "blocks",
        "user_profile",
        "edited",
        "reply_count",
        "thread_ts",
    ] {
        assert_eq!(root.props[kept], source[kept], "props.{kept}");
    }
    for mapped in ["text", "user", "ts", "type", "reactions"] {
        assert!(!root.props.contains_key(mapped), "props.{mapped} is mapped");
    }

    // Everything about the root: the post, its edit, one reaction per user.
    let about_root = store.post_events(&root_id).await.unwrap();
    let ids: Vec<&str> = about_root.iter().map(|s| s.event.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            root_id.clone(),
            format!("{root_id}:edit:1704164660.000000"),
            format!("{root_id}:reaction:thumbsup:U02BORIS"),
            format!("{root_id}:reaction:thumbsup:U03CHEN"),
            format!("{root_id}:reaction:tada:U99GHOST"),
        ]
    );
    let edit = &about_root[1].event;
    assert_eq!(edit.kind, EventKind::Edit);
    assert_eq!(edit.at_rfc3339(), "2024-01-02T03:04:20.000Z");
    assert_eq!(edit.user, "alice");
    assert_eq!(edit.text, root.text);
    let reaction = &about_root[3].event;
    assert_eq!(reaction.kind, EventKind::ReactionAdd);
    assert_eq!(reaction.user, "chen.wei");
    assert_eq!(reaction.emoji.as_deref(), Some("thumbsup"));
    assert_eq!(reaction.at_us, root.at_us);
    assert_eq!(reaction.props["at_is_message_time"], json!(true));
    assert_eq!(about_root[4].event.user, "U99GHOST");

    // Replies point at their root; non-Latin text is kept byte for byte.
    let reply = get(&store, &slack_id("C01GENERAL", "1704164700.000200")).await;
    assert_eq!(reply.parent.as_deref(), Some(root_id.as_str()));
    assert_eq!(reply.user, "chen.wei");
    assert_eq!(reply.text.as_deref(), Some("好的，我会带上报告 📊"));
    assert_eq!(reply.props["parent_user_id"], json!("U01ALICE"));
    let broadcast = get(&store, &slack_id("C01GENERAL", "1704250200.000300")).await;
    assert_eq!(broadcast.parent.as_deref(), Some(root_id.as_str()));
    assert_eq!(broadcast.props["source_subtype"], json!("thread_broadcast"));

    // Files: metadata with every Slack field kept; a deleted file by its id.
    let shared = get(&store, &slack_id("C01GENERAL", "1704164800.000300")).await;
    assert_eq!(shared.files.len(), 2);
    assert_eq!(shared.files[0].name, "memo.pdf");
    assert_eq!(shared.files[0].size, 48213);
    assert_eq!(shared.files[0].mime.as_deref(), Some("application/pdf"));
    assert_eq!(shared.files[0].extra["id"], json!("F01MEMO"));
    assert_eq!(shared.files[0].extra["title"], json!("Settlement memo"));
    assert_eq!(shared.files[1].name, "F02GONE");
    assert_eq!(shared.files[1].size, 0);
    assert_eq!(shared.files[1].extra["size_unknown"], json!(true));
    assert_eq!(shared.files[1].extra["mode"], json!("tombstone"));
    assert_eq!(shared.props["upload"], json!(true));

    // A bot, by its name; an unknown subtype, kept whole.
    let bot = get(&store, &slack_id("C01GENERAL", "1704164900.000400")).await;
    assert_eq!(bot.user, "deploybot");
    assert_eq!(bot.text.as_deref(), Some("Deploy finished: build #42 ✅"));
    assert_eq!(bot.props["source_subtype"], json!("bot_message"));
    assert_eq!(bot.props["bot_id"], json!("B05DEPLOY"));
    let huddle = get(&store, &slack_id("C01GENERAL", "1704165000.000500")).await;
    assert_eq!(huddle.kind, EventKind::Post);
    assert_eq!(huddle.text.as_deref(), Some(""));
    assert_eq!(huddle.props["source_subtype"], json!("sh_room_created"));
    assert_eq!(
        huddle.props["raw"],
        slack_message("general/2024-01-02.json", 6)
    );

    // A deleted thread parent: a delete of its post; its reply stays.
    let tombstone_post = slack_id("C01GENERAL", "1704165100.000600");
    let delete = get(&store, &format!("{tombstone_post}:delete")).await;
    assert_eq!(delete.kind, EventKind::Delete);
    assert_eq!(delete.post.as_deref(), Some(tombstone_post.as_str()));
    assert_eq!(delete.user, "slackbot");
    assert_eq!(delete.props["source_subtype"], json!("tombstone"));
    assert_eq!(delete.props["text"], json!("This message was deleted."));
    let orphan = get(&store, &slack_id("C01GENERAL", "1704165200.000700")).await;
    assert_eq!(orphan.parent.as_deref(), Some(tombstone_post.as_str()));
    assert_eq!(orphan.user, "zoe");
    assert_eq!(
        orphan.text.as_deref(),
        Some("Zoé here: ça reste confidentiel.")
    );

    // Membership and channel events.
    let join = get(&store, &slack_id("C01GENERAL", "1704164640.000100")).await;
    assert_eq!(join.kind, EventKind::MemberJoin);
    assert_eq!(join.user, "chen.wei");
    assert_eq!(
        join.props["text"],
        json!("<@U03CHEN> has joined the channel")
    );
    let leave = get(&store, &slack_id("C01GENERAL", "1704250100.000200")).await;
    assert_eq!(
        (leave.kind, leave.user.as_str()),
        (EventKind::MemberLeave, "zoe")
    );
    let rename = get(&store, &slack_id("C01GENERAL", "1704250000.000100")).await;
    assert_eq!(rename.kind, EventKind::ChannelRename);
    assert_eq!(rename.props["old_name"], json!("random"));
    assert_eq!(rename.props["name"], json!("general"));
    let archived = get(&store, &slack_id("C02LEGAL", "1704166000.000100")).await;
    assert_eq!(archived.kind, EventKind::ChannelArchive);
    let created = get(&store, &slack_id("C01GENERAL", "channel_create")).await;
    assert_eq!(created.kind, EventKind::ChannelCreate);
    assert_eq!(created.at_rfc3339(), "2024-01-01T00:00:00.000Z");
    assert_eq!(created.user, "alice");
    assert_eq!(created.props["name"], json!("general"));
    assert_eq!(created.props["conversation_type"], json!("public_channel"));
    assert_eq!(created.props["members"].as_array().unwrap().len(), 4);
    let dm_created = get(&store, &slack_id("D01AB", "channel_create")).await;
    assert_eq!(dm_created.user, import::UNKNOWN_USER);
    assert_eq!(dm_created.props["conversation_type"], json!("im"));

    // The same ts in two channels: two posts.
    let same_second = get(&store, &slack_id("C02LEGAL", "1704164645.123456")).await;
    assert_eq!(same_second.at_us, root.at_us);
    assert_eq!(same_second.channel, "C02LEGAL");
    assert_ne!(same_second.text, root.text);

    // Private channel, group DM and DM, under their ids.
    let private = get(&store, &slack_id("G01BOARD", "1704170000.000100")).await;
    assert_eq!(private.user, "alice");
    let group = get(&store, &slack_id("G02MPIM", "1704175000.000100")).await;
    assert_eq!(group.text.as_deref(), Some("群聊测试 — group DM"));
    let dm = get(&store, &slack_id("D01AB", "1704180060.000200")).await;
    assert_eq!((dm.user.as_str(), dm.channel.as_str()), ("boris", "D01AB"));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_reimport_stores_nothing_twice() {
    let archive = helpers::TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let first = import_into(&store, Format::Slack, &slack_fixture()).await;
    assert_eq!(first.totals.accepted, SLACK_EVENTS);
    let before = archive_events(&store).await;
    let second = import_into(&store, Format::Slack, &slack_fixture()).await;
    assert_eq!(second.totals.mapped, SLACK_EVENTS);
    assert_eq!(second.totals.accepted, 0);
    assert_eq!(second.totals.duplicates, SLACK_EVENTS);
    assert_eq!(second.by_kind["post"].duplicates, 15);
    assert_eq!(archive_events(&store).await, before);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_zip_and_folder_give_the_same_events() {
    let tmp = tempfile::tempdir().unwrap();
    let zipped = tmp.path().join("export.zip");
    zip_dir(&slack_fixture(), &zipped, "", false);
    // Some exports put everything in one folder inside the zip.
    let nested = tmp.path().join("nested.zip");
    zip_dir(
        &slack_fixture(),
        &nested,
        "Holdfast Slack export Jan 1 2024 - Jan 3 2024/",
        false,
    );

    let (from_folder, folder_report) = mapped_events(Format::Slack, &slack_fixture());
    let (from_zip, zip_report) = mapped_events(Format::Slack, &zipped);
    let (from_nested, _) = mapped_events(Format::Slack, &nested);
    assert_eq!(from_folder.len() as u64, SLACK_EVENTS);
    assert_eq!(from_zip, from_folder);
    assert_eq!(from_nested, from_folder);
    assert!(zip_report.dry_run);
    assert_eq!(zip_report.totals, folder_report.totals);
    assert_eq!(zip_report.files_read, folder_report.files_read);
    assert_eq!(zip_report.bytes_read, folder_report.bytes_read);

    // And in the archive: the zip after the folder stores nothing.
    let archive = helpers::TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    import_into(&store, Format::Slack, &slack_fixture()).await;
    let again = import_into(&store, Format::Slack, &zipped).await;
    assert_eq!(again.totals.accepted, 0);
    assert_eq!(again.totals.duplicates, SLACK_EVENTS);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_truncated_day_file_is_reported_and_a_rerun_fills_the_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    copy_dir(&slack_fixture(), &export);
    let day = export.join("general/2024-01-02.json");
    let full = fs::read_to_string(&day).unwrap();
    // Cut inside the fifth message (the file share): four survive.
    let cut = full.find("Draft settlement memo").unwrap();
    fs::write(&day, &full[..cut]).unwrap();

    let archive = helpers::TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let report = import_into(&store, Format::Slack, &export).await;
    assert!(!report.is_complete());
    assert_eq!(report.errors, 1, "{:#?}", report.problems);
    let error = &report
        .problems
        .iter()
        .find(|problem| problem.severity == Severity::Error)
        .unwrap();
    assert_eq!(error.at.file, "general/2024-01-02.json");
    let expected_line = full[..cut].lines().count() as u64;
    assert_eq!(error.at.line, Some(expected_line));
    assert!(error.at.column.is_some());
    assert!(
        error.problem.starts_with("truncated JSON")
            && error
                .problem
                .contains("the 4 message(s) before this point were imported"),
        "{error}"
    );
    // The four complete messages (join, root + edit + 3 reactions, 2
    // replies) and every other file were imported.
    let missing = SLACK_EVENTS - report.totals.accepted;
    assert_eq!(missing, 6);
    assert!(
        store
            .get_event(&slack_id("C01GENERAL", "1704164700.000200"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_event(&slack_id("C01GENERAL", "1704164800.000300"))
            .await
            .unwrap()
            .is_none()
    );

    // The operator fixes the file and runs the same import again.
    fs::write(&day, &full).unwrap();
    let rerun = import_into(&store, Format::Slack, &export).await;
    assert!(rerun.is_complete());
    assert_eq!(rerun.totals.accepted, missing);
    assert_eq!(rerun.totals.duplicates, SLACK_EVENTS - missing);
    assert_eq!(archive_events(&store).await.len() as u64, SLACK_EVENTS);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_corrupt_zip_entry_is_reported_and_the_other_files_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let zipped = tmp.path().join("export.zip");
    zip_dir(&slack_fixture(), &zipped, "", true);
    let mut bytes = fs::read(&zipped).unwrap();
    let needle = b"don't share the raptor numbers";
    let at = bytes
        .windows(needle.len())
        .position(|window| window == needle)
        .unwrap();
    bytes[at] = b'D'; // the entry's CRC no longer matches
    fs::write(&zipped, &bytes).unwrap();

    let archive = helpers::TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let report = import_into(&store, Format::Slack, &zipped).await;
    let errors = problems_of(&report, Severity::Error);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("error: board-private/2024-01-02.json: not imported:"),
        "{errors:?}"
    );
    assert_eq!(report.totals.accepted, SLACK_EVENTS - 1);
    assert!(
        store
            .get_event(&slack_id("G01BOARD", "1704170000.000100"))
            .await
            .unwrap()
            .is_none()
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_workspace_id_comes_from_users_or_the_team_option() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    copy_dir(&slack_fixture(), &export);
    let users: Vec<Value> =
        serde_json::from_str(&fs::read_to_string(export.join("users.json")).unwrap()).unwrap();
    let without_team: Vec<Value> = users
        .into_iter()
        .map(|mut user| {
            user.as_object_mut().unwrap().remove("team_id");
            user
        })
        .collect();
    fs::write(
        export.join("users.json"),
        serde_json::to_string(&without_team).unwrap(),
    )
    .unwrap();
    let error = import::map_export(
        Format::Slack,
        &export,
        &ImportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(error, ImportError::NoWorkspace { .. }), "{error}");
    assert!(error.to_string().contains("pass --team"), "{error}");

    let options = ImportOptions {
        slack_team: Some("acme".to_owned()),
        ..ImportOptions::default()
    };
    let mut ids = Vec::new();
    import::map_export(Format::Slack, &export, &options, &mut |batch, _| {
        ids.extend(batch.into_iter().map(|event| event.id));
    })
    .unwrap();
    assert!(ids.contains(&"slack:acme:C01GENERAL:1704164645.123456".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_unreadable_conversation_list_imports_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    copy_dir(&slack_fixture(), &export);
    let channels = fs::read_to_string(export.join("channels.json")).unwrap();
    fs::write(
        export.join("channels.json"),
        &channels[..channels.len() / 2],
    )
    .unwrap();

    let archive = helpers::TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let error = try_import(&store, Format::Slack, &export)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, ImportError::BadMetadata { .. }),
        "{message}"
    );
    assert!(
        message.contains("channels.json: EOF while parsing")
            && message.ends_with("nothing was imported"),
        "{message}"
    );
    // Ids depend on it: nothing at all was stored.
    assert!(archive_events(&store).await.is_empty());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_the_whole_export() {
    let archive = helpers::TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let mut seen = Vec::new();
    let options = ImportOptions {
        batch_events: 4,
        ..ImportOptions::default()
    };
    let report = import::import(
        &store,
        Format::Slack,
        &slack_fixture(),
        &options,
        &mut |p| seen.push(*p),
    )
    .await
    .unwrap();
    assert!(seen.len() >= 8, "{seen:?}");
    for pair in seen.windows(2) {
        assert!(pair[0].bytes_read <= pair[1].bytes_read, "{seen:?}");
        assert!(pair[0].events_stored < pair[1].events_stored, "{seen:?}");
        assert!(pair[1].events_stored <= pair[1].events_mapped, "{seen:?}");
    }
    let last = seen.last().unwrap();
    assert_eq!(last.bytes_total, last.bytes_read);
    assert_eq!(last.bytes_read, report.bytes_read);
    assert_eq!(last.events_stored, SLACK_EVENTS);
    assert_eq!(last.events_mapped, SLACK_EVENTS);
    store.close().await;
}

// ---------------------------------------------------------------------------
// Mattermost
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_export_is_imported_event_by_event() {
    let archive = helpers::TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let jsonl = mattermost_fixture().join("import.jsonl");
    let report = import_into(&store, Format::Mattermost, &jsonl).await;

    assert_eq!(report.totals.mapped, MATTERMOST_EVENTS);
    assert_eq!(report.totals.accepted, MATTERMOST_EVENTS);
    assert_eq!(report.errors, 0, "{:#?}", report.problems);
    assert_eq!(
        kinds(&report),
        BTreeMap::from(
            [
                ("channel_archive", 1),
                ("edit", 1),
                ("member_join", 1),
                ("post", 10),
                ("reaction_add", 3),
            ]
            .map(|(kind, n)| (kind.to_owned(), n))
        )
    );
    assert_eq!(
        report.directory,
        BTreeMap::from(
            [
                ("channel_memberships", 5),
                ("channels", 3),
                ("direct_channels", 2),
                ("emoji", 1),
                ("teams", 1),
                ("unknown_lines", 1),
                ("users", 3),
                ("attachments_missing", 1),
            ]
            .map(|(what, n)| (what.to_owned(), n))
        )
    );
    let deals = report
        .channels
        .iter()
        .find(|channel| channel.channel == "deals")
        .unwrap();
    assert_eq!(deals.name.as_deref(), Some("Deals — конфиденциально"));
    assert_eq!(deals.kinds["post"].accepted, 2);
    assert_eq!(report.unknown_users.len(), 1);
    assert_eq!(report.unknown_users[0].user, "ghost-user");
    assert_eq!(report.unknown_users[0].first_seen.line, Some(14));
    let warnings = problems_of(&report, Severity::Warning).join("\n");
    assert!(
        warnings.contains("import.jsonl:20: line type \"plugin_data\""),
        "{warnings}"
    );
    assert!(
        warnings.contains("warning: import.jsonl: 1 attachment(s) are not in the export"),
        "{warnings}"
    );

    let events = archive_events(&store).await;
    assert_eq!(events.len() as u64, MATTERMOST_EVENTS);

    // The root post: every field, microsecond-exact time, props kept.
    let message = "Wire transfer scheduled — café 9h, Привет, 你好 👍";
    let root_id = mm_id(
        "legal",
        "town-square",
        1_706_500_000_123,
        "allen-p",
        message,
    );
    let root = get(&store, &root_id).await;
    assert_eq!(root.kind, EventKind::Post);
    assert_eq!(root.at_rfc3339(), "2024-01-29T03:46:40.123Z");
    assert_eq!(
        (
            root.team.as_str(),
            root.channel.as_str(),
            root.user.as_str()
        ),
        ("legal", "town-square", "allen-p")
    );
    assert_eq!(root.post.as_deref(), Some(root_id.as_str()));
    assert_eq!(root.text.as_deref(), Some(message));
    assert_eq!(root.props["props"], json!({"from_webhook": "false"}));
    assert_eq!(root.props["flagged_by"], json!(["kean-s"]));
    assert_eq!(root.props["edit_at"], json!(1_706_500_060_000_i64));
    assert_eq!(root.files.len(), 1);
    assert_eq!(root.files[0].name, "memo.pdf");
    assert_eq!(root.files[0].size, 69);
    assert_eq!(
        root.files[0].extra["path"],
        json!("data/20240129/teams/tm1/channels/ch1/users/us1/fi1/memo.pdf")
    );

    let about_root = store.post_events(&root_id).await.unwrap();
    let ids: Vec<&str> = about_root.iter().map(|s| s.event.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            root_id.clone(),
            format!("{root_id}:edit:1706500060000"),
            format!("{root_id}:reaction:+1:kean-s"),
            format!("{root_id}:reaction:heart:dasovich-j"),
        ]
    );
    assert_eq!(about_root[1].event.text.as_deref(), Some(message));
    assert_eq!(about_root[1].event.at_rfc3339(), "2024-01-29T03:47:40.000Z");
    assert_eq!(about_root[2].event.at_rfc3339(), "2024-01-29T03:46:45.000Z");
    assert_eq!(about_root[3].event.emoji.as_deref(), Some("heart"));

    // Replies: two at the same millisecond by different users, and an
    // identical third told apart by its place in the thread.
    let reply = mm_id(
        "legal",
        "town-square",
        1_706_500_010_000,
        "kean-s",
        "Подтверждаю",
    );
    let other = mm_id(
        "legal",
        "town-square",
        1_706_500_010_000,
        "dasovich-j",
        "了解しました",
    );
    for id in [reply.clone(), other, format!("{reply}~2")] {
        let event = get(&store, &id).await;
        assert_eq!(event.parent.as_deref(), Some(root_id.as_str()), "{id}");
        assert_eq!(event.at_rfc3339(), "2024-01-29T03:46:50.000Z");
    }
    // Top-level posts at the same millisecond.
    let a = get(
        &store,
        &mm_id(
            "legal",
            "town-square",
            1_706_500_100_000,
            "kean-s",
            "same millisecond A",
        ),
    )
    .await;
    let b = get(
        &store,
        &mm_id(
            "legal",
            "town-square",
            1_706_500_100_000,
            "dasovich-j",
            "same millisecond B",
        ),
    )
    .await;
    assert_eq!(a.at_us, b.at_us);

    // An attachment the export does not have: recorded, size unknown.
    let term_sheet = get(
        &store,
        &mm_id(
            "legal",
            "deals",
            1_706_500_200_000,
            "kean-s",
            "Term sheet v3 attached; see the raptor tab",
        ),
    )
    .await;
    assert_eq!(term_sheet.files[0].name, "term-sheet.xlsx");
    assert_eq!(term_sheet.files[0].size, 0);
    assert_eq!(term_sheet.files[0].extra["size_unknown"], json!(true));
    assert_eq!(term_sheet.props["is_pinned"], json!(true));

    // A system post becomes what it says; a user the export lacks is kept.
    let join = get(
        &store,
        &mm_id(
            "legal",
            "town-square",
            1_706_400_000_000,
            "dasovich-j",
            "dasovich-j joined the channel.",
        ),
    )
    .await;
    assert_eq!(join.kind, EventKind::MemberJoin);
    assert_eq!(join.user, "dasovich-j");
    assert_eq!(join.props["type"], json!("system_join_channel"));
    assert_eq!(
        join.props["message"],
        json!("dasovich-j joined the channel.")
    );
    let ghost = get(
        &store,
        &mm_id(
            "legal",
            "deals",
            1_706_500_300_000,
            "ghost-user",
            "posted by a user the export does not list",
        ),
    )
    .await;
    assert_eq!(ghost.user, "ghost-user");

    // A deleted channel: archived at its deleted_at.
    let archived = get(&store, "mm:legal:old-deals:channel_archive:1706140800000").await;
    assert_eq!(archived.kind, EventKind::ChannelArchive);
    assert_eq!(archived.at_rfc3339(), "2024-01-25T00:00:00.000Z");
    assert_eq!(archived.props["display_name"], json!("Old deals"));

    // Direct and group messages, under the (direct) team.
    let dm_text = "DM: let's discuss the offshore account";
    let dm_id = mm_id(
        import::mattermost::DIRECT_TEAM,
        "allen-p__kean-s",
        1_706_600_000_000,
        "allen-p",
        dm_text,
    );
    let dm = get(&store, &dm_id).await;
    assert_eq!(
        (dm.team.as_str(), dm.channel.as_str()),
        ("(direct)", "allen-p__kean-s")
    );
    assert_eq!(dm.props["channel_members"], json!(["kean-s", "allen-p"]));
    let eyes = get(&store, &format!("{dm_id}:reaction:eyes:kean-s")).await;
    assert_eq!(eyes.post.as_deref(), Some(dm_id.as_str()));
    let group = get(
        &store,
        &mm_id(
            "(direct)",
            "allen-p__dasovich-j__kean-s",
            1_706_600_100_000,
            "kean-s",
            "Групповой чат: 🎯 weekly sync",
        ),
    )
    .await;
    assert_eq!(group.user, "kean-s");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_zip_folder_and_file_give_the_same_events_once() {
    let tmp = tempfile::tempdir().unwrap();
    let zipped = tmp.path().join("mattermost-export.zip");
    zip_dir(&mattermost_fixture(), &zipped, "", false);
    let jsonl = mattermost_fixture().join("import.jsonl");
    let (from_file, _) = mapped_events(Format::Mattermost, &jsonl);
    let (from_folder, _) = mapped_events(Format::Mattermost, &mattermost_fixture());
    let (from_zip, zip_report) = mapped_events(Format::Mattermost, &zipped);
    assert_eq!(from_file.len() as u64, MATTERMOST_EVENTS);
    assert_eq!(from_folder, from_file);
    assert_eq!(from_zip, from_file);
    assert_eq!(zip_report.directory["attachments_missing"], 1);

    let archive = helpers::TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let first = import_into(&store, Format::Mattermost, &zipped).await;
    assert_eq!(first.totals.accepted, MATTERMOST_EVENTS);
    let before = archive_events(&store).await;
    for path in [&zipped, &jsonl] {
        let again = import_into(&store, Format::Mattermost, path).await;
        assert_eq!(again.totals.accepted, 0);
        assert_eq!(again.totals.duplicates, MATTERMOST_EVENTS);
    }
    assert_eq!(archive_events(&store).await, before);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_bad_lines_are_reported_and_the_others_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let original = fs::read_to_string(mattermost_fixture().join("import.jsonl")).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    // Line 12 is malformed, the last line is cut in the middle.
    let mut broken: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    broken.insert(
        11,
        r#"{"type":"post","post":{"team":"legal",,}}"#.to_owned(),
    );
    let last = broken.pop().unwrap();
    broken.push(last[..last.len() / 2].to_owned());
    let jsonl = tmp.path().join("import.jsonl");
    fs::write(&jsonl, broken.join("\n")).unwrap();

    let archive = helpers::TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let report = import_into(&store, Format::Mattermost, &jsonl).await;
    let errors: Vec<_> = report
        .problems
        .iter()
        .filter(|problem| problem.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].at.file, "import.jsonl");
    assert_eq!(errors[0].at.line, Some(12));
    assert!(
        errors[0].problem.starts_with("malformed JSON"),
        "{}",
        errors[0]
    );
    assert_eq!(errors[1].at.line, Some(broken.len() as u64));
    assert!(
        errors[1].problem.starts_with("truncated JSON"),
        "{}",
        errors[1]
    );
    // The cut line was the unknown plugin_data line: every event is there.
    assert_eq!(report.totals.accepted, MATTERMOST_EVENTS);
    assert!(!report.is_complete());
    store.close().await;
}

// ---------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------

#[test]
fn cli_imports_with_a_report_and_reruns_as_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let report_file = tmp.path().join("report.json");
    let export = slack_fixture();
    let run = hf(
        &data_dir,
        &[
            "import",
            "slack",
            path_str(&export),
            "--json",
            "--report",
            path_str(&report_file),
        ],
    )
    .expect(0);
    let printed: Value = serde_json::from_str(&run.stdout).unwrap();
    let written: Value = serde_json::from_str(&fs::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(printed, written);
    assert_eq!(printed["format"], json!("slack"));
    assert_eq!(printed["totals"]["accepted"], json!(SLACK_EVENTS));
    assert_eq!(printed["errors"], json!(0));
    assert_eq!(printed["by_kind"]["reaction_add"]["accepted"], json!(3));
    // Warnings go to stderr with their file; no progress bar off a terminal.
    assert!(
        run.stderr
            .contains("warning: integration_logs.json: not imported"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains("ETA"),
        "{}",
        run.stderr
    );

    let again = hf(&data_dir, &["import", "slack", path_str(&export)]).expect(0);
    assert!(
        again
            .stdout
            .contains("accepted 0, duplicates 29, rejected 0"),
        "{}",
        again.stdout
    );
    let root_id = slack_id("C01GENERAL", "1704164645.123456");
    let post = hf(&data_dir, &["post", &root_id]).expect(0);
    assert_eq!(post.stdout.lines().count(), 5);
    hf(&data_dir, &["verify"]).expect(0);
}

#[test]
fn cli_dry_run_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let jsonl = mattermost_fixture().join("import.jsonl");
    let run = hf(
        &data_dir,
        &["import", "mattermost", path_str(&jsonl), "--dry-run"],
    )
    .expect(0);
    assert!(
        run.stdout.contains("dry run, nothing stored"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("16 events"), "{}", run.stdout);
    assert!(!data_dir.exists());
}

#[test]
fn cli_names_the_file_of_a_corrupt_zip_and_keeps_what_was_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    hf(&data_dir, &["import", "slack", path_str(&slack_fixture())]).expect(0);

    let zipped = tmp.path().join("export.zip");
    zip_dir(&slack_fixture(), &zipped, "", false);
    let bytes = fs::read(&zipped).unwrap();
    fs::write(&zipped, &bytes[..bytes.len() / 2]).unwrap();
    let run = hf(&data_dir, &["import", "slack", path_str(&zipped)]).expect(2);
    assert!(
        run.stderr
            .contains(&format!("{}: corrupt zip archive", zipped.display())),
        "{}",
        run.stderr
    );
    let not_a_zip = tmp.path().join("notes.zip");
    fs::write(&not_a_zip, "PK\u{3}\u{4} and then nothing").unwrap();
    hf(&data_dir, &["import", "mattermost", path_str(&not_a_zip)])
        .expect(2)
        .stderr
        .contains("corrupt zip archive")
        .then_some(())
        .unwrap();

    // Nothing already imported was lost.
    let stats = hf(&data_dir, &["stats", "--json"]).expect(0);
    let stats: Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(stats["events"], json!(SLACK_EVENTS));
    hf(&data_dir, &["verify"]).expect(0);
}

#[test]
fn cli_says_which_format_a_wrong_export_is() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let jsonl = mattermost_fixture().join("import.jsonl");
    let zipped = tmp.path().join("slack.zip");
    zip_dir(&slack_fixture(), &zipped, "", false);
    let cases: [(&str, &Path, &str); 5] = [
        (
            "slack",
            &jsonl,
            "this looks like a Mattermost bulk export, not a Slack export; use `holdfast import mattermost`",
        ),
        (
            "slack",
            &mattermost_fixture(),
            "this looks like a Mattermost bulk export",
        ),
        (
            "mattermost",
            &slack_fixture(),
            "this looks like a Slack export, not a Mattermost bulk export; use `holdfast import slack`",
        ),
        ("mattermost", &zipped, "this looks like a Slack export"),
        (
            "mattermost",
            &slack_fixture().join("general/2024-01-02.json"),
            "this looks like a Slack export",
        ),
    ];
    for (format, path, needle) in cases {
        let run = hf(&data_dir, &["import", format, path_str(path)]).expect(2);
        assert!(
            run.stderr
                .contains(&format!("{}: {needle}", path.display())),
            "{format} {}: {}",
            path.display(),
            run.stderr
        );
    }
    let text = tmp.path().join("notes.txt");
    fs::write(&text, "just some notes\n").unwrap();
    hf(&data_dir, &["import", "slack", path_str(&text)])
        .expect(2)
        .stderr
        .contains("not a Slack export")
        .then_some(())
        .unwrap();
    let run = hf(&data_dir, &["import", "mattermost", path_str(&text)]).expect(2);
    assert!(
        run.stderr.contains("not a Mattermost bulk export"),
        "{}",
        run.stderr
    );
    // The format is checked before the archive is opened: nothing was created.
    assert!(!data_dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_import_restarted_from_scratch_stores_no_duplicates() {
    // The first run got through the metadata and some conversations only.
    let tmp = tempfile::tempdir().unwrap();
    let partial = tmp.path().join("partial");
    copy_dir(&slack_fixture(), &partial);
    fs::remove_dir_all(partial.join("legal")).unwrap();
    fs::remove_dir_all(partial.join("mpdm-alice--boris--chen.wei-1")).unwrap();
    fs::remove_file(partial.join("general/2024-01-03.json")).unwrap();

    let archive = helpers::TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let first = import_into(&store, Format::Slack, &partial).await;
    let rest = import_into(&store, Format::Slack, &slack_fixture()).await;
    assert_eq!(first.totals.accepted + rest.totals.accepted, SLACK_EVENTS);
    assert_eq!(rest.totals.duplicates, first.totals.accepted);
    assert_eq!(rest.totals.accepted, 7);
    let events = archive_events(&store).await;
    let mut ids: Vec<&str> = events.iter().map(|event| event.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, SLACK_EVENTS);
    store.close().await;
}

#[test]
fn cli_names_a_missing_export() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-export.zip");
    let run = hf(
        &tmp.path().join("data"),
        &["import", "slack", path_str(&missing)],
    )
    .expect(2);
    assert!(run.stderr.contains("no-such-export.zip"), "{}", run.stderr);
}
