//! The audit trail: every look at the archive, recorded and hash-chained.
//!
//! Callers (the HTTP API, the CLI) describe each request as an
//! [`AuditEntry`] (who, role, client address, action, parameters, outcome,
//! time) and [`AuditLog::append`] it before answering. An append returns
//! only once the record is committed; if it fails, the caller must fail the
//! request: there is no unaudited access.
//!
//! Records are numbered (`seq` 1, 2, 3, ... with no gaps) and chained: each
//! stores the previous record's hash and its own, an HMAC-SHA-256 under the
//! archive's audit key (a file outside the database, [`AuditKey`]) of its
//! canonical encoding ([`ChainFields::encode`]). [`verify`] recomputes
//! every hash and link and names the record that was altered, removed or
//! moved; an [`ExpectedHead`] recorded elsewhere also catches a truncated
//! tail.
//! `docs/audit.md` is the operator's side of this.
//!
//! Invariants:
//! - The trail is never deleted or changed: there is no update and no
//!   delete function, here or in `db::audit`, and retention never touches
//!   it. Only appends, [`query`], [`export_csv`] and [`verify`] exist.
//! - One linear chain: appends go through one writer task per [`AuditLog`]
//!   and are serialized across logs, processes and nodes by the database
//!   (the head row's lock), so two records never share a `seq` or a
//!   `prev_hash`.
//! - An append is acknowledged only after its transaction commits; a record
//!   is in the trail exactly when its append returned `Ok` (or its caller
//!   went away after handing it over).
//! - The canonical encoding of version 1 is frozen (`chain.rs`).
//! - The audit key is never logged, printed or stored in the database (only
//!   its fingerprint is).
//! - Depends on `db` (and `store::keys` for syncing a new key file's
//!   directory), never on `api` or `cli`.

mod chain;
mod query;
mod verify;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::db::audit::{AuditHeadRow, AuditRow};
use crate::db::{Db, DbError};

pub use chain::{AUDIT_KEY_FILE, AuditHash, AuditHead, AuditKey, ChainFields, ExpectedHead};
pub use query::{
    AuditFilter, CSV_HEADER, DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, export_csv, format_time,
    parse_time, query,
};
pub use verify::{AuditProblem, AuditVerification, MAX_REPORTED_PROBLEMS, VerifyOptions, verify};

/// Longest `actor`, `role` or `client`, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest `detail`, in bytes.
pub const MAX_DETAIL_BYTES: usize = 4 * 1024;
/// Longest parameters (as JSON text), in bytes.
pub const MAX_PARAMS_BYTES: usize = 64 * 1024;

/// At most this many entries go into one transaction.
const MAX_BATCH_ENTRIES: usize = 512;
/// Requests waiting for the writer before appends wait for room.
const QUEUE_DEPTH: usize = 4096;

/// What was done. Stored by its stable snake_case name ([`AuditAction::as_str`]);
/// add variants at the end, never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Login,
    LoginFailed,
    Logout,
    Search,
    ViewEvent,
    ViewPost,
    ViewContext,
    ExportCreate,
    ExportDownload,
    HoldCreate,
    HoldRelease,
    PolicyRun,
    KeyRotation,
    UserChange,
    TokenCreate,
    TokenRevoke,
    Ingest,
    AuditRead,
    AuditExport,
    AuditVerify,
    ConfigChange,
    HoldList,
    HoldView,
    RetentionPlan,
    RetentionView,
    PolicyRefused,
    RetentionCompact,
    ExportComplete,
    ExportCancel,
    ExportView,
    /// The teams, channels and people of the caller's scope (the console's filters).
    SearchFacets,
}

impl AuditAction {
    /// Every action, in declaration order.
    pub const ALL: [AuditAction; 31] = [
        AuditAction::Login,
        AuditAction::LoginFailed,
        AuditAction::Logout,
        AuditAction::Search,
        AuditAction::ViewEvent,
        AuditAction::ViewPost,
        AuditAction::ViewContext,
        AuditAction::ExportCreate,
        AuditAction::ExportDownload,
        AuditAction::HoldCreate,
        AuditAction::HoldRelease,
        AuditAction::PolicyRun,
        AuditAction::KeyRotation,
        AuditAction::UserChange,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
        AuditAction::Ingest,
        AuditAction::AuditRead,
        AuditAction::AuditExport,
        AuditAction::AuditVerify,
        AuditAction::ConfigChange,
        AuditAction::HoldList,
        AuditAction::HoldView,
        AuditAction::RetentionPlan,
        AuditAction::RetentionView,
        AuditAction::PolicyRefused,
        AuditAction::RetentionCompact,
        AuditAction::ExportComplete,
        AuditAction::ExportCancel,
        AuditAction::ExportView,
        AuditAction::SearchFacets,
    ];

