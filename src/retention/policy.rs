//! Retention policy files: the versioned TOML format (`docs/retention.md`,
//! "Policy files"), its loader and validator, and the rules that decide, for
//! one event, which policy governs it, how long it is kept and the floor
//! (`min_keep_days`) before which nothing may delete it.
//!
//! Pure: no database, no clock, no async, no I/O except reading the policy
//! directory in [`PolicySet::load_dir`]. It decides nothing about holds and
//! deletes nothing; the retention run asks it whether an event is due.
//!
//! Invariants, checked when a set is loaded so that every later question has
//! one answer:
//! - at most one policy governs an event (no two policies share a scope and a
//!   kind; names are unique);
//! - a governing policy's `keep_days` is never below the floor of any policy
//!   that also applies to the event, so [`PolicySet::is_due`] never has to
//!   choose between them (it still checks both).

#![allow(
    clippy::result_large_err,
    reason = "loading policies is a cold path; errors carry both places they name"
)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::event::{EventKind, MAX_NAME_BYTES};

/// The only policy file format version this holdfast reads.
pub const FORMAT_VERSION: i64 = 1;
/// Largest accepted `keep_days` and `min_keep_days` (about 100 years).
pub const MAX_DAYS: u32 = 36_500;
/// Longest accepted policy `name`, in bytes.
pub const MAX_POLICY_NAME_BYTES: usize = 64;
/// The scope key of global policies and the kind key of kindless ones.
pub const ANY: &str = "*";

/// One validated retention policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Unique across the whole set: `[a-z0-9_-]`, 1 to 64 bytes.
    pub name: String,
    /// The file it came from (its name inside the policy directory).
    pub source: String,
    /// The line of its `[[policy]]` header in `source`.
    pub line: usize,
    /// `None`: a global policy.
    pub team: Option<String>,
    /// `Some` only together with `team`: a channel policy.
    pub channel: Option<String>,
    /// `None`: every kind. Otherwise a non-empty list of wire-format kinds.
    pub kinds: Option<Vec<String>>,
    /// Delete what it governs once older than this many days; `None`: never.
    pub keep_days: Option<u32>,
    /// Nothing it applies to is deleted before this many days (0: no floor).
    pub min_keep_days: u32,
}

impl Policy {
    /// `"*"`, `"team:<team>"` or `"channel:<team>/<channel>"` (with `%` and
    /// `/` inside names written `%25` and `%2F`, so keys are unambiguous).
    pub fn scope_key(&self) -> String {
        self.scope().key()
    }

    /// Whether this policy applies to an event: its scope covers the event's
    /// team and channel and its kinds, if any, include the event's kind.
    pub fn applies_to(&self, team: &str, channel: &str, kind: &str) -> bool {
        self.scope().covers(&Scope::Channel(team, channel)) && self.has_kind(kind)
    }

    fn scope(&self) -> Scope<'_> {
        match (&self.team, &self.channel) {
            (Some(team), Some(channel)) => Scope::Channel(team, channel),
            (Some(team), None) => Scope::Team(team),
            _ => Scope::Global,
        }
    }

    fn has_kind(&self, kind: &str) -> bool {
        self.kinds
            .as_ref()
            .is_none_or(|kinds| kinds.iter().any(|listed| listed == kind))
    }

    /// How specific it is: scope level first, then having `kinds`.
    fn rank(&self) -> u8 {
        self.scope().level() * 2 + u8::from(self.kinds.is_some())
    }

    /// A kind both policies cover (`"*"` when neither lists kinds); `None`
    /// when their kinds are disjoint.
    fn kinds_overlap(&self, other: &Policy) -> Option<String> {
        match (&self.kinds, &other.kinds) {
            (None, None) => Some(ANY.to_owned()),
            (Some(kinds), None) | (None, Some(kinds)) => kinds.first().cloned(),
            (Some(mine), Some(theirs)) => mine.iter().find(|kind| theirs.contains(kind)).cloned(),
        }
    }
}

/// Where a policy's scope reaches: everything, one team, one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope<'a> {
    Global,
    Team(&'a str),
    Channel(&'a str, &'a str),
}

impl Scope<'_> {
    fn level(self) -> u8 {
        match self {
            Scope::Global => 0,
            Scope::Team(_) => 1,
            Scope::Channel(..) => 2,
        }
    }

    /// Whether everything in `inner` is inside `self` (equal scopes included).
    fn covers(self, inner: &Scope<'_>) -> bool {
        match (self, *inner) {
            (Scope::Global, _) => true,
            (Scope::Team(team), Scope::Team(inner_team) | Scope::Channel(inner_team, _)) => {
                team == inner_team
            }
            (Scope::Channel(team, channel), Scope::Channel(inner_team, inner_channel)) => {
                team == inner_team && channel == inner_channel
            }
            _ => false,
        }
    }

    fn key(self) -> String {
        match self {
            Scope::Global => ANY.to_owned(),
            Scope::Team(team) => format!("team:{}", escape_name(team)),
            Scope::Channel(team, channel) => {
                format!("channel:{}/{}", escape_name(team), escape_name(channel))
            }
        }
    }
}

/// A scope key parsed back into its names.
#[derive(Debug, PartialEq, Eq)]
enum OwnedScope {
    Global,
    Team(String),
    Channel(String, String),
}

impl OwnedScope {
    fn parse(key: &str) -> Option<OwnedScope> {
        if key == ANY {
            return Some(OwnedScope::Global);
        }
        if let Some(team) = key.strip_prefix("team:") {
            return unescape_name(team).map(OwnedScope::Team);
        }
        let (team, channel) = key.strip_prefix("channel:")?.split_once('/')?;
        Some(OwnedScope::Channel(
            unescape_name(team)?,
            unescape_name(channel)?,
        ))
    }

    fn as_scope(&self) -> Scope<'_> {
        match self {
            OwnedScope::Global => Scope::Global,
            OwnedScope::Team(team) => Scope::Team(team),
            OwnedScope::Channel(team, channel) => Scope::Channel(team, channel),
        }
    }
}

fn escape_name(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

fn unescape_name(escaped: &str) -> Option<String> {
    if escaped.is_empty() || escaped.contains('/') {
        return None;
    }
    let mut name = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('%') {
        name.push_str(&rest[..at]);
        match rest.get(at + 1..at + 3)? {
            "25" => name.push('%'),
            "2F" => name.push('/'),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    name.push_str(rest);
    Some(name)
}

/// The floor one policy sets for one scope and kind, as a run records it
/// when it applies a policy set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Floor {
    /// See [`Policy::scope_key`].
    pub scope_key: String,
    /// `"*"` or one kind.
    pub kind: String,
    pub min_keep_days: u32,
    /// The policy that sets it.
    pub policy: String,
    /// That policy's file.
    pub source: String,
}

/// An applied floor that a new policy set would lower.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FloorChange {
    pub scope_key: String,
    pub kind: String,
    pub old_days: u32,
    /// The lowest floor the new set guarantees to what the old floor covered
    /// (0: nothing protects it any more).
    pub new_days: u32,
    pub old_policy: String,
    /// The policy that gives `new_days`; `None` when it is 0.
    pub new_policy: Option<String>,
}

/// What a policy set decides for one event (team, channel, kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// The most specific policy that applies; `None`: no policy applies and
    /// the event is kept forever.
    pub governing: Option<&'a Policy>,
    /// The governing policy's `keep_days`; `None`: kept forever.
    pub keep_days: Option<u32>,
    /// The highest `min_keep_days` of every policy that applies.
    pub floor_days: u32,
    /// The policy that sets `floor_days`; `None` when it is 0.
    pub floor_policy: Option<&'a Policy>,
}

impl Resolved<'_> {
    /// The age in days after which the event is due: events strictly older
    /// are due, `None`: never.
    pub fn due_after_days(&self) -> Option<u32> {
        self.keep_days
            .map(|keep_days| keep_days.max(self.floor_days))
    }

    /// Whether an event of this age (see [`age_days`]) is due for deletion:
    /// older than `keep_days` and older than the floor.
    pub fn is_due_at_age(&self, age: i64) -> bool {
        self.keep_days
            .is_some_and(|keep_days| age > i64::from(keep_days) && age > i64::from(self.floor_days))
    }
}

/// Whole days from an event's UTC day to the `as_of` UTC day (negative when
/// the event is dated after `as_of`).
pub fn age_days(event_day: NaiveDate, as_of: NaiveDate) -> i64 {
    (as_of - event_day).num_days()
}

