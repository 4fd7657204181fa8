//! Exports on both metadata backends, end to end: a time-range export of the
//! fixture corpus in all five formats, each file read back by an independent
//! reader (Python's `csv` and `email`, `pdftotext`, `xmllint`) and the JSONL
//! re-ingested into a second archive; what each source selects (criteria by
//! time, team, channel and custodian; a query with the rest of the hit posts;
//! a legal hold) within the requester's scope; the signed manifest against
//! every kind of tampering, other keys, HMAC and zip downloads (a doubled
//! zip entry included); scheduled exports that export every event exactly
//! once (identical timestamps, late events, events arriving during a run,
//! a failed run, catch-up, two runs racing); delivery to a directory and to
//! an HTTP endpoint that fails and recovers; cancelling a running export;
//! and the `holdfast export` commands, their refusals, configuration errors
//! and audit records.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use helpers::TestArchive;
use holdfast::audit::{self, AUDIT_KEY_FILE, AuditAction, AuditFilter, AuditLog, AuditRecord};
use holdfast::db::Backend;
use holdfast::event::Event;
use holdfast::export::delivery::zip_package;
use holdfast::export::job::{
    BuildError, Built, ExportRequest, Exporter, Progress, Requester, Source, export_name,
};
use holdfast::export::manifest::{
    MANIFEST_FILE, Manifest, PackageCheck, SIGNATURE_FILE, SeqRange, verify_package,
};
use holdfast::export::schedule::{ExportConfig, Schedule};
use holdfast::export::service::{ExportService, ScheduleOutcome, ServiceError};
use holdfast::export::sign::{PUBLIC_KEY_FILE, Signer, TrustedKey};
use holdfast::export::{Bates, ChannelInfo, ExportFormat};
use holdfast::index::{self, SearchIndex};
use holdfast::retention::holds::{self, HoldCriteria, HoldError, NewHold};
use holdfast::search::{ChannelRef, Scope};
use holdfast::store::{AppendStatus, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The OS user the CLI runs as.
const ACTOR: &str = "export-operator";

// ------------------------------------------------------------------ corpus

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/export")
        .join(name)
}

/// The 23 events of `corpus.ndjson`, in file order (their seqs in a fresh
/// archive are 1..=23).
fn corpus() -> Vec<Event> {
    let text = std::fs::read_to_string(fixture("corpus.ndjson")).unwrap();
    text.lines()
        .map(|line| Event::from_json_bytes(line.as_bytes()).unwrap())
        .collect()
}

/// One event; `place` is `team/channel`.
fn ev(id: &str, kind: &str, at: &str, place: &str, user: &str, post: Option<&str>) -> Value {
    let (team, channel) = place.split_once('/').unwrap();
    let mut value =
        json!({"id": id, "kind": kind, "at": at, "team": team, "channel": channel, "user": user});
    if let Some(post) = post {
        value["post"] = json!(post);
    }
    if kind == "post" || kind == "edit" {
        value["text"] = json!(format!("message {id}"));
    }
    if kind.starts_with("reaction") {
        value["emoji"] = json!("eyes");
    }
    value
}

fn event(value: Value) -> Event {
    Event::from_json(value).unwrap()
}

fn ids<'a>(list: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    list.into_iter().map(str::to_owned).collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|value| (*value).to_owned()).collect()
}

/// `events` in package order: channels by team then channel, each in
/// (`at`, seq) order; `seq_of` gives each event's seq.
fn package_order<'a>(events: &[&'a Event], seq_of: impl Fn(&Event) -> u64) -> Vec<&'a Event> {
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|event| {
        (
            event.team.clone(),
            event.channel.clone(),
            event.at_us,
            seq_of(event),
        )
    });
    sorted
}

// ------------------------------------------------------------------ harness

/// An archive with its index, audit trail and the installation's signing
/// key, for building exports through the library.
struct Harness {
    store: Store,
    index: Arc<SearchIndex>,
    audit: AuditLog,
    /// Kept last: dropped after the store.
    archive: TestArchive,
}

impl Harness {
    async fn new(backend: Backend) -> Harness {
        let archive = TestArchive::new(backend).await;
        let store = archive.open().await;
        let index =
            Arc::new(SearchIndex::open_or_create(&archive.data_dir().join("index")).unwrap());
        let (key, _) =
            audit::key_for_appending(store.db(), &archive.data_dir().join(AUDIT_KEY_FILE))
                .await
                .unwrap();
        let audit = AuditLog::open(store.db().clone(), key).await.unwrap();
        Harness {
            store,
            index,
            audit,
            archive,
        }
    }

    /// Stores and indexes `events`.
    async fn ingest(&self, events: Vec<Event>) -> Vec<AppendStatus> {
        let statuses = self.store.append(events).await.unwrap();
        index::catch_up(&self.store, &self.index, |_, _| {})
            .await
            .unwrap();
        self.index.reload().unwrap();
        statuses
    }

    fn data_dir(&self) -> &Path {
        self.archive.data_dir()
    }

    fn exports_dir(&self) -> PathBuf {
        self.data_dir().join("exports")
    }

    fn exporter_with(&self, signer: Signer) -> Exporter {
        Exporter {
            store: self.store.clone(),
            index: Arc::clone(&self.index),
            signer: Arc::new(signer),
            exports_dir: self.exports_dir(),
            template_dir: None,
        }
    }

    /// The installation's exporter: the Ed25519 key of its data directory.
    fn exporter(&self) -> Exporter {
        self.exporter_with(Signer::ed25519_in(self.data_dir()).unwrap())
    }

    fn service(&self, schedules: Vec<Schedule>) -> ExportService {
        ExportService::new(self.exporter(), self.audit.clone(), schedules).with_quick_backoff()
    }

    /// The installation's public key, as a recipient gets it.
    fn public_key(&self) -> TrustedKey {
        TrustedKey::ed25519_public_file(&self.data_dir().join(PUBLIC_KEY_FILE)).unwrap()
    }

    async fn last_seq(&self) -> u64 {
        self.store.last_seq().await.unwrap()
    }

    /// Every live event of the archive by id, with its seq.
    async fn events_by_id(&self) -> BTreeMap<String, (u64, Event)> {
        self.store
            .events_from(1, 1_000_000)
            .await
            .unwrap()
            .into_iter()
            .map(|stored| (stored.event.id.clone(), (stored.seq, stored.event)))
            .collect()
    }

    async fn audit_records(&self, action: AuditAction) -> Vec<AuditRecord> {
        self.audit
            .query(&AuditFilter {
                action: Some(action),
                limit: Some(audit::MAX_QUERY_LIMIT),
                ..AuditFilter::default()
            })
            .await
            .unwrap()
    }

    /// Entries of the exports directory (none when it does not exist).
    fn exports_dir_entries(&self) -> BTreeSet<String> {
        dir_entries(&self.exports_dir())
    }
}

fn dir_entries(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(error) => panic!("{}: {error}", dir.display()),
    }
}

fn requester(name: &str, scope: Scope) -> Requester {
    Requester {
        name: name.to_owned(),
        scope,
    }
}

fn criteria_request(
    formats: &[ExportFormat],
    edit: impl FnOnce(&mut HoldCriteria),
) -> ExportRequest {
    let mut criteria = HoldCriteria::default();
    edit(&mut criteria);
    ExportRequest {
        source: Source::Criteria { criteria },
        formats: formats.to_vec(),
        matter: String::new(),
        bates: None,
    }
}

fn query_request(query: &str) -> ExportRequest {
    ExportRequest {
        source: Source::Query {
            query: query.to_owned(),
        },
        formats: vec![ExportFormat::Jsonl],
        matter: String::new(),
        bates: None,
    }
}

async fn run_now(
    service: &ExportService,
    request: ExportRequest,
    requester: Requester,
) -> Result<(i64, Built), ServiceError> {
    service
        .run_now(request, requester, Arc::new(Progress::default()))
        .await
}

/// The events of a package's `events.jsonl`, in file order.
fn jsonl_events(package_dir: &Path) -> Vec<Event> {
    let bytes = std::fs::read(package_dir.join("events.jsonl")).unwrap();
    if bytes.is_empty() {
        return Vec::new();
    }
    assert!(bytes.ends_with(b"\n"), "events.jsonl ends with a newline");
    bytes[..bytes.len() - 1]
        .split(|&byte| byte == b'\n')
        .map(|line| Event::from_json_bytes(line).unwrap())
        .collect()
}

fn jsonl_ids(package_dir: &Path) -> Vec<String> {
    jsonl_events(package_dir)
        .into_iter()
        .map(|event| event.id)
        .collect()
}

fn read_manifest(package_dir: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(package_dir.join(MANIFEST_FILE)).unwrap()).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn check(path: &Path, key: Option<TrustedKey>) -> PackageCheck {
    verify_package(path, key).unwrap()
}

fn assert_intact(check: &PackageCheck, what: &str) {
    assert!(
        check.ok() && check.signature_valid && check.problems.is_empty(),
        "{what}: {check:?}"
    );
}

/// Every file under `dir`, relative, with forward slashes.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                let relative = entry.path().strip_prefix(dir).unwrap().to_path_buf();
                out.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Collapses every run of whitespace into one space.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs an external reader; a missing one fails the test naming the Debian
/// package to install (never a skip).
fn tool(program: &str, package: &str, args: &[&str]) -> Output {
    match Command::new(program).args(args).output() {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "{program} is missing: these tests read the packages with independent tools; \
             install the Debian package {package} (apt-get install {package})"
        ),
        Err(error) => panic!("cannot run {program}: {error}"),
    }
}

fn tool_ok(program: &str, package: &str, args: &[&str]) -> String {
    let output = tool(program, package, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed\n--- stdout:\n{}\n--- stderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

const PYTHON_CSV: &str = r#"
import csv, json, sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f, strict=True))
print(json.dumps(rows))
"#;

const PYTHON_EML: &str = r#"
import email, email.policy, json, sys
out = []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        message = email.message_from_binary_file(f, policy=email.policy.default)
    defects = [repr(d) for part in message.walk() for d in part.defects]
    plain = "".join(
        part.get_content() for part in message.walk()
        if part.get_content_type() == "text/plain"
    )
    html = "".join(
        part.get_content() for part in message.walk()
        if part.get_content_type() == "text/html"
    )
    out.append({
        "path": path,
        "defects": defects,
        "subject": str(message["subject"]),
        "multipart": message.is_multipart(),
        "plain": plain,
        "html": html,
    })
print(json.dumps(out))
"#;

// ------------------------------------------------------------------ 1. every format

