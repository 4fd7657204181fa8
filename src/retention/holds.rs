//! Legal holds: which events no retention policy and no delete request may
//! ever destroy, and the library calls the API and the CLI make to create,
//! list, show and release them.
//!
//! A hold has a name, a matter (the case it is for), a reason, its creator,
//! the scope of its creator (stored with it) and [`HoldCriteria`]:
//! custodians, teams, channels, a date range and a search query. Criteria of
//! different kinds all apply (AND); the values of one list are alternatives
//! (OR). An event is held by an active hold when it is inside the hold's
//! scope and matches the criteria, or when it is about a post (same team,
//! channel and post id) one of whose events matches: a held message keeps
//! its whole history (versions, delete, reactions, files). The criteria are
//! evaluated whenever a retention run asks ([`HoldMatcher`]), so a hold
//! protects events ingested after it was created too. Events the search
//! index has not reached yet count as matching a hold's query (the index
//! cannot yet say they do not): nothing escapes a query hold while the index
//! catches up.
//!
//! Creating and releasing a hold write the retention lock row first, in
//! their own transaction (`db::holds`), so they never interleave with the
//! destruction step of a retention run.
//!
//! This module must never delete anything, never widen a hold's scope past
//! its creator's, and never show a caller a hold outside their own scope.
//! Releasing a hold only ends its protection; deletion then happens by
//! policy, in a later run, never as part of the release.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::db::holds::{HoldRow, LiveEventFilter, NewHoldRow};
use crate::db::{Db, DbError, EventRow};
use crate::index::{IndexError, SearchIndex};
use crate::search::{self, ChannelRef, ParseOptions, QueryError, Scope};

/// Longest hold name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest matter, reason or release reason, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Most values in one criteria list (custodians, teams, channels).
pub const MAX_LIST_VALUES: usize = 1000;
/// Longest custodian, team or channel name, in bytes (as events allow).
pub const MAX_VALUE_BYTES: usize = 256;

/// Events read per page when counting what a hold holds.
const PAGE_EVENTS: usize = 5_000;
/// Post ids looked up per statement.
const POSTS_PER_READ: usize = 1_000;

const MICROS_PER_DAY: i64 = 86_400_000_000;

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// A field of a new hold or of a release is missing or wrong.
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    /// The hold's query does not parse (with the position of the mistake).
    #[error("query: {0}")]
    BadQuery(QueryError),
    /// The criteria name teams or channels outside the creator's scope.
    #[error("outside your scope: {0}")]
    OutsideScope(String),
    /// Hold names are unique.
    #[error("a hold named {0:?} exists already")]
    NameTaken(String),
    /// No hold with this id or name, or none the caller may see.
    #[error("no hold {0}")]
    NotFound(String),
    #[error("hold {id} ({name}) was released already, by {released_by}")]
    AlreadyReleased {
        id: i64,
        name: String,
        released_by: String,
    },
    /// A stored hold whose criteria or scope do not read back (someone
    /// changed the database by hand, or a newer holdfast wrote it).
    #[error("stored hold {hold_id} is unreadable: {problem}")]
    BadStored { hold_id: i64, problem: String },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("hold matching failed: {0}")]
    Task(String),
}

/// What a hold protects. Stored as JSON: do not rename fields.
///
/// Custodians, teams and channels are compared exactly as events carry them
/// (like a [`Scope`]). `from` and `to` are inclusive bounds on the event's
/// `at`: RFC 3339 (`2024-01-31T09:30:00Z`) or a UTC day (`2024-01-31`; as
/// `to`, through the end of that day). `query` is in the search language
/// (`docs/search.md`), read in UTC and without relative dates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldCriteria {
    /// The event's `user` is one of these.
    #[serde(default)]
    pub custodians: Vec<String>,
    /// The event's `team` is one of these.
    #[serde(default)]
    pub teams: Vec<String>,
    /// The event's team and channel are one of these.
    #[serde(default)]
    pub channels: Vec<ChannelRef>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
}

impl HoldCriteria {
    /// Whether no criterion is given (a hold needs at least one).
    pub fn is_empty(&self) -> bool {
        self.custodians.is_empty()
            && self.teams.is_empty()
            && self.channels.is_empty()
            && self.from.is_none()
            && self.to.is_none()
            && self.query.is_none()
    }

    /// The inclusive range of `at` the criteria select, in microseconds.
    pub fn at_range_us(&self) -> Result<(i64, i64), HoldError> {
        let from_us = match &self.from {
            Some(text) => parse_bound("from", text, Bound::Start)?,
            None => i64::MIN,
        };
        let to_us = match &self.to {
            Some(text) => parse_bound("to", text, Bound::End)?,
            None => i64::MAX,
        };
        if from_us > to_us {
            return Err(invalid(
                "to",
                format!(
                    "{:?} is before from {:?}",
                    self.to.as_deref().unwrap_or_default(),
                    self.from.as_deref().unwrap_or_default()
                ),
            ));
        }
        Ok((from_us, to_us))
    }

    /// The parsed query, if any.
    pub fn parsed_query(&self) -> Result<Option<search::Query>, HoldError> {
        self.query
            .as_deref()
            .map(|text| search::parse(text, &ParseOptions::default()).map_err(HoldError::BadQuery))
            .transpose()
    }
}

