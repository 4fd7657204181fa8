//! The store on both metadata backends: append, dedupe, versions, reopen,
//! segment sealing, key rotation, tamper evidence and torn-tail recovery.
#![allow(clippy::unwrap_used, reason = "tests")]

mod helpers;

use std::collections::HashSet;

use helpers::{TestArchive, event, posts};
use holdfast::db::Backend;
use holdfast::event::Event;
use holdfast::store::keys::{KekSource, MasterKey};
use holdfast::store::{AppendStatus, Store, StoreError};

async fn appends_dedupes_and_reads_back(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let store = archive.open().await;
    let batch = posts("a", 50);
    let statuses = store.append(batch.clone()).await.unwrap();
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, AppendStatus::Stored { .. }))
    );
    let seqs: Vec<u64> = statuses
        .iter()
        .map(|s| match s {
            AppendStatus::Stored { seq } => *seq,
            AppendStatus::Duplicate | AppendStatus::TooLarge { .. } => 0,
        })
        .collect();
    assert_eq!(seqs, (1..=50).collect::<Vec<u64>>());

    // The same ids again, plus a duplicate inside the batch, plus one new.
    let mut again = batch[..10].to_vec();
    again.push(batch[0].clone());
    again.push(event("a-new", "member_join", None));
    let statuses = store.append(again).await.unwrap();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == AppendStatus::Duplicate)
            .count(),
        11
    );
    assert_eq!(statuses[11], AppendStatus::Stored { seq: 51 });

    for original in &batch {
        let stored = store.get_event(&original.id).await.unwrap().unwrap();
        assert_eq!(&stored.event, original);
    }
    assert!(store.get_event("missing").await.unwrap().is_none());
    let stats = store.db().stats().await.unwrap();
    assert_eq!(stats.events, 51);
    store.close().await;
}

async fn keeps_every_version_of_a_post(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let store = archive.open().await;
    let events = [
        event("v1", "post", Some("p")),
        event("v2", "edit", Some("p")),
        event("r1", "reaction_add", Some("p")),
        event("v3", "edit", Some("p")),
        event("v4", "delete", Some("p")),
        event("other", "post", Some("q")),
    ];
    store.append(events[..3].to_vec()).await.unwrap();
    store.append(events[3..].to_vec()).await.unwrap();
    let history = store.post_events("p").await.unwrap();
    let ids: Vec<&str> = history.iter().map(|s| s.event.id.as_str()).collect();
    assert_eq!(ids, ["v1", "v2", "r1", "v3", "v4"]);
    assert!(history.windows(2).all(|w| w[0].seq < w[1].seq));
    store.close().await;
}

async fn reopens_with_everything_and_continues_the_sequence(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let store = archive.open().await;
    store.append(posts("b", 20)).await.unwrap();
    store.close().await;

    let (store, report) = Store::open(&archive.options).await.unwrap();
    assert_eq!(report.recovered_records, 0);
    assert!(report.truncated.is_none());
    let statuses = store.append(posts("c", 2)).await.unwrap();
    assert_eq!(statuses[0], AppendStatus::Stored { seq: 21 });
    assert!(store.get_event("b-7").await.unwrap().is_some());
    let report = store.verify().await.unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.events, 22);
    store.close().await;
}

async fn seals_segments_and_verifies_across_them(backend: Backend) {
    let mut archive = TestArchive::new(backend).await;
    archive.options.segment_max_bytes = 8 * 1024;
    let store = archive.open().await;
    for round in 0..6 {
        store.append(posts(&format!("s{round}"), 15)).await.unwrap();
    }
    let segments = store.db().segments().await.unwrap();
    assert!(segments.len() >= 4, "{} segments", segments.len());
    assert!(
        segments[..segments.len() - 1]
            .iter()
            .all(|s| s.sealed_at_ms.is_some())
    );
    assert!(segments.last().unwrap().sealed_at_ms.is_none());
    for segment in &segments {
        let len = std::fs::metadata(
            archive
                .segments_dir()
                .join(format!("{:012}.seg", segment.segment_no)),
        )
        .unwrap()
        .len();
        assert!(
            len <= 8 * 1024,
            "segment {} is {len} bytes",
            segment.segment_no
        );
    }
    let report = store.verify().await.unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.events, 90);
    assert_eq!(report.sealed_segments as usize, segments.len() - 1);
    store.close().await;
    let (store, _) = Store::open(&archive.options).await.unwrap();
    assert!(store.get_event("s0-0").await.unwrap().is_some());
    assert!(store.get_event("s5-14").await.unwrap().is_some());
    store.close().await;
}

