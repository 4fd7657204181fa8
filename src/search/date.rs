//! Date values of `after:`, `before:`, `on:` and `sent…`, and the time range
//! each clause selects.
//!
//! A value covers a span of time: a day (`2024-01-31`, midnight to midnight
//! in the query's zone) or one instant (`2024-01-31T09:30:00+02:00`, one
//! microsecond, the archive's resolution). The clauses are defined on that
//! span, so the same rules hold for days and instants:
//!
//! | clause | selects |
//! |---|---|
//! | `after:X`, `sent>X` | from the end of X on |
//! | `before:X`, `sent<X` | up to the start of X |
//! | `on:X`, `sent:X`, `sent=X` | X itself |
//! | `sent>=X` | from the start of X on |
//! | `sent<=X` | up to the end of X |
//! | `sent:X..Y` | from the start of X to the end of Y |

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};

use super::ParseOptions;
use super::ast::Filter;
use super::error::{QueryError, describe};
use super::lexer::Op;
use crate::event::{MAX_AT_US, MIN_AT_US};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// The span of time one date value covers: `[start_us, end_us)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start_us: i64,
    pub end_us: i64,
}

/// Which clause a date value came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateClause {
    After,
    Before,
    On,
    /// `sent` with its operator.
    Sent(Op),
}

impl DateClause {
    fn written(self) -> String {
        match self {
            DateClause::After => "after:".to_owned(),
            DateClause::Before => "before:".to_owned(),
            DateClause::On => "on:".to_owned(),
            DateClause::Sent(op) => format!("sent{}", op.as_str()),
        }
    }
}

/// A date clause's value, as the lexer gave it.
pub(crate) struct DateValue<'a> {
    pub text: &'a str,
    pub quoted: bool,
    /// Byte offset of the value in the query (of its opening quote when quoted).
    pub position: usize,
    /// Byte offset where the clause ends in the query.
    pub end: usize,
}

/// The [`Filter::TimeRange`] of a date clause.
pub(crate) fn time_filter(
    query: &str,
    clause: DateClause,
    value: &DateValue<'_>,
    options: &ParseOptions,
) -> Result<Filter, QueryError> {
    let expected = format!("a date like 2024-01-31 after {:?}", clause.written());
    // Offsets inside a quoted value do not map to the query (escapes), so
    // errors in one point at its opening quote.
    let position_of = |offset: usize| {
        if value.quoted {
            value.position
        } else {
            value.position + offset
        }
    };
    let one = |text: &str, offset: usize| {
        parse_date(text, options).map_err(|message| {
            QueryError::new(
                query,
                position_of(offset),
                expected.as_str(),
                describe(text),
            )
            .with_message(message)
        })
    };
    if value.text.trim().is_empty() {
        return Err(QueryError::new(
            query,
            value.position,
            expected.as_str(),
            describe(&query[value.position..value.end]),
        ));
    }

    let (from_us, to_us) = match value.text.split_once("..") {
        Some((first, last)) => {
            if clause != DateClause::Sent(Op::Colon) {
                return Err(QueryError::new(
                    query,
                    value.position,
                    expected.as_str(),
                    describe(value.text),
                )
                .with_message("only sent: takes a range: sent:2024-01-01..2024-03-31"));
            }
            let last_offset = first.len() + 2;
            let first_span = one(first, 0)?;
            let last_span = one(last, last_offset)?;
            if last_span.end_us <= first_span.start_us {
                return Err(QueryError::new(
                    query,
                    position_of(last_offset),
                    format!("an end on or after the start {first:?}"),
                    describe(last),
                )
                .with_message("the range is inverted: write the earlier date first"));
            }
            (Some(first_span.start_us), Some(last_span.end_us))
        }
        None => {
            let span = one(value.text, 0)?;
            match clause {
                DateClause::After | DateClause::Sent(Op::Gt) => (Some(span.end_us), None),
                DateClause::Before | DateClause::Sent(Op::Lt) => (None, Some(span.start_us)),
                DateClause::On | DateClause::Sent(Op::Colon | Op::Eq) => {
                    (Some(span.start_us), Some(span.end_us))
                }
                DateClause::Sent(Op::Ge) => (Some(span.start_us), None),
                DateClause::Sent(Op::Le) => (None, Some(span.end_us)),
            }
        }
    };

    // Within the archive's range [MIN_AT_US, MAX_AT_US + 1): refuse what
    // selects nothing there, drop bounds that select everything.
    let archive_end_us = MAX_AT_US + 1;
    let effective_from = from_us.unwrap_or(MIN_AT_US).max(MIN_AT_US);
    let effective_to = to_us.unwrap_or(archive_end_us).min(archive_end_us);
    if effective_from >= effective_to {
        return Err(QueryError::new(
            query,
            value.position,
            "a date between 1970-01-01 and 9999-12-31",
            describe(&query[value.position..value.end]),
        )
        .with_message(format!(
            "{}{} matches nothing: the archive holds events from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z",
            clause.written(),
            value.text
        )));
    }
    Ok(Filter::TimeRange {
        from_us: from_us.filter(|from_us| *from_us > MIN_AT_US),
        to_us: to_us.filter(|to_us| *to_us <= MAX_AT_US),
    })
}