    /// The stored name (the same as serde's).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Login => "login",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::Logout => "logout",
            AuditAction::Search => "search",
            AuditAction::ViewEvent => "view_event",
            AuditAction::ViewPost => "view_post",
            AuditAction::ViewContext => "view_context",
            AuditAction::ExportCreate => "export_create",
            AuditAction::ExportDownload => "export_download",
            AuditAction::HoldCreate => "hold_create",
            AuditAction::HoldRelease => "hold_release",
            AuditAction::PolicyRun => "policy_run",
            AuditAction::KeyRotation => "key_rotation",
            AuditAction::UserChange => "user_change",
            AuditAction::TokenCreate => "token_create",
            AuditAction::TokenRevoke => "token_revoke",
            AuditAction::Ingest => "ingest",
            AuditAction::AuditRead => "audit_read",
            AuditAction::AuditExport => "audit_export",
            AuditAction::AuditVerify => "audit_verify",
            AuditAction::ConfigChange => "config_change",
            AuditAction::HoldList => "hold_list",
            AuditAction::HoldView => "hold_view",
            AuditAction::RetentionPlan => "retention_plan",
            AuditAction::RetentionView => "retention_view",
            AuditAction::PolicyRefused => "policy_refused",
            AuditAction::RetentionCompact => "retention_compact",
            AuditAction::ExportComplete => "export_complete",
            AuditAction::ExportCancel => "export_cancel",
            AuditAction::ExportView => "export_view",
            AuditAction::SearchFacets => "search_facets",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditAction {
    type Err = AuditError;

    fn from_str(name: &str) -> Result<AuditAction, AuditError> {
        AuditAction::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
            .ok_or_else(|| AuditError::UnknownAction {
                name: name.to_owned(),
            })
    }
}

/// How the request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Done.
    Ok,
    /// Refused: not authenticated, or not allowed.
    Denied,
    /// Refused as invalid (a bad query, a wrong password).
    Failed,
    /// Went wrong on our side.
    Error,
}

impl AuditOutcome {
    pub const ALL: [AuditOutcome; 4] = [
        AuditOutcome::Ok,
        AuditOutcome::Denied,
        AuditOutcome::Failed,
        AuditOutcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
            AuditOutcome::Error => "error",
        }
    }
}

impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditOutcome {
    type Err = AuditError;

    fn from_str(name: &str) -> Result<AuditOutcome, AuditError> {
        AuditOutcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == name)
            .ok_or_else(|| AuditError::UnknownOutcome {
                name: name.to_owned(),
            })
    }
}

/// One request to record, as the caller describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The username or token name, or `anonymous`. Not empty.
    pub actor: String,
    /// The role the request was made with; empty is none.
    pub role: Option<String>,
    /// The client's address (`127.0.0.1`), or `cli`; empty is none.
    pub client: Option<String>,
    pub action: AuditAction,
    /// What was asked: query text, ids, hit counts... Untrusted input
    /// belongs here (JSON escapes anything).
    pub params: serde_json::Value,
    pub outcome: AuditOutcome,
    /// Why it was denied or failed, for example; empty is none.
    pub detail: Option<String>,
    /// When it happened; `None`: the log's clock when the record is written.
    /// Kept to the microsecond.
    pub at: Option<DateTime<Utc>>,
}

impl AuditEntry {
    /// An entry with outcome `ok`, no parameters (`{}`) and no time (the
    /// log's clock stamps it).
    pub fn new(actor: impl Into<String>, action: AuditAction) -> AuditEntry {
        AuditEntry {
            actor: actor.into(),
            role: None,
            client: None,
            action,
            params: serde_json::Value::Object(serde_json::Map::new()),
            outcome: AuditOutcome::Ok,
            detail: None,
            at: None,
        }
    }

    pub fn role(mut self, role: impl Into<String>) -> AuditEntry {
        self.role = Some(role.into());
        self
    }

    pub fn client(mut self, client: impl Into<String>) -> AuditEntry {
        self.client = Some(client.into());
        self
    }

    pub fn params(mut self, params: serde_json::Value) -> AuditEntry {
        self.params = params;
        self
    }

