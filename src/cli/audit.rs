//! `holdfast audit`: read, export and verify the audit trail from the
//! command line; and [`CliAudit`], through which every CLI command that
//! changes something records what it did.
//!
//! Every record written from here has client `cli` and, as actor, the
//! operating-system user (`$USER`, or `cli` when it is unset). Reading the
//! trail is itself recorded (`audit_read`, `audit_export`, `audit_verify`).
//! This module must never put a password or a token into a record or its
//! output, and never create an audit key for a trail that already has one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::audit::{
    AUDIT_KEY_FILE, AuditAction, AuditEntry, AuditError, AuditFilter, AuditKey, AuditLog,
    AuditOutcome, AuditProblem, AuditRecord, AuditVerification, ExpectedHead, VerifyOptions,
    format_time, parse_time,
};
use crate::config::Config;
use crate::db::Db;

/// The `client` of every record the command line writes.
pub(super) const CLI_CLIENT: &str = "cli";

/// `holdfast audit [FILTERS]` or `holdfast audit verify`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    #[command(flatten)]
    pub query: QueryArgs,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's hash and link, the sequence and the head row
    /// with the audit key (<data dir>/audit.key). Exit 0 when the trail is
    /// intact, 1 when a record was altered, removed or moved (each problem
    /// names its seq), 2 on any other error (a missing or wrong key file).
    Verify(VerifyArgs),
}

/// Filters and output of `holdfast audit` (records oldest first).
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Only records of this actor (username or token name, exact match).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only records of this action, e.g. search, login_failed, user_change,
    /// token_create (see docs/audit.md for the list).
    #[arg(long, value_name = "ACTION", value_parser = parse_action)]
    pub action: Option<AuditAction>,
    /// Only records with this outcome: ok, denied, failed or error.
    #[arg(long, value_name = "OUTCOME", value_parser = parse_outcome)]
    pub outcome: Option<AuditOutcome>,
    /// Only records at or after this time: RFC 3339 (2024-05-01T09:30:00Z)
    /// or a date (2024-05-01, midnight UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only records strictly before this time (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many records (default 100, at most 10000; with --csv,
    /// no limit unless given).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Continue after this seq (the last seq of the previous page).
    #[arg(long, value_name = "SEQ")]
    pub cursor: Option<u64>,
    /// Newest records first (then --cursor continues with older ones).
    #[arg(long)]
    pub newest_first: bool,
    /// Stream every matching record as CSV (header: seq, at, actor, role,
    /// client, action, params, outcome, detail, prev_hash, hash).
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Print one JSON object per record, one per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A head kept elsewhere that the trail must still pass through:
    /// SEQ:HASH as printed by an earlier verify, or HASH alone.
    #[arg(long, value_name = "SEQ:HASH", value_parser = parse_expected_head)]
    pub expect_head: Option<ExpectedHead>,
    /// The trail must hold at least this many records (catches a cut tail).
    #[arg(long, value_name = "N")]
    pub expect_count: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_action(text: &str) -> Result<AuditAction, String> {
    text.parse().map_err(|error: AuditError| error.to_string())
}

fn parse_outcome(text: &str) -> Result<AuditOutcome, String> {
    text.parse().map_err(|error: AuditError| error.to_string())
}

fn parse_time_arg(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    parse_time(text).map_err(|error| error.to_string())
}

fn parse_expected_head(text: &str) -> Result<ExpectedHead, String> {
    text.parse().map_err(|error: AuditError| error.to_string())
}

/// Who runs the command line: `$USER`, or `cli` when it is unset or empty.
pub(super) fn os_actor() -> String {
    std::env::var("USER")
        .ok()
        .map(|user| user.trim().to_owned())
        .filter(|user| !user.is_empty() && !user.contains('\0'))
        .unwrap_or_else(|| CLI_CLIENT.to_owned())
}

pub(super) fn audit_key_path(config: &Config) -> PathBuf {
    config.data_dir.join(AUDIT_KEY_FILE)
}

/// The metadata database, with the data directory created first (SQLite's
/// file and the audit key live there; the CLI's umask makes it 0700).
pub(super) async fn connect_db(config: &Config) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    Ok(Db::connect(&config.database_url).await?)
}

