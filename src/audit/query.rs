//! Reading the trail: filtered, paged queries and a streamed CSV export.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::db::Db;
use crate::db::audit::{AuditRow, AuditRowFilter};

use super::chain::AuditHash;
use super::{AuditAction, AuditError, AuditOutcome, AuditRecord};

/// Records a query returns when no limit is given.
pub const DEFAULT_QUERY_LIMIT: usize = 100;

/// The most records one query may return (page with [`AuditFilter::cursor`]).
pub const MAX_QUERY_LIMIT: usize = 10_000;

/// How many records an export reads at a time (memory stays bounded).
const EXPORT_BATCH: usize = 1000;

/// Which records to read. Every condition is optional and they combine with
/// AND; records come in `seq` order (oldest first unless `newest_first`).
///
/// Paging: pass the `seq` of the last record of a page as the next page's
/// `cursor`. Pages neither skip nor repeat records, even while the trail
/// grows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Who acted (exact match).
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    pub outcome: Option<AuditOutcome>,
    /// Records at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Records strictly before this time.
    pub to: Option<DateTime<Utc>>,
    /// Records after this `seq` (before it when `newest_first`).
    pub cursor: Option<u64>,
    pub newest_first: bool,
    /// At most this many records: [`DEFAULT_QUERY_LIMIT`] for a query when
    /// `None` (at most [`MAX_QUERY_LIMIT`]); no limit for an export.
    pub limit: Option<usize>,
}

impl AuditFilter {
    /// Checks the filter: a reversed time range or a limit out of bounds is
    /// an error, never an empty answer.
    pub fn validate(&self) -> Result<(), AuditError> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(AuditError::BadFilter(format!(
                "the time range is reversed: from {} is after to {}",
                format_time(from),
                format_time(to)
            )));
        }
        if self.limit == Some(0) {
            return Err(AuditError::BadFilter("limit must be at least 1".to_owned()));
        }
        Ok(())
    }

    fn row_filter(
        &self,
        cursor: Option<u64>,
        limit: usize,
    ) -> Result<AuditRowFilter<'_>, AuditError> {
        Ok(AuditRowFilter {
            actor: self.actor.as_deref(),
            action: self.action.map(AuditAction::as_str),
            outcome: self.outcome.map(AuditOutcome::as_str),
            from_us: self.from.map(|from| from.timestamp_micros()),
            to_us: self.to.map(|to| to.timestamp_micros()),
            cursor: cursor
                .map(|cursor| {
                    i64::try_from(cursor).map_err(|_| {
                        AuditError::BadFilter(format!("cursor {cursor} is out of range"))
                    })
                })
                .transpose()?,
            newest_first: self.newest_first,
            limit: i64::try_from(limit).expect("limits are bounded"),
        })
    }
}

/// Parses a time for a filter: RFC 3339 (`2024-05-01T09:30:00Z`), or a
/// date (`2024-05-01`, midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, AuditError> {
    let trimmed = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
        .ok_or_else(|| AuditError::BadTime {
            text: text.to_owned(),
        })
}

/// RFC 3339 in UTC with microseconds, as exported.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The records matching `filter`.
pub async fn query(db: &Db, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
    filter.validate()?;
    let limit = filter.limit.unwrap_or(DEFAULT_QUERY_LIMIT);
    if limit > MAX_QUERY_LIMIT {
        return Err(AuditError::BadFilter(format!(
            "limit {limit} is above the maximum of {MAX_QUERY_LIMIT}: page with the cursor"
        )));
    }
    let rows = db
        .audit_query(&filter.row_filter(filter.cursor, limit)?)
        .await?;
    rows.into_iter().map(record_from_row).collect()
}

/// The CSV header: one column per record field. `params` holds the
/// parameters' JSON text exactly as hashed; `prev_hash` and `hash` let a
/// reader check the links between consecutive rows.
pub const CSV_HEADER: [&str; 11] = [
    "seq",
    "at",
    "actor",
    "role",
    "client",
    "action",
    "params",
    "outcome",
    "detail",
    "prev_hash",
    "hash",
];

