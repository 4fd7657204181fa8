//! The audit trail on both metadata backends: append and verify, tampering
//! by someone with database access (altered, removed and truncated records),
//! concurrent appends from several writers, filters and paging, CSV export,
//! and errors.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use helpers::{TestArchive, connect_db, raw_sql};
use holdfast::audit::{
    AUDIT_KEY_FILE, AuditAction, AuditEntry, AuditError, AuditFilter, AuditHash, AuditKey,
    AuditLog, AuditOutcome, AuditProblem, AuditRecord, CSV_HEADER, Clock, ExpectedHead,
    VerifyOptions, format_time, parse_time,
};
use holdfast::db::{Backend, Db};
use serde_json::json;
use zeroize::Zeroizing;

/// 2024-05-01T09:30:00Z
const T0_US: i64 = 1_714_555_800_000_000;

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap()
}

fn test_key() -> AuditKey {
    AuditKey::from_bytes(Zeroizing::new([42u8; 32]))
}

/// A clock that starts at `T0_US` and moves one second each time it is read.
fn stepping_clock() -> Clock {
    let next = Arc::new(AtomicI64::new(T0_US));
    Arc::new(move || time(next.fetch_add(1_000_000, Ordering::SeqCst)))
}

async fn open_log(db: &Db) -> AuditLog {
    AuditLog::open_with_clock(db.clone(), test_key(), stepping_clock())
        .await
        .unwrap()
}

/// `n` entries of varied actors, actions and outcomes.
fn entries(n: usize) -> Vec<AuditEntry> {
    let actions = [
        AuditAction::Login,
        AuditAction::Search,
        AuditAction::ViewPost,
        AuditAction::ExportCreate,
    ];
    let outcomes = [
        AuditOutcome::Ok,
        AuditOutcome::Ok,
        AuditOutcome::Denied,
        AuditOutcome::Failed,
        AuditOutcome::Error,
    ];
    (0..n)
        .map(|i| {
            let mut entry = AuditEntry::new(["maria", "ken", "anonymous"][i % 3], actions[i % 4])
                .client(if i % 2 == 0 { "10.0.0.7" } else { "cli" })
                .params(
                    json!({ "query": format!("wire transfer {i}"), "hits": i, "ids": [i, i + 1] }),
                )
                .outcome(outcomes[i % 5]);
            if i % 3 != 2 {
                entry = entry.role("compliance_officer");
            }
            if entry.outcome != AuditOutcome::Ok {
                entry = entry.detail(format!(
                    "reason {i}, with \"quotes\", commas\nand a newline"
                ));
            }
            entry
        })
        .collect()
}

async fn append_all(log: &AuditLog, entries: Vec<AuditEntry>) -> Vec<AuditRecord> {
    let mut records = Vec::new();
    for entry in entries {
        records.push(log.append(entry).await.unwrap());
    }
    records
}

/// Removes the tables' triggers, as an attacker with database access would.
async fn drop_triggers(db: &Db) {
    let sql = match db.backend() {
        Backend::Sqlite => {
            "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; \
             DROP TRIGGER audit_head_forward_only; DROP TRIGGER audit_head_no_delete;"
        }
        Backend::Postgres => {
            "ALTER TABLE audit_log DISABLE TRIGGER USER; \
             ALTER TABLE audit_head DISABLE TRIGGER USER;"
        }
    };
    raw_sql(db, sql).await.unwrap();
}

async fn verify(db: &Db, options: &VerifyOptions) -> holdfast::audit::AuditVerification {
    holdfast::audit::verify(db, &test_key(), options)
        .await
        .unwrap()
}