/// One date value: `today`, `yesterday`, `YYYY-MM-DD`, or
/// `YYYY-MM-DDTHH:MM[:SS[.fraction]][Z|±HH:MM]`. The error is the message
/// telling how to write it.
pub(crate) fn parse_date(text: &str, options: &ParseOptions) -> Result<Span, String> {
    let zone = options.default_zone;
    if text.eq_ignore_ascii_case("today") || text.eq_ignore_ascii_case("yesterday") {
        let Some(now) = options.now else {
            return Err(
                "relative dates need the current time, which this search was not given: write the date"
                    .to_owned(),
            );
        };
        let today = now.with_timezone(&zone).date_naive();
        let date = if text.eq_ignore_ascii_case("today") {
            Some(today)
        } else {
            today.pred_opt()
        };
        return date
            .map(|date| day(date, zone))
            .ok_or_else(|| "a day the calendar can hold".to_owned());
    }

    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = bytes.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter().try_fold(0u32, |n, b| {
            n.checked_mul(10)?.checked_add(u32::from(b - b'0'))
        })
    };
    let shaped = bytes.get(4) == Some(&b'-') && bytes.get(7) == Some(&b'-');
    let (Some(year), Some(month), Some(day_of_month), true) =
        (digits(0..4), digits(5..7), digits(8..10), shaped)
    else {
        if text.contains('/') {
            return Err(
                "write dates as YYYY-MM-DD: 01/02/2024 could be January or February".to_owned(),
            );
        }
        return Err("write dates as YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SS with an optional zone like Z or +02:00".to_owned());
    };
    let date = i32::try_from(year)
        .ok()
        .and_then(|year| NaiveDate::from_ymd_opt(year, month, day_of_month))
        .ok_or_else(|| format!("{} is not a day of the calendar", &text[..10]))?;
    if bytes.len() == 10 {
        return Ok(day(date, zone));
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err("write a time after the date with a T: 2024-01-31T09:30:00".to_owned());
    }

    let time_error = || {
        "write the time as HH:MM, HH:MM:SS or HH:MM:SS.ffffff, then Z, an offset like +02:00, or nothing for the default zone"
            .to_owned()
    };
    let hour = digits(11..13).ok_or_else(time_error)?;
    if bytes.get(13) != Some(&b':') {
        return Err(time_error());
    }
    let minute = digits(14..16).ok_or_else(time_error)?;
    let mut at = 16;
    let mut second = 0;
    let mut micros = 0;
    if bytes.get(at) == Some(&b':') {
        second = digits(at + 1..at + 3).ok_or_else(time_error)?;
        at += 3;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            let fraction_start = at;
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == fraction_start {
                return Err(time_error());
            }
            // Digits past the microsecond are dropped, as ingest drops them
            // from `at`, so a copied timestamp finds its event.
            for idx in 0..6 {
                let digit = bytes
                    .get(fraction_start + idx)
                    .filter(|_| fraction_start + idx < at)
                    .map_or(0, |b| u32::from(b - b'0'));
                micros = micros * 10 + digit;
            }
        }
    }
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
        .ok_or_else(|| format!("{} is not a time of day", &text[11..at]))?;
    let offset = match bytes.get(at..) {
        Some([]) => zone,
        Some([b'Z' | b'z']) => FixedOffset::east_opt(0).ok_or_else(time_error)?,
        Some([sign @ (b'+' | b'-'), ..]) if bytes.len() == at + 6 && bytes[at + 3] == b':' => {
            let hours = digits(at + 1..at + 3).ok_or_else(time_error)?;
            let minutes = digits(at + 4..at + 6).ok_or_else(time_error)?;
            if hours > 23 || minutes > 59 {
                return Err(format!("{} is not a UTC offset", &text[at..]));
            }
            let seconds = i32::try_from(hours * 3600 + minutes * 60).map_err(|_| time_error())?;
            let seconds = if *sign == b'-' { -seconds } else { seconds };
            FixedOffset::east_opt(seconds).ok_or_else(time_error)?
        }
        _ => return Err(time_error()),
    };
    let at_us = local_to_utc_us(date.and_time(time), offset);
    Ok(Span {
        start_us: at_us,
        end_us: at_us + 1,
    })
}