/// The audit key for appending: the key file, or a new one when the trail
/// was never started. A trail that was started with a key whose file is
/// now missing is an error: a new key cannot continue it.
async fn key_for_appending(db: &Db, path: &Path) -> anyhow::Result<AuditKey> {
    let (key, created) = crate::audit::key_for_appending(db, path).await?;
    if created {
        tracing::warn!(
            path = %path.display(),
            fingerprint = key.fingerprint(),
            "created the audit key; back it up with the master key"
        );
    }
    Ok(key)
}

/// The audit trail as the command line writes to it.
pub(super) struct CliAudit {
    db: Db,
    log: AuditLog,
    actor: String,
}

impl CliAudit {
    /// Connects to the metadata database and opens the trail (checking the
    /// audit key) before anything is changed.
    pub(super) async fn open(config: &Config) -> anyhow::Result<CliAudit> {
        let db = connect_db(config).await?;
        let key = key_for_appending(&db, &audit_key_path(config)).await?;
        let log = AuditLog::open(db.clone(), key)
            .await
            .context("cannot open the audit trail")?;
        Ok(CliAudit {
            db,
            log,
            actor: os_actor(),
        })
    }

    pub(super) fn db(&self) -> &Db {
        &self.db
    }

    pub(super) fn log(&self) -> &AuditLog {
        &self.log
    }

    pub(super) fn actor(&self) -> &str {
        &self.actor
    }

    fn entry(&self, action: AuditAction, params: Value) -> AuditEntry {
        AuditEntry::new(self.actor.clone(), action)
            .client(CLI_CLIENT)
            .params(params)
    }

    /// Records a change that was made. An error means it was not recorded:
    /// the command must fail.
    pub(super) async fn record_ok(&self, action: AuditAction, params: Value) -> anyhow::Result<()> {
        self.log
            .append(self.entry(action, params))
            .await
            .context("the change was made but its audit record could not be written")?;
        Ok(())
    }

    /// Records a change that was refused, and returns `error` (with the
    /// audit failure added, if the record could not be written either).
    pub(super) async fn record_failure(
        &self,
        action: AuditAction,
        params: Value,
        error: anyhow::Error,
    ) -> anyhow::Error {
        let entry = self
            .entry(action, params)
            .outcome(AuditOutcome::Failed)
            .detail(truncate(
                &format!("{error:#}"),
                crate::audit::MAX_DETAIL_BYTES,
            ));
        match self.log.append(entry).await {
            Ok(_) => error,
            Err(audit_error) => anyhow::anyhow!(
                "{error:#}; its audit record could not be written either: {audit_error}"
            ),
        }
    }

    /// Runs a change and records it: `Ok` with the parameters `describe`
    /// gives for the result, or `failed` with `params` and the error.
    pub(super) async fn audited<T>(
        &self,
        action: AuditAction,
        params: Value,
        result: anyhow::Result<T>,
        describe: impl FnOnce(&T, Value) -> Value,
    ) -> anyhow::Result<T> {
        match result {
            Ok(value) => {
                let params = describe(&value, params);
                self.record_ok(action, params).await?;
                Ok(value)
            }
            Err(error) => Err(self.record_failure(action, params, error).await),
        }
    }