async fn rotating_the_master_key_rewraps_without_touching_segments(backend: Backend) {
    let mut archive = TestArchive::new(backend).await;
    let store = archive.open().await;
    store.append(posts("k", 30)).await.unwrap();
    let segment = archive.segments_dir().join("000000000001.seg");
    // Refused while another handle could still append under the old key.
    let error = store
        .clone()
        .rotate_master_key(&MasterKey::generate())
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("other handles"), "{error}");
    store.append(posts("still-open", 1)).await.unwrap();
    let before = std::fs::read(&segment).unwrap();
    let old_fingerprint = store.master_key_fingerprint().to_owned();

    let new_key_path = archive.dir.path().join("new.key");
    let new_key = MasterKey::generate();
    new_key.write_new_file(&new_key_path).unwrap();
    let n = store.rotate_master_key(&new_key).await.unwrap();
    let epochs: HashSet<(String, String)> = posts("k", 30)
        .iter()
        .chain(&posts("still-open", 1))
        .map(|e| (e.channel.clone(), e.utc_day()))
        .collect();
    assert_eq!(n as usize, epochs.len(), "one data key per channel and day");
    assert_eq!(std::fs::read(&segment).unwrap(), before);

    // The old key (still in the data dir) no longer opens anything.
    let error = Store::open_read_only(&archive.options).await.err().unwrap();
    match error {
        StoreError::Key(key_error) => {
            let message = key_error.to_string();
            assert!(message.contains("does not open this archive"), "{message}");
            assert!(message.contains(new_key.fingerprint()), "{message}");
            assert!(
                !message.contains(&old_fingerprint) || old_fingerprint != new_key.fingerprint()
            );
        }
        other => panic!("expected a key error, got {other}"),
    }
    archive.options.kek = Some(KekSource::File(new_key_path));
    let store = Store::open_read_only(&archive.options).await.unwrap();
    assert_eq!(
        store.get_event("k-3").await.unwrap().unwrap().event.id,
        "k-3"
    );
    assert!(store.verify().await.unwrap().ok);
}

async fn a_wrong_key_never_opens_an_empty_archive(backend: Backend) {
    let mut archive = TestArchive::new(backend).await;
    let store = archive.open().await;
    store.append(posts("w", 5)).await.unwrap();
    store.close().await;
    let other = archive.dir.path().join("other.key");
    MasterKey::generate().write_new_file(&other).unwrap();
    archive.options.kek = Some(KekSource::File(other));
    for result in [
        Store::open(&archive.options).await.map(|_| ()),
        Store::open_read_only(&archive.options).await.map(|_| ()),
    ] {
        let error = result.err().unwrap();
        assert!(matches!(error, StoreError::Key(_)), "{error}");
    }
}

async fn a_database_without_the_archive_is_refused_when_segments_exist(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let store = archive.open().await;
    store.append(posts("o", 3)).await.unwrap();
    store.close().await;
    // Same data dir, a different (empty) metadata database.
    let other = TestArchive::new(backend).await;
    let mut options = archive.options.clone();
    options.database_url = other.options.database_url.clone();
    if backend == Backend::Sqlite {
        options.database_url = format!("sqlite:{}", archive.dir.path().join("other.db").display());
    }
    let error = Store::open(&options).await.err().unwrap();
    assert!(
        matches!(error, StoreError::OrphanSegments { .. }),
        "{error}"
    );
}

async fn concurrent_appends_are_all_stored(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let store = archive.open().await;
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for batch in 0..10 {
                store
                    .append(posts(&format!("t{task}-{batch}"), 25))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.db().stats().await.unwrap().events, 8 * 10 * 25);
    let report = store.verify().await.unwrap();
    assert!(report.ok, "{:?}", report.problems);
    store.close().await;
}