async fn appends_chain_and_verify(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let db = connect_db(&archive).await;
    let log = open_log(&db).await;

    let empty = log.verify(&VerifyOptions::default()).await.unwrap();
    assert!(empty.is_ok());
    assert_eq!(empty.count, 0);
    assert_eq!(empty.head.hash, AuditHash::GENESIS);

    let records = append_all(&log, entries(12)).await;
    let seqs: Vec<u64> = records.iter().map(|record| record.seq).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    assert_eq!(records[0].prev_hash, AuditHash::GENESIS);
    for pair in records.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    // Entries without a time get the clock's, in order, to the microsecond.
    assert_eq!(records[0].at, time(T0_US));
    assert_eq!(records[11].at, time(T0_US + 11_000_000));
    // What a query returns is what the append returned.
    let all = log
        .query(&AuditFilter {
            limit: Some(100),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all, records);

    let head = log.head().await.unwrap();
    assert_eq!(head, records[11].head());
    let report = log.verify(&VerifyOptions::default()).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.count, report.head), (12, head));

    // A head recorded earlier is still in the trail, by seq or by hash alone.
    let earlier = records[4].head();
    let by_hash = ExpectedHead {
        seq: None,
        hash: earlier.hash,
    };
    for expect_head in [ExpectedHead::from(earlier), by_hash] {
        let report = verify(
            &db,
            &VerifyOptions {
                expect_head: Some(expect_head),
                expect_min_count: Some(12),
            },
        )
        .await;
        assert!(report.is_ok(), "{:?}", report.problems);
    }

    // A batch takes consecutive seqs, and the trail survives a reopen.
    drop(log);
    let log = open_log(&db).await;
    let batch = log.append_batch(entries(3)).await.unwrap();
    assert_eq!(
        batch.iter().map(|record| record.seq).collect::<Vec<_>>(),
        [13, 14, 15]
    );
    assert_eq!(batch[0].prev_hash, records[11].hash);
    assert!(
        verify(&db, &VerifyOptions::default()).await.is_ok(),
        "after reopen"
    );
}

async fn the_key_file_lives_beside_the_database(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let db = connect_db(&archive).await;
    let path = archive.data_dir().join(AUDIT_KEY_FILE);
    let (key, created) = AuditKey::load_or_create(&path).unwrap();
    assert!(created);
    let fingerprint = key.fingerprint().to_owned();
    let log = AuditLog::open(db.clone(), key).await.unwrap();
    log.append(AuditEntry::new("maria", AuditAction::Login))
        .await
        .unwrap();
    drop(log);

    // The same file opens it again; any other key is refused by name.
    let (key, created) = AuditKey::load_or_create(&path).unwrap();
    assert!(!created);
    let log = AuditLog::open(db.clone(), key).await.unwrap();
    assert_eq!(log.key_fingerprint(), fingerprint);
    let error = AuditLog::open(db.clone(), AuditKey::generate())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AuditError::WrongKey { expected, .. } if *expected == fingerprint),
        "{error}"
    );
    let error = holdfast::audit::verify(&db, &AuditKey::generate(), &VerifyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, AuditError::WrongKey { .. }), "{error}");
}

async fn the_tables_refuse_updates_and_deletes(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let db = connect_db(&archive).await;
    let log = open_log(&db).await;
    append_all(&log, entries(3)).await;
    for sql in [
        "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_log",
        "UPDATE audit_head SET seq = 1",
        "UPDATE audit_head SET key_fingerprint = 'feedfeedfeedfeed'",
        "DELETE FROM audit_head",
    ] {
        let error = raw_sql(&db, sql).await.unwrap_err();
        assert!(
            error.to_string().contains("append-only")
                || error.to_string().contains("only moves forward")
                || error.to_string().contains("cannot be deleted"),
            "{sql}: {error}"
        );
    }
    if backend == Backend::Postgres {
        let error = raw_sql(&db, "TRUNCATE audit_log").await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{error}");
    }
    let report = verify(&db, &VerifyOptions::default()).await;
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.count, 3);
}

async fn altered_records_are_named(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let db = connect_db(&archive).await;
    let log = open_log(&db).await;
    append_all(&log, entries(8)).await;
    drop_triggers(&db).await;
    raw_sql(
        &db,
        "UPDATE audit_log SET params = '{\"query\":\"nothing to see\",\"hits\":0}' WHERE seq = 2; \
         UPDATE audit_log SET actor = 'someone-else' WHERE seq = 4; \
         UPDATE audit_log SET outcome = 'ok', detail = NULL WHERE seq = 5; \
         UPDATE audit_log SET at_us = at_us + 1 WHERE seq = 7;",
    )
    .await
    .unwrap();
    let report = verify(&db, &VerifyOptions::default()).await;
    assert_eq!(
        report.problems,
        [2, 4, 5, 7].map(|seq| AuditProblem::HashMismatch { seq })
    );
    assert_eq!(report.count, 8);
    assert!(
        report.problems[1]
            .to_string()
            .starts_with("record 4 was altered"),
        "{}",
        report.problems[1]
    );
}