async fn a_criteria_export_holds_the_corpus_in_every_format(backend: Backend) {
    let harness = Harness::new(backend).await;
    let corpus = corpus();
    harness.ingest(corpus.clone()).await;
    let service = harness.service(Vec::new());
    let mut request = criteria_request(&ExportFormat::ALL, |criteria| {
        criteria.teams = strings(&["legal", "trading"]);
        criteria.from = Some("2026-03-02".to_owned());
        criteria.to = Some("2026-03-02".to_owned());
    });
    request.matter = "Müller v. Enron (Case 4711)".to_owned();
    request.bates = Some(Bates {
        prefix: "HF".to_owned(),
        start: 7,
        digits: 6,
    });
    let (export_id, built) = run_now(&service, request.clone(), requester("tester", Scope::All))
        .await
        .unwrap();
    let dir = built.package_dir.clone();
    assert_eq!(dir, harness.exports_dir().join(export_name(export_id)));

    // Every event of March 2nd in both teams: all but ev-023 (midnight of
    // the 3rd), in package order.
    let seq_of = |event: &Event| corpus.iter().position(|e| e.id == event.id).unwrap() as u64 + 1;
    let selected: Vec<&Event> = corpus.iter().filter(|e| e.id != "ev-023").collect();
    let expected = package_order(&selected, seq_of);
    assert_eq!(expected.len(), 22);

    // The files: as the manifest lists them, and nothing else on disk.
    let manifest = &built.manifest;
    let listed: BTreeSet<String> = manifest.files.iter().map(|f| f.name.clone()).collect();
    assert_eq!(
        listed,
        ids([
            "events.csv",
            "events.jsonl",
            "transcript-0001.pdf",
            "actiance.xml",
            "eml/0001-legal-case-4711.eml",
            "eml/0002-trading-west-desk.eml",
            "warnings.jsonl",
        ])
    );
    let mut on_disk = listed.clone();
    on_disk.insert(MANIFEST_FILE.to_owned());
    on_disk.insert(SIGNATURE_FILE.to_owned());
    assert_eq!(files_under(&dir), on_disk);
    for entry in &manifest.files {
        let bytes = std::fs::read(dir.join(&entry.name)).unwrap();
        assert_eq!(entry.bytes, bytes.len() as u64, "{}", entry.name);
        assert_eq!(entry.sha256, sha256_hex(&bytes), "{}", entry.name);
    }

    // The signature holds for the installation's published key.
    let checked = check(&dir, Some(harness.public_key()));
    assert_intact(&checked, "fresh package");
    assert!(checked.key_trusted);
    assert_eq!(checked.files_checked, manifest.files.len());
    assert_eq!(
        checked.export_id.as_deref(),
        Some(export_name(export_id).as_str())
    );

    // The manifest: what, by whom, counts, and the store's head.
    assert_eq!(read_manifest(&dir), *manifest);
    assert_eq!(manifest.request, request);
    assert_eq!(manifest.formats, ExportFormat::ALL.to_vec());
    assert_eq!(manifest.requested_by, "tester");
    assert_eq!(manifest.matter, "Müller v. Enron (Case 4711)");
    assert_eq!(manifest.schedule, None);
    assert_eq!(manifest.seq_range, None);
    assert_eq!(manifest.counts.events, 22);
    assert_eq!(
        manifest.counts.channels,
        vec![
            ChannelInfo {
                team: "legal".to_owned(),
                channel: "case-4711".to_owned(),
                events: 17,
            },
            ChannelInfo {
                team: "trading".to_owned(),
                channel: "west-desk".to_owned(),
                events: 5,
            },
        ]
    );
    assert_eq!(manifest.signing.algorithm, "ed25519");
    assert_eq!(manifest.signing.key_id, harness.public_key().key_id());
    assert_eq!(manifest.store_head.seq, harness.last_seq().await);
    assert_eq!(manifest.store_head.seq, 23);
    let head_hash: [u8; 32] = hex::decode(&manifest.store_head.hash)
        .unwrap()
        .try_into()
        .unwrap();
    let report = harness
        .store
        .verify_expecting_head(manifest.store_head.seq, head_hash)
        .await
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.expected_head_matches, Some(true), "{report:?}");

    // The database and the audit trail agree with the package.
    let manifest_bytes = std::fs::read(dir.join(MANIFEST_FILE)).unwrap();
    assert_eq!(built.manifest_sha256, sha256_hex(&manifest_bytes));
    let row = service.get(export_id).await.unwrap().unwrap();
    assert_eq!(row.status, "done");
    assert_eq!(row.exported_events, 22);
    assert_eq!(row.requested_by, "tester");
    assert_eq!(
        row.manifest_sha256.as_deref(),
        Some(built.manifest_sha256.as_str())
    );
    assert_eq!(row.package_dir.as_deref(), Some(dir.to_str().unwrap()));
    assert_eq!(row.warnings, manifest.counts.warnings as i64);
    let completes = harness.audit_records(AuditAction::ExportComplete).await;
    assert_eq!(completes.len(), 1, "{completes:?}");
    assert_eq!(completes[0].actor, "tester");
    assert_eq!(completes[0].params["export_id"], json!(export_id));
    assert_eq!(completes[0].params["events"], json!(22));
    assert_eq!(
        completes[0].params["manifest_sha256"],
        json!(built.manifest_sha256)
    );

    // warnings.jsonl: as many lines as the manifest counts; the CJK text
    // and the emoji the font lacks are reported, never dropped silently.
    let warnings_text = std::fs::read_to_string(dir.join("warnings.jsonl")).unwrap();
    let warnings: Vec<Value> = warnings_text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(warnings.len() as u64, manifest.counts.warnings);
    assert!(
        warnings
            .iter()
            .any(|warning| warning["code"] == "glyph_replaced"
                && warning["event_id"] == "ev-014"
                && warning["file"] == "transcript-0001.pdf"),
        "{warnings_text}"
    );

    // JSONL: exactly the archived events, in package order.
    let exported = jsonl_events(&dir);
    let expected_events: Vec<Event> = expected.iter().map(|e| (*e).clone()).collect();
    assert_eq!(exported, expected_events);

    // CSV, read by Python's csv module: one row per event, the exact texts.
    let csv_path = dir.join("events.csv");
    let rows: Vec<Vec<String>> = serde_json::from_str(&tool_ok(
        "python3",
        "python3",
        &["-c", PYTHON_CSV, csv_path.to_str().unwrap()],
    ))
    .unwrap();
    let header = &rows[0];
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name:?} in {header:?}"))
    };
    let (id_col, text_col, kind_col, user_col, seq_col) = (
        column("Event Id"),
        column("Post Message"),
        column("Event Kind"),
        column("Username"),
        column("Seq"),
    );
    assert_eq!(rows.len() - 1, 22, "one row per event");
    for (row, event) in rows[1..].iter().zip(&expected) {
        assert_eq!(row.len(), header.len(), "{row:?}");
        assert_eq!(row[id_col], event.id);
        assert_eq!(
            row[text_col],
            event.text.clone().unwrap_or_default(),
            "{}",
            event.id
        );
        assert_eq!(row[kind_col], event.kind.as_str(), "{}", event.id);
        assert_eq!(row[user_col], event.user, "{}", event.id);
        assert_eq!(row[seq_col], seq_of(event).to_string(), "{}", event.id);
    }

    // PDF, read by pdftotext: Latin, Cyrillic and Greek text as archived,
    // the matter and the Bates numbers from 7 on.
    let pdf_path = dir.join("transcript-0001.pdf");
    let pdf_text = squash(&tool_ok(
        "pdftotext",
        "poppler-utils",
        &["-enc", "UTF-8", pdf_path.to_str().unwrap(), "-"],
    ));
    for id in ["ev-003", "ev-009", "ev-010", "ev-018"] {
        let text = corpus
            .iter()
            .find(|e| e.id == id)
            .unwrap()
            .text
            .clone()
            .unwrap();
        assert!(
            pdf_text.contains(&squash(&text)),
            "{id}: {text:?} not in the PDF text:\n{pdf_text}"
        );
    }
    assert!(
        pdf_text.contains("Müller v. Enron (Case 4711)"),
        "{pdf_text}"
    );
    assert!(pdf_text.contains("HF000007"), "{pdf_text}");
    assert!(!pdf_text.contains("HF000006"), "{pdf_text}");

    // Actiance XML: well-formed for xmllint, both channels' texts in it.
    let xml_path = dir.join("actiance.xml");
    tool_ok(
        "xmllint",
        "libxml2-utils",
        &["--noout", xml_path.to_str().unwrap()],
    );
    let xml = std::fs::read_to_string(&xml_path).unwrap();
    for id in ["ev-010", "ev-021"] {
        let text = corpus
            .iter()
            .find(|e| e.id == id)
            .unwrap()
            .text
            .clone()
            .unwrap();
        assert!(xml.contains(&text), "{id} not in actiance.xml");
    }

    // EML, read by Python's email package: no defects, each channel's
    // messages in its text part.
    let eml_paths = [
        dir.join("eml/0001-legal-case-4711.eml"),
        dir.join("eml/0002-trading-west-desk.eml"),
    ];
    let mut args = vec!["-c", PYTHON_EML];
    args.extend(eml_paths.iter().map(|path| path.to_str().unwrap()));
    let parsed: Vec<Value> = serde_json::from_str(&tool_ok("python3", "python3", &args)).unwrap();
    assert_eq!(parsed.len(), 2);
    let channel_texts = [
        vec!["ev-003", "ev-005", "ev-008", "ev-010", "ev-015"],
        vec!["ev-018", "ev-019", "ev-021"],
    ];
    for (message, texts) in parsed.iter().zip(channel_texts) {
        assert_eq!(message["defects"], json!([]), "{message}");
        assert_eq!(message["multipart"], json!(true), "{message}");
        let plain = message["plain"].as_str().unwrap();
        for id in texts {
            let event = corpus.iter().find(|e| e.id == id).unwrap();
            let text = event.text.clone().unwrap();
            assert!(
                plain.contains(&text),
                "{id}: {text:?} not in the text part of {}:\n{plain}",
                message["path"]
            );
            assert!(plain.contains(id), "{id} not named in {}", message["path"]);
        }
    }
    assert!(
        parsed[0]["subject"]
            .as_str()
            .unwrap()
            .contains("legal/case-4711"),
        "{}",
        parsed[0]["subject"]
    );
    // The HTML part escapes message text: ev-005's `<see redline> &` is
    // text, not markup.
    let html = parsed[0]["html"].as_str().unwrap();
    assert!(html.contains("&lt;see redline&gt; &amp;"), "{html}");
    assert!(!html.contains("<see redline>"), "{html}");
}

// ------------------------------------------------------------------ 2. JSONL round trip