async fn durability_every_syncs_each_event(backend: Backend) {
    let mut archive = TestArchive::new(backend).await;
    archive.options.durability = holdfast::store::Durability::Every;
    let store = archive.open().await;
    store.append(posts("e", 12)).await.unwrap();
    assert!(store.metrics().fsyncs.get() >= 12);
    assert!(store.verify().await.unwrap().ok);
    store.close().await;
}

async fn verify_beside_a_busy_writer_reports_no_false_damage(backend: Backend) {
    let mut archive = TestArchive::new(backend).await;
    archive.options.segment_max_bytes = 16 * 1024;
    let store = archive.open().await;
    store.append(posts("warm", 40)).await.unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..30 {
                store
                    .append(posts(&format!("busy{round}"), 20))
                    .await
                    .unwrap();
            }
        })
    };
    let reader = Store::open_read_only(&archive.options).await.unwrap();
    let mut n_verifies = 0;
    while !writer.is_finished() || n_verifies == 0 {
        let report = reader.verify().await.unwrap();
        assert!(report.ok, "verify during writes: {:?}", report.problems);
        n_verifies += 1;
    }
    writer.await.unwrap();
    let report = reader.verify().await.unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.events, 40 + 30 * 20);
    store.close().await;
}

async fn followers_read_the_archive_in_order_across_segments(backend: Backend) {
    let mut archive = TestArchive::new(backend).await;
    archive.options.segment_max_bytes = 8 * 1024;
    let store = archive.open().await;
    let mut appended = Vec::new();
    for round in 0..5 {
        let batch = posts(&format!("f{round}"), 13);
        store.append(batch.clone()).await.unwrap();
        // A duplicate in the middle stores nothing and leaves no gap.
        store.append(vec![batch[0].clone()]).await.unwrap();
        appended.extend(batch);
    }
    assert!(store.db().segments().await.unwrap().len() > 2);
    let mut read = Vec::new();
    let mut next = 1;
    loop {
        let page = store.events_from(next, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        read.extend(page);
    }
    assert_eq!(read.len(), appended.len());
    for (i, (stored, original)) in read.iter().zip(&appended).enumerate() {
        assert_eq!(stored.seq, i as u64 + 1);
        assert_eq!(&stored.event, original);
    }
    assert!(store.events_from(next, 7).await.unwrap().is_empty());

    // A damaged record is an error, never a wrong or silently missing event.
    let rows = store.db().events_from_seq(20, 1).await.unwrap();
    let path = archive
        .segments_dir()
        .join(format!("{:012}.seg", rows[0].segment_no));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(rows[0].record_offset + 50) as usize] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let error = store.events_from(15, 10).await.err().unwrap();
    assert!(matches!(error, StoreError::Unreadable { .. }), "{error}");
    store.close().await;
}

both_backends!(
    followers_read_the_archive_in_order_across_segments,
    verify_beside_a_busy_writer_reports_no_false_damage,
    appends_dedupes_and_reads_back,
    keeps_every_version_of_a_post,
    reopens_with_everything_and_continues_the_sequence,
    seals_segments_and_verifies_across_them,
    rotating_the_master_key_rewraps_without_touching_segments,
    a_wrong_key_never_opens_an_empty_archive,
    a_database_without_the_archive_is_refused_when_segments_exist,
    concurrent_appends_are_all_stored,
    durability_every_syncs_each_event,
    a_torn_tail_at_any_point_is_recovered,
);

// ---------------------------------------------------------------- tamper evidence

/// A small archive of two sealed segments and an open one, closed.
async fn small_archive() -> (TestArchive, Vec<Event>) {
    let mut archive = TestArchive::new(Backend::Sqlite).await;
    archive.options.segment_max_bytes = 4096 + 64;
    let store = archive.open().await;
    let events = posts("x", 36);
    for chunk in events.chunks(4) {
        store.append(chunk.to_vec()).await.unwrap();
    }
    store.close().await;
    (archive, events)
}