async fn a_removed_record_is_detected(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let db = connect_db(&archive).await;
    let log = open_log(&db).await;
    let records = append_all(&log, entries(5)).await;
    drop_triggers(&db).await;
    raw_sql(&db, "DELETE FROM audit_log WHERE seq = 3")
        .await
        .unwrap();
    let report = verify(&db, &VerifyOptions::default()).await;
    assert_eq!(
        report.problems,
        [
            AuditProblem::Gap {
                after_seq: 2,
                next_seq: 4
            },
            AuditProblem::BrokenLink {
                seq: 4,
                previous_seq: 2,
                expected: records[1].hash,
                found: records[2].hash,
            },
        ]
    );
    assert_eq!(
        report.problems[0].to_string(),
        "record 3 is missing (between 2 and 4)"
    );
    assert_eq!(report.count, 4);

    // The first record removed: the trail must start at 1.
    raw_sql(&db, "DELETE FROM audit_log WHERE seq = 1")
        .await
        .unwrap();
    let report = verify(&db, &VerifyOptions::default()).await;
    assert_eq!(
        report.problems[0],
        AuditProblem::Gap {
            after_seq: 0,
            next_seq: 2
        }
    );
}

async fn a_forged_record_is_detected(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let db = connect_db(&archive).await;
    let log = open_log(&db).await;
    let records = append_all(&log, entries(3)).await;
    // Inserting is allowed, but without the key no hash is right; a record
    // beyond the head row is checked too.
    raw_sql(
        &db,
        "INSERT INTO audit_log (seq, at_us, actor, role, client, action, params, outcome, \
         detail, prev_hash, hash) SELECT 4, at_us, 'maria', NULL, NULL, 'logout', '{}', 'ok', \
         NULL, hash, prev_hash FROM audit_log WHERE seq = 3",
    )
    .await
    .unwrap();
    let report = verify(&db, &VerifyOptions::default()).await;
    assert_eq!(
        report.problems,
        [
            AuditProblem::HashMismatch { seq: 4 },
            AuditProblem::HeadMismatch {
                head_row: records[2].head(),
                last: holdfast::audit::AuditHead {
                    seq: 4,
                    hash: records[2].prev_hash,
                },
            },
        ]
    );
    assert_eq!(report.count, 4);
}

async fn a_truncated_tail_is_detected(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let db = connect_db(&archive).await;
    let log = open_log(&db).await;
    let records = append_all(&log, entries(6)).await;
    // The operator keeps the head (and the count) outside the server.
    let kept = log.head().await.unwrap();
    assert_eq!(kept, records[5].head());
    drop_triggers(&db).await;

    // A careless attacker removes the last record: the head row gives it away.
    raw_sql(&db, "DELETE FROM audit_log WHERE seq = 6")
        .await
        .unwrap();
    let report = verify(&db, &VerifyOptions::default()).await;
    assert_eq!(
        report.problems,
        [AuditProblem::HeadMismatch {
            head_row: kept,
            last: records[4].head(),
        }]
    );

    // A careful one also moves the head row back: the trail alone is
    // consistent again, and only what was kept elsewhere shows the cut.
    raw_sql(
        &db,
        "UPDATE audit_head SET seq = 5, hash = (SELECT hash FROM audit_log WHERE seq = 5)",
    )
    .await
    .unwrap();
    let report = verify(&db, &VerifyOptions::default()).await;
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.count, 5);

    let report = verify(
        &db,
        &VerifyOptions {
            expect_head: Some(kept.into()),
            expect_min_count: None,
        },
    )
    .await;
    assert_eq!(
        report.problems,
        [AuditProblem::ExpectedHeadMissing {
            expected: kept.to_string()
        }]
    );
    let by_hash_only = ExpectedHead {
        seq: None,
        hash: kept.hash,
    };
    let report = verify(
        &db,
        &VerifyOptions {
            expect_head: Some(by_hash_only),
            expect_min_count: None,
        },
    )
    .await;
    assert!(!report.is_ok());

    let report = verify(
        &db,
        &VerifyOptions {
            expect_head: None,
            expect_min_count: Some(6),
        },
    )
    .await;
    assert_eq!(
        report.problems,
        [AuditProblem::TooFewRecords {
            expected_min: 6,
            found: 5
        }]
    );
}