async fn the_jsonl_of_an_export_ingests_into_another_archive_as_the_same_events(backend: Backend) {
    let harness = Harness::new(backend).await;
    harness.ingest(corpus()).await;
    let service = harness.service(Vec::new());
    let (_, built) = run_now(
        &service,
        criteria_request(&[ExportFormat::Jsonl], |criteria| {
            criteria.from = Some("2000-01-01".to_owned());
        }),
        requester("tester", Scope::All),
    )
    .await
    .unwrap();
    assert_eq!(built.manifest.counts.events, 23);

    // Into a second archive, through the command line's ingest.
    let second = TestArchive::new(backend).await;
    let jsonl = built.package_dir.join("events.jsonl");
    let mut command = helpers::holdfast(second.data_dir());
    command.args(["ingest", jsonl.to_str().unwrap()]);
    if backend == Backend::Postgres {
        command.env("HOLDFAST_DATABASE_URL", &second.options.database_url);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "holdfast ingest: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let store = second.open().await;
    let copied: BTreeMap<String, Event> = store
        .events_from(1, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|stored| (stored.event.id.clone(), stored.event))
        .collect();
    store.close().await;
    let original: BTreeMap<String, Event> = harness
        .events_by_id()
        .await
        .into_iter()
        .map(|(id, (_, event))| (id, event))
        .collect();
    assert_eq!(copied.len(), 23);
    assert_eq!(copied, original);
    for (id, event) in &copied {
        assert_eq!(
            event.to_json_bytes(),
            original[id].to_json_bytes(),
            "{id}: the wire form differs"
        );
    }
}

// ------------------------------------------------------------------ 3. scope

async fn a_scoped_requester_exports_nothing_outside_the_scope(backend: Backend) {
    let harness = Harness::new(backend).await;
    let corpus = corpus();
    harness.ingest(corpus.clone()).await;
    let service = harness.service(Vec::new());
    let legal = || requester("legal-only", Scope::teams(["legal"]));
    let legal_ids: BTreeSet<String> = corpus
        .iter()
        .filter(|e| e.team == "legal")
        .map(|e| e.id.clone())
        .collect();

    // A time range with no team: legal's channel only.
    let (_, built) = run_now(
        &service,
        criteria_request(&[ExportFormat::Jsonl, ExportFormat::Csv], |criteria| {
            criteria.from = Some("2026-01-01".to_owned());
        }),
        legal(),
    )
    .await
    .unwrap();
    assert_eq!(
        built.manifest.counts.channels,
        vec![ChannelInfo {
            team: "legal".to_owned(),
            channel: "case-4711".to_owned(),
            events: 17,
        }]
    );
    assert_eq!(
        jsonl_ids(&built.package_dir)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        legal_ids
    );
    let csv = std::fs::read_to_string(built.package_dir.join("events.csv")).unwrap();
    assert!(!csv.contains("trading") && !csv.contains("Cal-27"), "{csv}");
    assert_eq!(built.manifest.scope, Scope::teams(["legal"]).to_string());
    assert_intact(
        &check(&built.package_dir, Some(harness.public_key())),
        "scoped",
    );

    // Asking for the other team by name gives nothing of it.
    let (_, built) = run_now(
        &service,
        criteria_request(&[ExportFormat::Jsonl], |criteria| {
            criteria.teams = strings(&["trading"]);
            criteria.from = Some("2026-01-01".to_owned());
        }),
        legal(),
    )
    .await
    .unwrap();
    assert_eq!(built.manifest.counts.events, 0);
    assert_eq!(built.manifest.counts.channels, Vec::new());
    assert_eq!(jsonl_ids(&built.package_dir), Vec::<String>::new());

    // A query hitting both teams: the scoped export has legal's hits only.
    let (_, all) = run_now(
        &service,
        query_request("settlement OR close"),
        requester("everyone", Scope::All),
    )
    .await
    .unwrap();
    assert_eq!(
        jsonl_ids(&all.package_dir)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        ids(["ev-003", "ev-004", "ev-018", "ev-020", "ev-021"])
    );
    let (_, scoped) = run_now(&service, query_request("settlement OR close"), legal())
        .await
        .unwrap();
    assert_eq!(
        jsonl_ids(&scoped.package_dir),
        strings(&["ev-003", "ev-004"])
    );
    assert_eq!(scoped.manifest.counts.events, 2);
    assert_eq!(scoped.manifest.counts.channels.len(), 1);
    assert_eq!(scoped.manifest.counts.channels[0].team, "legal");

    // A query naming the other team's channel counts nothing of it.
    let (_, unscoped) = run_now(
        &service,
        query_request("in:west-desk"),
        requester("everyone", Scope::All),
    )
    .await
    .unwrap();
    assert_eq!(unscoped.manifest.counts.events, 6);
    let (_, scoped) = run_now(&service, query_request("in:west-desk"), legal())
        .await
        .unwrap();
    assert_eq!(scoped.manifest.counts.events, 0);
    assert_eq!(jsonl_ids(&scoped.package_dir), Vec::<String>::new());

    // A hold the requester's scope does not cover is not found, by name or
    // by id; nothing is built.
    let hold = holds::create_hold(
        harness.store.db(),
        &Scope::teams(["trading"]),
        "trading-officer",
        &NewHold {
            name: "desk-review".to_owned(),
            matter: "Desk review".to_owned(),
            reason: "regulator request".to_owned(),
            criteria: HoldCriteria {
                teams: strings(&["trading"]),
                ..HoldCriteria::default()
            },
        },
    )
    .await
    .unwrap();
    let before = harness.exports_dir_entries();
    for name in ["desk-review".to_owned(), hold.id.to_string()] {
        let request = ExportRequest {
            source: Source::Hold { hold: name.clone() },
            formats: vec![ExportFormat::Jsonl],
            matter: String::new(),
            bates: None,
        };
        let error = run_now(&service, request, legal()).await.unwrap_err();
        assert!(
            matches!(
                error,
                ServiceError::Build(BuildError::Hold(HoldError::NotFound(_)))
            ),
            "{name}: {error:?}"
        );
    }
    assert_eq!(harness.exports_dir_entries(), before);
    // The trading officer does see it.
    let request = ExportRequest {
        source: Source::Hold {
            hold: "desk-review".to_owned(),
        },
        formats: vec![ExportFormat::Jsonl],
        matter: String::new(),
        bates: None,
    };
    let (_, built) = run_now(
        &service,
        request,
        requester("trading-officer", Scope::teams(["trading"])),
    )
    .await
    .unwrap();
    assert_eq!(built.manifest.counts.events, 6);
}

// ------------------------------------------------------------------ 4. query and hold sources

async fn query_and_hold_exports_hold_whole_posts(backend: Backend) {
    let harness = Harness::new(backend).await;
    harness.ingest(corpus()).await;
    let service = harness.service(Vec::new());
    let all = || requester("investigator", Scope::All);

    let cases: [(&str, &[&str]); 6] = [
        // The post and the attachment of its post.
        ("settlement", &["ev-003", "ev-004"]),
        // A hit on the second edit: the post and both its edits.
        ("final", &["ev-018", "ev-020", "ev-021"]),
        // A hit on the post: its reaction and its edit come along.
        ("ISDA", &["ev-005", "ev-006", "ev-007"]),
        // A deleted post: its deletion comes along.
        ("formula", &["ev-008", "ev-011"]),
        // A reaction added and removed.
        ("Третье", &["ev-010", "ev-012", "ev-013"]),
        ("nothingmatchesthis", &[]),
    ];
    for (query, expected) in cases {
        let (export_id, built) = run_now(&service, query_request(query), all())
            .await
            .unwrap();
        let exported = jsonl_ids(&built.package_dir);
        assert_eq!(
            exported.iter().cloned().collect::<BTreeSet<_>>(),
            ids(expected.iter().copied()),
            "{query}"
        );
        assert_eq!(exported.len(), expected.len(), "{query}: {exported:?}");
        assert_eq!(
            built.manifest.counts.events,
            expected.len() as u64,
            "{query}"
        );
        assert_eq!(
            built.manifest.selection,
            format!("search query {query:?}"),
            "{query}"
        );
        let row = service.get(export_id).await.unwrap().unwrap();
        assert_eq!(row.exported_events, expected.len() as i64, "{query}");
        assert_intact(
            &check(&built.package_dir, Some(harness.public_key())),
            query,
        );
    }

    // A hold by custodian: her events and every event of her posts (kay's
    // reaction to p-2), as retention sees it.
    let hold = holds::create_hold(
        harness.store.db(),
        &Scope::All,
        "legal-counsel",
        &NewHold {
            name: "sara".to_owned(),
            matter: "Müller v. Enron".to_owned(),
            reason: "custodian notice".to_owned(),
            criteria: HoldCriteria {
                custodians: strings(&["sara.shackleton"]),
                ..HoldCriteria::default()
            },
        },
    )
    .await
    .unwrap();
    let expected = ids(["ev-002", "ev-005", "ev-006", "ev-007", "ev-009", "ev-015"]);
    let counts = holds::count_held(harness.store.db(), &harness.index, &hold)
        .await
        .unwrap();
    assert_eq!(counts.events, expected.len() as u64);
    let hold_request = |hold: &str| ExportRequest {
        source: Source::Hold {
            hold: hold.to_owned(),
        },
        formats: vec![ExportFormat::Jsonl, ExportFormat::Csv],
        matter: "Müller v. Enron".to_owned(),
        bates: None,
    };
    let (_, built) = run_now(&service, hold_request("sara"), all())
        .await
        .unwrap();
    let exported = jsonl_ids(&built.package_dir);
    assert_eq!(exported.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(exported.len(), expected.len());
    assert_eq!(built.manifest.counts.events, expected.len() as u64);
    let (_, by_id) = run_now(&service, hold_request(&hold.id.to_string()), all())
        .await
        .unwrap();
    assert_eq!(jsonl_ids(&by_id.package_dir), exported);

    // A released hold holds nothing: refused, naming the field.
    holds::release_hold(
        harness.store.db(),
        &Scope::All,
        hold.id,
        "legal-counsel",
        "settled",
    )
    .await
    .unwrap();
    let error = run_now(&service, hold_request("sara"), all())
        .await
        .unwrap_err();
    match error {
        ServiceError::Build(BuildError::Invalid(invalid)) => {
            assert_eq!(invalid.field, "source.hold");
            assert!(invalid.message.contains("released"), "{invalid}");
        }
        other => panic!("{other:?}"),
    }
}

/// Post ids are unique per source channel, not across the archive (the
/// holds tests rely on the same): a query hit on post `p-1` of
/// legal/case-4711 must not bring along a different post that happens to
/// be called `p-1` in another channel.
async fn a_query_export_does_not_mix_posts_of_the_same_id_in_other_channels(backend: Backend) {
    let harness = Harness::new(backend).await;
    harness.ingest(corpus()).await;
    harness
        .ingest(vec![event(ev(
            "other-p1",
            "post",
            "2026-03-02T11:00:00Z",
            "trading/west-desk",
            "john.arnold",
            Some("p-1"),
        ))])
        .await;
    let service = harness.service(Vec::new());
    let (_, built) = run_now(
        &service,
        query_request("settlement"),
        requester("investigator", Scope::All),
    )
    .await
    .unwrap();
    assert_eq!(
        jsonl_ids(&built.package_dir),
        strings(&["ev-003", "ev-004"]),
        "the query matched post p-1 of legal/case-4711 only"
    );
}

/// A time range selects the events whose own time is in it (not whole
/// posts, unlike a hold); teams, channels and custodians narrow it.
async fn criteria_select_by_time_team_channel_and_custodian(backend: Backend) {
    let harness = Harness::new(backend).await;
    harness.ingest(corpus()).await;
    harness
        .ingest(vec![event(ev(
            "general-1",
            "post",
            "2026-03-02T12:00:00Z",
            "legal/general",
            "jeff.dasovich",
            Some("g-1"),
        ))])
        .await;
    let service = harness.service(Vec::new());
    let everything = || requester("tester", Scope::All);
    let cases: Vec<(&str, ExportRequest, &[&str])> = vec![
        (
            "one channel of a team with two",
            criteria_request(&[ExportFormat::Jsonl], |c| {
                c.channels = vec![ChannelRef::new("legal", "general")];
                c.from = Some("2026-03-01".to_owned());
            }),
            &["general-1"],
        ),
        (
            "a custodian: their events only",
            criteria_request(&[ExportFormat::Jsonl], |c| {
                c.custodians = strings(&["jeff.dasovich"]);
                c.from = Some("2026-03-01".to_owned());
            }),
            &[
                "ev-010",
                "ev-012",
                "ev-013",
                "ev-014",
                "ev-017",
                "general-1",
            ],
        ),
        (
            "a custodian in one channel",
            criteria_request(&[ExportFormat::Jsonl], |c| {
                c.custodians = strings(&["jeff.dasovich"]);
                c.channels = vec![ChannelRef::new("legal", "case-4711")];
                c.from = Some("2026-03-01".to_owned());
            }),
            &["ev-010", "ev-012", "ev-013", "ev-014", "ev-017"],
        ),
        (
            "a team and a channel of another team",
            criteria_request(&[ExportFormat::Jsonl], |c| {
                c.teams = strings(&["trading"]);
                c.channels = vec![ChannelRef::new("legal", "general")];
                c.to = Some("2026-03-02T23:59:59Z".to_owned());
            }),
            &[
                "general-1",
                "ev-018",
                "ev-019",
                "ev-020",
                "ev-021",
                "ev-022",
            ],
        ),
        // Instants are inclusive at both ends; the same second holds three
        // events.
        (
            "one instant",
            criteria_request(&[ExportFormat::Jsonl], |c| {
                c.from = Some("2026-03-02T09:10:00Z".to_owned());
                c.to = Some("2026-03-02T09:10:00Z".to_owned());
            }),
            &["ev-008", "ev-009", "ev-010"],
        ),
        // Microseconds count: ev-019 is 250 µs after ev-018.
        (
            "sub-millisecond bound",
            criteria_request(&[ExportFormat::Jsonl], |c| {
                c.teams = strings(&["trading"]);
                c.from = Some("2026-03-02T09:00:00.000001Z".to_owned());
                c.to = Some("2026-03-02T09:00:00.000250Z".to_owned());
            }),
            &["ev-019"],
        ),
        // A day as `to` runs through its end; the next midnight is not in it.
        (
            "through the end of a day",
            criteria_request(&[ExportFormat::Jsonl], |c| {
                c.teams = strings(&["trading"]);
                c.from = Some("2026-03-02T09:02:00Z".to_owned());
                c.to = Some("2026-03-02".to_owned());
            }),
            &["ev-021", "ev-022"],
        ),
    ];
    for (what, request, expected) in cases {
        let (_, built) = run_now(&service, request, everything()).await.unwrap();
        let exported = jsonl_ids(&built.package_dir);
        assert_eq!(
            exported.iter().cloned().collect::<BTreeSet<_>>(),
            ids(expected.iter().copied()),
            "{what}"
        );
        assert_eq!(exported.len(), expected.len(), "{what}: {exported:?}");
        assert_eq!(
            built.manifest.counts.events,
            expected.len() as u64,
            "{what}"
        );
        let channel_total: u64 = built
            .manifest
            .counts
            .channels
            .iter()
            .map(|c| c.events)
            .sum();
        assert_eq!(channel_total, expected.len() as u64, "{what}");
    }
}

/// A zip download must not hold two entries under one name: unzip tools
/// differ in which one they keep (streaming readers take the first), so a
/// zip whose last copy matches the manifest can show another content.
async fn a_zip_with_two_entries_under_one_name_is_not_intact(backend: Backend) {
    let harness = Harness::new(backend).await;
    harness.ingest(corpus()).await;
    let service = harness.service(Vec::new());
    let (export_id, built) = run_now(
        &service,
        criteria_request(&[ExportFormat::Jsonl, ExportFormat::Csv], |c| {
            c.from = Some("2026-03-01".to_owned());
        }),
        requester("tester", Scope::All),
    )
    .await
    .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let zip_path = scratch.path().join("doubled.zip");
    // Python's zipfile writes a duplicate name (with a warning).
    let script = r#"
import os, sys, warnings, zipfile
warnings.simplefilter("ignore")
package, top, out = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(out, "w") as z:
    data = open(os.path.join(package, "events.csv"), "rb").read()
    z.writestr(top + "/events.csv", data.replace(b"Draft settlement", b"Final settlement"))
    for root, dirs, files in os.walk(package):
        for name in sorted(files):
            path = os.path.join(root, name)
            z.write(path, top + "/" + os.path.relpath(path, package))
"#;
    tool_ok(
        "python3",
        "python3",
        &[
            "-c",
            script,
            built.package_dir.to_str().unwrap(),
            &export_name(export_id),
            zip_path.to_str().unwrap(),
        ],
    );
    let checked = check(&zip_path, Some(harness.public_key()));
    assert!(
        !checked.ok(),
        "a zip with two different events.csv entries passed as intact: {checked:?}"
    );
    assert!(
        checked.problems.iter().any(|p| p.contains("events.csv")),
        "{checked:?}"
    );
}

// ------------------------------------------------------------------ 5. tampering

async fn every_kind_of_tampering_is_named(backend: Backend) {
    let harness = Harness::new(backend).await;
    harness.ingest(corpus()).await;
    let service = harness.service(Vec::new());
    let request = criteria_request(
        &[ExportFormat::Jsonl, ExportFormat::Csv, ExportFormat::Eml],
        |criteria| criteria.from = Some("2026-03-01".to_owned()),
    );
    let (_, built) = run_now(&service, request.clone(), requester("tester", Scope::All))
        .await
        .unwrap();
    let package = built.package_dir.clone();
    let key = || Some(harness.public_key());
    assert_intact(&check(&package, key()), "intact");
    // With the key the manifest carries: intact, but not trusted.
    let untrusted = check(&package, None);
    assert_intact(&untrusted, "manifest key");
    assert!(!untrusted.key_trusted);
    assert!(
        untrusted.key.contains("read from the manifest"),
        "{}",
        untrusted.key
    );

    let scratch = tempfile::tempdir().unwrap();
    let copy = |name: &str| {
        let path = scratch.path().join(name);
        copy_tree(&package, &path);
        path
    };

    // One byte of a file changed: that file, its SHA-256 and the manifest's.
    let changed = copy("changed");
    let csv_path = changed.join("events.csv");
    let mut bytes = std::fs::read(&csv_path).unwrap();
    let expected_sha = sha256_hex(&bytes);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&csv_path, &bytes).unwrap();
    let changed_check = check(&changed, key());
    assert!(changed_check.signature_valid, "{changed_check:?}");
    assert_eq!(
        changed_check.problems,
        vec![format!(
            "events.csv: SHA-256 {} differs from the manifest's {expected_sha}",
            sha256_hex(&bytes)
        )]
    );
    assert!(!changed_check.ok());

    // A file removed, in a subdirectory.
    let removed = copy("removed");
    std::fs::remove_file(removed.join("eml/0002-trading-west-desk.eml")).unwrap();
    assert_eq!(
        check(&removed, key()).problems,
        strings(&["eml/0002-trading-west-desk.eml is missing"])
    );

    // A file added, at the top and in a subdirectory.
    let added = copy("added");
    std::fs::write(added.join("notes.txt"), "added later").unwrap();
    std::fs::write(added.join("eml/0003-extra.eml"), "Subject: x\n\nx\n").unwrap();
    let added_check = check(&added, key());
    assert_eq!(
        added_check
            .problems
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        ids([
            "notes.txt is not listed in the manifest (added?)",
            "eml/0003-extra.eml is not listed in the manifest (added?)",
        ])
    );
    assert!(!added_check.ok());

    // The manifest edited (a count lowered, consistently): the signature
    // no longer holds, for the trusted key and for the manifest's own.
    let edited = copy("edited");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(edited.join(MANIFEST_FILE)).unwrap()).unwrap();
    let events = manifest["counts"]["events"].as_u64().unwrap();
    manifest["counts"]["events"] = json!(events - 1);
    let first = manifest["counts"]["channels"][0]["events"]
        .as_u64()
        .unwrap();
    manifest["counts"]["channels"][0]["events"] = json!(first - 1);
    let mut text = serde_json::to_vec_pretty(&manifest).unwrap();
    text.push(b'\n');
    std::fs::write(edited.join(MANIFEST_FILE), text).unwrap();
    for key in [key(), None] {
        let edited_check = check(&edited, key);
        assert!(!edited_check.signature_valid, "{edited_check:?}");
        assert_eq!(edited_check.problems.len(), 1, "{edited_check:?}");
        assert!(
            edited_check.problems[0].contains("does not match manifest.json"),
            "{edited_check:?}"
        );
    }

    // The signature removed.
    let unsigned = copy("unsigned");
    std::fs::remove_file(unsigned.join(SIGNATURE_FILE)).unwrap();
    let unsigned_check = check(&unsigned, key());
    assert!(!unsigned_check.ok());
    assert_eq!(
        unsigned_check.problems,
        strings(&["manifest.sig is missing"])
    );

    // Signed by another installation: not valid for this one's key, valid
    // for its own.
    let elsewhere = tempfile::tempdir().unwrap();
    let other_service = ExportService::new(
        harness.exporter_with(Signer::ed25519_in(elsewhere.path()).unwrap()),
        harness.audit.clone(),
        Vec::new(),
    );
    let (_, foreign) = run_now(
        &other_service,
        request.clone(),
        requester("tester", Scope::All),
    )
    .await
    .unwrap();
    let foreign_check = check(&foreign.package_dir, key());
    assert!(!foreign_check.signature_valid, "{foreign_check:?}");
    assert_eq!(
        foreign_check.problems,
        vec![format!(
            "the signature does not match manifest.json for key {}",
            harness.public_key().key_id()
        )]
    );
    let their_key =
        TrustedKey::ed25519_public_file(&elsewhere.path().join(PUBLIC_KEY_FILE)).unwrap();
    assert_intact(&check(&foreign.package_dir, Some(their_key)), "own key");
    // Their signature on our manifest does not hold either.
    let swapped = copy("swapped");
    std::fs::copy(
        foreign.package_dir.join(SIGNATURE_FILE),
        swapped.join(SIGNATURE_FILE),
    )
    .unwrap();
    assert!(!check(&swapped, key()).signature_valid);

    // HMAC: verifies with the same key file, not with another one, and
    // needs a key (the manifest cannot carry a shared secret).
    let hmac_key = scratch.path().join("hmac.key");
    let other_hmac_key = scratch.path().join("other-hmac.key");
    for (path, byte) in [(&hmac_key, 0x5a_u8), (&other_hmac_key, 0xa5)] {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .unwrap();
        writeln!(file, "{}", hex::encode([byte; 32])).unwrap();
    }
    let hmac_service = ExportService::new(
        harness.exporter_with(Signer::hmac_from_file(&hmac_key).unwrap()),
        harness.audit.clone(),
        Vec::new(),
    );
    let (_, hmac) = run_now(
        &hmac_service,
        request.clone(),
        requester("tester", Scope::All),
    )
    .await
    .unwrap();
    assert_eq!(hmac.manifest.signing.algorithm, "hmac-sha256");
    assert_eq!(hmac.manifest.signing.public_key, None);
    let manifest_text = std::fs::read_to_string(hmac.package_dir.join(MANIFEST_FILE)).unwrap();
    assert!(!manifest_text.contains(&hex::encode([0x5a_u8; 32])));
    assert_intact(
        &check(
            &hmac.package_dir,
            Some(TrustedKey::hmac_file(&hmac_key).unwrap()),
        ),
        "hmac",
    );
    let wrong = check(
        &hmac.package_dir,
        Some(TrustedKey::hmac_file(&other_hmac_key).unwrap()),
    );
    assert!(!wrong.signature_valid, "{wrong:?}");
    assert!(
        wrong.problems[0].contains("HMAC does not match"),
        "{wrong:?}"
    );
    let keyless = check(&hmac.package_dir, None);
    assert!(!keyless.ok());
    assert!(
        keyless.problems[0].contains("no key to check"),
        "{keyless:?}"
    );
    let ed_for_hmac = check(&hmac.package_dir, key());
    assert!(!ed_for_hmac.signature_valid);
    assert!(
        ed_for_hmac.problems[0].contains("signed with hmac-sha256"),
        "{ed_for_hmac:?}"
    );

    // The zip download checks the same way.
    let zip_of = |dir: &Path, name: &str| {
        let path = scratch.path().join(name);
        zip_package(dir, std::fs::File::create(&path).unwrap()).unwrap();
        path
    };
    let zipped = zip_of(&package, "intact.zip");
    let zipped_check = check(&zipped, key());
    assert_intact(&zipped_check, "zip");
    assert_eq!(zipped_check.files_checked, built.manifest.files.len());
    let archive = zip::ZipArchive::new(std::fs::File::open(&zipped).unwrap()).unwrap();
    let top = format!("{}/", package.file_name().unwrap().to_string_lossy());
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.unwrap().into_owned())
        .collect();
    assert!(names.iter().all(|name| name.starts_with(&top)), "{names:?}");
    assert!(
        names.contains(&format!("{top}{MANIFEST_FILE}")),
        "{names:?}"
    );
    assert_eq!(
        check(&zip_of(&changed, "changed.zip"), key()).problems,
        changed_check.problems
    );
    assert_eq!(
        check(&zip_of(&removed, "removed.zip"), key()).problems,
        strings(&["eml/0002-trading-west-desk.eml is missing"])
    );
    assert!(!check(&zip_of(&edited, "edited.zip"), key()).signature_valid);
    assert!(!check(&zip_of(&foreign.package_dir, "foreign.zip"), key()).signature_valid);
}