/// Where in which file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Why a policy set could not be loaded. Each names the file, line, column
/// and, where there is one, the policy and the field.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy directory is missing or could not be listed.
    #[error("cannot read policy directory {dir}: {source}")]
    Dir {
        dir: String,
        #[source]
        source: io::Error,
    },
    /// A file in the policy directory has a name that is not UTF-8.
    #[error("policy directory {dir} holds a file whose name is not valid UTF-8: {name}")]
    FileName { dir: String, name: String },
    /// A policy file could not be read (or is not UTF-8).
    #[error("cannot read policy file {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: io::Error,
    },
    /// TOML syntax, an unknown key, a duplicate key or a value of the wrong
    /// type, as the TOML reader reports it. `field` is the key path
    /// (`policy.kinds`) when known.
    #[error("{at}: {}", with_field(.field.as_deref(), .message))]
    Parse {
        at: Location,
        field: Option<String>,
        message: String,
    },
    /// `version` is missing or is not [`FORMAT_VERSION`].
    #[error("{at}: version: {problem}")]
    Version { at: Location, problem: String },
    /// A `[[policy]]` has no `name`.
    #[error("{at}: policy: name is missing (every [[policy]] needs a unique name)")]
    MissingName { at: Location },
    /// One value of one policy is invalid (`field` names its key).
    #[error("{at}: policy {policy:?}: {problem}")]
    Invalid {
        at: Location,
        policy: String,
        field: &'static str,
        problem: String,
    },
    /// Two policies share a name.
    #[error("{at}: policy {policy:?}: name is already used by the policy at {first}")]
    DuplicateName {
        at: Location,
        policy: String,
        first: Location,
    },
    /// Two policies would govern the same events: same scope, and both
    /// without `kinds` (`kind` is `"*"`) or both listing `kind`.
    #[error(
        "{at}: policy {policy:?}: {} at scope {scope_key} is already covered by policy {other:?} ({other_at})",
        describe_kind(.kind)
    )]
    Overlap {
        at: Location,
        policy: String,
        scope_key: String,
        kind: String,
        other: String,
        other_at: Location,
    },
    /// A policy would delete earlier than the floor of a broader policy that
    /// covers part of what it governs.
    #[error(
        "{at}: policy {policy:?}: keep_days ({keep_days}) is below min_keep_days ({min_keep_days}) of broader policy {broader:?} ({broader_at}), which also covers {}",
        describe_kind(.kind)
    )]
    UndercutsFloor {
        at: Location,
        policy: String,
        keep_days: u32,
        broader: String,
        broader_at: Location,
        min_keep_days: u32,
        kind: String,
    },
}

fn with_field(field: Option<&str>, message: &str) -> String {
    match field {
        Some(field) => format!("{field}: {message}"),
        None => message.to_owned(),
    }
}

fn describe_kind(kind: &str) -> String {
    if kind == ANY {
        "every kind".to_owned()
    } else {
        format!("kind {kind:?}")
    }
}

impl PolicyError {
    /// Every location the error names.
    fn locations_mut(&mut self) -> Vec<&mut Location> {
        match self {
            PolicyError::Dir { .. } | PolicyError::FileName { .. } | PolicyError::Read { .. } => {
                Vec::new()
            }
            PolicyError::Parse { at, .. }
            | PolicyError::Version { at, .. }
            | PolicyError::MissingName { at }
            | PolicyError::Invalid { at, .. } => vec![at],
            PolicyError::DuplicateName { at, first, .. } => vec![at, first],
            PolicyError::Overlap { at, other_at, .. } => vec![at, other_at],
            PolicyError::UndercutsFloor { at, broader_at, .. } => vec![at, broader_at],
        }
    }

    /// Names files by their path under `dir` instead of their bare name.
    fn in_dir(mut self, dir: &Path) -> PolicyError {
        for location in self.locations_mut() {
            location.file = dir.join(&location.file).display().to_string();
        }
        self
    }
}

/// A validated set of policies, ready to answer for events.
#[derive(Clone, Debug)]
pub struct PolicySet {
    policies: Vec<Policy>,
    digest: String,
    index: ScopeIndex,
}

/// Policy indexes by scope, so that resolving an event looks at the
/// policies of its team and channel only.
#[derive(Clone, Debug, Default)]
struct ScopeIndex {
    global: Vec<usize>,
    teams: BTreeMap<String, TeamIndex>,
}

#[derive(Clone, Debug, Default)]
struct TeamIndex {
    team_level: Vec<usize>,
    channels: BTreeMap<String, Vec<usize>>,
}

impl ScopeIndex {
    fn new(policies: &[Policy]) -> ScopeIndex {
        let mut index = ScopeIndex::default();
        for (policy_idx, policy) in policies.iter().enumerate() {
            match policy.scope() {
                Scope::Global => index.global.push(policy_idx),
                Scope::Team(team) => index
                    .teams
                    .entry(team.to_owned())
                    .or_default()
                    .team_level
                    .push(policy_idx),
                Scope::Channel(team, channel) => index
                    .teams
                    .entry(team.to_owned())
                    .or_default()
                    .channels
                    .entry(channel.to_owned())
                    .or_default()
                    .push(policy_idx),
            }
        }
        index
    }
}

impl PolicySet {
    /// No policies: nothing is ever due.
    pub fn empty() -> PolicySet {
        PolicySet {
            policies: Vec::new(),
            digest: digest_files(&[]),
            index: ScopeIndex::default(),
        }
    }