async fn concurrent_appends_stay_linear(backend: Backend) {
    const N_TASKS: usize = 16;
    const PER_TASK: usize = 25;
    let archive = TestArchive::new(backend).await;
    // Two pools and two logs: two processes (or nodes) on one database.
    let db_a = connect_db(&archive).await;
    let db_b = connect_db(&archive).await;
    let log_a = AuditLog::open(db_a.clone(), test_key()).await.unwrap();
    let log_b = AuditLog::open(db_b.clone(), test_key()).await.unwrap();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for task in 0..N_TASKS {
        let log = if task % 2 == 0 {
            log_a.clone()
        } else {
            log_b.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..PER_TASK {
                let entry = AuditEntry::new(format!("user-{task}"), AuditAction::Search)
                    .params(json!({ "task": task, "i": i }));
                seqs.push(log.append(entry).await.unwrap().seq);
            }
            seqs
        }));
    }
    // Verification while the trail grows sees no false damage.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let verifier = tokio::spawn({
        let (db, done) = (db_b.clone(), Arc::clone(&done));
        async move {
            let mut n_runs = 0;
            while !done.load(Ordering::SeqCst) || n_runs == 0 {
                let report = verify(&db, &VerifyOptions::default()).await;
                assert!(report.is_ok(), "while appending: {:?}", report.problems);
                n_runs += 1;
            }
            n_runs
        }
    });
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    assert!(verifier.await.unwrap() > 0);
    let total = N_TASKS * PER_TASK;
    eprintln!(
        "{}: {total} concurrent appends in {elapsed:?} ({:.0}/s)",
        backend.name(),
        total as f64 / elapsed.as_secs_f64()
    );
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());
    let report = verify(&db_a, &VerifyOptions::default()).await;
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.count, total as u64);
    // Each task's own appends are in its order.
    for task in 0..N_TASKS {
        let mine = log_a
            .query(&AuditFilter {
                actor: Some(format!("user-{task}")),
                limit: Some(PER_TASK),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let order: Vec<i64> = mine
            .iter()
            .map(|record| record.params["i"].as_i64().unwrap())
            .collect();
        assert_eq!(order, (0..PER_TASK as i64).collect::<Vec<_>>());
    }
}

/// Twenty records one hour apart from `T0_US`, with varied fields.
async fn hourly_trail(log: &AuditLog) -> Vec<AuditRecord> {
    let timed = entries(20)
        .into_iter()
        .enumerate()
        .map(|(i, entry)| entry.at(time(T0_US + i as i64 * 3_600_000_000)))
        .collect();
    log.append_batch(timed).await.unwrap()
}

async fn filters_select_and_pages_neither_skip_nor_repeat(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let db = connect_db(&archive).await;
    let log = open_log(&db).await;
    let records = hourly_trail(&log).await;
    let select = |keep: &dyn Fn(&AuditRecord) -> bool| -> Vec<AuditRecord> {
        records.iter().filter(|r| keep(r)).cloned().collect()
    };
    let query = |filter: AuditFilter| {
        let log = log.clone();
        async move { log.query(&filter).await.unwrap() }
    };

    assert_eq!(
        query(AuditFilter {
            actor: Some("ken".to_owned()),
            ..AuditFilter::default()
        })
        .await,
        select(&|r| r.actor == "ken")
    );
    assert_eq!(
        query(AuditFilter {
            action: Some(AuditAction::Search),
            ..AuditFilter::default()
        })
        .await,
        select(&|r| r.action == AuditAction::Search)
    );
    assert_eq!(
        query(AuditFilter {
            outcome: Some(AuditOutcome::Denied),
            ..AuditFilter::default()
        })
        .await,
        select(&|r| r.outcome == AuditOutcome::Denied)
    );
    // [from, to): from is included, to is not.
    let (from, to) = (records[3].at, records[9].at);
    let in_range = query(AuditFilter {
        from: Some(from),
        to: Some(to),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(in_range, records[3..9].to_vec());
    assert_eq!(
        query(AuditFilter {
            actor: Some("maria".to_owned()),
            action: Some(AuditAction::Login),
            from: Some(from),
            ..AuditFilter::default()
        })
        .await,
        select(&|r| r.actor == "maria" && r.action == AuditAction::Login && r.at >= from)
    );
    assert!(
        query(AuditFilter {
            actor: Some("nobody".to_owned()),
            ..AuditFilter::default()
        })
        .await
        .is_empty()
    );

    // Pages of 3, oldest first and newest first, while the trail grows.
    for newest_first in [false, true] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = query(AuditFilter {
                cursor,
                newest_first,
                limit: Some(3),
                ..AuditFilter::default()
            })
            .await;
            let Some(last) = page.last() else {
                break;
            };
            assert!(page.len() <= 3);
            cursor = Some(last.seq);
            seen.extend(page);
            if !newest_first && seen.len() == 6 {
                // Appended mid-paging: seen on a later page, exactly once.
                log.append(AuditEntry::new("late", AuditAction::Logout))
                    .await
                    .unwrap();
            }
        }
        let seqs: Vec<u64> = seen.iter().map(|r| r.seq).collect();
        if newest_first {
            assert_eq!(seqs, (1..=21).rev().collect::<Vec<_>>());
        } else {
            assert_eq!(seqs, (1..=21).collect::<Vec<_>>());
            assert_eq!(seen[..20], records[..]);
        }
    }
    // Paging a filtered query.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = query(AuditFilter {
            actor: Some("maria".to_owned()),
            cursor,
            limit: Some(2),
            ..AuditFilter::default()
        })
        .await;
        let Some(last) = page.last() else {
            break;
        };
        cursor = Some(last.seq);
        seen.extend(page);
    }
    assert_eq!(seen, select(&|r| r.actor == "maria"));
}