// ------------------------------------------------------------------ 6. schedules

fn schedules(text: &str) -> Vec<Schedule> {
    let config: ExportConfig = toml::from_str(text).unwrap();
    config.schedules().unwrap()
}

/// Checks a finished run: its package, manifest, watermark; returns the
/// exported event ids.
async fn check_run(harness: &Harness, outcome: &ScheduleOutcome) -> Vec<String> {
    let last = harness.last_seq().await;
    assert_eq!(outcome.seq_upto, last, "{outcome:?}");
    assert_eq!(
        harness
            .store
            .db()
            .schedule_watermark(&outcome.schedule)
            .await
            .unwrap(),
        last as i64
    );
    let Some(export_id) = outcome.export_id else {
        assert_eq!(outcome.package_dir, None);
        assert_eq!(outcome.events, 0);
        assert_eq!(outcome.seq_after, outcome.seq_upto);
        return Vec::new();
    };
    let dir = outcome.package_dir.clone().unwrap();
    assert_eq!(dir, harness.exports_dir().join(export_name(export_id)));
    assert_intact(&check(&dir, Some(harness.public_key())), &outcome.schedule);
    let manifest = read_manifest(&dir);
    assert_eq!(
        manifest.schedule.as_deref(),
        Some(outcome.schedule.as_str())
    );
    assert_eq!(
        manifest.seq_range,
        Some(SeqRange {
            after: outcome.seq_after,
            upto: outcome.seq_upto,
        })
    );
    assert_eq!(
        manifest.requested_by,
        format!("schedule:{}", outcome.schedule)
    );
    let exported = jsonl_ids(&dir);
    assert_eq!(exported.len() as u64, outcome.events);
    assert_eq!(manifest.counts.events, outcome.events);
    let row = harness
        .store
        .db()
        .get_export(export_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "done");
    assert_eq!(row.schedule.as_deref(), Some(outcome.schedule.as_str()));
    assert_eq!(row.seq_from, Some(outcome.seq_after as i64));
    assert_eq!(row.seq_to, Some(outcome.seq_upto as i64));
    exported
}