    /// Loads every `*.toml` file directly in `dir` (sorted by name, not
    /// recursive). A missing directory is an error; an empty one is an empty
    /// set. Errors name files by their path under `dir`; policies record
    /// their bare file name as `source`, and the digest covers bare names.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
        let dir_error = |source| PolicyError::Dir {
            dir: dir.display().to_string(),
            source,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(dir_error)? {
            let entry = entry.map_err(dir_error)?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|name| PolicyError::FileName {
                    dir: dir.display().to_string(),
                    name: name.to_string_lossy().into_owned(),
                })?;
            if name.ends_with(".toml") && entry.path().is_file() {
                names.push(name);
            }
        }
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(&name);
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
                file: path.display().to_string(),
                source,
            })?;
            files.push((name, text));
        }
        PolicySet::parse_files(&files).map_err(|error| error.in_dir(dir))
    }

    /// Parses and validates policy files given as (file name, text), in the
    /// order given. Stops at the first problem.
    pub fn parse_files(files: &[(String, String)]) -> Result<PolicySet, PolicyError> {
        let mut parsed = Vec::new();
        for (name, text) in files {
            parse_file(name, text, &mut parsed)?;
        }
        check_names(&parsed)?;
        check_overlaps(&parsed)?;
        check_floors(&parsed)?;
        let policies: Vec<Policy> = parsed.into_iter().map(|parsed| parsed.policy).collect();
        Ok(PolicySet {
            index: ScopeIndex::new(&policies),
            digest: digest_files(files),
            policies,
        })
    }

    /// Every policy, in file order then order within the file.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Hex SHA-256 over the files' names and texts, in load order: for each
    /// file, the name's length in bytes (u64, little-endian), the name, the
    /// text's length, the text. The same files give the same digest wherever
    /// the directory is.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The policy that governs an event, its `keep_days` and the event's
    /// cumulative floor. Channel policies beat team policies beat global
    /// ones; at the same level a policy listing the kind beats one without
    /// `kinds`. The floor is the highest `min_keep_days` of every policy
    /// that applies, whatever its level.
    pub fn resolve(&self, team: &str, channel: &str, kind: &str) -> Resolved<'_> {
        let mut governing: Option<&Policy> = None;
        let (floor_days, floor_policy) = floor_over(self.covering(Some(team), Some(channel)), kind);
        for policy in self.covering(Some(team), Some(channel)) {
            if policy.has_kind(kind) && governing.is_none_or(|best| policy.rank() > best.rank()) {
                governing = Some(policy);
            }
        }
        Resolved {
            governing,
            keep_days: governing.and_then(|policy| policy.keep_days),
            floor_days,
            floor_policy,
        }
    }

    /// The governing policy if an event of this team, channel and kind,
    /// dated `event_day`, is due for deletion on `as_of`: its age is above
    /// the governing `keep_days` and above the floor. An event dated D under
    /// `keep_days = 30` is kept on D+30 and due on D+31.
    pub fn is_due(
        &self,
        team: &str,
        channel: &str,
        kind: &str,
        event_day: NaiveDate,
        as_of: NaiveDate,
    ) -> Option<&Policy> {
        let resolved = self.resolve(team, channel, kind);
        if resolved.is_due_at_age(age_days(event_day, as_of)) {
            resolved.governing
        } else {
            None
        }
    }

    /// The smallest age (see [`age_days`]) at which any event of this team
    /// and channel, of any kind, can be due; `None` when none ever can.
    /// A key epoch (team × channel × day) younger than this holds nothing
    /// due and can be skipped without looking at its events.
    pub fn earliest_due_age(&self, team: &str, channel: &str) -> Option<u32> {
        EventKind::ALL
            .iter()
            .filter_map(|kind| self.due_age(team, channel, kind.as_str()))
            .min()
    }

    /// The smallest age at which every event of this team and channel, of
    /// every kind, is due; `None` when some kind is never due. A key epoch
    /// at least this old holds nothing but due events (holds aside).
    pub fn all_due_age(&self, team: &str, channel: &str) -> Option<u32> {
        EventKind::ALL
            .iter()
            .map(|kind| self.due_age(team, channel, kind.as_str()))
            .try_fold(0, |latest, due_age| {
                due_age.map(|due_age| due_age.max(latest))
            })
    }

    fn due_age(&self, team: &str, channel: &str, kind: &str) -> Option<u32> {
        self.resolve(team, channel, kind)
            .due_after_days()
            .map(|days| days + 1)
    }

    /// One entry per policy with `min_keep_days > 0` and per kind it lists
    /// (`"*"` when it has no `kinds`), in policy order. A run records these
    /// when it applies the set.
    pub fn floors(&self) -> Vec<Floor> {
        let mut floors = Vec::new();
        for policy in self
            .policies
            .iter()
            .filter(|policy| policy.min_keep_days > 0)
        {
            let scope_key = policy.scope_key();
            let kinds = match &policy.kinds {
                Some(kinds) => kinds.clone(),
                None => vec![ANY.to_owned()],
            };
            for kind in kinds {
                floors.push(Floor {
                    scope_key: scope_key.clone(),
                    kind,
                    min_keep_days: policy.min_keep_days,
                    policy: policy.name.clone(),
                    source: policy.source.clone(),
                });
            }
        }
        floors
    }

    /// Policies whose scope contains the given one (equal included), from
    /// the broadest: `(None, _)` is the global scope, `(Some(team), None)`
    /// a team, both a channel.
    fn covering<'a>(
        &'a self,
        team: Option<&str>,
        channel: Option<&str>,
    ) -> impl Iterator<Item = &'a Policy> + use<'a> {
        let team_index = team.and_then(|team| self.index.teams.get(team));
        let team_level = team_index.map_or(&[][..], |index| &index.team_level[..]);
        let channel_level = team_index
            .zip(channel)
            .and_then(|(index, channel)| index.channels.get(channel))
            .map_or(&[][..], |policies| &policies[..]);
        self.index
            .global
            .iter()
            .chain(team_level)
            .chain(channel_level)
            .map(|&policy_idx| &self.policies[policy_idx])
    }

    /// The lowest floor this set guarantees to every event of `scope` and
    /// `kind_key` (`"*"`: every kind), and the policy giving it.
    fn guaranteed_floor(&self, scope: &OwnedScope, kind_key: &str) -> (u32, Option<&Policy>) {
        let (team, channel) = match scope {
            OwnedScope::Global => (None, None),
            OwnedScope::Team(team) => (Some(team.as_str()), None),
            OwnedScope::Channel(team, channel) => (Some(team.as_str()), Some(channel.as_str())),
        };
        let floor_for = |kind: &str| floor_over(self.covering(team, channel), kind);
        if kind_key == ANY {
            EventKind::ALL
                .iter()
                .map(|kind| floor_for(kind.as_str()))
                .min_by_key(|(days, _)| *days)
                .unwrap_or((0, None))
        } else {
            floor_for(kind_key)
        }
    }
}

/// Every applied floor that `new` would lower: for each `(scope_key, kind)`
/// in `applied`, the lowest floor `new` gives any event that floor covered
/// (from policies of that scope or broader, for every kind it covered) is
/// below the applied one. A floor removed with nothing else covering it is
/// lowered to 0. An applied scope key that cannot be read counts as lowered
/// to 0, so a damaged record errs on the side of keeping data.
pub fn lowered_floors(applied: &[Floor], new: &PolicySet) -> Vec<FloorChange> {
    let mut changes = Vec::new();
    for floor in applied {
        let (new_days, new_policy) = match OwnedScope::parse(&floor.scope_key) {
            Some(scope) => new.guaranteed_floor(&scope, &floor.kind),
            None => (0, None),
        };
        if new_days < floor.min_keep_days {
            changes.push(FloorChange {
                scope_key: floor.scope_key.clone(),
                kind: floor.kind.clone(),
                old_days: floor.min_keep_days,
                new_days,
                old_policy: floor.policy.clone(),
                new_policy: new_policy.map(|policy| policy.name.clone()),
            });
        }
    }
    changes
}

/// Whether a floor recorded as (`scope_key`, `kind_key`) covers an event of
/// this team, channel and kind. A scope key that cannot be read covers every
/// event (erring on the side of keeping data).
pub fn scope_key_matches(
    scope_key: &str,
    kind_key: &str,
    team: &str,
    channel: &str,
    kind: &str,
) -> bool {
    let scope_matches = OwnedScope::parse(scope_key)
        .is_none_or(|scope| scope.as_scope().covers(&Scope::Channel(team, channel)));
    scope_matches && (kind_key == ANY || kind_key == kind)
}

/// The highest `min_keep_days` among `policies` that apply to `kind`, and
/// its policy (the last, so the most specific, on a tie).
fn floor_over<'a>(
    policies: impl Iterator<Item = &'a Policy>,
    kind: &str,
) -> (u32, Option<&'a Policy>) {
    let mut floor: (u32, Option<&Policy>) = (0, None);
    for policy in policies {
        if policy.has_kind(kind) && policy.min_keep_days > 0 && policy.min_keep_days >= floor.0 {
            floor = (policy.min_keep_days, Some(policy));
        }
    }
    floor
}

fn digest_files(files: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    for (name, text) in files {
        for part in [name, text] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    hex::encode(hasher.finalize())
}

// ---- reading one file ----

/// Read first, ignoring everything else, so that a file of another version
/// is refused for its version and not for keys this version does not know.
#[derive(Deserialize)]
struct VersionProbe {
    version: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// Checked by [`VersionProbe`].
    #[serde(rename = "version")]
    _version: serde::de::IgnoredAny,
    #[serde(default)]
    policy: Vec<Spanned<RawPolicy>>,
}

/// Numbers are read as any TOML value so that their problems (type and
/// range) are reported with the policy's name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Option<Spanned<String>>,
    team: Option<Spanned<String>>,
    channel: Option<Spanned<String>>,
    kinds: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    keep_days: Option<Spanned<toml::Value>>,
    min_keep_days: Option<Spanned<toml::Value>>,
}

/// A policy with the places of its parts, for errors across policies.
struct ParsedPolicy {
    policy: Policy,
    header: Location,
    name_at: Location,
    kinds_at: Option<Location>,
    keep_days_at: Option<Location>,
}

/// Reads one file's text and the location of byte offsets in it.
struct SourceText<'a> {
    file: &'a str,
    text: &'a str,
}