async fn csv_export_parses_back_to_the_records(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let db = connect_db(&archive).await;
    let log = open_log(&db).await;
    let mut records = hourly_trail(&log).await;
    // Odd text survives: quotes, commas, newlines, non-Latin, a NUL in params.
    let odd = AuditEntry::new("chen.wei", AuditAction::Search)
        .role("legal")
        .params(json!({ "query": "\"wire, transfer\"\nПривет 你好", "raw": "a\u{0}b" }))
        .outcome(AuditOutcome::Failed)
        .detail("bad query: \"unbalanced")
        .at(time(T0_US + 123_456));
    records.push(log.append(odd).await.unwrap());

    let read = |bytes: Vec<u8>| -> (Vec<String>, Vec<csv::StringRecord>) {
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let header = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        (header, reader.records().map(Result::unwrap).collect())
    };

    let mut out = Vec::new();
    let n = log
        .export_csv(&AuditFilter::default(), &mut out)
        .await
        .unwrap();
    assert_eq!(n, 21);
    let (header, rows) = read(out);
    assert_eq!(header, CSV_HEADER);
    assert_eq!(rows.len(), records.len());
    for (row, record) in rows.iter().zip(&records) {
        let optional = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        assert_eq!(row[0].parse::<u64>().unwrap(), record.seq);
        assert_eq!(parse_time(&row[1]).unwrap(), record.at);
        assert_eq!(row[1], format_time(record.at));
        assert_eq!(row[2], record.actor);
        assert_eq!(optional(&row[3]), record.role);
        assert_eq!(optional(&row[4]), record.client);
        assert_eq!(row[5].parse::<AuditAction>().unwrap(), record.action);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&row[6]).unwrap(),
            record.params
        );
        assert_eq!(row[6], record.params_json);
        assert_eq!(row[7].parse::<AuditOutcome>().unwrap(), record.outcome);
        assert_eq!(optional(&row[8]), record.detail);
        assert_eq!(row[9].parse::<AuditHash>().unwrap(), record.prev_hash);
        assert_eq!(row[10].parse::<AuditHash>().unwrap(), record.hash);
    }

    // Filtered and limited exports; an empty one is a header alone.
    let mut out = Vec::new();
    let filter = AuditFilter {
        actor: Some("maria".to_owned()),
        limit: Some(4),
        ..AuditFilter::default()
    };
    assert_eq!(log.export_csv(&filter, &mut out).await.unwrap(), 4);
    let (_, rows) = read(out);
    let expected: Vec<String> = records
        .iter()
        .filter(|r| r.actor == "maria")
        .take(4)
        .map(|r| r.seq.to_string())
        .collect();
    assert_eq!(
        rows.iter().map(|row| row[0].to_owned()).collect::<Vec<_>>(),
        expected
    );
    let mut out = Vec::new();
    let filter = AuditFilter {
        actor: Some("nobody".to_owned()),
        ..AuditFilter::default()
    };
    assert_eq!(log.export_csv(&filter, &mut out).await.unwrap(), 0);
    assert_eq!(String::from_utf8(out).unwrap(), CSV_HEADER.join(",") + "\n");
}