/// Each id of `union` exactly once, and the set equal to `expected`.
fn assert_exactly_once(union: &[String], expected: &BTreeSet<String>, what: &str) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in union {
        *counts.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{what}: exported more than once: {twice:?}"
    );
    let got: BTreeSet<String> = counts.keys().map(|id| (*id).to_owned()).collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: never exported {missing:?}; not expected {extra:?}"
    );
}

async fn scheduled_exports_export_every_event_exactly_once(backend: Backend) {
    let harness = Harness::new(backend).await;
    let service = harness.service(schedules(
        r#"
        [[schedules]]
        name = "infosec"
        cron = "0 0 1 * * *"
        formats = ["jsonl", "csv"]

        [[schedules]]
        name = "legal-only"
        cron = "0 0 1 * * *"
        formats = ["jsonl"]
        teams = ["legal"]
        "#,
    ));
    let corpus = corpus();
    let mut all_ids: Vec<String> = Vec::new();
    let mut legal_ids: Vec<String> = Vec::new();
    let mut union: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut packages = 0;

    // Nothing archived yet: nothing to export.
    for name in ["infosec", "legal-only"] {
        let outcome = service.run_schedule(name).await.unwrap();
        assert_eq!(outcome.export_id, None);
        assert_eq!((outcome.seq_after, outcome.seq_upto), (0, 0));
    }

    let batches: Vec<Vec<Event>> = vec![
        // The first half of the corpus.
        corpus[..12].to_vec(),
        // The rest, an event at the very time of exported ones (09:10:00 of
        // ev-008..ev-010), an event late for the day before, and ev-001
        // again (a no-op).
        {
            let mut batch = corpus[12..].to_vec();
            batch.push(event(ev(
                "same-time",
                "post",
                "2026-03-02T09:10:00Z",
                "legal/case-4711",
                "kay.mann",
                Some("p-20"),
            )));
            batch.push(event(ev(
                "late-day",
                "post",
                "2026-03-01T12:00:00Z",
                "legal/case-4711",
                "sara.shackleton",
                Some("p-21"),
            )));
            batch.push(event(ev(
                "late-trading",
                "edit",
                "2026-03-02T09:00:00Z",
                "trading/west-desk",
                "john.arnold",
                Some("t-1"),
            )));
            batch.push(corpus[0].clone());
            batch
        },
    ];
    for batch in batches {
        let statuses = harness.ingest(batch.clone()).await;
        for (event, status) in batch.iter().zip(&statuses) {
            if matches!(status, AppendStatus::Stored { .. }) {
                all_ids.push(event.id.clone());
                if event.team == "legal" {
                    legal_ids.push(event.id.clone());
                }
            }
        }
        let new: BTreeSet<String> = batch
            .iter()
            .zip(&statuses)
            .filter(|(_, status)| matches!(status, AppendStatus::Stored { .. }))
            .map(|(event, _)| event.id.clone())
            .collect();
        for name in ["infosec", "legal-only"] {
            let outcome = service.run_schedule(name).await.unwrap();
            let exported = check_run(&harness, &outcome).await;
            packages += usize::from(outcome.export_id.is_some());
            let expected: BTreeSet<String> = batch
                .iter()
                .filter(|event| new.contains(&event.id))
                .filter(|event| name == "infosec" || event.team == "legal")
                .map(|event| event.id.clone())
                .collect();
            assert_eq!(
                exported.iter().cloned().collect::<BTreeSet<_>>(),
                expected,
                "{name}: this run exports exactly what was archived since the last"
            );
            union.entry(name).or_default().extend(exported);
        }
    }

    // A run with nothing new: no package.
    let entries = harness.exports_dir_entries();
    for name in ["infosec", "legal-only"] {
        let outcome = service.run_schedule(name).await.unwrap();
        assert_eq!(outcome.export_id, None, "{outcome:?}");
        check_run(&harness, &outcome).await;
    }
    assert_eq!(harness.exports_dir_entries(), entries);

    // Down for a while: several batches, over several days and both teams,
    // go into the next run.
    for day in 4..7 {
        let batch = vec![
            event(ev(
                &format!("down-{day}-a"),
                "post",
                &format!("2026-03-{day:02}T08:00:00Z"),
                "legal/case-4711",
                "kay.mann",
                Some(&format!("p-down-{day}")),
            )),
            event(ev(
                &format!("down-{day}-b"),
                "reaction_add",
                &format!("2026-03-{day:02}T08:00:00Z"),
                "trading/west-desk",
                "john.arnold",
                Some("t-4"),
            )),
            // Late: a day already exported.
            event(ev(
                &format!("down-{day}-c"),
                "post",
                "2026-03-02T09:10:00Z",
                "trading/west-desk",
                "phillip.allen",
                Some(&format!("t-down-{day}")),
            )),
        ];
        for event in &batch {
            all_ids.push(event.id.clone());
            if event.team == "legal" {
                legal_ids.push(event.id.clone());
            }
        }
        harness.ingest(batch).await;
    }
    for name in ["infosec", "legal-only"] {
        let outcome = service.run_schedule(name).await.unwrap();
        let exported = check_run(&harness, &outcome).await;
        packages += usize::from(outcome.export_id.is_some());
        let expected_new = if name == "infosec" { 9 } else { 3 };
        assert_eq!(exported.len(), expected_new, "{name}: {exported:?}");
        union.entry(name).or_default().extend(exported);
    }

    // Events archived while a run builds: each goes into this run or the
    // next, never both, never neither.
    let during: Vec<Event> = (0..30)
        .map(|i| {
            event(ev(
                &format!("during-{i}"),
                "post",
                "2026-03-02T09:10:00Z",
                if i % 3 == 0 {
                    "legal/case-4711"
                } else {
                    "trading/west-desk"
                },
                "kay.mann",
                Some(&format!("p-during-{i}")),
            ))
        })
        .collect();
    for event in &during {
        all_ids.push(event.id.clone());
        if event.team == "legal" {
            legal_ids.push(event.id.clone());
        }
    }
    let ingest_slowly = async {
        for event in during {
            harness.ingest(vec![event]).await;
        }
    };
    let (first_run, ()) = tokio::join!(service.run_schedule("infosec"), ingest_slowly);
    let first_run = first_run.unwrap();
    if let Some(dir) = &first_run.package_dir {
        packages += 1;
        assert_intact(&check(dir, Some(harness.public_key())), "during");
        union.entry("infosec").or_default().extend(jsonl_ids(dir));
    }
    for name in ["infosec", "legal-only"] {
        let outcome = service.run_schedule(name).await.unwrap();
        packages += usize::from(outcome.export_id.is_some());
        union
            .entry(name)
            .or_default()
            .extend(check_run(&harness, &outcome).await);
    }

    // A run that fails (its exports directory cannot be made) moves no
    // watermark: the next run exports those events, and the ones since.
    let not_a_dir = harness.archive.dir.path().join("not-a-dir");
    std::fs::write(&not_a_dir, "a file").unwrap();
    let broken = ExportService::new(
        Exporter {
            exports_dir: not_a_dir.join("exports"),
            ..harness.exporter()
        },
        harness.audit.clone(),
        schedules(
            r#"
            [[schedules]]
            name = "infosec"
            cron = "0 0 1 * * *"
            formats = ["jsonl", "csv"]
            "#,
        ),
    );
    let watermark = harness.last_seq().await as i64;
    let mut pending = Vec::new();
    for i in 0..2 {
        let batch = vec![event(ev(
            &format!("after-failure-{i}"),
            "post",
            "2026-03-02T09:10:00Z",
            "legal/case-4711",
            "kay.mann",
            Some(&format!("p-after-{i}")),
        ))];
        all_ids.push(batch[0].id.clone());
        legal_ids.push(batch[0].id.clone());
        pending.push(batch[0].id.clone());
        harness.ingest(batch).await;
        if i == 0 {
            let error = broken.run_schedule("infosec").await.unwrap_err();
            assert!(matches!(error, ServiceError::Build(_)), "{error:?}");
            assert_eq!(
                harness
                    .store
                    .db()
                    .schedule_watermark("infosec")
                    .await
                    .unwrap(),
                watermark
            );
            let rows = harness.store.db().list_exports(None, 1).await.unwrap();
            assert_eq!(rows[0].status, "failed", "{rows:?}");
            assert_eq!(rows[0].schedule.as_deref(), Some("infosec"));
        }
    }
    let outcome = service.run_schedule("infosec").await.unwrap();
    let exported = check_run(&harness, &outcome).await;
    packages += 1;
    assert_eq!(exported, pending);
    assert_eq!(outcome.seq_after, watermark as u64);
    union.entry("infosec").or_default().extend(exported);
    let outcome = service.run_schedule("legal-only").await.unwrap();
    packages += 1;
    union
        .entry("legal-only")
        .or_default()
        .extend(check_run(&harness, &outcome).await);

    assert_exactly_once(
        &union["infosec"],
        &all_ids.iter().cloned().collect(),
        "infosec",
    );
    assert_exactly_once(
        &union["legal-only"],
        &legal_ids.iter().cloned().collect(),
        "legal-only",
    );
    assert_eq!(all_ids.len(), 23 + 3 + 9 + 30 + 2);
    // Every package is in the exports directory, nothing half-built.
    let entries = harness.exports_dir_entries();
    assert_eq!(entries.len(), packages, "{entries:?}");
    assert!(
        entries.iter().all(|name| name.starts_with("exp-")),
        "{entries:?}"
    );
}