    pub fn outcome(mut self, outcome: AuditOutcome) -> AuditEntry {
        self.outcome = outcome;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> AuditEntry {
        self.detail = Some(detail.into());
        self
    }

    pub fn at(mut self, at: DateTime<Utc>) -> AuditEntry {
        self.at = Some(at);
        self
    }

    /// Checks the limits and serializes the parameters. An empty `role`,
    /// `client` or `detail` is stored as none (so a CSV export, where both
    /// are an empty cell, keeps enough to recompute every hash).
    fn validate(mut self) -> Result<ValidEntry, AuditError> {
        for optional in [&mut self.role, &mut self.client, &mut self.detail] {
            if optional.as_deref() == Some("") {
                *optional = None;
            }
        }
        let invalid =
            |field: &'static str, reason: String| AuditError::InvalidEntry { field, reason };
        let check = |field: &'static str, text: &str, max: usize| {
            if text.len() > max {
                return Err(invalid(
                    field,
                    format!("is {} bytes long, at most {max} are allowed", text.len()),
                ));
            }
            if text.contains('\0') {
                return Err(invalid(field, "contains a NUL character".to_owned()));
            }
            Ok(())
        };
        if self.actor.is_empty() {
            return Err(invalid("actor", "is empty (use \"anonymous\")".to_owned()));
        }
        check("actor", &self.actor, MAX_NAME_BYTES)?;
        if let Some(role) = &self.role {
            check("role", role, MAX_NAME_BYTES)?;
        }
        if let Some(client) = &self.client {
            check("client", client, MAX_NAME_BYTES)?;
        }
        if let Some(detail) = &self.detail {
            check("detail", detail, MAX_DETAIL_BYTES)?;
        }
        let params_json =
            serde_json::to_string(&self.params).expect("a JSON value always serializes");
        if params_json.len() > MAX_PARAMS_BYTES {
            return Err(invalid(
                "params",
                format!(
                    "are {} bytes of JSON, at most {MAX_PARAMS_BYTES} are allowed",
                    params_json.len()
                ),
            ));
        }
        let at = self
            .at
            .map(|at| {
                DateTime::from_timestamp_micros(at.timestamp_micros())
                    .ok_or_else(|| invalid("at", "is out of range".to_owned()))
            })
            .transpose()?;
        Ok(ValidEntry {
            entry: self,
            params_json,
            at,
        })
    }
}

/// An entry that passed validation, with its parameters' JSON text.
#[derive(Debug)]
struct ValidEntry {
    entry: AuditEntry,
    params_json: String,
    /// `entry.at` truncated to the microsecond.
    at: Option<DateTime<Utc>>,
}

/// One record of the trail.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: Option<String>,
    pub client: Option<String>,
    pub action: AuditAction,
    pub params: serde_json::Value,
    /// `params` as the JSON text that was stored and hashed.
    pub params_json: String,
    pub outcome: AuditOutcome,
    pub detail: Option<String>,
    pub prev_hash: AuditHash,
    pub hash: AuditHash,
}

impl AuditRecord {
    /// This record as a head (`seq`, hash), to keep outside the server.
    pub fn head(&self) -> AuditHead {
        AuditHead {
            seq: self.seq,
            hash: self.hash,
        }
    }
}

/// The key to append to the trail in `db` with: the key file at `path`, or
/// a new one (written there, mode 0600; `true` returned) when the trail was
/// never started. A trail started with a key whose file is now missing is
/// an error: a new key could never continue it, and writing one would only
/// hide the loss.
pub async fn key_for_appending(
    db: &Db,
    path: &std::path::Path,
) -> Result<(AuditKey, bool), AuditError> {
    let exists = path.try_exists().map_err(|error| AuditError::KeyFile {
        path: path.display().to_string(),
        reason: error.to_string(),
    })?;
    if exists {
        return Ok((AuditKey::load(path)?, false));
    }
    if let Some(fingerprint) = db.audit_head().await?.and_then(|head| head.key_fingerprint) {
        return Err(AuditError::KeyFile {
            path: path.display().to_string(),
            reason: format!(
                "is missing, but the audit trail was started with key {fingerprint}: restore the file from your backup (a new key cannot continue the trail)"
            ),
        });
    }
    AuditKey::load_or_create(path)
}