impl SourceText<'_> {
    fn at(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Location {
            file: self.file.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    fn at_span<T>(&self, spanned: &Spanned<T>) -> Location {
        self.at(spanned.span().start)
    }

    fn parse_error(&self, error: &toml::de::Error) -> PolicyError {
        let span = error.span();
        // toml keeps the key path of a failed value (`policy.kinds`) private
        // but prints it when the error is rendered without the input.
        let mut bare = error.clone();
        bare.set_input(None);
        let rendered = bare.to_string();
        let mut field = rendered
            .lines()
            .find_map(|line| line.strip_prefix("in `")?.strip_suffix('`'))
            .map(str::to_owned);
        if field.is_none() && error.message() == "duplicate key" {
            field = span
                .clone()
                .and_then(|span| self.text.get(span))
                .map(|key| key.trim().to_owned());
        }
        let mut message = error.message().trim_end().to_owned();
        if field.as_deref() == Some("policy") && message.starts_with("invalid type: map") {
            message.push_str("; write each policy as [[policy]], not [policy]");
        }
        PolicyError::Parse {
            at: self.at(span.map_or(0, |span| span.start)),
            field,
            message,
        }
    }
}

fn parse_file(file: &str, text: &str, parsed: &mut Vec<ParsedPolicy>) -> Result<(), PolicyError> {
    let source = SourceText { file, text };
    let probe: VersionProbe = toml::from_str(text).map_err(|error| source.parse_error(&error))?;
    let Some(version) = probe.version else {
        return Err(PolicyError::Version {
            at: source.at(0),
            problem: format!("missing; every policy file starts with `version = {FORMAT_VERSION}`"),
        });
    };
    match version.get_ref() {
        toml::Value::Integer(FORMAT_VERSION) => {}
        toml::Value::Integer(other) => {
            return Err(PolicyError::Version {
                at: source.at_span(&version),
                problem: format!(
                    "unsupported version {other}; this holdfast reads version {FORMAT_VERSION}"
                ),
            });
        }
        other => {
            return Err(PolicyError::Version {
                at: source.at_span(&version),
                problem: format!("must be the whole number {FORMAT_VERSION}, not {other}"),
            });
        }
    }
    let raw: RawFile = toml::from_str(text).map_err(|error| source.parse_error(&error))?;
    for raw_policy in raw.policy {
        parsed.push(validate_policy(&source, raw_policy)?);
    }
    Ok(())
}

fn validate_policy(
    source: &SourceText<'_>,
    raw: Spanned<RawPolicy>,
) -> Result<ParsedPolicy, PolicyError> {
    let header = source.at_span(&raw);
    let raw = raw.into_inner();
    let Some(name) = raw.name else {
        return Err(PolicyError::MissingName { at: header });
    };
    let name_at = source.at_span(&name);
    let name = name.into_inner();
    let invalid = |at: Location, field: &'static str, problem: String| PolicyError::Invalid {
        at,
        policy: name.clone(),
        field,
        problem,
    };
    if name.is_empty()
        || name.len() > MAX_POLICY_NAME_BYTES
        || !name
            .bytes()
            .all(|byte| matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
    {
        return Err(invalid(
            name_at,
            "name",
            format!("name must be 1 to {MAX_POLICY_NAME_BYTES} characters of a-z, 0-9, _ and -"),
        ));
    }
    let team = raw
        .team
        .map(|team| scope_name(source, team, "team", &invalid))
        .transpose()?;
    let channel = raw
        .channel
        .map(|channel| {
            let at = source.at_span(&channel);
            if team.is_none() {
                return Err(invalid(
                    at,
                    "channel",
                    "channel requires team (a channel is named within its team)".to_owned(),
                ));
            }
            scope_name(source, channel, "channel", &invalid)
        })
        .transpose()?;
    let (kinds, kinds_at) = match raw.kinds {
        Some(kinds) => {
            let at = source.at_span(&kinds);
            (Some(kind_list(source, kinds, &invalid)?), Some(at))
        }
        None => (None, None),
    };
    let keep_days_at = raw.keep_days.as_ref().map(|days| source.at_span(days));
    let keep_days = raw
        .keep_days
        .map(|days| day_count(source, &days, "keep_days", &invalid))
        .transpose()?;
    let min_keep_days = match raw.min_keep_days {
        Some(days) => {
            let min_keep_days = day_count(source, &days, "min_keep_days", &invalid)?;
            if let Some(keep_days) = keep_days.filter(|&keep_days| min_keep_days > keep_days) {
                return Err(invalid(
                    source.at_span(&days),
                    "min_keep_days",
                    format!(
                        "min_keep_days ({min_keep_days}) is greater than keep_days ({keep_days})"
                    ),
                ));
            }
            min_keep_days
        }
        None => 0,
    };
    Ok(ParsedPolicy {
        policy: Policy {
            name,
            source: source.file.to_owned(),
            line: header.line,
            team,
            channel,
            kinds,
            keep_days,
            min_keep_days,
        },
        header,
        name_at,
        kinds_at,
        keep_days_at,
    })
}

fn scope_name(
    source: &SourceText<'_>,
    value: Spanned<String>,
    field: &'static str,
    invalid: &impl Fn(Location, &'static str, String) -> PolicyError,
) -> Result<String, PolicyError> {
    let at = source.at_span(&value);
    let value = value.into_inner();
    if value.is_empty() || value.len() > MAX_NAME_BYTES || value.contains('\0') {
        return Err(invalid(
            at,
            field,
            format!("{field} must be 1 to {MAX_NAME_BYTES} bytes without NUL, as in events"),
        ));
    }
    Ok(value)
}

fn kind_list(
    source: &SourceText<'_>,
    kinds: Spanned<Vec<Spanned<toml::Value>>>,
    invalid: &impl Fn(Location, &'static str, String) -> PolicyError,
) -> Result<Vec<String>, PolicyError> {
    let at = source.at_span(&kinds);
    let kinds = kinds.into_inner();
    if kinds.is_empty() {
        return Err(invalid(
            at,
            "kinds",
            "kinds is empty; leave it out to cover every kind".to_owned(),
        ));
    }
    let known = || EventKind::ALL.map(EventKind::as_str).join(", ");
    let mut names: Vec<String> = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let at = source.at_span(&kind);
        let name = match kind.into_inner() {
            toml::Value::String(name) if EventKind::parse(&name).is_some() => name,
            toml::Value::String(name) => {
                return Err(invalid(
                    at,
                    "kinds",
                    format!("kinds: unknown kind {name:?}; expected one of {}", known()),
                ));
            }
            other => {
                return Err(invalid(
                    at,
                    "kinds",
                    format!("kinds: each kind is a string, not {other}"),
                ));
            }
        };
        if names.contains(&name) {
            return Err(invalid(
                at,
                "kinds",
                format!("kinds: {name:?} is listed twice"),
            ));
        }
        names.push(name);
    }
    Ok(names)
}

fn day_count(
    source: &SourceText<'_>,
    value: &Spanned<toml::Value>,
    field: &'static str,
    invalid: &impl Fn(Location, &'static str, String) -> PolicyError,
) -> Result<u32, PolicyError> {
    match value.get_ref() {
        toml::Value::Integer(days) => u32::try_from(*days)
            .ok()
            .filter(|&days| days <= MAX_DAYS)
            .ok_or_else(|| {
                invalid(
                    source.at_span(value),
                    field,
                    format!("{field} ({days}) is out of range: 0 to {MAX_DAYS} days"),
                )
            }),
        other => Err(invalid(
            source.at_span(value),
            field,
            format!("{field} must be a whole number of days from 0 to {MAX_DAYS}, not {other}"),
        )),
    }
}

// ---- checks across policies ----

fn check_names(parsed: &[ParsedPolicy]) -> Result<(), PolicyError> {
    let mut seen: HashMap<&str, &ParsedPolicy> = HashMap::new();
    for current in parsed {
        if let Some(first) = seen.insert(&current.policy.name, current) {
            return Err(PolicyError::DuplicateName {
                at: current.name_at.clone(),
                policy: current.policy.name.clone(),
                first: first.name_at.clone(),
            });
        }
    }
    Ok(())
}

/// Two policies of the same scope may not both lack `kinds`, nor both list
/// a kind: one event would have two governing policies.
fn check_overlaps(parsed: &[ParsedPolicy]) -> Result<(), PolicyError> {
    for (later_idx, later) in parsed.iter().enumerate() {
        for earlier in &parsed[..later_idx] {
            let (policy, other) = (&later.policy, &earlier.policy);
            if policy.scope() != other.scope() || policy.kinds.is_some() != other.kinds.is_some() {
                continue;
            }
            if let Some(kind) = policy.kinds_overlap(other) {
                return Err(PolicyError::Overlap {
                    at: later
                        .kinds_at
                        .clone()
                        .unwrap_or_else(|| later.header.clone()),
                    policy: policy.name.clone(),
                    scope_key: policy.scope_key(),
                    kind,
                    other: other.name.clone(),
                    other_at: earlier.header.clone(),
                });
            }
        }
    }
    Ok(())
}

/// A policy's `keep_days` may not be below the floor of a broader policy
/// that applies to some of the events it governs: a policy of a containing
/// scope whose kinds meet its kinds, or, at the same scope, the policy
/// without `kinds` when it has them.
fn check_floors(parsed: &[ParsedPolicy]) -> Result<(), PolicyError> {
    for current in parsed {
        let policy = &current.policy;
        let Some(keep_days) = policy.keep_days else {
            continue;
        };
        for broader in parsed {
            let other = &broader.policy;
            if other.name == policy.name
                || other.min_keep_days <= keep_days
                || !other.scope().covers(&policy.scope())
            {
                continue;
            }
            let same_scope = other.scope() == policy.scope();
            if same_scope && !(other.kinds.is_none() && policy.kinds.is_some()) {
                continue;
            }
            if let Some(kind) = policy.kinds_overlap(other) {
                return Err(PolicyError::UndercutsFloor {
                    at: current
                        .keep_days_at
                        .clone()
                        .unwrap_or_else(|| current.header.clone()),
                    policy: policy.name.clone(),
                    keep_days,
                    broader: other.name.clone(),
                    broader_at: broader.header.clone(),
                    min_keep_days: other.min_keep_days,
                    kind,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    fn parse(files: &[(&str, &str)]) -> Result<PolicySet, PolicyError> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        PolicySet::parse_files(&files)
    }

    fn one(text: &str) -> PolicySet {
        parse(&[("p.toml", text)]).unwrap()
    }

    /// The error message for files that must be refused.
    fn refused(files: &[(&str, &str)]) -> String {
        match parse(files) {
            Ok(set) => panic!("accepted: {:?}", set.policies()),
            Err(error) => error.to_string(),
        }
    }

    fn refused_one(text: &str) -> String {
        refused(&[("p.toml", text)])
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn governing<'a>(set: &'a PolicySet, team: &str, channel: &str, kind: &str) -> &'a str {
        set.resolve(team, channel, kind)
            .governing
            .map_or("(none)", |policy| policy.name.as_str())
    }

    // ---- reading and validating files ----

    #[test]
    fn a_valid_file_gives_its_policies_with_source_and_line() {
        let set = one(
            "version = 1\n\n[[policy]]\nname = \"global\"\nkeep_days = 2555\nmin_keep_days = 365\n\n\
             [[policy]]\nname = \"eng-reactions\"\nteam = \"eng\"\nchannel = \"random\"\n\
             kinds = [\"reaction_add\", \"reaction_remove\"]\nkeep_days = 400\n",
        );
        let policies = set.policies();
        assert_eq!(policies.len(), 2);
        assert_eq!(
            policies[0],
            Policy {
                name: "global".to_owned(),
                source: "p.toml".to_owned(),
                line: 3,
                team: None,
                channel: None,
                kinds: None,
                keep_days: Some(2555),
                min_keep_days: 365,
            }
        );
        assert_eq!(policies[1].line, 8);
        assert_eq!(policies[1].team.as_deref(), Some("eng"));
        assert_eq!(policies[1].channel.as_deref(), Some("random"));
        assert_eq!(
            policies[1].kinds,
            Some(vec![
                "reaction_add".to_owned(),
                "reaction_remove".to_owned()
            ])
        );
        assert_eq!(policies[1].min_keep_days, 0);
        assert_eq!(policies[1].scope_key(), "channel:eng/random");
    }

    #[test]
    fn a_file_with_only_the_version_is_an_empty_set() {
        assert!(one("# nothing yet\nversion = 1\n").policies().is_empty());
        assert!(PolicySet::parse_files(&[]).unwrap().policies().is_empty());
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let message = refused_one("version = 1\n[[policy]]\nname = \"a\nkeep_days = 3\n");
        assert!(message.starts_with("p.toml:3:"), "{message}");
        assert!(message.contains("string"), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }

    #[test]
    fn a_duplicate_key_names_the_key() {
        let message = refused_one("version = 1\n[[policy]]\nname = \"a\"\nname = \"b\"\n");
        assert_eq!(message, "p.toml:4:1: name: duplicate key");
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let message = refused_one("version = 1\n[[policy]]\nname = \"a\"\nkepe_days = 3\n");
        assert!(
            message.starts_with("p.toml:4:1: policy: unknown field `kepe_days`"),
            "{message}"
        );
        let message = refused_one("version = 1\nretention = true\n");
        assert!(
            message.starts_with("p.toml:2:1: unknown field `retention`"),
            "{message}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_field() {
        let message = refused_one("version = 1\n[[policy]]\nname = \"a\"\nkeep_days = \"30\"\n");
        assert_eq!(
            message,
            "p.toml:4:13: policy \"a\": keep_days must be a whole number of days from 0 to 36500, not \"30\""
        );
        let message = refused_one("version = 1\n[[policy]]\nname = \"a\"\nmin_keep_days = 1.5\n");
        assert!(
            message.starts_with("p.toml:4:17: policy \"a\": min_keep_days must be a whole number"),
            "{message}"
        );
        let message = refused_one("version = 1\n[[policy]]\nname = 3\n");
        assert_eq!(
            message,
            "p.toml:3:8: policy.name: invalid type: integer `3`, expected a string"
        );
        let message = refused_one("version = 1\n[[policy]]\nname = \"a\"\nkinds = \"post\"\n");
        assert!(
            message.starts_with("p.toml:4:9: policy.kinds: invalid type"),
            "{message}"
        );
        let message =
            refused_one("version = 1\n[[policy]]\nname = \"a\"\nkinds = [\"post\",\n  3]\n");
        assert_eq!(
            message,
            "p.toml:5:3: policy \"a\": kinds: each kind is a string, not 3"
        );
        let message = refused_one("version = 1\n[policy]\nname = \"a\"\n");
        assert_eq!(
            message,
            "p.toml:2:1: policy: invalid type: map, expected a sequence; write each policy as [[policy]], not [policy]"
        );
    }

    #[test]
    fn a_missing_version_is_refused() {
        let message = refused_one("[[policy]]\nname = \"a\"\n");
        assert_eq!(
            message,
            "p.toml:1:1: version: missing; every policy file starts with `version = 1`"
        );
        assert!(refused_one("").starts_with("p.toml:1:1: version: missing"));
    }

    #[test]
    fn another_version_is_refused_before_its_keys_are_read() {
        let message = refused_one("version = 2\n[[policy]]\nname = \"a\"\nnew_key = 1\n");
        assert_eq!(
            message,
            "p.toml:1:11: version: unsupported version 2; this holdfast reads version 1"
        );
        let message = refused_one("version = \"1\"\n");
        assert_eq!(
            message,
            "p.toml:1:11: version: must be the whole number 1, not \"1\""
        );
    }

    #[test]
    fn a_policy_without_a_name_is_refused_at_its_header() {
        let message = refused_one("version = 1\n\n[[policy]]\nkeep_days = 3\n");
        assert_eq!(
            message,
            "p.toml:3:1: policy: name is missing (every [[policy]] needs a unique name)"
        );
    }

    #[test]
    fn a_name_outside_its_alphabet_or_length_is_refused() {
        for name in ["Global", "seven years", "", "é", &"a".repeat(65)] {
            let message = refused_one(&format!(
                "version = 1\n[[policy]]\nname = {}\n",
                toml::Value::String(name.to_owned())
            ));
            assert!(
                message.starts_with("p.toml:3:8: policy ")
                    && message.contains("name must be 1 to 64 characters of a-z, 0-9, _ and -"),
                "{message}"
            );
        }
        one(&format!(
            "version = 1\n[[policy]]\nname = \"{}\"\n",
            "a-0_".repeat(16)
        ));
    }

    #[test]
    fn a_name_used_twice_is_refused_within_and_across_files() {
        let message = refused_one(
            "version = 1\n[[policy]]\nname = \"x\"\nteam = \"a\"\n[[policy]]\nname = \"x\"\nteam = \"b\"\n",
        );
        assert_eq!(
            message,
            "p.toml:6:8: policy \"x\": name is already used by the policy at p.toml:3:8"
        );
        let message = refused(&[
            (
                "a.toml",
                "version = 1\n[[policy]]\nname = \"x\"\nteam = \"a\"\n",
            ),
            (
                "b.toml",
                "version = 1\n\n[[policy]]\nname = \"x\"\nteam = \"b\"\n",
            ),
        ]);
        assert_eq!(
            message,
            "b.toml:4:8: policy \"x\": name is already used by the policy at a.toml:3:8"
        );
    }

    #[test]
    fn a_channel_without_a_team_is_refused() {
        let message = refused_one("version = 1\n[[policy]]\nname = \"a\"\nchannel = \"random\"\n");
        assert_eq!(
            message,
            "p.toml:4:11: policy \"a\": channel requires team (a channel is named within its team)"
        );
    }

    #[test]
    fn empty_or_nul_team_and_channel_names_are_refused() {
        let message = refused_one("version = 1\n[[policy]]\nname = \"a\"\nteam = \"\"\n");
        assert!(message.starts_with("p.toml:4:8: policy \"a\": team must be 1 to 256 bytes"));
        let message = refused_one(
            "version = 1\n[[policy]]\nname = \"a\"\nteam = \"t\"\nchannel = \"c\\u0000\"\n",
        );
        assert!(message.starts_with("p.toml:5:11: policy \"a\": channel must be 1 to 256 bytes"));
    }

    #[test]
    fn two_kindless_policies_for_one_scope_in_two_files_are_refused() {
        let message = refused(&[
            (
                "a.toml",
                "version = 1\n[[policy]]\nname = \"eng-1\"\nteam = \"eng\"\nkeep_days = 30\n",
            ),
            (
                "b.toml",
                "version = 1\n[[policy]]\nname = \"eng-2\"\nteam = \"eng\"\nkeep_days = 60\n",
            ),
        ]);
        assert_eq!(
            message,
            "b.toml:2:1: policy \"eng-2\": every kind at scope team:eng is already covered by policy \"eng-1\" (a.toml:2:1)"
        );
        let message = refused_one(
            "version = 1\n[[policy]]\nname = \"g1\"\n[[policy]]\nname = \"g2\"\nkeep_days = 5\n",
        );
        assert!(message.contains("every kind at scope * is already covered by policy \"g1\""));
    }

    #[test]
    fn overlapping_kinds_lists_at_one_scope_are_refused() {
        let message = refused_one(
            "version = 1\n[[policy]]\nname = \"a\"\nteam = \"t\"\nchannel = \"c\"\nkinds = [\"post\", \"edit\"]\n\
             [[policy]]\nname = \"b\"\nteam = \"t\"\nchannel = \"c\"\nkinds = [\"edit\"]\n",
        );
        assert_eq!(
            message,
            "p.toml:11:9: policy \"b\": kind \"edit\" at scope channel:t/c is already covered by policy \"a\" (p.toml:2:1)"
        );
    }

    #[test]
    fn disjoint_kinds_and_a_kindless_policy_can_share_a_scope() {
        let set = one(
            "version = 1\n[[policy]]\nname = \"all\"\nteam = \"t\"\nkeep_days = 100\n\
             [[policy]]\nname = \"posts\"\nteam = \"t\"\nkinds = [\"post\"]\nkeep_days = 200\n\
             [[policy]]\nname = \"edits\"\nteam = \"t\"\nkinds = [\"edit\", \"delete\"]\nkeep_days = 300\n\
             [[policy]]\nname = \"other-team\"\nteam = \"u\"\nkeep_days = 1\n",
        );
        assert_eq!(set.policies().len(), 4);
    }

    #[test]
    fn unknown_empty_and_repeated_kinds_are_refused() {
        let message =
            refused_one("version = 1\n[[policy]]\nname = \"a\"\nkinds = [\"post\", \"shout\"]\n");
        assert!(
            message.starts_with(
                "p.toml:4:18: policy \"a\": kinds: unknown kind \"shout\"; expected one of post, edit, delete,"
            ),
            "{message}"
        );
        let message = refused_one("version = 1\n[[policy]]\nname = \"a\"\nkinds = []\n");
        assert_eq!(
            message,
            "p.toml:4:9: policy \"a\": kinds is empty; leave it out to cover every kind"
        );
        let message =
            refused_one("version = 1\n[[policy]]\nname = \"a\"\nkinds = [\"post\", \"post\"]\n");
        assert_eq!(
            message,
            "p.toml:4:18: policy \"a\": kinds: \"post\" is listed twice"
        );
    }

    #[test]
    fn a_floor_above_the_keep_of_the_same_policy_is_refused() {
        let message = refused(&[(
            "eng.toml",
            "version = 1\n[[policy]]\nname = \"x\"\nteam = \"eng\"\nkeep_days = 365\nmin_keep_days = 400\n",
        )]);
        assert_eq!(
            message,
            "eng.toml:6:17: policy \"x\": min_keep_days (400) is greater than keep_days (365)"
        );
        one("version = 1\n[[policy]]\nname = \"x\"\nkeep_days = 400\nmin_keep_days = 400\n");
        one("version = 1\n[[policy]]\nname = \"x\"\nmin_keep_days = 400\n");
    }

    #[test]
    fn numbers_out_of_range_are_refused() {
        for (line, expected) in [
            (
                "keep_days = 36501",
                "keep_days (36501) is out of range: 0 to 36500 days",
            ),
            (
                "keep_days = -1",
                "keep_days (-1) is out of range: 0 to 36500 days",
            ),
            (
                "min_keep_days = 99999999999",
                "min_keep_days (99999999999) is out of range: 0 to 36500 days",
            ),
        ] {
            let message = refused_one(&format!("version = 1\n[[policy]]\nname = \"a\"\n{line}\n"));
            assert!(
                message.starts_with("p.toml:4:") && message.ends_with(expected),
                "{message}"
            );
        }
        one("version = 1\n[[policy]]\nname = \"a\"\nkeep_days = 36500\nmin_keep_days = 0\n");
        one("version = 1\n[[policy]]\nname = \"a\"\nkeep_days = 0\n");
    }

    #[test]
    fn a_specific_keep_below_a_broader_floor_is_refused_naming_both() {
        let message = refused(&[
            (
                "global.toml",
                "version = 1\n[[policy]]\nname = \"global\"\nkeep_days = 2555\nmin_keep_days = 365\n",
            ),
            (
                "sales.toml",
                "version = 1\n[[policy]]\nname = \"sales\"\nteam = \"sales\"\nkinds = [\"post\"]\nkeep_days = 100\n",
            ),
        ]);
        assert_eq!(
            message,
            "sales.toml:6:13: policy \"sales\": keep_days (100) is below min_keep_days (365) of broader policy \"global\" (global.toml:2:1), which also covers kind \"post\""
        );
        // A team floor binds the team's channels.
        let message = refused_one(
            "version = 1\n[[policy]]\nname = \"legal\"\nteam = \"legal\"\nmin_keep_days = 3650\n\
             [[policy]]\nname = \"legal-chat\"\nteam = \"legal\"\nchannel = \"chat\"\nkeep_days = 30\n",
        );
        assert!(
            message.contains("policy \"legal-chat\": keep_days (30) is below min_keep_days (3650) of broader policy \"legal\""),
            "{message}"
        );
        assert!(
            message.ends_with("which also covers every kind"),
            "{message}"
        );
        // At one scope, the kindless policy's floor binds the kind policies.
        let message = refused_one(
            "version = 1\n[[policy]]\nname = \"all\"\nteam = \"t\"\nmin_keep_days = 90\n\
             [[policy]]\nname = \"reactions\"\nteam = \"t\"\nkinds = [\"reaction_add\"]\nkeep_days = 30\n",
        );
        assert!(message.contains("broader policy \"all\""), "{message}");
    }

    #[test]
    fn a_floor_that_covers_other_events_does_not_bind() {
        one(
            // The team floor is on reactions; the channel policy is on posts.
            "version = 1\n[[policy]]\nname = \"reactions\"\nteam = \"t\"\nkinds = [\"reaction_add\"]\nmin_keep_days = 400\n\
             [[policy]]\nname = \"posts\"\nteam = \"t\"\nchannel = \"c\"\nkinds = [\"post\"]\nkeep_days = 30\n\
             [[policy]]\nname = \"other-team\"\nteam = \"u\"\nkeep_days = 1\n\
             [[policy]]\nname = \"kindless\"\nteam = \"t\"\nkeep_days = 30\n",
        );
        // A narrower policy may have a higher floor than a broader keep: it
        // governs its own events.
        one(
            "version = 1\n[[policy]]\nname = \"global\"\nkeep_days = 30\n\
             [[policy]]\nname = \"t\"\nteam = \"t\"\nkeep_days = 900\nmin_keep_days = 900\n",
        );
    }

    // ---- resolving events ----

    fn layered() -> PolicySet {
        parse(&[
            ("a-global.toml", "version = 1\n[[policy]]\nname = \"global\"\nkeep_days = 2555\nmin_keep_days = 365\n"),
            (
                "b-teams.toml",
                "version = 1\n[[policy]]\nname = \"eng\"\nteam = \"eng\"\nkeep_days = 730\nmin_keep_days = 500\n\
                 [[policy]]\nname = \"eng-reactions\"\nteam = \"eng\"\nkinds = [\"reaction_add\", \"reaction_remove\"]\nkeep_days = 600\n",
            ),
            (
                "c-channels.toml",
                "version = 1\n[[policy]]\nname = \"eng-random\"\nteam = \"eng\"\nchannel = \"random\"\nkeep_days = 550\n\
                 [[policy]]\nname = \"eng-random-posts\"\nteam = \"eng\"\nchannel = \"random\"\nkinds = [\"post\"]\nkeep_days = 1000\nmin_keep_days = 800\n",
            ),
        ])
        .unwrap()
    }

    #[test]
    fn the_most_specific_policy_governs() {
        let set = layered();
        assert_eq!(governing(&set, "sales", "general", "post"), "global");
        assert_eq!(governing(&set, "eng", "general", "post"), "eng");
        assert_eq!(
            governing(&set, "eng", "general", "reaction_add"),
            "eng-reactions"
        );
        // A channel policy beats a team policy that lists the kind.
        assert_eq!(
            governing(&set, "eng", "random", "reaction_add"),
            "eng-random"
        );
        assert_eq!(governing(&set, "eng", "random", "edit"), "eng-random");
        assert_eq!(governing(&set, "eng", "random", "post"), "eng-random-posts");
        // Names are exact: another team's channel of the same name is not it.
        assert_eq!(governing(&set, "sales", "random", "post"), "global");
        assert_eq!(governing(&set, "Eng", "random", "post"), "global");
        assert_eq!(set.resolve("eng", "random", "edit").keep_days, Some(550));
        assert!(set.policies()[0].applies_to("x", "y", "post"));
        assert!(!set.policies()[2].applies_to("eng", "y", "post"));
    }

    #[test]
    fn the_floor_is_the_highest_of_every_policy_that_applies() {
        let set = layered();
        let resolved = set.resolve("eng", "random", "edit");
        assert_eq!(resolved.governing.unwrap().name, "eng-random");
        assert_eq!((resolved.keep_days, resolved.floor_days), (Some(550), 500));
        assert_eq!(resolved.floor_policy.unwrap().name, "eng");
        let resolved = set.resolve("eng", "random", "post");
        assert_eq!((resolved.keep_days, resolved.floor_days), (Some(1000), 800));
        assert_eq!(resolved.floor_policy.unwrap().name, "eng-random-posts");
        let resolved = set.resolve("sales", "x", "post");
        assert_eq!(
            (
                resolved.floor_days,
                resolved.floor_policy.unwrap().name.as_str()
            ),
            (365, "global")
        );
        let empty = PolicySet::empty();
        let resolved = empty.resolve("a", "b", "post");
        assert_eq!(
            resolved,
            Resolved {
                governing: None,
                keep_days: None,
                floor_days: 0,
                floor_policy: None
            }
        );
    }

    #[test]
    fn a_policy_without_keep_days_keeps_what_it_governs_forever() {
        let set = one(
            "version = 1\n[[policy]]\nname = \"global\"\nkeep_days = 30\n\
             [[policy]]\nname = \"legal\"\nteam = \"legal\"\nmin_keep_days = 3650\n",
        );
        let resolved = set.resolve("legal", "board", "post");
        assert_eq!(resolved.governing.unwrap().name, "legal");
        assert_eq!((resolved.keep_days, resolved.floor_days), (None, 3650));
        assert_eq!(
            set.is_due(
                "legal",
                "board",
                "post",
                day("2000-01-01"),
                day("2099-01-01")
            ),
            None
        );
        assert!(
            set.is_due("eng", "board", "post", day("2000-01-01"), day("2000-03-01"))
                .is_some()
        );
    }

    #[test]
    fn age_counts_whole_utc_days() {
        assert_eq!(age_days(day("2024-03-01"), day("2024-03-01")), 0);
        assert_eq!(age_days(day("2024-02-28"), day("2024-03-01")), 2); // leap year
        assert_eq!(age_days(day("2023-03-01"), day("2024-03-01")), 366);
        assert_eq!(age_days(day("2024-03-02"), day("2024-03-01")), -1);
    }

    #[test]
    fn an_event_is_due_the_day_after_keep_days_not_on_it() {
        let set = one("version = 1\n[[policy]]\nname = \"month\"\nkeep_days = 30\n");
        let event_day = day("2024-01-01");
        assert_eq!(
            set.is_due("t", "c", "post", event_day, day("2024-01-31")),
            None
        ); // D+30
        let due = set.is_due("t", "c", "post", event_day, day("2024-02-01")); // D+31
        assert_eq!(due.unwrap().name, "month");
        let set = one("version = 1\n[[policy]]\nname = \"zero\"\nkeep_days = 0\n");
        assert_eq!(set.is_due("t", "c", "post", event_day, event_day), None);
        assert!(
            set.is_due("t", "c", "post", event_day, day("2024-01-02"))
                .is_some()
        );
        assert_eq!(
            PolicySet::empty().is_due("t", "c", "post", event_day, day("2999-01-01")),
            None
        );
    }

    #[test]
    fn the_floor_holds_even_against_a_shorter_keep() {
        // Validation makes this impossible within a set; the check stays.
        let resolved = Resolved {
            governing: None,
            keep_days: Some(10),
            floor_days: 20,
            floor_policy: None,
        };
        assert!(!resolved.is_due_at_age(15));
        assert!(!resolved.is_due_at_age(20));
        assert!(resolved.is_due_at_age(21));
        assert_eq!(resolved.due_after_days(), Some(20));
        let set = layered();
        // eng/random edits: keep 550, floor 500 → due at 551.
        let event_day = day("2020-01-01");
        let as_of = |age: i64| event_day + chrono::Days::new(u64::try_from(age).unwrap());
        assert_eq!(
            set.is_due("eng", "random", "edit", event_day, as_of(550)),
            None
        );
        assert!(
            set.is_due("eng", "random", "edit", event_day, as_of(551))
                .is_some()
        );
    }

    #[test]
    fn earliest_and_all_due_ages_cover_every_kind() {
        let set = layered();
        // eng/random: post 1000, everything else 550 → due from 551 / 1001.
        assert_eq!(set.earliest_due_age("eng", "random"), Some(551));
        assert_eq!(set.all_due_age("eng", "random"), Some(1001));
        // eng/general: reactions 600, others 730.
        assert_eq!(set.earliest_due_age("eng", "general"), Some(601));
        assert_eq!(set.all_due_age("eng", "general"), Some(731));
        assert_eq!(set.earliest_due_age("sales", "general"), Some(2556));
        assert_eq!(PolicySet::empty().earliest_due_age("a", "b"), None);
        let set =
            one("version = 1\n[[policy]]\nname = \"posts\"\nkinds = [\"post\"]\nkeep_days = 10\n");
        assert_eq!(set.earliest_due_age("a", "b"), Some(11));
        assert_eq!(set.all_due_age("a", "b"), None);
    }

    // ---- floors ----

    #[test]
    fn floors_list_each_policy_floor_per_kind() {
        let set = layered();
        let floors: Vec<(String, String, u32, String)> = set
            .floors()
            .into_iter()
            .map(|floor| {
                (
                    floor.scope_key,
                    floor.kind,
                    floor.min_keep_days,
                    floor.policy,
                )
            })
            .collect();
        let expected = [
            ("*", "*", 365, "global"),
            ("team:eng", "*", 500, "eng"),
            ("channel:eng/random", "post", 800, "eng-random-posts"),
        ];
        assert_eq!(
            floors,
            expected
                .map(|(scope, kind, days, policy)| (
                    scope.to_owned(),
                    kind.to_owned(),
                    days,
                    policy.to_owned()
                ))
                .to_vec()
        );
        assert_eq!(set.floors()[1].source, "b-teams.toml");
        let set = one(
            "version = 1\n[[policy]]\nname = \"r\"\nteam = \"a/b%\"\nkinds = [\"reaction_add\", \"reaction_remove\"]\nmin_keep_days = 7\n",
        );
        let floors = set.floors();
        assert_eq!(floors.len(), 2);
        assert_eq!(
            (floors[0].scope_key.as_str(), floors[0].kind.as_str()),
            ("team:a%2Fb%25", "reaction_add")
        );
        assert_eq!(floors[1].kind, "reaction_remove");
    }

    #[test]
    fn raising_a_floor_is_not_a_lowering() {
        let applied = layered().floors();
        let raised = parse(&[(
            "p.toml",
            "version = 1\n[[policy]]\nname = \"global\"\nkeep_days = 2555\nmin_keep_days = 400\n\
             [[policy]]\nname = \"eng\"\nteam = \"eng\"\nkeep_days = 900\nmin_keep_days = 900\n",
        )])
        .unwrap();
        assert_eq!(lowered_floors(&applied, &raised), Vec::new());
        assert_eq!(lowered_floors(&applied, &layered()), Vec::new());
    }

    #[test]
    fn a_lowered_or_removed_floor_is_reported() {
        let applied = layered().floors();
        let new = one(
            "version = 1\n[[policy]]\nname = \"global-2\"\nkeep_days = 2555\nmin_keep_days = 300\n\
             [[policy]]\nname = \"eng\"\nteam = \"eng\"\nkeep_days = 730\nmin_keep_days = 500\n",
        );
        assert_eq!(
            lowered_floors(&applied, &new),
            vec![
                FloorChange {
                    scope_key: "*".to_owned(),
                    kind: "*".to_owned(),
                    old_days: 365,
                    new_days: 300,
                    old_policy: "global".to_owned(),
                    new_policy: Some("global-2".to_owned()),
                },
                // The channel's post floor is gone; the team floor still gives 500.
                FloorChange {
                    scope_key: "channel:eng/random".to_owned(),
                    kind: "post".to_owned(),
                    old_days: 800,
                    new_days: 500,
                    old_policy: "eng-random-posts".to_owned(),
                    new_policy: Some("eng".to_owned()),
                },
            ]
        );
        let changes = lowered_floors(&applied, &PolicySet::empty());
        assert_eq!(changes.len(), 3);
        assert!(
            changes
                .iter()
                .all(|change| change.new_days == 0 && change.new_policy.is_none())
        );
        assert_eq!(changes[1].old_days, 500);
    }

    #[test]
    fn a_floor_moved_to_a_broader_scope_is_not_a_lowering() {
        let applied = one(
            "version = 1\n[[policy]]\nname = \"c\"\nteam = \"t\"\nchannel = \"c\"\nmin_keep_days = 400\n",
        )
        .floors();
        let broader = one("version = 1\n[[policy]]\nname = \"global\"\nmin_keep_days = 400\n");
        assert_eq!(lowered_floors(&applied, &broader), Vec::new());
        // Narrowed to some kinds: the others lost it.
        let narrowed = one(
            "version = 1\n[[policy]]\nname = \"c\"\nteam = \"t\"\nchannel = \"c\"\nkinds = [\"post\"]\nmin_keep_days = 400\n",
        );
        let changes = lowered_floors(&applied, &narrowed);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].old_days, changes[0].new_days), (400, 0));
        // A floor on another team does not count.
        let elsewhere = one(
            "version = 1\n[[policy]]\nname = \"c\"\nteam = \"u\"\nchannel = \"c\"\nmin_keep_days = 400\n",
        );
        assert_eq!(lowered_floors(&applied, &elsewhere).len(), 1);
    }

    #[test]
    fn an_unreadable_applied_floor_counts_as_lowered() {
        let applied = vec![Floor {
            scope_key: "bogus".to_owned(),
            kind: "*".to_owned(),
            min_keep_days: 10,
            policy: "p".to_owned(),
            source: "p.toml".to_owned(),
        }];
        let everything = one("version = 1\n[[policy]]\nname = \"g\"\nmin_keep_days = 100\n");
        assert_eq!(lowered_floors(&applied, &everything)[0].new_days, 0);
        assert!(scope_key_matches("bogus", "*", "t", "c", "post"));
    }

    #[test]
    fn scope_keys_match_the_events_they_cover() {
        assert!(scope_key_matches("*", "*", "t", "c", "post"));
        assert!(scope_key_matches("*", "post", "t", "c", "post"));
        assert!(!scope_key_matches("*", "edit", "t", "c", "post"));
        assert!(scope_key_matches("team:t", "*", "t", "c", "post"));
        assert!(!scope_key_matches("team:t", "*", "u", "c", "post"));
        assert!(scope_key_matches("channel:t/c", "post", "t", "c", "post"));
        assert!(!scope_key_matches("channel:t/c", "*", "t", "d", "post"));
        // Names with `/` and `%` are escaped, so keys stay unambiguous.
        let set = one(
            "version = 1\n[[policy]]\nname = \"x\"\nteam = \"a/b\"\nchannel = \"c%\"\nmin_keep_days = 1\n",
        );
        let key = set.policies()[0].scope_key();
        assert_eq!(key, "channel:a%2Fb/c%25");
        assert!(scope_key_matches(&key, "*", "a/b", "c%", "post"));
        assert!(!scope_key_matches(&key, "*", "a", "b/c%", "post"));
        for bad in [
            "team:",
            "channel:t",
            "channel:t/c/d",
            "team:%zz",
            "team:a%2",
            "everything",
        ] {
            assert_eq!(OwnedScope::parse(bad), None, "{bad}");
        }
    }

    // ---- files and digest ----

    #[test]
    fn the_shipped_examples_load_and_resolve() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let set = PolicySet::load_dir(&dir).unwrap();
        assert_eq!(set.policies().len(), 6);
        assert_eq!(set.policies()[0].source, "channels.toml");
        let check =
            |team: &str, channel: &str, kind: &str, policy: &str, keep: Option<u32>, floor: u32| {
                let resolved = set.resolve(team, channel, kind);
                assert_eq!(
                    resolved.governing.unwrap().name,
                    policy,
                    "{team}/{channel} {kind}"
                );
                assert_eq!(
                    (resolved.keep_days, resolved.floor_days),
                    (keep, floor),
                    "{team}/{channel} {kind}"
                );
            };
        check(
            "acme",
            "general",
            "post",
            "global-seven-years",
            Some(2555),
            365,
        );
        check("sales", "deals", "post", "sales-two-years", Some(730), 365);
        check(
            "sales",
            "deals",
            "reaction_add",
            "sales-reactions-one-year",
            Some(365),
            365,
        );
        check(
            "sales",
            "random",
            "reaction_add",
            "sales-random",
            Some(400),
            400,
        );
        check("legal", "board", "post", "legal-forever", None, 3650);
        check(
            "eng",
            "incidents",
            "edit",
            "eng-incidents-ten-years",
            Some(3650),
            3650,
        );
        assert_eq!(set.earliest_due_age("sales", "deals"), Some(366));
        assert_eq!(set.earliest_due_age("legal", "board"), None);
        let posted = day("2022-01-01");
        assert_eq!(
            set.is_due("sales", "deals", "post", posted, day("2024-01-01")),
            None
        ); // 730
        assert_eq!(
            set.is_due("sales", "deals", "post", posted, day("2024-01-02"))
                .unwrap()
                .name,
            "sales-two-years"
        );
    }

    #[test]
    fn load_dir_reads_sorted_toml_files_only() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            PolicySet::load_dir(dir.path())
                .unwrap()
                .policies()
                .is_empty()
        );
        std::fs::write(
            dir.path().join("b.toml"),
            "version = 1\n[[policy]]\nname = \"b\"\nteam = \"b\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.toml"),
            "version = 1\n[[policy]]\nname = \"a\"\nteam = \"a\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not a policy").unwrap();
        std::fs::write(dir.path().join("c.toml.bak"), "not = a policy").unwrap();
        std::fs::create_dir(dir.path().join("sub.toml")).unwrap();
        std::fs::write(dir.path().join("sub.toml").join("d.toml"), "broken").unwrap();
        let set = PolicySet::load_dir(dir.path()).unwrap();
        let names: Vec<&str> = set
            .policies()
            .iter()
            .map(|policy| policy.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(set.policies()[1].source, "b.toml");
    }

    #[test]
    fn load_dir_errors_name_the_directory_or_the_file_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let message = PolicySet::load_dir(&missing).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!(
                "cannot read policy directory {}: ",
                missing.display()
            )),
            "{message}"
        );
        std::fs::write(
            dir.path().join("a.toml"),
            "version = 1\n[[policy]]\nname = \"x\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            "version = 1\n[[policy]]\nname = \"x\"\nteam = \"t\"\n",
        )
        .unwrap();
        let message = PolicySet::load_dir(dir.path()).unwrap_err().to_string();
        let a = dir.path().join("a.toml");
        let b = dir.path().join("b.toml");
        assert_eq!(
            message,
            format!(
                "{}:3:8: policy \"x\": name is already used by the policy at {}:3:8",
                b.display(),
                a.display()
            )
        );
    }

    #[test]
    fn the_digest_covers_names_and_texts_in_order() {
        let text = "version = 1\n[[policy]]\nname = \"a\"\nkeep_days = 1\n";
        let base = parse(&[("a.toml", text)]).unwrap();
        assert_eq!(base.digest().len(), 64);
        assert_eq!(base.digest(), parse(&[("a.toml", text)]).unwrap().digest());
        assert_ne!(base.digest(), parse(&[("b.toml", text)]).unwrap().digest());
        let edited = text.replace("keep_days = 1", "keep_days = 2");
        assert_ne!(
            base.digest(),
            parse(&[("a.toml", &edited)]).unwrap().digest()
        );
        // Moving bytes between name and text changes it too.
        let empty = "version = 1\n";
        assert_ne!(
            parse(&[("a.toml", empty), ("b.toml", empty)])
                .unwrap()
                .digest(),
            parse(&[("b.toml", empty), ("a.toml", empty)])
                .unwrap()
                .digest()
        );
        assert_eq!(
            PolicySet::empty().digest(),
            hex::encode(Sha256::digest(b""))
        );
        // Wherever the directory is, the same files give the same digest.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), text).unwrap();
        assert_eq!(
            PolicySet::load_dir(dir.path()).unwrap().digest(),
            base.digest()
        );
    }

    #[test]
    fn a_policy_serializes_for_certificates() {
        let set = layered();
        let json = serde_json::to_value(&set.policies()[2]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "eng-reactions", "source": "b-teams.toml", "line": 7,
                "team": "eng", "channel": null, "kinds": ["reaction_add", "reaction_remove"],
                "keep_days": 600, "min_keep_days": 0
            })
        );
    }
}