fn segment_files(archive: &TestArchive) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(archive.segments_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipping_any_single_byte_of_any_segment_is_detected() {
    let (archive, _) = small_archive().await;
    let store = Store::open_read_only(&archive.options).await.unwrap();
    assert!(store.verify().await.unwrap().ok);
    let files = segment_files(&archive);
    assert!(files.len() >= 3, "{files:?}");
    let mut n_checked = 0;
    for (file_idx, path) in files.iter().enumerate() {
        let original = std::fs::read(path).unwrap();
        for byte_idx in 0..original.len() {
            let mut damaged = original.clone();
            damaged[byte_idx] ^= 0x01;
            std::fs::write(path, &damaged).unwrap();
            let report = store.verify().await.unwrap();
            assert!(
                !report.ok,
                "flipping byte {byte_idx} of {} went unnoticed",
                path.display()
            );
            let problem = &report.problems[0];
            assert_eq!(problem.segment_no as usize, file_idx + 1, "{problem}");
            n_checked += 1;
        }
        std::fs::write(path, &original).unwrap();
    }
    assert!(n_checked > 8000, "{n_checked}");
    assert!(store.verify().await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_reordered_and_truncated_records_are_named() {
    let (archive, _) = small_archive().await;
    let store = Store::open_read_only(&archive.options).await.unwrap();
    let segments = store.db().segments().await.unwrap();
    let files = segment_files(&archive);
    let first = std::fs::read(&files[0]).unwrap();
    let rows = store.db().events_from_seq(0, 1000).await.unwrap();
    let in_first: Vec<_> = rows.iter().filter(|r| r.segment_no == 1).collect();
    let record = |i: usize| {
        let row = in_first[i];
        (row.record_offset as usize)..(row.record_offset + row.record_len) as usize
    };

    // Remove the second record of segment 1.
    let mut removed = first.clone();
    removed.drain(record(1));
    std::fs::write(&files[0], &removed).unwrap();
    let report = store.verify().await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.problems[0].segment_no, 1);
    assert_eq!(
        report.problems[0].record_index,
        Some(1),
        "{}",
        report.problems[0]
    );

    // Swap records 1 and 2 (same length: posts of equal size).
    let (r1, r2) = (record(1), record(2));
    if r1.len() == r2.len() {
        let mut swapped = first.clone();
        let copy1 = first[r1.clone()].to_vec();
        swapped[r1.clone()].copy_from_slice(&first[r2.clone()]);
        swapped[r2].copy_from_slice(&copy1);
        std::fs::write(&files[0], &swapped).unwrap();
        let report = store.verify().await.unwrap();
        assert!(!report.ok);
        assert_eq!(
            report.problems[0].record_index,
            Some(1),
            "{}",
            report.problems[0]
        );
    }

    // Truncate the last (open) segment at a record boundary: acknowledged records missing.
    std::fs::write(&files[0], &first).unwrap();
    let last = files.last().unwrap();
    let last_bytes = std::fs::read(last).unwrap();
    let last_rows: Vec<_> = rows
        .iter()
        .filter(|r| r.segment_no == segments.last().unwrap().segment_no)
        .collect();
    let cut = last_rows.last().unwrap().record_offset as usize;
    std::fs::write(last, &last_bytes[..cut]).unwrap();
    let report = store.verify().await.unwrap();
    assert!(!report.ok);
    assert!(
        report.problems[0].what.contains("missing"),
        "{}",
        report.problems[0]
    );
    std::fs::write(last, &last_bytes).unwrap();

    // Delete a whole sealed segment: only
    // it is named (the segments after it are healthy).
    let second = std::fs::read(&files[1]).unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    let report = store.verify().await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.problems[0].segment_no, 2, "{}", report.problems[0]);
    let named: Vec<u64> = report.problems.iter().map(|p| p.segment_no).collect();
    assert_eq!(named, [2], "{:?}", report.problems);
    std::fs::write(&files[1], &second).unwrap();

    // Swap two sealed segments' contents.
    std::fs::write(&files[0], &second).unwrap();
    std::fs::write(&files[1], &first).unwrap();
    let report = store.verify().await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.problems[0].segment_no, 1, "{}", report.problems[0]);
    std::fs::write(&files[0], &first).unwrap();
    std::fs::write(&files[1], &second).unwrap();

    assert!(store.verify().await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_row_removed_or_moved_is_detected() {
    let (archive, _) = small_archive().await;
    let store = Store::open_read_only(&archive.options).await.unwrap();
    let holdfast::db::Db::Sqlite(pool) = store.db() else {
        unreachable!("small_archive is on sqlite");
    };
    // A lookup column changed: the event would hide from post or user lookups.
    sqlx::query("UPDATE events SET user_name = 'someone-else' WHERE event_id = 'x-7'")
        .execute(pool)
        .await
        .unwrap();
    let report = store.verify().await.unwrap();
    assert!(!report.ok);
    assert!(
        report.problems[0]
            .what
            .contains("disagrees with its record"),
        "{}",
        report.problems[0]
    );
    sqlx::query("UPDATE events SET user_name = 'allen-p' WHERE event_id = 'x-7'")
        .execute(pool)
        .await
        .unwrap();
    assert!(store.verify().await.unwrap().ok);

    sqlx::query("DELETE FROM events WHERE event_id = 'x-5'")
        .execute(pool)
        .await
        .unwrap();
    let report = store.verify().await.unwrap();
    assert!(!report.ok);
    assert!(
        report.problems[0].what.contains("no metadata row"),
        "{}",
        report.problems[0]
    );
}

/// An earlier head kept outside the server proves that history up to it was
/// not rewritten, even by someone who rebuilt the whole chain and metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_head_kept_elsewhere_is_checked() {
    let archive = TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    store.append(posts("h", 10)).await.unwrap();
    let earlier = store.verify().await.unwrap();
    let head: [u8; 32] = hex::decode(&earlier.head_hash).unwrap().try_into().unwrap();
    store.append(posts("later", 10)).await.unwrap();

    let report = store
        .verify_expecting_head(earlier.head_seq, head)
        .await
        .unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.expected_head_matches, Some(true));

    let mut other = head;
    other[0] ^= 1;
    let report = store
        .verify_expecting_head(earlier.head_seq, other)
        .await
        .unwrap();
    assert!(!report.ok);
    assert_eq!(report.expected_head_matches, Some(false));
    assert!(
        report.problems[0].what.contains("rewritten"),
        "{}",
        report.problems[0]
    );

    // A head taken right after a segment was sealed is the new segment's
    // chain start: it still proves the history up to it.
    let mut sealed = TestArchive::new(Backend::Sqlite).await;
    sealed.options.segment_max_bytes = 4096 + 64;
    let small = sealed.open().await;
    let empty = small.verify().await.unwrap();
    assert_eq!(empty.head_seq, 0);
    let start: [u8; 32] = hex::decode(&empty.head_hash).unwrap().try_into().unwrap();
    for round in 0..40 {
        small.append(posts(&format!("r{round}"), 1)).await.unwrap();
        let report = small.verify().await.unwrap();
        let hash: [u8; 32] = hex::decode(&report.head_hash).unwrap().try_into().unwrap();
        let again = small
            .verify_expecting_head(report.head_seq, hash)
            .await
            .unwrap();
        assert!(again.ok, "round {round}: {:?}", again.problems);
    }
    assert!(small.db().segments().await.unwrap().len() > 2);
    let from_start = small.verify_expecting_head(0, start).await.unwrap();
    assert!(from_start.ok, "{:?}", from_start.problems);
    small.close().await;

    let report = store.verify_expecting_head(500, head).await.unwrap();
    assert!(!report.ok);
    assert!(
        report.problems[0].what.contains("not in the archive"),
        "{}",
        report.problems[0]
    );
    store.close().await;
}