/// Errors of the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// An entry breaks a limit; nothing was written.
    #[error("invalid audit entry: {field} {reason}")]
    InvalidEntry { field: &'static str, reason: String },
    /// An action name that is not an [`AuditAction`].
    #[error("unknown audit action {name:?}; known actions: {}", action_names())]
    UnknownAction { name: String },
    /// An outcome name that is not an [`AuditOutcome`].
    #[error("unknown audit outcome {name:?}; known outcomes: ok, denied, failed, error")]
    UnknownOutcome { name: String },
    /// A filter that cannot be meant (a reversed range, a limit out of bounds).
    #[error("invalid audit filter: {0}")]
    BadFilter(String),
    #[error(
        "invalid time {text:?}: expected RFC 3339 (2024-05-01T09:30:00Z) or a date (2024-05-01)"
    )]
    BadTime { text: String },
    #[error("invalid audit head {text:?}: expected SEQ:HASH or HASH (64 hex digits)")]
    BadHead { text: String },
    /// The records were not written (nothing of the batch was): the request
    /// they describe must fail.
    #[error("the audit record was not written: {0}")]
    AppendFailed(#[source] Arc<AuditError>),
    /// The writer task is gone (the log was shut down, or it panicked).
    #[error("the audit log is closed")]
    Closed,
    #[error(transparent)]
    Db(#[from] DbError),
    /// The chain's head row is missing: the audit tables were altered.
    #[error("the audit trail's head row is missing: the audit tables were altered")]
    HeadMissing,
    /// The head row does not match the key, or is inconsistent.
    #[error("the audit trail's head row is damaged: {0}")]
    HeadDamaged(String),
    /// The key is not the one the trail was started with.
    #[error(
        "the audit key does not match this trail: the trail was started with key {expected}, the key given has fingerprint {actual}"
    )]
    WrongKey { expected: String, actual: String },
    #[error("audit key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    /// A stored record that does not decode (verification says more).
    #[error("audit record {seq} cannot be read: {what}")]
    CorruptRecord { seq: i64, what: String },
    #[error("cannot write the audit export: {0}")]
    Io(#[source] std::io::Error),
    #[error("cannot write the audit export: {0}")]
    Csv(#[from] csv::Error),
}

fn action_names() -> String {
    AuditAction::ALL.map(AuditAction::as_str).join(", ")
}

/// The time source for entries without a time.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// The audit trail of one archive: appends go through one writer task
/// (which batches whatever is waiting into one transaction); queries and
/// verification read the database directly. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    db: Db,
    key: Arc<AuditKey>,
    sender: mpsc::Sender<AppendRequest>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("backend", &self.db.backend())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

struct AppendRequest {
    entries: Vec<ValidEntry>,
    reply: oneshot::Sender<Result<Vec<AuditRecord>, AuditError>>,
}

impl AuditLog {
    /// Opens the trail with `key` and the system clock. The first opener
    /// of an empty trail records the key's fingerprint; afterwards only
    /// that key opens it.
    pub async fn open(db: Db, key: AuditKey) -> Result<AuditLog, AuditError> {
        AuditLog::open_with_clock(db, key, system_clock()).await
    }

    /// As [`AuditLog::open`], stamping entries without a time with `clock`.
    pub async fn open_with_clock(
        db: Db,
        key: AuditKey,
        clock: Clock,
    ) -> Result<AuditLog, AuditError> {
        let head = db
            .audit_claim_key(key.fingerprint())
            .await?
            .ok_or(AuditError::HeadMissing)?;
        check_head(&head, &key)?;
        let key = Arc::new(key);
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run_writer(db.clone(), Arc::clone(&key), clock, receiver));
        Ok(AuditLog { db, key, sender })
    }

    /// Records one entry. Returns once the record is committed; an error
    /// means it was not recorded and the request must fail.
    pub async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, AuditError> {
        let mut records = self.append_batch(vec![entry]).await?;
        Ok(records.pop().expect("one record per entry"))
    }

    /// Records several entries with consecutive `seq`s, all or none.
    pub async fn append_batch(
        &self,
        entries: Vec<AuditEntry>,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let entries = entries
            .into_iter()
            .map(AuditEntry::validate)
            .collect::<Result<Vec<_>, _>>()?;
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(AppendRequest { entries, reply })
            .await
            .map_err(|_| AuditError::Closed)?;
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// The current head (last `seq` and hash) as the database has it.
    pub async fn head(&self) -> Result<AuditHead, AuditError> {
        let head = self.db.audit_head().await?.ok_or(AuditError::HeadMissing)?;
        head_from_row(&head)
    }

    /// See [`query()`].
    pub async fn query(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
        query::query(&self.db, filter).await
    }

    /// See [`export_csv()`].
    pub async fn export_csv<W>(
        &self,
        filter: &AuditFilter,
        writer: &mut W,
    ) -> Result<u64, AuditError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        query::export_csv(&self.db, filter, writer).await
    }

    /// See [`verify()`].
    pub async fn verify(&self, options: &VerifyOptions) -> Result<AuditVerification, AuditError> {
        verify::verify(&self.db, &self.key, options).await
    }

    pub fn key_fingerprint(&self) -> &str {
        self.key.fingerprint()
    }
}