impl fmt::Display for HoldCriteria {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.custodians.is_empty() {
            parts.push(format!("custodians {}", self.custodians.join(", ")));
        }
        if !self.teams.is_empty() {
            parts.push(format!("teams {}", self.teams.join(", ")));
        }
        if !self.channels.is_empty() {
            let channels: Vec<String> = self.channels.iter().map(ToString::to_string).collect();
            parts.push(format!("channels {}", channels.join(", ")));
        }
        if let Some(from) = &self.from {
            parts.push(format!("from {from}"));
        }
        if let Some(to) = &self.to {
            parts.push(format!("to {to}"));
        }
        if let Some(query) = &self.query {
            parts.push(format!("query {query:?}"));
        }
        f.write_str(&parts.join("; "))
    }
}

/// A hold to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    pub name: String,
    /// The case or matter reference.
    pub matter: String,
    pub reason: String,
    pub criteria: HoldCriteria,
}

/// How a hold ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    pub released_by: String,
    pub released_at_ms: i64,
    pub reason: String,
}

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub id: i64,
    pub name: String,
    pub matter: String,
    pub reason: String,
    pub criteria: HoldCriteria,
    /// The creator's scope: only events inside it are held.
    #[serde(serialize_with = "serialize_scope")]
    pub scope: Scope,
    pub created_by: String,
    pub created_at_ms: i64,
    /// `None` while the hold is active.
    pub released: Option<Release>,
}

impl Hold {
    pub fn is_active(&self) -> bool {
        self.released.is_none()
    }

    pub fn status(&self) -> HoldStatus {
        if self.is_active() {
            HoldStatus::Active
        } else {
            HoldStatus::Released
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    Released,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Active => "active",
            HoldStatus::Released => "released",
        }
    }
}

/// Which holds a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    Active,
    Released,
    All,
}

impl StatusFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Active => "active",
            StatusFilter::Released => "released",
            StatusFilter::All => "all",
        }
    }

    fn admits(self, hold: &Hold) -> bool {
        match self {
            StatusFilter::Active => hold.is_active(),
            StatusFilter::Released => !hold.is_active(),
            StatusFilter::All => true,
        }
    }
}

impl FromStr for StatusFilter {
    type Err = HoldError;

    fn from_str(text: &str) -> Result<StatusFilter, HoldError> {
        match text {
            "active" => Ok(StatusFilter::Active),
            "released" => Ok(StatusFilter::Released),
            "all" => Ok(StatusFilter::All),
            other => Err(invalid(
                "status",
                format!("must be active, released or all, got {other:?}"),
            )),
        }
    }
}

/// What a hold holds now (live events only: deleted ones are not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HoldCounts {
    /// Events held: matching the criteria, or about a post with a
    /// matching event.
    pub events: u64,
    /// Of those, the events that match the criteria themselves.
    pub matching_events: u64,
    /// Posts with a matching event (every event about them is held).
    pub posts: u64,
    /// Distinct users of the held events.
    pub custodians: u64,
    /// Distinct channels (team and channel) of the held events.
    pub channels: u64,
}

// ------------------------------------------------------------------ checks