// ---------------------------------------------------------------- crash recovery

/// Puts the metadata back to `head`, as if the process died after the
/// records past it reached the disk but before the metadata recorded them.
async fn forget_past(options: &holdfast::store::StoreOptions, head: &holdfast::db::SegmentRow) {
    let db = holdfast::db::Db::connect(&options.database_url)
        .await
        .unwrap();
    macro_rules! rewind {
        ($pool:expr) => {{
            sqlx::query("DELETE FROM events WHERE seq > $1")
                .bind(head.last_seq)
                .execute($pool)
                .await
                .unwrap();
            sqlx::query(
                "UPDATE segments SET end_offset = $1, n_records = $2, last_seq = $3, last_hash = $4 \
                 WHERE segment_no = $5",
            )
            .bind(head.end_offset)
            .bind(head.n_records)
            .bind(head.last_seq)
            .bind(&head.last_hash)
            .bind(head.segment_no)
            .execute($pool)
            .await
            .unwrap();
        }};
    }
    match &db {
        holdfast::db::Db::Sqlite(pool) => rewind!(pool),
        holdfast::db::Db::Postgres(pool) => rewind!(pool),
    }
    db.close().await;
}

/// Simulates a crash after records reached the disk but before the metadata
/// recorded them, cut at many points of the unacknowledged tail: every
/// acknowledged event survives, whole records past the head are recovered,
/// a partial one is cut off, and verify passes.
async fn a_torn_tail_at_any_point_is_recovered(backend: Backend) {
    let archive = TestArchive::new(backend).await;
    let store = archive.open().await;
    let acknowledged = posts("ack", 6);
    store.append(acknowledged.clone()).await.unwrap();
    let head_row = store.db().segments().await.unwrap().pop().unwrap();
    store.close().await;
    let segment = archive.segments_dir().join("000000000001.seg");
    let head = std::fs::read(&segment).unwrap().len();
    assert_eq!(head as i64, head_row.end_offset);

    let store = archive.open().await;
    let in_flight = posts("late", 3);
    store.append(in_flight.clone()).await.unwrap();
    let late_rows: Vec<_> = store
        .db()
        .events_from_seq(7, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.event_id, (row.record_offset + row.record_len) as usize))
        .collect();
    store.close().await;
    let full = std::fs::read(&segment).unwrap();
    assert!(full.len() > head);

    let mut cuts: Vec<usize> = (head..=full.len()).step_by(13).collect();
    for (_, end) in &late_rows {
        cuts.extend([end - 1, *end, end + 1]);
    }
    cuts.push(head + 1);
    cuts.retain(|cut| *cut >= head && *cut <= full.len());
    for cut in cuts {
        std::fs::write(&segment, &full[..cut]).unwrap();
        forget_past(&archive.options, &head_row).await;
        let (store, report) = Store::open(&archive.options).await.unwrap();
        let whole: HashSet<&str> = late_rows
            .iter()
            .filter(|(_, end)| *end <= cut)
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(
            report.recovered_records as usize,
            whole.len(),
            "cut at {cut}"
        );
        let expect_truncation = !late_rows.iter().any(|(_, end)| *end == cut) && cut != head;
        assert_eq!(
            report.truncated.is_some(),
            expect_truncation,
            "cut at {cut}: {report:?}"
        );
        for event in &acknowledged {
            assert_eq!(
                store.get_event(&event.id).await.unwrap().unwrap().event,
                *event
            );
        }
        for event in &in_flight {
            let found = store.get_event(&event.id).await.unwrap();
            assert_eq!(
                found.is_some(),
                whole.contains(event.id.as_str()),
                "cut at {cut}"
            );
        }
        let verify = store.verify().await.unwrap();
        assert!(verify.ok, "cut at {cut}: {:?}", verify.problems);
        // The archive takes new writes after recovery.
        let statuses = store
            .append(vec![event(&format!("after-{cut}"), "member_join", None)])
            .await
            .unwrap();
        assert!(matches!(statuses[0], AppendStatus::Stored { .. }));
        store.close().await;
    }
}