/// The head row must name `key` (or be an empty trail not yet claimed).
fn check_head(head: &AuditHeadRow, key: &AuditKey) -> Result<(), AuditError> {
    match &head.key_fingerprint {
        Some(fingerprint) if fingerprint == key.fingerprint() => Ok(()),
        Some(fingerprint) => Err(AuditError::WrongKey {
            expected: fingerprint.clone(),
            actual: key.fingerprint().to_owned(),
        }),
        None => Err(AuditError::HeadDamaged(format!(
            "it holds {} records but no key fingerprint",
            head.seq
        ))),
    }
}

fn head_from_row(head: &AuditHeadRow) -> Result<AuditHead, AuditError> {
    Ok(AuditHead {
        seq: u64::try_from(head.seq)
            .map_err(|_| AuditError::HeadDamaged(format!("seq {} is negative", head.seq)))?,
        hash: AuditHash::from_slice(&head.hash)
            .ok_or_else(|| AuditError::HeadDamaged("its hash is not 32 bytes".to_owned()))?,
    })
}

/// The writer task: takes whatever requests are waiting (up to
/// [`MAX_BATCH_ENTRIES`] entries), commits them in one transaction and
/// answers each. A failed commit fails that batch only; the next one
/// starts again from the head in the database.
async fn run_writer(
    db: Db,
    key: Arc<AuditKey>,
    clock: Clock,
    mut receiver: mpsc::Receiver<AppendRequest>,
) {
    while let Some(first) = receiver.recv().await {
        let mut n_entries = first.entries.len();
        let mut batch = vec![first];
        while n_entries < MAX_BATCH_ENTRIES {
            match receiver.try_recv() {
                Ok(request) => {
                    n_entries += request.entries.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        let entries: Vec<&ValidEntry> = batch
            .iter()
            .flat_map(|request| request.entries.iter())
            .collect();
        match commit(&db, &key, &clock, &entries).await {
            Ok(mut records) => {
                tracing::debug!(
                    n_records = records.len(),
                    head_seq = records.last().map(|record| record.seq),
                    "audit records appended"
                );
                for request in batch.into_iter().rev() {
                    let theirs = records.split_off(records.len() - request.entries.len());
                    // A caller that went away still had its record written.
                    let _ = request.reply.send(Ok(theirs));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, n_entries, "audit append failed");
                let error = Arc::new(error);
                for request in batch {
                    let _ = request
                        .reply
                        .send(Err(AuditError::AppendFailed(Arc::clone(&error))));
                }
            }
        }
    }
}

/// Appends `entries` in one transaction, chained from the head read under
/// the chain's lock.
async fn commit(
    db: &Db,
    key: &AuditKey,
    clock: &Clock,
    entries: &[&ValidEntry],
) -> Result<Vec<AuditRecord>, AuditError> {
    let rows = db
        .audit_append(|head: Option<AuditHeadRow>| {
            let head = head.ok_or(AuditError::HeadMissing)?;
            check_head(&head, key)?;
            let mut last = head_from_row(&head)?;
            // Stamped under the lock: records without a caller's time get
            // times in `seq` order (as far as the clock goes forward).
            let now = clock();
            let now_us = now.timestamp_micros();
            let mut rows = Vec::with_capacity(entries.len());
            for valid in entries {
                let entry = &valid.entry;
                let seq = last.seq + 1;
                let at_us = valid.at.map_or(now_us, |at| at.timestamp_micros());
                let hash = key.chain_hash(&ChainFields {
                    seq,
                    prev_hash: &last.hash,
                    at_us,
                    actor: &entry.actor,
                    role: entry.role.as_deref(),
                    client: entry.client.as_deref(),
                    action: entry.action.as_str(),
                    params: &valid.params_json,
                    outcome: entry.outcome.as_str(),
                    detail: entry.detail.as_deref(),
                });
                rows.push(AuditRow {
                    seq: i64::try_from(seq).map_err(|_| {
                        AuditError::HeadDamaged(format!("seq {seq} is out of range"))
                    })?,
                    at_us,
                    actor: entry.actor.clone(),
                    role: entry.role.clone(),
                    client: entry.client.clone(),
                    action: entry.action.as_str().to_owned(),
                    params: valid.params_json.clone(),
                    outcome: entry.outcome.as_str().to_owned(),
                    detail: entry.detail.clone(),
                    prev_hash: last.hash.0.to_vec(),
                    hash: hash.0.to_vec(),
                });
                last = AuditHead { seq, hash };
            }
            Ok::<_, AuditError>(rows)
        })
        .await?;
    Ok(rows
        .into_iter()
        .zip(entries)
        .map(|(row, valid)| AuditRecord {
            seq: row.seq as u64,
            at: DateTime::from_timestamp_micros(row.at_us)
                .expect("times were validated or come from the clock"),
            actor: row.actor,
            role: row.role,
            client: row.client,
            action: valid.entry.action,
            params: valid.entry.params.clone(),
            params_json: row.params,
            outcome: valid.entry.outcome,
            detail: row.detail,
            prev_hash: AuditHash::from_slice(&row.prev_hash).expect("32 bytes, made above"),
            hash: AuditHash::from_slice(&row.hash).expect("32 bytes, made above"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_stable_and_match_serde() {
        for action in AuditAction::ALL {
            let serde_name = serde_json::to_value(action).expect("serializes");
            assert_eq!(serde_name, serde_json::json!(action.as_str()));
            assert_eq!(
                action.as_str().parse::<AuditAction>().expect("parses"),
                action
            );
        }
        for outcome in AuditOutcome::ALL {
            let serde_name = serde_json::to_value(outcome).expect("serializes");
            assert_eq!(serde_name, serde_json::json!(outcome.as_str()));
            assert_eq!(
                outcome.as_str().parse::<AuditOutcome>().expect("parses"),
                outcome
            );
        }
    }

    #[test]
    fn unknown_names_are_clear_errors() {
        let error = "serach".parse::<AuditAction>().expect_err("unknown");
        let message = error.to_string();
        assert!(message.contains("\"serach\""), "{message}");
        assert!(message.contains("search, view_event"), "{message}");
        let error = "OK".parse::<AuditOutcome>().expect_err("case matters");
        assert!(error.to_string().contains("ok, denied, failed, error"));
    }

    #[test]
    fn entries_are_validated() {
        let ok = AuditEntry::new("maria", AuditAction::Search);
        assert!(ok.clone().validate().is_ok());
        let cases = [
            (AuditEntry::new("", AuditAction::Login), "actor"),
            (AuditEntry::new("a\0b", AuditAction::Login), "actor"),
            (ok.clone().role("x".repeat(MAX_NAME_BYTES + 1)), "role"),
            (ok.clone().client("\0"), "client"),
            (
                ok.clone().detail("d".repeat(MAX_DETAIL_BYTES + 1)),
                "detail",
            ),
            (
                ok.clone()
                    .params(serde_json::json!({ "q": "x".repeat(MAX_PARAMS_BYTES) })),
                "params",
            ),
        ];
        for (entry, field) in cases {
            match entry.validate() {
                Err(AuditError::InvalidEntry { field: found, .. }) => assert_eq!(found, field),
                other => panic!("expected an invalid {field}, got {other:?}"),
            }
        }
        // Empty optional fields are none.
        let valid = ok
            .clone()
            .role("")
            .client("")
            .detail("")
            .validate()
            .expect("valid");
        assert_eq!(
            (valid.entry.role, valid.entry.client, valid.entry.detail),
            (None, None, None)
        );
        // NUL inside params is fine: JSON escapes it.
        let entry = ok.params(serde_json::json!({ "username": "a\u{0}b" }));
        let valid = entry.validate().expect("valid");
        assert!(valid.params_json.contains("\\u0000"));
    }

    #[test]
    fn times_are_kept_to_the_microsecond() {
        let at = DateTime::from_timestamp(1_714_555_800, 123_456_789).expect("valid");
        let valid = AuditEntry::new("maria", AuditAction::Search)
            .at(at)
            .validate()
            .expect("valid");
        assert_eq!(
            valid.at.expect("set").timestamp_nanos_opt(),
            Some(1_714_555_800_123_456_000)
        );
    }
}