/// Writes the records matching `filter` as CSV (a header row, then one row
/// per record), reading the trail in batches. Returns how many records
/// were written. `writer` is flushed, not shut down.
pub async fn export_csv<W>(db: &Db, filter: &AuditFilter, writer: &mut W) -> Result<u64, AuditError>
where
    W: AsyncWrite + Unpin,
{
    filter.validate()?;
    let mut header = csv::Writer::from_writer(Vec::new());
    header.write_record(CSV_HEADER)?;
    writer
        .write_all(&csv_bytes(header)?)
        .await
        .map_err(AuditError::Io)?;
    let mut cursor = filter.cursor;
    let mut n_written: u64 = 0;
    loop {
        let remaining = filter.limit.map_or(usize::MAX, |limit| {
            limit.saturating_sub(usize::try_from(n_written).unwrap_or(usize::MAX))
        });
        if remaining == 0 {
            break;
        }
        let batch = remaining.min(EXPORT_BATCH);
        let rows = db.audit_query(&filter.row_filter(cursor, batch)?).await?;
        let n_rows = rows.len();
        let mut page = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        for row in rows {
            // Decoded as a record so that what is exported is what a query
            // returns (and a corrupt row is an error, not a silent row).
            let record = record_from_row(row)?;
            cursor = Some(record.seq);
            page.write_record(csv_row(&record))?;
            n_written += 1;
        }
        writer
            .write_all(&csv_bytes(page)?)
            .await
            .map_err(AuditError::Io)?;
        if n_rows < batch {
            break;
        }
    }
    writer.flush().await.map_err(AuditError::Io)?;
    Ok(n_written)
}

/// The bytes a CSV writer over a buffer wrote.
fn csv_bytes(writer: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, AuditError> {
    writer
        .into_inner()
        .map_err(|error| AuditError::Io(error.into_error()))
}

fn csv_row(record: &AuditRecord) -> [String; 11] {
    [
        record.seq.to_string(),
        format_time(record.at),
        record.actor.clone(),
        record.role.clone().unwrap_or_default(),
        record.client.clone().unwrap_or_default(),
        record.action.as_str().to_owned(),
        record.params_json.clone(),
        record.outcome.as_str().to_owned(),
        record.detail.clone().unwrap_or_default(),
        record.prev_hash.to_hex(),
        record.hash.to_hex(),
    ]
}

/// A stored row as a record; a row that does not decode is an error naming
/// its `seq` (verification says more).
pub(super) fn record_from_row(row: AuditRow) -> Result<AuditRecord, AuditError> {
    let seq = row.seq;
    let corrupt = |what: String| AuditError::CorruptRecord { seq, what };
    let params = serde_json::from_str(&row.params)
        .map_err(|error| corrupt(format!("params are not JSON: {error}")))?;
    Ok(AuditRecord {
        seq: u64::try_from(seq).map_err(|_| corrupt("seq below 1".to_owned()))?,
        at: DateTime::from_timestamp_micros(row.at_us)
            .ok_or_else(|| corrupt(format!("time {} is out of range", row.at_us)))?,
        action: row
            .action
            .parse()
            .map_err(|_| corrupt(format!("unknown action {:?}", row.action)))?,
        outcome: row
            .outcome
            .parse()
            .map_err(|_| corrupt(format!("unknown outcome {:?}", row.outcome)))?,
        prev_hash: AuditHash::from_slice(&row.prev_hash)
            .ok_or_else(|| corrupt("prev_hash is not 32 bytes".to_owned()))?,
        hash: AuditHash::from_slice(&row.hash)
            .ok_or_else(|| corrupt("hash is not 32 bytes".to_owned()))?,
        actor: row.actor,
        role: row.role,
        client: row.client,
        params,
        params_json: row.params,
        detail: row.detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_dates() {
        assert_eq!(
            parse_time("2024-05-01T09:30:00+02:00").expect("rfc3339"),
            DateTime::parse_from_rfc3339("2024-05-01T07:30:00Z")
                .expect("valid")
                .with_timezone(&Utc)
        );
        assert_eq!(
            format_time(parse_time("2024-05-01").expect("date")),
            "2024-05-01T00:00:00.000000Z"
        );
        for bad in ["", "yesterday", "2024-13-01", "2024-05-01 09:30"] {
            assert!(
                matches!(parse_time(bad), Err(AuditError::BadTime { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reversed_ranges_and_zero_limits_are_errors() {
        let filter = AuditFilter {
            from: Some(parse_time("2024-05-02").expect("date")),
            to: Some(parse_time("2024-05-01").expect("date")),
            ..AuditFilter::default()
        };
        let error = filter.validate().expect_err("reversed");
        assert!(error.to_string().contains("reversed"), "{error}");
        let filter = AuditFilter {
            limit: Some(0),
            ..AuditFilter::default()
        };
        assert!(matches!(filter.validate(), Err(AuditError::BadFilter(_))));
        // An empty range [t, t) is allowed: it is not a mistake of order.
        let t = parse_time("2024-05-01").expect("date");
        let filter = AuditFilter {
            from: Some(t),
            to: Some(t),
            ..AuditFilter::default()
        };
        assert!(filter.validate().is_ok());
    }
}