    pub(super) async fn close(self) {
        drop(self.log);
        self.db.close().await;
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

pub async fn run(config: &Config, args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(AuditCommand::Verify(verify_args)) => verify(config, verify_args).await,
        None => query(config, args.query).await,
    }
}

fn filter_of(args: &QueryArgs) -> AuditFilter {
    AuditFilter {
        actor: args.user.clone(),
        action: args.action,
        outcome: args.outcome,
        from: args.since,
        to: args.until,
        cursor: args.cursor,
        newest_first: args.newest_first,
        limit: args.limit,
    }
}

/// The filter as recorded in the `audit_read` / `audit_export` record.
fn filter_params(args: &QueryArgs) -> Value {
    json!({
        "user": args.user,
        "action": args.action.map(AuditAction::as_str),
        "outcome": args.outcome.map(AuditOutcome::as_str),
        "since": args.since.map(format_time),
        "until": args.until.map(format_time),
        "limit": args.limit,
        "cursor": args.cursor,
        "newest_first": args.newest_first,
        "format": if args.csv { "csv" } else if args.json { "json" } else { "table" },
    })
}

async fn query(config: &Config, args: QueryArgs) -> anyhow::Result<ExitCode> {
    let filter = filter_of(&args);
    // A mistake in the filter is refused before anything is read or recorded.
    filter.validate()?;
    let audit = CliAudit::open(config).await?;
    let params = filter_params(&args);
    if args.csv {
        // Recorded before the export starts: the export may be long and is
        // streamed as it is read.
        audit.record_ok(AuditAction::AuditExport, params).await?;
        let n_records = export_to_stdout(audit.db(), &filter).await?;
        eprintln!("exported {n_records} audit records");
        audit.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let records = match crate::audit::query(audit.db(), &filter).await {
        Ok(records) => records,
        Err(error) => {
            return Err(audit
                .record_failure(AuditAction::AuditRead, params, error.into())
                .await);
        }
    };
    let mut params = params;
    params["n_records"] = json!(records.len());
    audit.record_ok(AuditAction::AuditRead, params).await?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        for record in &records {
            writeln!(stdout, "{}", record_json(record))?;
        }
    } else {
        print_table(&mut stdout, &records)?;
        std::io::Write::flush(&mut stdout)?;
        let limit = filter.limit.unwrap_or(crate::audit::DEFAULT_QUERY_LIMIT);
        if let Some(last) = records.last()
            && records.len() == limit
        {
            eprintln!(
                "{} records shown; more may follow: add --cursor {}",
                records.len(),
                last.seq
            );
        }
    }
    drop(stdout);
    audit.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Streams the CSV export to standard output: the export writes into a
/// pipe whose other end a blocking thread copies out (memory stays bounded
/// by the pipe; a closed stdout stops the export).
async fn export_to_stdout(db: &Db, filter: &AuditFilter) -> anyhow::Result<u64> {
    use tokio::io::AsyncReadExt;
    const PIPE_BYTES: usize = 64 * 1024;
    let (mut writer, mut reader) = tokio::io::duplex(PIPE_BYTES);
    let runtime = tokio::runtime::Handle::current();
    let copier = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        let mut buffer = vec![0u8; PIPE_BYTES];
        loop {
            let n_bytes = runtime.block_on(reader.read(&mut buffer))?;
            if n_bytes == 0 {
                return stdout.flush();
            }
            stdout.write_all(&buffer[..n_bytes])?;
        }
    });
    let exported = crate::audit::export_csv(db, filter, &mut writer).await;
    drop(writer);
    let copied = copier.await.context("the export's output task failed")?;
    let n_records = exported?;
    copied.context("cannot write the export to standard output")?;
    Ok(n_records)
}

/// One record as JSON (`params` as a JSON value, times RFC 3339 UTC).
fn record_json(record: &AuditRecord) -> Value {
    json!({
        "seq": record.seq,
        "at": format_time(record.at),
        "actor": record.actor,
        "role": record.role,
        "client": record.client,
        "action": record.action.as_str(),
        "params": record.params,
        "outcome": record.outcome.as_str(),
        "detail": record.detail,
        "prev_hash": record.prev_hash.to_hex(),
        "hash": record.hash.to_hex(),
    })
}