fn invalid(field: &'static str, problem: impl Into<String>) -> HoldError {
    HoldError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// A required text: not blank, at most `max_chars`, no control characters
/// (line breaks and tabs allowed when `multiline`).
fn check_text(
    field: &'static str,
    text: &str,
    max_chars: usize,
    multiline: bool,
) -> Result<(), HoldError> {
    if text.trim().is_empty() {
        return Err(invalid(field, "is required and must not be blank"));
    }
    let n_chars = text.chars().count();
    if n_chars > max_chars {
        return Err(invalid(
            field,
            format!("must be at most {max_chars} characters, got {n_chars}"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), HoldError> {
    check_text("name", name, MAX_NAME_CHARS, false)?;
    if name.trim() != name {
        return Err(invalid("name", "must not start or end with a space"));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(
            "name",
            "must contain a character other than a digit (a number is read as a hold id)",
        ));
    }
    Ok(())
}

/// One name of a criteria list: not blank, at most [`MAX_VALUE_BYTES`].
fn check_value(field: &'static str, what: &str, value: &str) -> Result<(), HoldError> {
    if value.trim().is_empty() {
        return Err(invalid(field, format!("a {what} must not be blank")));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(invalid(
            field,
            format!("a {what} is at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("a {what} must not contain control characters"),
        ));
    }
    Ok(())
}

fn check_list_len(field: &'static str, len: usize) -> Result<(), HoldError> {
    if len > MAX_LIST_VALUES {
        return Err(invalid(
            field,
            format!("at most {MAX_LIST_VALUES} values, got {len}"),
        ));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    Start,
    End,
}

/// A bound of the date range, in microseconds: RFC 3339, or a UTC day (its
/// first microsecond as a start, its last as an end).
fn parse_bound(field: &'static str, text: &str, bound: Bound) -> Result<i64, HoldError> {
    let how = "write a day as YYYY-MM-DD (UTC) or a time as RFC 3339, e.g. 2024-01-31T09:30:00Z";
    if text.len() == 10 {
        let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            invalid(
                field,
                format!("{text:?} is not a day of the calendar: {how}"),
            )
        })?;
        let start_us = day
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_micros();
        return Ok(match bound {
            Bound::Start => start_us,
            Bound::End => start_us + MICROS_PER_DAY - 1,
        });
    }
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_micros())
        .map_err(|_| invalid(field, format!("{text:?} is not a date or time: {how}")))
}

/// Checks a new hold: every field, the criteria (at least one; dates and
/// query that parse; teams and channels that can both match), then that
/// the teams and channels it names are inside `creator_scope`.
pub fn validate(new: &NewHold, creator_scope: &Scope) -> Result<(), HoldError> {
    check_name(&new.name)?;
    check_text("matter", &new.matter, MAX_TEXT_CHARS, true)?;
    check_text("reason", &new.reason, MAX_TEXT_CHARS, true)?;
    let criteria = &new.criteria;
    check_list_len("custodians", criteria.custodians.len())?;
    for custodian in &criteria.custodians {
        check_value("custodians", "custodian", custodian)?;
    }
    check_list_len("teams", criteria.teams.len())?;
    for team in &criteria.teams {
        check_value("teams", "team", team)?;
    }
    check_list_len("channels", criteria.channels.len())?;
    for channel in &criteria.channels {
        check_value("channels", "team", &channel.team)?;
        check_value("channels", "channel", &channel.channel)?;
    }
    criteria.at_range_us()?;
    if let Some(query) = &criteria.query
        && query.trim().is_empty()
    {
        return Err(invalid("query", "must not be blank when given"));
    }
    criteria.parsed_query()?;
    if criteria.is_empty() {
        return Err(invalid(
            "criteria",
            "give at least one of custodians, teams, channels, from, to, query",
        ));
    }
    if !criteria.teams.is_empty() {
        // Teams and channels both apply: a channel of another team would
        // make a hold that holds nothing there.
        let outside: Vec<String> = criteria
            .channels
            .iter()
            .filter(|channel| !criteria.teams.contains(&channel.team))
            .map(ToString::to_string)
            .collect();
        if !outside.is_empty() {
            return Err(invalid(
                "channels",
                format!(
                    "{} not of the teams given ({}); teams and channels both apply, so such a \
                     channel would hold nothing: give the channels alone, or their teams too",
                    outside.join(", "),
                    criteria.teams.join(", ")
                ),
            ));
        }
    }
    let outside = outside_scope(criteria, creator_scope);
    if !outside.is_empty() {
        return Err(HoldError::OutsideScope(outside.join(", ")));
    }
    Ok(())
}

/// The teams and channels of `criteria` that `scope` does not wholly cover.
fn outside_scope(criteria: &HoldCriteria, scope: &Scope) -> Vec<String> {
    let mut outside = Vec::new();
    for team in &criteria.teams {
        let covered = match scope {
            Scope::All => true,
            Scope::Nothing => false,
            Scope::Limited { teams, .. } => teams.contains(team),
        };
        if !covered {
            outside.push(format!("team {team}"));
        }
    }
    for channel in &criteria.channels {
        if !scope.allows(&channel.team, &channel.channel) {
            outside.push(format!("channel {channel}"));
        }
    }
    outside
}

/// Whether everything `inner` sees, `outer` sees too.
fn covers(outer: &Scope, inner: &Scope) -> bool {
    match (outer, inner) {
        (Scope::All, _) | (_, Scope::Nothing) => true,
        (_, Scope::All) | (Scope::Nothing, _) => false,
        (
            Scope::Limited {
                teams: outer_teams,
                channels: outer_channels,
            },
            Scope::Limited { teams, channels },
        ) => {
            teams.iter().all(|team| outer_teams.contains(team))
                && channels.iter().all(|channel| {
                    outer_teams.contains(&channel.team) || outer_channels.contains(channel)
                })
        }
    }
}

// ------------------------------------------------------------------ storage

/// A scope as stored with a hold (and shown). Do not rename fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredScope {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    teams: Vec<String>,
    #[serde(default)]
    channels: Vec<ChannelRef>,
}

impl StoredScope {
    fn of(scope: &Scope) -> StoredScope {
        match scope {
            Scope::All => StoredScope {
                all: true,
                ..StoredScope::default()
            },
            Scope::Nothing => StoredScope::default(),
            Scope::Limited { teams, channels } => StoredScope {
                all: false,
                teams: teams.iter().cloned().collect(),
                channels: channels.iter().cloned().collect(),
            },
        }
    }

    fn into_scope(self) -> Scope {
        if self.all {
            Scope::All
        } else {
            Scope::teams(self.teams).union(Scope::channels(self.channels))
        }
    }
}

fn serialize_scope<S: serde::Serializer>(scope: &Scope, serializer: S) -> Result<S::Ok, S::Error> {
    StoredScope::of(scope).serialize(serializer)
}

fn hold_from_row(row: HoldRow) -> Result<Hold, HoldError> {
    let bad = |problem: String| HoldError::BadStored {
        hold_id: row.hold_id,
        problem,
    };
    let criteria: HoldCriteria =
        serde_json::from_str(&row.criteria).map_err(|error| bad(format!("criteria: {error}")))?;
    let scope: StoredScope =
        serde_json::from_str(&row.scope).map_err(|error| bad(format!("scope: {error}")))?;
    let released = match (row.released_by, row.released_at_ms) {
        (Some(released_by), Some(released_at_ms)) => Some(Release {
            released_by,
            released_at_ms,
            reason: row.release_reason.unwrap_or_default(),
        }),
        (None, None) => None,
        _ => return Err(bad("a release without its author or time".to_owned())),
    };
    Ok(Hold {
        id: row.hold_id,
        name: row.name,
        matter: row.matter,
        reason: row.reason,
        criteria,
        scope: scope.into_scope(),
        created_by: row.created_by,
        created_at_ms: row.created_at_ms,
        released,
    })
}

/// The values of a list, each once, in their first order.
fn deduplicated<T: Clone + Eq + std::hash::Hash>(values: &[T]) -> Vec<T> {
    let mut seen = HashSet::new();
    values
        .iter()
        .filter(|value| seen.insert((*value).clone()))
        .cloned()
        .collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

// ------------------------------------------------------------------ operations

/// Creates a hold within `creator_scope` (the API caller's
/// `ManageHolds` scope; `Scope::All` from the command line), stored with
/// that scope. Refused: invalid fields (`Invalid`, `BadQuery`), teams or
/// channels outside the scope (`OutsideScope`), a name in use (`NameTaken`).
pub async fn create_hold(
    db: &Db,
    creator_scope: &Scope,
    created_by: &str,
    new: &NewHold,
) -> Result<Hold, HoldError> {
    validate(new, creator_scope)?;
    let criteria = HoldCriteria {
        custodians: deduplicated(&new.criteria.custodians),
        teams: deduplicated(&new.criteria.teams),
        channels: deduplicated(&new.criteria.channels),
        ..new.criteria.clone()
    };
    let criteria_json = serde_json::to_string(&criteria).expect("criteria serialize");
    let scope_json =
        serde_json::to_string(&StoredScope::of(creator_scope)).expect("scopes serialize");
    let created_at_ms = now_ms();
    let id = db
        .insert_hold(&NewHoldRow {
            name: &new.name,
            matter: &new.matter,
            reason: &new.reason,
            criteria: &criteria_json,
            scope: &scope_json,
            created_by,
            created_at_ms,
        })
        .await
        .map_err(|error| match error {
            DbError::AlreadyExists(_) => HoldError::NameTaken(new.name.clone()),
            other => HoldError::Db(other),
        })?;
    Ok(Hold {
        id,
        name: new.name.clone(),
        matter: new.matter.clone(),
        reason: new.reason.clone(),
        criteria,
        scope: creator_scope.clone(),
        created_by: created_by.to_owned(),
        created_at_ms,
        released: None,
    })
}

/// The holds `caller_scope` covers, with the status asked for, oldest first.
pub async fn list_holds(
    db: &Db,
    caller_scope: &Scope,
    status: StatusFilter,
) -> Result<Vec<Hold>, HoldError> {
    let rows = match status {
        StatusFilter::Active => db.active_hold_rows().await?,
        StatusFilter::Released | StatusFilter::All => db.hold_rows().await?,
    };
    let mut holds = Vec::with_capacity(rows.len());
    for row in rows {
        let hold = hold_from_row(row)?;
        if status.admits(&hold) && covers(caller_scope, &hold.scope) {
            holds.push(hold);
        }
    }
    Ok(holds)
}

/// One hold by id; `NotFound` also when `caller_scope` does not cover it
/// (its existence is not revealed).
pub async fn get_hold(db: &Db, caller_scope: &Scope, hold_id: i64) -> Result<Hold, HoldError> {
    let row = db.hold_by_id(hold_id).await?;
    visible(row, caller_scope, || hold_id.to_string())
}

/// One hold by name, or by id when no hold has that name and it is a
/// number (names are never all digits).
pub async fn find_hold(db: &Db, caller_scope: &Scope, name_or_id: &str) -> Result<Hold, HoldError> {
    let mut row = db.hold_by_name(name_or_id).await?;
    if row.is_none()
        && let Ok(id) = name_or_id.parse::<i64>()
    {
        row = db.hold_by_id(id).await?;
    }
    visible(row, caller_scope, || format!("{name_or_id:?}"))
}

fn visible(
    row: Option<HoldRow>,
    caller_scope: &Scope,
    what: impl FnOnce() -> String,
) -> Result<Hold, HoldError> {
    match row.map(hold_from_row).transpose()? {
        Some(hold) if covers(caller_scope, &hold.scope) => Ok(hold),
        _ => Err(HoldError::NotFound(what())),
    }
}

/// Releases a hold `caller_scope` covers: records who, when and why. Only
/// the protection ends; nothing is deleted here. Releasing a released hold
/// is `AlreadyReleased`.
pub async fn release_hold(
    db: &Db,
    caller_scope: &Scope,
    hold_id: i64,
    released_by: &str,
    reason: &str,
) -> Result<Hold, HoldError> {
    check_text("reason", reason, MAX_TEXT_CHARS, true)?;
    let hold = get_hold(db, caller_scope, hold_id).await?;
    if let Some(release) = &hold.released {
        return Err(HoldError::AlreadyReleased {
            id: hold.id,
            name: hold.name,
            released_by: release.released_by.clone(),
        });
    }
    let released_at_ms = now_ms();
    if !db
        .release_hold(hold.id, released_by, released_at_ms, reason)
        .await?
    {
        // Released by someone else in between.
        let hold = get_hold(db, caller_scope, hold_id).await?;
        return Err(HoldError::AlreadyReleased {
            id: hold.id,
            released_by: hold
                .released
                .map(|release| release.released_by)
                .unwrap_or_default(),
            name: hold.name,
        });
    }
    Ok(Hold {
        released: Some(Release {
            released_by: released_by.to_owned(),
            released_at_ms,
            reason: reason.to_owned(),
        }),
        ..hold
    })
}

/// Every active hold, whoever created it: what a retention run must honour.
pub async fn active_holds(db: &Db) -> Result<Vec<Hold>, HoldError> {
    db.active_hold_rows()
        .await?
        .into_iter()
        .map(hold_from_row)
        .collect()
}

// ------------------------------------------------------------------ matching

/// The events a query matched, as of an index commit.
#[derive(Debug, Clone)]
struct QueryMatches {
    /// Matching seqs within the hold's scope, sorted.
    seqs: Vec<u64>,
    /// The index held every event up to this seq when it was asked; later
    /// events count as matching.
    indexed_seq: u64,
}

impl QueryMatches {
    fn matches(&self, seq: i64) -> bool {
        let Ok(seq) = u64::try_from(seq) else {
            return false;
        };
        seq > self.indexed_seq || self.seqs.binary_search(&seq).is_ok()
    }
}

/// One active hold, ready to be matched against events.
#[derive(Debug, Clone)]
struct CompiledHold {
    hold_id: i64,
    scope: Scope,
    custodians: BTreeSet<String>,
    teams: BTreeSet<String>,
    channels: BTreeSet<ChannelRef>,
    from_us: i64,
    to_us: i64,
    query: Option<QueryMatches>,
}

impl CompiledHold {
    fn compile(hold: &Hold, query: Option<QueryMatches>) -> Result<CompiledHold, HoldError> {
        let (from_us, to_us) = hold.criteria.at_range_us()?;
        Ok(CompiledHold {
            hold_id: hold.id,
            scope: hold.scope.clone(),
            custodians: hold.criteria.custodians.iter().cloned().collect(),
            teams: hold.criteria.teams.iter().cloned().collect(),
            channels: hold.criteria.channels.iter().cloned().collect(),
            from_us,
            to_us,
            query,
        })
    }

    /// The criteria on where an event is (the same for every event of a
    /// post): the hold's scope, its teams and its channels.
    fn covers_place(&self, team: &str, channel: &str) -> bool {
        self.scope.allows(team, channel)
            && (self.teams.is_empty() || self.teams.contains(team))
            && (self.channels.is_empty()
                || self
                    .channels
                    .iter()
                    .any(|held| held.team == team && held.channel == channel))
    }

    /// Whether the event matches the hold itself (not through its post).
    fn matches(&self, row: &EventRow) -> bool {
        self.covers_place(&row.team, &row.channel)
            && (self.custodians.is_empty() || self.custodians.contains(&row.user_name))
            && self.from_us <= row.at_us
            && row.at_us <= self.to_us
            && self
                .query
                .as_ref()
                .is_none_or(|query| query.matches(row.seq))
    }

    /// The teams an event must be of: `None` for any, an empty list for
    /// none (the scope and the criteria exclude each other).
    fn sql_teams(&self) -> Option<Vec<String>> {
        let mut allowed: Option<BTreeSet<String>> = None;
        let mut narrow = |teams: BTreeSet<String>| {
            allowed = Some(match allowed.take() {
                Some(current) => current.intersection(&teams).cloned().collect(),
                None => teams,
            });
        };
        if !self.teams.is_empty() {
            narrow(self.teams.clone());
        }
        if !self.channels.is_empty() {
            narrow(self.channels.iter().map(|held| held.team.clone()).collect());
        }
        match &self.scope {
            Scope::All => {}
            Scope::Nothing => narrow(BTreeSet::new()),
            Scope::Limited { teams, channels } => narrow(
                teams
                    .iter()
                    .cloned()
                    .chain(channels.iter().map(|channel| channel.team.clone()))
                    .collect(),
            ),
        }
        allowed.map(|teams| teams.into_iter().collect())
    }

    /// The live events of `(after, end]` that may match the hold itself
    /// (a superset: every one of them that does is there), with `end`;
    /// `None` when no event past `after` can match.
    async fn candidates_after(
        &self,
        db: &Db,
        teams: Option<&[String]>,
        after: i64,
    ) -> Result<Option<(Vec<EventRow>, i64)>, HoldError> {
        let page = i64::try_from(PAGE_EVENTS).expect("a page size fits");
        let mut scan_from = after;
        if let Some(query) = &self.query {
            // Events the index reached: only its matches can match.
            let indexed =
                &query.seqs[..query.seqs.partition_point(|&seq| seq <= query.indexed_seq)];
            let start =
                indexed.partition_point(|&seq| i64::try_from(seq).is_ok_and(|s| s <= after));
            if start < indexed.len() {
                let chunk: Vec<i64> = indexed[start..]
                    .iter()
                    .take(PAGE_EVENTS)
                    .filter_map(|&seq| i64::try_from(seq).ok())
                    .collect();
                let end = *chunk.last().expect("a chunk is never empty");
                return Ok(Some((db.live_events_by_seqs(&chunk).await?, end)));
            }
            // Past the index: every event is a candidate.
            scan_from = scan_from.max(i64::try_from(query.indexed_seq).unwrap_or(i64::MAX));
        }
        let filter = LiveEventFilter {
            users: &self.custodians.iter().cloned().collect::<Vec<_>>(),
            teams: teams.unwrap_or(&[]),
            from_us: self.from_us,
            to_us: self.to_us,
        };
        let rows = db.live_events_after(&filter, scan_from, page).await?;
        Ok(rows.last().map(|last| last.seq).map(|end| (rows, end)))
    }
}

/// The key of a post: team, channel and post id.
type PostKey<'a> = (&'a str, &'a str, &'a str);

fn post_key(row: &EventRow) -> Option<PostKey<'_>> {
    row.post_id
        .as_deref()
        .map(|post| (row.team.as_str(), row.channel.as_str(), post))
}

/// Every live event about the posts of `rows` (any team or channel: callers
/// match them by [`post_key`]).
async fn live_post_events(db: &Db, rows: &[&EventRow]) -> Result<Vec<EventRow>, HoldError> {
    let mut posts: Vec<String> = rows.iter().filter_map(|row| row.post_id.clone()).collect();
    posts.sort_unstable();
    posts.dedup();
    let mut events = Vec::new();
    for chunk in posts.chunks(POSTS_PER_READ) {
        events.extend(db.live_events_of_posts(chunk).await?);
    }
    Ok(events)
}

/// Decides, for a retention run, which events the active holds protect.
///
/// Built once per run from [`active_holds`]: each hold's query is run
/// through the index within the hold's scope when the matcher is prepared;
/// the other criteria are checked on each event row.
#[derive(Debug, Clone)]
pub struct HoldMatcher {
    holds: Vec<CompiledHold>,
}

impl HoldMatcher {
    /// Prepares matching for `holds` (released ones are ignored): parses
    /// their dates and queries and runs each query through the index (all
    /// matching seqs within the hold's scope). Blocking: call it from a
    /// blocking thread, or use [`HoldMatcher::prepare_off_thread`].
    pub fn prepare(index: &SearchIndex, holds: &[Hold]) -> Result<HoldMatcher, HoldError> {
        let active: Vec<&Hold> = holds.iter().filter(|hold| hold.is_active()).collect();
        // Read before the queries run (each reloads the reader, so it sees
        // at least this commit): events past it count as matching.
        let indexed_seq = if active.iter().any(|hold| hold.criteria.query.is_some()) {
            index.indexed_seq()?
        } else {
            0
        };
        let mut compiled = Vec::with_capacity(active.len());
        for hold in active {
            let query = match hold.criteria.parsed_query()? {
                Some(query) => Some(QueryMatches {
                    seqs: index.matching_seqs(&query, &hold.scope)?,
                    indexed_seq,
                }),
                None => None,
            };
            compiled.push(CompiledHold::compile(hold, query)?);
        }
        Ok(HoldMatcher { holds: compiled })
    }

    /// [`HoldMatcher::prepare`] on a blocking thread.
    pub async fn prepare_off_thread(
        index: &Arc<SearchIndex>,
        holds: &[Hold],
    ) -> Result<HoldMatcher, HoldError> {
        let index = Arc::clone(index);
        let holds = holds.to_vec();
        tokio::task::spawn_blocking(move || HoldMatcher::prepare(&index, &holds))
            .await
            .map_err(|error| HoldError::Task(error.to_string()))?
    }

    /// The ids of the holds this matcher applies (the active ones given).
    pub fn hold_ids(&self) -> Vec<i64> {
        self.holds.iter().map(|hold| hold.hold_id).collect()
    }

    /// For each candidate that is held, the ids of the holds that protect
    /// it (directly, or through another event of its post), in order.
    /// Candidates held by nothing are absent. Reads every live event of the
    /// candidates' posts from `db`.
    pub async fn held(
        &self,
        db: &Db,
        candidates: &[EventRow],
    ) -> Result<HashMap<i64, Vec<i64>>, HoldError> {
        let mut held = HashMap::new();
        if self.holds.is_empty() || candidates.is_empty() {
            return Ok(held);
        }
        let with_posts: Vec<&EventRow> = candidates
            .iter()
            .filter(|row| row.post_id.is_some())
            .collect();
        let post_events = live_post_events(db, &with_posts).await?;
        let mut post_holds: HashMap<PostKey<'_>, Vec<i64>> = HashMap::new();
        for row in &post_events {
            let Some(key) = post_key(row) else { continue };
            for hold in &self.holds {
                if hold.matches(row) {
                    post_holds.entry(key).or_default().push(hold.hold_id);
                }
            }
        }
        for candidate in candidates {
            let mut ids: Vec<i64> = self
                .holds
                .iter()
                .filter(|hold| hold.matches(candidate))
                .map(|hold| hold.hold_id)
                .collect();
            if let Some(through_post) = post_key(candidate).and_then(|key| post_holds.get(&key)) {
                ids.extend(through_post);
            }
            ids.sort_unstable();
            ids.dedup();
            if !ids.is_empty() {
                held.insert(candidate.seq, ids);
            }
        }
        Ok(held)
    }
}

/// What `hold` holds now: live events that match it or share a post with
/// one that does (a released hold holds nothing). Reads the archive in
/// pages: memory is bounded by a page, the posts of a page, and the
/// distinct users and channels held.
pub async fn count_held(
    db: &Db,
    index: &Arc<SearchIndex>,
    hold: &Hold,
) -> Result<HoldCounts, HoldError> {
    let matcher = if hold.criteria.query.is_some() && hold.is_active() {
        HoldMatcher::prepare_off_thread(index, std::slice::from_ref(hold)).await?
    } else {
        // No query: no index work, nothing blocking.
        HoldMatcher::prepare_without_queries(std::slice::from_ref(hold))?
    };
    let Some(compiled) = matcher.holds.first() else {
        return Ok(HoldCounts::default());
    };
    let teams = compiled.sql_teams();
    if teams.as_ref().is_some_and(Vec::is_empty) {
        return Ok(HoldCounts::default());
    }
    let mut counts = HoldCounts::default();
    let mut custodians: HashSet<String> = HashSet::new();
    let mut channels: HashSet<(String, String)> = HashSet::new();
    let mut count = |row: &EventRow, counts: &mut HoldCounts| {
        counts.events += 1;
        if !custodians.contains(&row.user_name) {
            custodians.insert(row.user_name.clone());
        }
        if !channels.contains(&(row.team.clone(), row.channel.clone())) {
            channels.insert((row.team.clone(), row.channel.clone()));
        }
    };
    let mut after = 0;
    while let Some((rows, end)) = compiled
        .candidates_after(db, teams.as_deref(), after)
        .await?
    {
        let matching: Vec<&EventRow> = rows.iter().filter(|row| compiled.matches(row)).collect();
        for row in &matching {
            counts.matching_events += 1;
            count(row, &mut counts);
        }
        let keys: HashSet<PostKey<'_>> = matching.iter().filter_map(|row| post_key(row)).collect();
        let post_events = live_post_events(db, &matching).await?;
        let mut by_post: HashMap<PostKey<'_>, Vec<&EventRow>> = HashMap::new();
        for row in &post_events {
            if let Some(key) = post_key(row).filter(|key| keys.contains(key)) {
                by_post.entry(key).or_default().push(row);
            }
        }
        for events in by_post.values() {
            // A post is counted in the page of its first matching event.
            let first = events
                .iter()
                .filter(|row| compiled.matches(row))
                .map(|row| row.seq)
                .min();
            if first.is_none_or(|first| first <= after || first > end) {
                continue;
            }
            counts.posts += 1;
            for row in events.iter().filter(|row| !compiled.matches(row)) {
                count(row, &mut counts);
            }
        }
        after = end;
    }
    counts.custodians = custodians.len() as u64;
    counts.channels = channels.len() as u64;
    Ok(counts)
}

impl HoldMatcher {
    /// A matcher for holds without queries (no index needed); a hold with
    /// a query is an error here.
    fn prepare_without_queries(holds: &[Hold]) -> Result<HoldMatcher, HoldError> {
        let mut compiled = Vec::new();
        for hold in holds.iter().filter(|hold| hold.is_active()) {
            if hold.criteria.query.is_some() {
                return Err(HoldError::Task(format!(
                    "hold {} has a query and needs the search index",
                    hold.id
                )));
            }
            compiled.push(CompiledHold::compile(hold, None)?);
        }
        Ok(HoldMatcher { holds: compiled })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_hold(criteria: HoldCriteria) -> NewHold {
        NewHold {
            name: "acme-2024".to_owned(),
            matter: "Acme v. Initech".to_owned(),
            reason: "litigation expected".to_owned(),
            criteria,
        }
    }

    fn custodians(names: &[&str]) -> HoldCriteria {
        HoldCriteria {
            custodians: names.iter().map(|name| (*name).to_owned()).collect(),
            ..HoldCriteria::default()
        }
    }

    fn field_of(error: HoldError) -> &'static str {
        match error {
            HoldError::Invalid { field, .. } => field,
            HoldError::BadQuery(_) => "query",
            other => panic!("not a field error: {other}"),
        }
    }

    #[test]
    fn days_and_instants_bound_the_range_inclusively() {
        let criteria = HoldCriteria {
            from: Some("2024-01-01".to_owned()),
            to: Some("2024-01-01".to_owned()),
            ..HoldCriteria::default()
        };
        let (from_us, to_us) = criteria.at_range_us().expect("valid");
        assert_eq!(from_us, 1_704_067_200_000_000);
        assert_eq!(to_us, 1_704_067_200_000_000 + MICROS_PER_DAY - 1);
        let criteria = HoldCriteria {
            from: Some("2024-01-01T09:30:00+01:00".to_owned()),
            to: Some("2024-01-01T08:30:00Z".to_owned()),
            ..HoldCriteria::default()
        };
        let (from_us, to_us) = criteria.at_range_us().expect("valid");
        assert_eq!(from_us, to_us);
        for (from, to, field) in [
            ("2024-02-30", "2024-03-01", "from"),
            ("2024-01-01", "01/02/2024", "to"),
            ("2024-01-02", "2024-01-01", "to"),
            ("yesterday", "2024-01-01", "from"),
        ] {
            let criteria = HoldCriteria {
                from: Some(from.to_owned()),
                to: Some(to.to_owned()),
                ..HoldCriteria::default()
            };
            let error = criteria.at_range_us().expect_err("invalid");
            assert_eq!(field_of(error), field, "{from}..{to}");
        }
    }

    #[test]
    fn each_field_is_checked_and_named() {
        let all = Scope::All;
        let ok = new_hold(custodians(&["allen-p"]));
        validate(&ok, &all).expect("valid");
        let cases: Vec<(NewHold, &str)> = vec![
            (
                NewHold {
                    name: String::new(),
                    ..ok.clone()
                },
                "name",
            ),
            (
                NewHold {
                    name: "x".repeat(MAX_NAME_CHARS + 1),
                    ..ok.clone()
                },
                "name",
            ),
            (
                NewHold {
                    name: "12345".to_owned(),
                    ..ok.clone()
                },
                "name",
            ),
            (
                NewHold {
                    name: " padded".to_owned(),
                    ..ok.clone()
                },
                "name",
            ),
            (
                NewHold {
                    matter: " ".to_owned(),
                    ..ok.clone()
                },
                "matter",
            ),
            (
                NewHold {
                    reason: "r".repeat(MAX_TEXT_CHARS + 1),
                    ..ok.clone()
                },
                "reason",
            ),
            (new_hold(custodians(&[""])), "custodians"),
            (new_hold(HoldCriteria::default()), "criteria"),
            (
                new_hold(HoldCriteria {
                    teams: vec!["A".to_owned()],
                    channels: vec![ChannelRef::new("B", "x")],
                    ..HoldCriteria::default()
                }),
                "channels",
            ),
            (
                new_hold(HoldCriteria {
                    query: Some("wire AND".to_owned()),
                    ..HoldCriteria::default()
                }),
                "query",
            ),
            (
                new_hold(HoldCriteria {
                    query: Some("after:today".to_owned()),
                    ..HoldCriteria::default()
                }),
                "query",
            ),
        ];
        for (hold, field) in cases {
            let error = validate(&hold, &all).expect_err(field);
            assert_eq!(field_of(error), field, "{hold:?}");
        }
        let multiline = NewHold {
            reason: "line one\nline two".to_owned(),
            ..ok
        };
        validate(&multiline, &all).expect("reasons may span lines");
    }

    #[test]
    fn teams_and_channels_must_be_inside_the_creator_scope() {
        let scope = Scope::teams(["A"]).union(Scope::channels([ChannelRef::new("B", "deals")]));
        let inside = new_hold(HoldCriteria {
            channels: vec![ChannelRef::new("A", "x"), ChannelRef::new("B", "deals")],
            ..HoldCriteria::default()
        });
        validate(&inside, &scope).expect("inside");
        let outside = new_hold(HoldCriteria {
            teams: vec!["A".to_owned(), "B".to_owned()],
            ..HoldCriteria::default()
        });
        match validate(&outside, &scope) {
            Err(HoldError::OutsideScope(what)) => assert_eq!(what, "team B"),
            other => panic!("{other:?}"),
        }
        // A custodian hold is fine anywhere: its scope limits it.
        validate(&new_hold(custodians(&["bob"])), &scope).expect("no place named");
    }

    #[test]
    fn scopes_cover_what_they_contain() {
        let a = Scope::teams(["A"]);
        let a_x = Scope::channels([ChannelRef::new("A", "x")]);
        let b_y = Scope::channels([ChannelRef::new("B", "y")]);
        assert!(covers(&Scope::All, &a));
        assert!(covers(&a, &a_x));
        assert!(!covers(&a_x, &a));
        assert!(!covers(&a, &b_y));
        assert!(!covers(&a, &Scope::All));
        assert!(covers(&a.clone().union(b_y.clone()), &b_y));
        assert!(covers(&a, &Scope::Nothing));
    }

    #[test]
    fn stored_scopes_and_criteria_round_trip() {
        for scope in [
            Scope::All,
            Scope::teams(["A"]).union(Scope::channels([ChannelRef::new("B", "y")])),
        ] {
            let json = serde_json::to_string(&StoredScope::of(&scope)).expect("serializes");
            let back: StoredScope = serde_json::from_str(&json).expect("parses");
            assert_eq!(back.into_scope(), scope);
        }
        let criteria = HoldCriteria {
            custodians: vec!["allen-p".to_owned()],
            channels: vec![ChannelRef::new("A", "x")],
            to: Some("2024-01-31".to_owned()),
            query: Some("wire".to_owned()),
            ..HoldCriteria::default()
        };
        let json = serde_json::to_string(&criteria).expect("serializes");
        assert_eq!(
            json,
            r#"{"custodians":["allen-p"],"teams":[],"channels":[{"team":"A","channel":"x"}],"from":null,"to":"2024-01-31","query":"wire"}"#
        );
        assert_eq!(
            serde_json::from_str::<HoldCriteria>(&json).expect("parses"),
            criteria
        );
        assert!(serde_json::from_str::<HoldCriteria>(r#"{"custodian":["x"]}"#).is_err());
    }

    #[test]
    fn sql_teams_intersect_scope_and_criteria() {
        let hold = |teams: &[&str], channels: Vec<ChannelRef>, scope: Scope| {
            CompiledHold::compile(
                &Hold {
                    id: 1,
                    name: "h".to_owned(),
                    matter: "m".to_owned(),
                    reason: "r".to_owned(),
                    criteria: HoldCriteria {
                        teams: teams.iter().map(|team| (*team).to_owned()).collect(),
                        channels,
                        ..HoldCriteria::default()
                    },
                    scope,
                    created_by: "t".to_owned(),
                    created_at_ms: 0,
                    released: None,
                },
                None,
            )
            .expect("compiles")
        };
        assert_eq!(hold(&[], Vec::new(), Scope::All).sql_teams(), None);
        assert_eq!(
            hold(&["A", "B"], Vec::new(), Scope::teams(["B", "C"])).sql_teams(),
            Some(vec!["B".to_owned()])
        );
        assert_eq!(
            hold(&[], vec![ChannelRef::new("A", "x")], Scope::teams(["B"])).sql_teams(),
            Some(Vec::new())
        );
    }
}