/// A metadata commit that fails leaves records on disk that nobody was told
/// are stored: the writer cuts them before taking more, so they never turn
/// up later, and the archive keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_metadata_commit_is_not_acknowledged_and_leaves_no_trace() {
    let mut archive = TestArchive::new(Backend::Sqlite).await;
    archive.options.segment_max_bytes = 4096 + 64;
    let store = archive.open().await;
    store.append(posts("ok1", 5)).await.unwrap();
    let holdfast::db::Db::Sqlite(pool) = store.db() else {
        unreachable!("sqlite archive");
    };
    sqlx::query(
        "CREATE TRIGGER refuse_fail BEFORE INSERT ON events WHEN NEW.event_id LIKE 'fail-%' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .execute(pool)
    .await
    .unwrap();
    // Big enough to roll over into new segments before the commit fails.
    let error = store.append(posts("fail", 30)).await.err().unwrap();
    assert!(matches!(error, StoreError::WriteFailed(_)), "{error}");
    sqlx::query("DROP TRIGGER refuse_fail")
        .execute(pool)
        .await
        .unwrap();

    store.append(posts("ok2", 5)).await.unwrap();
    for id in ["ok1-0", "ok1-4", "ok2-0", "ok2-4"] {
        assert!(store.get_event(id).await.unwrap().is_some(), "{id}");
    }
    assert!(store.get_event("fail-0").await.unwrap().is_none());
    let report = store.verify().await.unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.events, 10);
    assert_eq!(report.unacknowledged_tail_bytes, 0);
    store.close().await;
    // Nothing of the failed group comes back at the next start either.
    let (store, recovery) = Store::open(&archive.options).await.unwrap();
    assert_eq!(recovery.recovered_records, 0);
    assert!(store.get_event("fail-0").await.unwrap().is_none());
    // And it can be sent again.
    let statuses = store.append(posts("fail", 30)).await.unwrap();
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, AppendStatus::Stored { .. }))
    );
    assert!(store.verify().await.unwrap().ok);
    store.close().await;
}