fn print_table(out: &mut impl Write, records: &[AuditRecord]) -> std::io::Result<()> {
    if records.is_empty() {
        writeln!(out, "no audit records match")?;
        return Ok(());
    }
    let actor_width = records
        .iter()
        .map(|record| record.actor.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(5, 32);
    writeln!(
        out,
        "{:>6}  {:<27}  {:<actor_width$}  {:<18}  {:<15}  {:<16}  {:<7}  params",
        "seq", "at", "actor", "role", "client", "action", "outcome"
    )?;
    for record in records {
        let mut line = format!(
            "{:>6}  {:<27}  {:<actor_width$}  {:<18}  {:<15}  {:<16}  {:<7}  {}",
            record.seq,
            format_time(record.at),
            record.actor,
            record.role.as_deref().unwrap_or("-"),
            record.client.as_deref().unwrap_or("-"),
            record.action.as_str(),
            record.outcome.as_str(),
            record.params_json,
        );
        if let Some(detail) = &record.detail {
            line.push_str(&format!("  ({})", detail.replace('\n', " ")));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

async fn verify(config: &Config, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key_path = audit_key_path(config);
    let exists = key_path
        .try_exists()
        .with_context(|| format!("cannot look for the audit key {}", key_path.display()))?;
    if !exists {
        bail!(
            "the audit key file {} does not exist: without it the trail cannot be verified; \
             restore it from your backup (verify never creates one)",
            key_path.display()
        );
    }
    let key = AuditKey::load(&key_path)?;
    let db = Db::connect(&config.database_url).await?;
    let options = VerifyOptions {
        expect_head: args.expect_head,
        expect_min_count: args.expect_count,
    };
    let report = match crate::audit::verify(&db, &key, &options).await {
        Ok(report) => report,
        Err(AuditError::HeadMissing) => {
            // The head row was deleted: damage, not a configuration error.
            println!("DAMAGED: {}", AuditError::HeadMissing);
            return Ok(ExitCode::from(1));
        }
        Err(error) => return Err(error.into()),
    };
    let mut params = json!({
        "count": report.count,
        "head": report.head.to_string(),
        "n_problems": report.n_problems,
        "expect_head": args.expect_head.map(|head| head.to_string()),
        "expect_count": args.expect_count,
    });
    if let Some(first) = report.problems.first() {
        params["first_problem"] = json!(first.to_string());
    }
    // Recorded before the report is shown. When the trail is damaged the
    // report is shown even if the record cannot be written (the damage may
    // be why): it is the evidence.
    let recorded = record_verification(&key_path, &db, &report, params).await;
    if let Err(error) = &recorded
        && report.is_ok()
    {
        db.close().await;
        return Err(anyhow::anyhow!("{error:#}"));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&verification_json(&report))?
        );
    } else {
        print_verification(&report, args.expect_head);
    }
    if let Err(error) = recorded {
        eprintln!("warning: this verification could not be recorded in the audit trail: {error:#}");
    }
    db.close().await;
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn record_verification(
    key_path: &Path,
    db: &Db,
    report: &AuditVerification,
    params: Value,
) -> anyhow::Result<()> {
    let log = AuditLog::open(db.clone(), AuditKey::load(key_path)?).await?;
    let mut entry = AuditEntry::new(os_actor(), AuditAction::AuditVerify)
        .client(CLI_CLIENT)
        .params(params);
    if !report.is_ok() {
        entry = entry
            .outcome(AuditOutcome::Failed)
            .detail(format!("{} problem(s) found", report.n_problems));
    }
    log.append(entry).await?;
    Ok(())
}

fn verification_json(report: &AuditVerification) -> Value {
    json!({
        "ok": report.is_ok(),
        "count": report.count,
        "head": report.head.to_string(),
        "head_seq": report.head.seq,
        "head_hash": report.head.hash.to_hex(),
        "n_problems": report.n_problems,
        "problems": report.problems.iter().map(problem_json).collect::<Vec<_>>(),
    })
}

fn problem_json(problem: &AuditProblem) -> Value {
    let mut value = serde_json::to_value(problem).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut value {
        map.insert("message".to_owned(), json!(problem.to_string()));
    }
    value
}

fn print_verification(report: &AuditVerification, expect_head: Option<ExpectedHead>) {
    println!("checked {} audit records", report.count);
    println!("head: {}", report.head);
    if report.is_ok() {
        if let Some(expected) = expect_head {
            println!("the trail passes through the expected head {expected}");
        }
        println!("OK: every hash and link is intact");
    } else {
        println!("DAMAGED: {} problem(s)", report.n_problems);
        for problem in &report.problems {
            println!("  {problem}");
        }
        if report.n_problems > report.problems.len() as u64 {
            println!(
                "  ... and {} more",
                report.n_problems - report.problems.len() as u64
            );
        }
        println!("see docs/audit.md, \"When verification fails\": do not repair anything");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("aéb", 3), "aé");
    }

    #[test]
    fn filter_names_are_parsed_with_clear_errors() {
        assert_eq!(parse_action("user_change"), Ok(AuditAction::UserChange));
        assert!(
            parse_action("serach")
                .expect_err("unknown")
                .contains("serach")
        );
        assert!(parse_outcome("OK").is_err());
        assert!(
            parse_time_arg("yesterday")
                .expect_err("bad")
                .contains("yesterday")
        );
        assert!(parse_expected_head("12:zz").is_err());
    }
}