/// A whole day, midnight to midnight in `zone`.
fn day(date: NaiveDate, zone: FixedOffset) -> Span {
    let start_us = local_to_utc_us(date.and_time(NaiveTime::MIN), zone);
    Span {
        start_us,
        end_us: start_us + MICROS_PER_DAY,
    }
}

fn local_to_utc_us(local: NaiveDateTime, zone: FixedOffset) -> i64 {
    local.and_utc().timestamp_micros() - i64::from(zone.local_minus_utc()) * MICROS_PER_SECOND
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    const JAN_1_2024_US: i64 = 1_704_067_200_000_000;
    const HOUR_US: i64 = 3_600 * MICROS_PER_SECOND;

    fn utc() -> ParseOptions {
        ParseOptions::default()
    }

    #[test]
    fn days_cover_midnight_to_midnight_in_the_zone() {
        assert_eq!(
            parse_date("2024-01-01", &utc()),
            Ok(Span {
                start_us: JAN_1_2024_US,
                end_us: JAN_1_2024_US + MICROS_PER_DAY
            })
        );
        let paris = ParseOptions {
            default_zone: FixedOffset::east_opt(3600).expect("valid offset"),
            now: None,
        };
        let span = parse_date("2024-01-01", &paris).expect("valid");
        assert_eq!(span.start_us, JAN_1_2024_US - HOUR_US);
        assert_eq!(span.end_us - span.start_us, MICROS_PER_DAY);
    }

    #[test]
    fn instants_are_one_microsecond() {
        let cases = [
            ("2024-01-01T09:00", JAN_1_2024_US + 9 * HOUR_US),
            ("2024-01-01T09:00:00Z", JAN_1_2024_US + 9 * HOUR_US),
            ("2024-01-01t09:00:00z", JAN_1_2024_US + 9 * HOUR_US),
            ("2024-01-01 09:00:00", JAN_1_2024_US + 9 * HOUR_US),
            ("2024-01-01T09:00:00+02:00", JAN_1_2024_US + 7 * HOUR_US),
            (
                "2024-01-01T09:00:00-05:30",
                JAN_1_2024_US + 14 * HOUR_US + 30 * 60 * MICROS_PER_SECOND,
            ),
            ("2024-01-01T00:00:00.25Z", JAN_1_2024_US + 250_000),
            ("2024-01-01T00:00:00.123456789Z", JAN_1_2024_US + 123_456),
        ];
        for (text, start_us) in cases {
            assert_eq!(
                parse_date(text, &utc()),
                Ok(Span {
                    start_us,
                    end_us: start_us + 1
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn relative_days_need_now() {
        let error = parse_date("yesterday", &utc()).expect_err("no now");
        assert!(
            error.contains("relative dates need the current time"),
            "{error}"
        );
        let now = DateTime::from_timestamp_micros(JAN_1_2024_US + 23 * HOUR_US).expect("valid");
        let tokyo = ParseOptions {
            default_zone: FixedOffset::east_opt(9 * 3600).expect("valid offset"),
            now: Some(now),
        };
        // 23:00 UTC on Jan 1 is already Jan 2 in Tokyo.
        let today = parse_date("Today", &tokyo).expect("valid");
        assert_eq!(today.start_us, JAN_1_2024_US + MICROS_PER_DAY - 9 * HOUR_US);
        let yesterday = parse_date("yesterday", &tokyo).expect("valid");
        assert_eq!(yesterday.end_us, today.start_us);
    }

    #[test]
    fn bad_dates_say_how_to_write_them() {
        for (text, needle) in [
            ("2024-02-30", "2024-02-30 is not a day of the calendar"),
            ("2023-02-29", "not a day of the calendar"),
            ("01/02/2024", "could be January or February"),
            ("2024-1-1", "write dates as YYYY-MM-DD"),
            ("last week", "write dates as YYYY-MM-DD"),
            ("2024-01-01X", "with a T"),
            ("2024-01-01T9:00", "write the time as HH:MM"),
            ("2024-01-01T24:00", "24:00 is not a time of day"),
            ("2024-01-01T23:59:60Z", "not a time of day"),
            ("2024-01-01T09:00:00.Z", "write the time"),
            ("2024-01-01T09:00+2", "write the time"),
            ("2024-01-01T09:00+24:00", "+24:00 is not a UTC offset"),
            ("2024-01-01T09:00+02:00junk", "write the time"),
            ("２０２４-01-01", "write dates as YYYY-MM-DD"),
            ("2024-01-01T09:00:0é", "write the time"),
        ] {
            let error = parse_date(text, &utc()).expect_err(text);
            assert!(error.contains(needle), "{text}: {error}");
        }
        assert!(parse_date("2024-02-29", &utc()).is_ok());
    }
}