/// An event built in code (an importer) can be larger than a record may
/// hold: it is refused, never stored unreadable, and its batch goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_large_for_a_record_is_refused_alone() {
    let archive = TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let mut big = helpers::event_json("big", "member_join", None);
    big["props"] = serde_json::json!({"raw": "x".repeat(2 * 1024 * 1024)});
    let big = Event::from_json(big).unwrap();
    let mut batch = posts("around", 2);
    batch.insert(1, big);
    let statuses = store.append(batch).await.unwrap();
    assert!(matches!(statuses[0], AppendStatus::Stored { .. }));
    assert!(matches!(statuses[1], AppendStatus::TooLarge { bytes } if bytes > 2 * 1024 * 1024));
    assert!(matches!(statuses[2], AppendStatus::Stored { .. }));
    assert!(store.get_event("big").await.unwrap().is_none());
    assert!(store.get_event("around-1").await.unwrap().is_some());
    assert!(store.verify().await.unwrap().ok);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_data_missing_is_refused_not_repaired() {
    let archive = TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    store.append(posts("m", 5)).await.unwrap();
    store.close().await;
    let segment = archive.segments_dir().join("000000000001.seg");
    let bytes = std::fs::read(&segment).unwrap();
    std::fs::write(&segment, &bytes[..bytes.len() - 10]).unwrap();
    let error = Store::open(&archive.options).await.err().unwrap();
    assert!(
        matches!(error, StoreError::Damaged { segment_no: 1, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("acknowledged events are missing"),
        "{error}"
    );
    // Nothing was cut: the file is as the damage left it.
    assert_eq!(std::fs::read(&segment).unwrap().len(), bytes.len() - 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_is_refused_naming_the_holder() {
    let archive = TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    let error = Store::open(&archive.options).await.err().unwrap();
    let message = error.to_string();
    assert!(message.contains("in use by another writer"), "{message}");
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    // Readers are fine beside the writer.
    Store::open_read_only(&archive.options).await.unwrap();
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let archive = TestArchive::new(Backend::Sqlite).await;
    let store = archive.open().await;
    store.append(posts("f", 2)).await.unwrap();
    store.close().await;
    let mode =
        |path: std::path::PathBuf| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(archive.data_dir().to_path_buf()), 0o700);
    assert_eq!(mode(archive.segments_dir()), 0o700);
    for name in [
        "holdfast.db",
        "master.key",
        "holdfast.lock",
        "segments/000000000001.seg",
    ] {
        assert_eq!(mode(archive.data_dir().join(name)), 0o600, "{name}");
    }
}