async fn bad_input_is_a_clear_error(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let db = connect_db(&archive).await;
    let log = open_log(&db).await;
    hourly_trail(&log).await;

    let error = "view-post".parse::<AuditAction>().unwrap_err();
    assert!(matches!(&error, AuditError::UnknownAction { name } if name == "view-post"));
    assert!(error.to_string().contains("view_post"), "{error}");
    assert!("Denied".parse::<AuditOutcome>().is_err());
    assert!(matches!(
        parse_time("last tuesday"),
        Err(AuditError::BadTime { .. })
    ));
    assert!(matches!(
        "12:nothex".parse::<ExpectedHead>(),
        Err(AuditError::BadHead { .. })
    ));

    let reversed = AuditFilter {
        from: Some(parse_time("2024-05-02").unwrap()),
        to: Some(parse_time("2024-05-01").unwrap()),
        ..AuditFilter::default()
    };
    let error = log.query(&reversed).await.unwrap_err();
    assert!(matches!(error, AuditError::BadFilter(_)), "{error}");
    assert!(error.to_string().contains("reversed"), "{error}");
    let mut out = Vec::new();
    assert!(matches!(
        log.export_csv(&reversed, &mut out).await,
        Err(AuditError::BadFilter(_))
    ));
    assert!(out.is_empty(), "nothing is written for a bad filter");
    let too_many = AuditFilter {
        limit: Some(holdfast::audit::MAX_QUERY_LIMIT + 1),
        ..AuditFilter::default()
    };
    assert!(matches!(
        log.query(&too_many).await,
        Err(AuditError::BadFilter(_))
    ));

    // An invalid entry is refused before anything is written.
    let error = log
        .append(AuditEntry::new("", AuditAction::Login))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuditError::InvalidEntry { field: "actor", .. }),
        "{error}"
    );
    assert_eq!(log.head().await.unwrap().seq, 20);
}

async fn a_failed_append_is_an_error(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let db = connect_db(&archive).await;
    let log = open_log(&db).await;
    append_all(&log, entries(2)).await;

    // The database goes away: the caller hears of it, nothing is written.
    let other = connect_db(&archive).await;
    db.close().await;
    let error = log
        .append(AuditEntry::new("maria", AuditAction::Search))
        .await
        .unwrap_err();
    assert!(matches!(error, AuditError::AppendFailed(_)), "{error}");
    let report = verify(&other, &VerifyOptions::default()).await;
    assert!(report.is_ok() && report.count == 2, "{report:?}");

    // The head row removed behind holdfast's back: appends refuse to start
    // a second chain.
    let log = open_log(&other).await;
    drop_triggers(&other).await;
    raw_sql(&other, "DELETE FROM audit_head").await.unwrap();
    let error = log
        .append(AuditEntry::new("maria", AuditAction::Search))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("head row is missing"), "{error}");
}

both_backends!(
    appends_chain_and_verify,
    the_key_file_lives_beside_the_database,
    the_tables_refuse_updates_and_deletes,
    altered_records_are_named,
    a_removed_record_is_detected,
    a_forged_record_is_detected,
    a_truncated_tail_is_detected,
    concurrent_appends_stay_linear,
    filters_select_and_pages_neither_skip_nor_repeat,
    csv_export_parses_back_to_the_records,
    bad_input_is_a_clear_error,
    a_failed_append_is_an_error,
);