// ------------------------------------------------------------------ 7. racing runs

async fn racing_runs_of_a_schedule_export_each_range_once(backend: Backend) {
    let harness = Harness::new(backend).await;
    let config = r#"
        [[schedules]]
        name = "race"
        cron = "0 0 1 * * *"
        formats = ["jsonl", "csv"]
        "#;
    // Two service instances over the same database, as two processes
    // would be (the in-process busy flag does not help them).
    let first = harness.service(schedules(config));
    let second = harness.service(schedules(config));
    let mut ingested: Vec<String> = Vec::new();
    let mut union: Vec<String> = Vec::new();
    let mut raced = 0;
    for round in 0..5 {
        let batch: Vec<Event> = (0..40)
            .map(|i| {
                event(ev(
                    &format!("r{round}-{i}"),
                    "post",
                    "2026-03-02T09:10:00Z",
                    if i % 2 == 0 {
                        "legal/case-4711"
                    } else {
                        "trading/west-desk"
                    },
                    "kay.mann",
                    Some(&format!("r{round}-p{i}")),
                ))
            })
            .collect();
        ingested.extend(batch.iter().map(|event| event.id.clone()));
        harness.ingest(batch).await;
        let before = harness.store.db().schedule_watermark("race").await.unwrap() as u64;
        let last = harness.last_seq().await;
        let (a, b) = tokio::join!(first.run_schedule("race"), second.run_schedule("race"));
        let mut ranges = Vec::new();
        for result in [a, b] {
            match result {
                Ok(outcome) => {
                    let exported = check_run(&harness, &outcome).await;
                    if outcome.export_id.is_some() {
                        ranges.push((outcome.seq_after, outcome.seq_upto));
                        union.extend(exported);
                    }
                }
                Err(ServiceError::Raced(name)) => {
                    assert_eq!(name, "race");
                    raced += 1;
                }
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(
            ranges,
            vec![(before, last)],
            "round {round}: exactly one package for the range"
        );
    }
    assert_exactly_once(&union, &ingested.iter().cloned().collect(), "race");
    assert!(
        raced > 0,
        "no run lost a race: the compare-and-set of the watermark was not exercised"
    );

    // The losers' exports are recorded as failed, their packages removed.
    let rows = harness.store.db().list_exports(None, 100).await.unwrap();
    let done: Vec<_> = rows.iter().filter(|row| row.status == "done").collect();
    let failed: Vec<_> = rows.iter().filter(|row| row.status == "failed").collect();
    assert_eq!(done.len(), 5, "{rows:?}");
    assert_eq!(failed.len(), raced, "{rows:?}");
    assert_eq!(rows.len(), 5 + raced, "{rows:?}");
    for row in &failed {
        assert!(
            !harness
                .exports_dir()
                .join(export_name(row.export_id))
                .exists(),
            "{row:?}"
        );
    }
    assert_eq!(harness.exports_dir_entries().len(), 5);

    // One service runs one schedule once at a time.
    harness
        .ingest(vec![event(ev(
            "busy-1",
            "post",
            "2026-03-03T10:00:00Z",
            "legal/case-4711",
            "kay.mann",
            Some("busy-p1"),
        ))])
        .await;
    let (a, b) = tokio::join!(first.run_schedule("race"), first.run_schedule("race"));
    assert!(a.is_ok(), "{a:?}");
    assert!(
        matches!(&b, Err(ServiceError::ScheduleBusy(name)) if name == "race"),
        "{b:?}"
    );
    assert!(matches!(
        first.run_schedule("nope").await,
        Err(ServiceError::UnknownSchedule(_))
    ));
}

// ------------------------------------------------------------------ 8. delivery

/// An HTTP endpoint that answers 503 while down or for its first failures.
#[derive(Default)]
struct Endpoint {
    failures_left: AtomicU32,
    down: AtomicBool,
    /// (status answered, body) of every request.
    requests: Mutex<Vec<(u16, Vec<u8>)>>,
}

async fn upload(State(endpoint): State<Arc<Endpoint>>, body: Bytes) -> StatusCode {
    let failed_once = endpoint
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if endpoint.down.load(Ordering::SeqCst) || failed_once {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    endpoint
        .requests
        .lock()
        .unwrap()
        .push((status.as_u16(), body.to_vec()));
    status
}

async fn serve(endpoint: Arc<Endpoint>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let router = Router::new()
        .route("/upload", post(upload))
        .with_state(endpoint);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (address, task)
}

fn requests(endpoint: &Endpoint) -> Vec<(u16, Vec<u8>)> {
    endpoint.requests.lock().unwrap().clone()
}

async fn packages_are_delivered_and_failed_deliveries_retried(backend: Backend) {
    let harness = Harness::new(backend).await;
    harness.ingest(corpus()).await;
    let drop_dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Endpoint::default());
    flaky.failures_left.store(2, Ordering::SeqCst);
    let (flaky_address, flaky_task) = serve(Arc::clone(&flaky)).await;
    let broken = Arc::new(Endpoint::default());
    broken.down.store(true, Ordering::SeqCst);
    let (broken_address, broken_task) = serve(Arc::clone(&broken)).await;
    let service = harness.service(schedules(&format!(
        r#"
        [[schedules]]
        name = "drop"
        cron = "0 0 1 * * *"
        formats = ["jsonl", "csv"]
        deliver = [{{ dir = '{}' }}]

        [[schedules]]
        name = "siem"
        cron = "0 0 1 * * *"
        formats = ["jsonl"]
        deliver = [{{ url = "http://{flaky_address}/upload", max_attempts = 5 }}]

        [[schedules]]
        name = "vault"
        cron = "0 0 1 * * *"
        formats = ["jsonl"]
        deliver = [{{ url = "http://{broken_address}/upload", max_attempts = 2 }}]
        "#,
        drop_dir.path().display()
    )));

    // To a directory: under its final name, complete, nothing temporary.
    let outcome = service.run_schedule("drop").await.unwrap();
    let export_id = outcome.export_id.unwrap();
    let name = export_name(export_id);
    assert_eq!(outcome.deliveries.len(), 1);
    assert_eq!(outcome.deliveries[0].status, "delivered", "{outcome:?}");
    assert_eq!(outcome.deliveries[0].attempts, 1);
    assert_eq!(dir_entries(drop_dir.path()), ids([name.as_str()]));
    let delivered = drop_dir.path().join(&name);
    assert_intact(
        &check(&delivered, Some(harness.public_key())),
        "dir delivery",
    );
    assert_eq!(
        files_under(&delivered),
        files_under(&outcome.package_dir.clone().unwrap())
    );
    assert_eq!(
        harness.store.db().deliveries_of(export_id).await.unwrap(),
        outcome.deliveries
    );

    // To an endpoint that fails twice: delivered on the third attempt, as
    // a zip whose manifest verifies.
    let outcome = service.run_schedule("siem").await.unwrap();
    let export_id = outcome.export_id.unwrap();
    let row = &outcome.deliveries[0];
    assert_eq!(row.target, format!("http://{flaky_address}/upload"));
    assert_eq!(row.status, "delivered", "{row:?}");
    assert_eq!(row.attempts, 3);
    assert_eq!(row.last_error, None);
    assert!(row.delivered_at_ms.is_some());
    assert_eq!(
        harness.store.db().deliveries_of(export_id).await.unwrap(),
        outcome.deliveries
    );
    let seen = requests(&flaky);
    assert_eq!(
        seen.iter().map(|(status, _)| *status).collect::<Vec<_>>(),
        vec![503, 503, 200]
    );
    let scratch = tempfile::tempdir().unwrap();
    let zip_path = scratch.path().join("received.zip");
    std::fs::write(&zip_path, &seen[2].1).unwrap();
    let received = check(&zip_path, Some(harness.public_key()));
    assert_intact(&received, "posted zip");
    assert_eq!(received.export_id, Some(export_name(export_id)));
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut jsonl = String::new();
    std::io::Read::read_to_string(
        &mut zip
            .by_name(&format!("{}/events.jsonl", export_name(export_id)))
            .unwrap(),
        &mut jsonl,
    )
    .unwrap();
    assert_eq!(jsonl.lines().count(), 23);

    // To an endpoint that stays down: pending, every attempt recorded.
    let outcome = service.run_schedule("vault").await.unwrap();
    let export_id = outcome.export_id.unwrap();
    let rows = harness.store.db().deliveries_of(export_id).await.unwrap();
    assert_eq!(rows, outcome.deliveries);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "pending", "{rows:?}");
    assert_eq!(rows[0].attempts, 2);
    let error = rows[0].last_error.clone().unwrap();
    assert!(error.contains("503"), "{error}");
    assert!(rows[0].next_attempt_at_ms.is_some());
    assert_eq!(requests(&broken).len(), 2);
    // The export itself is done; only its delivery waits.
    let export = harness
        .store
        .db()
        .get_export(export_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(export.status, "done");

    // Once it is back, the background retry delivers it. With quick backoff
    // the retry is due within milliseconds, as for the attempts above.
    broken.down.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut delivered = 0;
    while delivered == 0 && Instant::now() < deadline {
        delivered = service.retry_due_deliveries().await.unwrap();
        if delivered == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let rows = harness.store.db().deliveries_of(export_id).await.unwrap();
    assert_eq!(
        delivered, 1,
        "the pending delivery was not retried within 1.5 s under quick backoff: {rows:?}"
    );
    assert_eq!(rows[0].status, "delivered");
    assert_eq!(rows[0].attempts, 3);
    let seen = requests(&broken);
    assert_eq!(seen.len(), 3);
    std::fs::write(&zip_path, &seen[2].1).unwrap();
    assert_intact(&check(&zip_path, Some(harness.public_key())), "retried zip");
    // Nothing is due any more.
    assert_eq!(service.retry_due_deliveries().await.unwrap(), 0);
    assert_eq!(requests(&broken).len(), 3);

    flaky_task.abort();
    broken_task.abort();
}

/// A directory delivery that finds a package of the same name in the
/// target (another installation's, or one from before the metadata was
/// restored) must not record itself as delivered, nor touch the other one.
async fn a_directory_delivery_never_claims_another_package_as_its_own(backend: Backend) {
    let harness = Harness::new(backend).await;
    harness.ingest(corpus()).await;
    let drop_dir = tempfile::tempdir().unwrap();
    let service = harness.service(schedules(&format!(
        r#"
        [[schedules]]
        name = "drop"
        cron = "0 0 1 * * *"
        formats = ["jsonl"]
        deliver = [{{ dir = '{}' }}]
        "#,
        drop_dir.path().display()
    )));
    // The first export of this archive will be exp-000001.
    let theirs = drop_dir.path().join(export_name(1));
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join(MANIFEST_FILE), "{\"theirs\": true}\n").unwrap();

    let outcome = service.run_schedule("drop").await.unwrap();
    assert_eq!(outcome.export_id, Some(1));
    let ours = std::fs::read(outcome.package_dir.clone().unwrap().join(MANIFEST_FILE)).unwrap();
    assert_eq!(
        std::fs::read_to_string(theirs.join(MANIFEST_FILE)).unwrap(),
        "{\"theirs\": true}\n",
        "the other package was changed"
    );
    let row = &outcome.deliveries[0];
    let in_target = std::fs::read(theirs.join(MANIFEST_FILE)).unwrap();
    assert!(
        row.status != "delivered" || in_target == ours,
        "recorded as delivered, but {} holds another package: {row:?}",
        theirs.display()
    );
}

// ------------------------------------------------------------------ 9. cancel

async fn a_cancelled_export_leaves_nothing_behind(backend: Backend) {
    let harness = Harness::new(backend).await;
    for chunk in helpers::posts("bulk", 24_000).chunks(6_000) {
        harness.store.append(chunk.to_vec()).await.unwrap();
    }
    let service = Arc::new(harness.service(Vec::new()));
    let request = criteria_request(&ExportFormat::ALL, |criteria| {
        criteria.from = Some("2000-01-01".to_owned());
    });
    let export_id = service
        .start(
            request,
            requester("tester", Scope::All),
            Some("legal".to_owned()),
        )
        .await
        .unwrap();

    // Cancel while it writes: some events out, far from all.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let progress = service.progress(export_id).unwrap_or_else(|| {
            panic!("the export finished before it could be cancelled: make the archive bigger")
        });
        if progress.exported.load(Ordering::SeqCst) > 0 {
            assert!(
                progress.exported.load(Ordering::SeqCst) < progress.total.load(Ordering::SeqCst),
                "the export is nearly done: make the archive bigger"
            );
            assert!(service.cancel(export_id));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the export never started writing"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while service.progress(export_id).is_some() {
        assert!(
            Instant::now() < deadline,
            "the cancelled export never stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!service.cancel(export_id), "no longer running");

    let row = service.get(export_id).await.unwrap().unwrap();
    assert_eq!(row.status, "cancelled", "{row:?}");
    assert_eq!(row.package_dir, None);
    assert_eq!(row.manifest_sha256, None);
    assert_eq!(row.error.as_deref(), Some("cancelled"));
    assert!(row.finished_at_ms.is_some());
    let entries = harness.exports_dir_entries();
    assert!(
        entries.is_empty(),
        "left in the exports directory: {entries:?}"
    );
    let completes = harness.audit_records(AuditAction::ExportComplete).await;
    assert_eq!(completes.len(), 1, "{completes:?}");
    assert_eq!(completes[0].params["export_id"], json!(export_id));
    assert_eq!(completes[0].params["status"], json!("cancelled"));
    assert_eq!(completes[0].role.as_deref(), Some("legal"));
}

// ------------------------------------------------------------------ 10, 11. command line

fn cli(archive: &TestArchive, args: &[&str]) -> Output {
    let mut command = helpers::holdfast(archive.data_dir());
    command.args(args).env("USER", ACTOR);
    if archive.backend == Backend::Postgres {
        command.env("HOLDFAST_DATABASE_URL", &archive.options.database_url);
    }
    command.output().unwrap()
}

fn expect(output: &Output, code: i32, args: &[&str]) -> (String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "holdfast {args:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
    );
    (stdout, stderr)
}

fn run(archive: &TestArchive, args: &[&str], code: i32) -> (String, String) {
    expect(&cli(archive, args), code, args)
}

/// The trail's records of `action`, as the CLI prints them.
fn cli_audit(archive: &TestArchive, action: &str) -> Vec<Value> {
    let (stdout, _) = run(archive, &["audit", "--action", action, "--json"], 0);
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// An archive holding the corpus, closed, for the command line.
async fn cli_archive(backend: Backend) -> TestArchive {
    let archive = TestArchive::new(backend).await;
    let store = archive.open().await;
    store.append(corpus()).await.unwrap();
    store.close().await;
    archive
}

async fn cli_create_verify_show_and_audit(backend: Backend) {
    let archive = cli_archive(backend).await;
    let args = [
        "export",
        "create",
        "--format",
        "jsonl,csv",
        "--format",
        "pdf",
        "--from",
        "2026-03-02",
        "--to",
        "2026-03-02",
        "--team",
        "legal",
        "--matter",
        "Case 4711",
        "--bates-prefix",
        "HF",
        "--json",
    ];
    let (stdout, _) = run(&archive, &args, 0);
    let manifest: Manifest = serde_json::from_str(&stdout).unwrap();
    assert_eq!(manifest.export_id, "exp-000001");
    assert_eq!(manifest.counts.events, 17);
    assert_eq!(manifest.requested_by, ACTOR);
    assert_eq!(manifest.scope, "all");
    let package = archive.data_dir().join("exports/exp-000001");
    let package_arg = package.to_str().unwrap();
    assert_eq!(read_manifest(&package), manifest);
    let manifest_sha = sha256_hex(&std::fs::read(package.join(MANIFEST_FILE)).unwrap());

    // Verify: intact with the installation's key.
    let (stdout, _) = run(&archive, &["export", "verify", package_arg], 0);
    assert!(stdout.contains("signature: valid"), "{stdout}");
    assert!(stdout.lines().last() == Some("ok"), "{stdout}");
    let public = archive.data_dir().join(PUBLIC_KEY_FILE);
    run(
        &archive,
        &[
            "export",
            "verify",
            package_arg,
            "--public-key",
            public.to_str().unwrap(),
        ],
        0,
    );
    let scratch = tempfile::tempdir().unwrap();
    let zip_path = scratch.path().join("package.zip");
    zip_package(&package, std::fs::File::create(&zip_path).unwrap()).unwrap();
    run(
        &archive,
        &["export", "verify", zip_path.to_str().unwrap()],
        0,
    );

    // Tampered copies: exit 1, each difference printed.
    let tampered = scratch.path().join("tampered");
    copy_tree(&package, &tampered);
    let csv = tampered.join("events.csv");
    let mut bytes = std::fs::read(&csv).unwrap();
    bytes[10] ^= 0x20;
    std::fs::write(&csv, &bytes).unwrap();
    std::fs::remove_file(tampered.join("events.jsonl")).unwrap();
    let (stdout, _) = run(
        &archive,
        &["export", "verify", tampered.to_str().unwrap()],
        1,
    );
    assert!(
        stdout.contains(&format!(
            "DIFFERS: events.csv: SHA-256 {}",
            sha256_hex(&bytes)
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("DIFFERS: events.jsonl is missing"),
        "{stdout}"
    );
    assert!(stdout.lines().last() == Some("FAILED"), "{stdout}");
    let (stdout, _) = run(
        &archive,
        &["export", "verify", tampered.to_str().unwrap(), "--json"],
        1,
    );
    let checked: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(checked["signature_valid"], json!(true));
    assert_eq!(checked["problems"].as_array().unwrap().len(), 2);
    let (_, stderr) = run(
        &archive,
        &[
            "export",
            "verify",
            scratch.path().join("nothing").to_str().unwrap(),
        ],
        2,
    );
    assert!(stderr.contains("no such package"), "{stderr}");

    // List and show.
    let (stdout, _) = run(&archive, &["export", "list", "--json"], 0);
    let listed: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], "exp-000001");
    assert_eq!(listed[0]["status"], "done");
    assert_eq!(listed[0]["requested_by"], ACTOR);
    let (stdout, _) = run(&archive, &["export", "show", "exp-000001", "--json"], 0);
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["events"], json!(17));
    assert_eq!(shown["manifest_sha256"], json!(manifest_sha));
    let (stdout, _) = run(&archive, &["export", "show", "1"], 0);
    assert!(stdout.contains("status: done"), "{stdout}");
    assert!(stdout.contains(&manifest_sha), "{stdout}");
    let (_, stderr) = run(&archive, &["export", "show", "999"], 2);
    assert!(stderr.contains("no export 999"), "{stderr}");
    let (_, stderr) = run(&archive, &["export", "show", "exp-x"], 2);
    assert!(stderr.contains("exp-x"), "{stderr}");

    // The audit trail: the request before the build, the outcome after it.
    let creates = cli_audit(&archive, "export_create");
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(creates[0]["actor"], ACTOR);
    assert_eq!(
        creates[0]["params"]["request"],
        serde_json::to_value(&manifest.request).unwrap()
    );
    let completes = cli_audit(&archive, "export_complete");
    assert_eq!(completes.len(), 1, "{completes:?}");
    assert_eq!(completes[0]["actor"], ACTOR);
    assert_eq!(completes[0]["outcome"], "ok");
    assert_eq!(completes[0]["params"]["export_id"], json!(1));
    assert_eq!(completes[0]["params"]["events"], json!(17));
    assert_eq!(
        completes[0]["params"]["manifest_sha256"],
        json!(manifest_sha)
    );

    // --out: the finished package is also copied there, and verifies.
    let out = scratch.path().join("handover");
    let (stdout, _) = run(
        &archive,
        &[
            "export",
            "create",
            "--format",
            "csv",
            "--query",
            "settlement",
            "--out",
            out.to_str().unwrap(),
        ],
        0,
    );
    let copied = out.join("exp-000002");
    assert!(
        stdout.contains(&format!("package: {}", copied.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("export exp-000002 done: 2 events"),
        "{stdout}"
    );
    assert_eq!(dir_entries(&out), ids(["exp-000002"]));
    run(&archive, &["export", "verify", copied.to_str().unwrap()], 0);
    assert_eq!(
        files_under(&copied),
        files_under(&archive.data_dir().join("exports/exp-000002"))
    );
}

async fn cli_refuses_bad_export_flags_naming_them(backend: Backend) {
    let archive = cli_archive(backend).await;
    let create = |extra: &[&str]| -> Vec<String> {
        ["export", "create"]
            .iter()
            .chain(extra)
            .map(|arg| (*arg).to_owned())
            .collect()
    };
    let cases: [(&[&str], &[&str]); 11] = [
        (
            &["--format", "docx", "--from", "2026-03-02"],
            &["--format", "docx"],
        ),
        (&["--from", "2026-03-02"], &["--format"]),
        (&["--format", "jsonl"], &["--query", "--hold", "--from"]),
        (
            &[
                "--format",
                "jsonl",
                "--query",
                "merger",
                "--from",
                "2026-03-02",
            ],
            &["--query", "--from"],
        ),
        (
            &["--format", "jsonl", "--hold", "h", "--team", "legal"],
            &["--hold", "--team"],
        ),
        (
            &["--format", "jsonl", "--query", "merger AND"],
            &["--query"],
        ),
        (
            &["--format", "jsonl,jsonl", "--from", "2026-03-02"],
            &["--format"],
        ),
        (&["--format", "jsonl", "--from", "2026-02-30"], &["--from"]),
        (
            &[
                "--format",
                "pdf",
                "--from",
                "2026-03-02",
                "--bates-prefix",
                "HF",
                "--bates-digits",
                "0",
            ],
            &["--bates-digits"],
        ),
        (
            &[
                "--format",
                "pdf",
                "--from",
                "2026-03-02",
                "--bates-prefix",
                "HF",
                "--bates-digits",
                "300",
            ],
            &["--bates-digits"],
        ),
        (
            &[
                "--format",
                "jsonl",
                "--from",
                "2026-03-02",
                "--bates-prefix",
                "HF",
            ],
            &["--bates-prefix", "pdf"],
        ),
    ];
    for (extra, needles) in cases {
        let args = create(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, stderr) = run(&archive, &args, 2);
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{args:?}: {needle:?} not in {stderr}"
            );
        }
    }
    // None of them created an export or left a package.
    let (stdout, _) = run(&archive, &["export", "list", "--json"], 0);
    assert_eq!(stdout.trim(), "", "{stdout}");
    assert!(
        !archive.data_dir().join("exports").exists()
            || dir_entries(&archive.data_dir().join("exports")).is_empty()
    );
    assert_eq!(cli_audit(&archive, "export_create").len(), 0);

    // A hold that does not exist: refused, and the failure recorded.
    let (_, stderr) = run(
        &archive,
        &[
            "export",
            "create",
            "--format",
            "jsonl",
            "--hold",
            "no-such-hold",
        ],
        2,
    );
    assert!(stderr.contains("no-such-hold"), "{stderr}");
    // The trail says it failed (whichever record carries it), and never
    // that an export of it was made.
    let records: Vec<Value> = ["export_create", "export_complete"]
        .iter()
        .flat_map(|action| cli_audit(&archive, action))
        .collect();
    assert!(
        records.iter().any(|record| record["outcome"] == "failed"),
        "the refused export is not recorded as failed: {records:?}"
    );
    assert!(
        records
            .iter()
            .all(|record| record["outcome"] == "failed" || record["action"] != "export_complete"),
        "{records:?}"
    );

    // run-schedule of an unknown schedule names the configured ones.
    let (_, stderr) = run(&archive, &["export", "run-schedule", "nope"], 2);
    assert!(
        stderr.contains("\"nope\"") && stderr.contains("configured: none"),
        "{stderr}"
    );
    let config = archive.dir.path().join("holdfast.toml");
    std::fs::write(
        &config,
        "[[export.schedules]]\nname = \"nightly\"\ncron = \"0 0 1 * * *\"\nformats = [\"jsonl\"]\n\n\
         [[export.schedules]]\nname = \"weekly\"\ncron = \"0 0 2 * * MON\"\nformats = [\"csv\"]\n",
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let (_, stderr) = run(
        &archive,
        &["--config", config_arg, "export", "run-schedule", "nope"],
        2,
    );
    assert!(
        stderr.contains("\"nope\"") && stderr.contains("nightly, weekly"),
        "{stderr}"
    );

    // The schedule runs from the command line, exactly once.
    let (stdout, _) = run(
        &archive,
        &[
            "--config",
            config_arg,
            "export",
            "run-schedule",
            "nightly",
            "--json",
        ],
        0,
    );
    let outcome: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(outcome["events"], json!(23));
    assert_eq!(outcome["seq_after"], json!(0));
    assert_eq!(outcome["seq_upto"], json!(23));
    let package = PathBuf::from(outcome["package"].as_str().unwrap());
    assert_eq!(jsonl_ids(&package).len(), 23);
    let (stdout, _) = run(
        &archive,
        &[
            "--config",
            config_arg,
            "export",
            "run-schedule",
            "nightly",
            "--json",
        ],
        0,
    );
    let again: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(again["export_id"], Value::Null, "{again}");
    assert_eq!(again["events"], json!(0));
}

/// A bad `[[export.schedules]]` makes every command, `holdfast config`
/// included, exit 2 naming the key.
#[test]
fn bad_export_schedules_in_the_config_file_are_named() {
    let place = tempfile::tempdir().unwrap();
    let data_dir = place.path().join("data");
    let config = place.path().join("holdfast.toml");
    let schedule = |extra: &str| {
        format!(
            "[[export.schedules]]\nname = \"nightly\"\ncron = \"0 0 1 * * *\"\nformats = [\"jsonl\"]\n{extra}"
        )
    };
    let cases = [
        (
            "[[export.schedules]]\nname = \"nightly\"\ncron = \"every night\"\nformats = [\"jsonl\"]\n".to_owned(),
            "export.schedules[0].cron",
        ),
        (
            schedule("deliver = [{ dir = \"relative/drop\" }]\n"),
            "export.schedules[0].deliver[0].dir",
        ),
        (
            schedule("deliver = [{ url = \"http://siem.example.com/upload\" }]\n"),
            "export.schedules[0].deliver[0].url",
        ),
        (
            schedule("deliver = [{ url = \"ftp://127.0.0.1/upload\" }]\n"),
            "export.schedules[0].deliver[0].url",
        ),
        (
            schedule("deliver = [{ dir = \"/srv/drop\", url = \"https://siem.example.com/\" }]\n"),
            "export.schedules[0].deliver[0]",
        ),
        (
            schedule("bates = { prefix = \"HF\" }\n"),
            "export.schedules[0].bates",
        ),
        (
            format!("{}{}", schedule(""), schedule("")),
            "export.schedules[1].name",
        ),
        (schedule("formatz = [\"csv\"]\n"), "formatz"),
        ("[export]\nsigning = \"hmac\"\n".to_owned(), "export.hmac_key_file"),
    ];
    for (text, key) in cases {
        std::fs::write(&config, &text).unwrap();
        let output = helpers::holdfast(&data_dir)
            .args(["--config", config.to_str().unwrap(), "config"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}\n{stderr}");
        assert!(stderr.contains(key), "{text}\n→ {stderr}");
    }
    // A good one is accepted and described.
    std::fs::write(
        &config,
        schedule("deliver = [{ dir = \"/srv/drop\" }, { url = \"http://127.0.0.1:9/upload\" }]\n"),
    )
    .unwrap();
    let output = helpers::holdfast(&data_dir)
        .args(["--config", config.to_str().unwrap(), "config"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("nightly"), "{stdout}");
}

both_backends!(
    a_criteria_export_holds_the_corpus_in_every_format,
    the_jsonl_of_an_export_ingests_into_another_archive_as_the_same_events,
    a_scoped_requester_exports_nothing_outside_the_scope,
    query_and_hold_exports_hold_whole_posts,
    a_query_export_does_not_mix_posts_of_the_same_id_in_other_channels,
    criteria_select_by_time_team_channel_and_custodian,
    every_kind_of_tampering_is_named,
    a_zip_with_two_entries_under_one_name_is_not_intact,
    scheduled_exports_export_every_event_exactly_once,
    racing_runs_of_a_schedule_export_each_range_once,
    packages_are_delivered_and_failed_deliveries_retried,
    a_directory_delivery_never_claims_another_package_as_its_own,
    a_cancelled_export_leaves_nothing_behind,
    cli_create_verify_show_and_audit,
    cli_refuses_bad_export_flags_naming_them,
);
