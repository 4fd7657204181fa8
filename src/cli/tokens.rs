//! `holdfast token ...`: API tokens of service accounts (the chat system's
//! ingest connector, an export robot) in the metadata database.
//!
//! A token is printed once, on standard output, when it is created; lists
//! and audit records name it by id and name only. Creating and revoking
//! are recorded in the audit trail (`token_create`, `token_revoke`) before
//! they are reported; a token whose creation could not be recorded is
//! revoked again and never shown.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::audit::CliAudit;
use crate::audit::AuditAction;
use crate::auth::{ApiTokenInfo, NewApiToken, Role, TokenError, TokenStore};
use crate::config::Config;
use crate::search::{ChannelRef, Scope};

/// Longest lifetime `--expires-days` accepts (ten years).
const MAX_EXPIRES_DAYS: u32 = 3650;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it once on standard output (it cannot
    /// be shown again: only its SHA-256 is stored).
    Create(CreateArgs),
    /// List API tokens: id, name, role, scope, creator, dates, status (never
    /// the token itself).
    List {
        /// Print a JSON array of tokens.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API token by id (as `token list` shows it); it stops
    /// working at the next request.
    Revoke {
        /// The token's id.
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What the token is for, e.g. mattermost-connector (letters, digits,
    /// '-', '_', '.'; up to 128). Shown in lists and the audit trail.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The token's role: admin, compliance_officer, legal, auditor or ingest.
    #[arg(long, value_name = "ROLE", value_parser = parse_role)]
    pub role: Role,
    /// A team whose messages the token may reach; repeat for several.
    /// compliance_officer and legal need --team, --channel or --all.
    #[arg(long = "team", value_name = "TEAM", value_parser = parse_team)]
    pub teams: Vec<String>,
    /// A single channel the token may reach, as TEAM/CHANNEL; repeat for
    /// several.
    #[arg(long = "channel", value_name = "TEAM/CHANNEL", value_parser = parse_channel)]
    pub channels: Vec<ChannelRef>,
    /// Every team and channel (not with --team or --channel).
    #[arg(long, conflicts_with_all = ["teams", "channels"])]
    pub all: bool,
    /// The token stops working after this many days (1 to 3650); without
    /// it, it works until revoked.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_EXPIRES_DAYS)))]
    pub expires_days: Option<u32>,
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
}

fn parse_team(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("a team name must not be empty".to_owned());
    }
    Ok(text.to_owned())
}

fn parse_channel(text: &str) -> Result<ChannelRef, String> {
    match text.split_once('/') {
        Some((team, channel)) if !team.trim().is_empty() && !channel.trim().is_empty() => {
            Ok(ChannelRef::new(team, channel))
        }
        _ => Err(format!(
            "{text:?} is not of the form TEAM/CHANNEL, e.g. legal/general"
        )),
    }
}

/// The scope the flags give, checked against the role.
fn scope_of(args: &CreateArgs) -> anyhow::Result<Scope> {
    let given = args.all || !args.teams.is_empty() || !args.channels.is_empty();
    if !args.role.reads_messages() {
        if given {
            bail!(
                "--team, --channel and --all apply to roles that read messages \
                 (compliance_officer, legal); --role {} reaches no message data",
                args.role
            );
        }
        return Ok(Scope::Nothing);
    }
    if !given {
        bail!(
            "--role {} reads message data and needs a scope: give --team, --channel or --all",
            args.role
        );
    }
    Ok(if args.all {
        Scope::All
    } else {
        Scope::teams(args.teams.iter().cloned())
            .union(Scope::channels(args.channels.iter().cloned()))
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

pub async fn run(config: &Config, command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create(args) => create(config, &args).await,
        TokenCommand::List { json } => list(config, json).await,
        TokenCommand::Revoke { id } => revoke(config, id).await,
    }
}

async fn create(config: &Config, args: &CreateArgs) -> anyhow::Result<ExitCode> {
    // Mistakes in the flags are refused before anything is opened.
    let scope = scope_of(args)?;
    let now = now_ms();
    let expires_at_ms = args
        .expires_days
        .map(|days| now + i64::from(days) * 86_400_000);
    let audit = CliAudit::open(config).await?;
    let tokens = TokenStore::new(audit.db().clone());
    let params = json!({
        "name": args.name,
        "role": args.role.as_str(),
        "scope": scope.to_string(),
        "expires_at": expires_at_ms.map(format_ms),
    });
    let created = tokens
        .create_api_token(
            NewApiToken {
                name: args.name.clone(),
                role: args.role,
                scope,
                created_by: audit.actor().to_owned(),
                expires_at_ms,
            },
            now,
        )
        .await
        .map_err(|error| match error {
            TokenError::BadName(_) => anyhow::anyhow!("--name: {error}"),
            other => anyhow::Error::from(other),
        });
    let (info, token) = match created {
        Ok(created) => created,
        Err(error) => {
            return Err(audit
                .record_failure(AuditAction::TokenCreate, params, error)
                .await);
        }
    };
    let mut params = params;
    params["token_id"] = json!(info.id);
    if let Err(error) = audit.record_ok(AuditAction::TokenCreate, params).await {
        // Never hand out a token whose creation is not in the trail.
        let revoked = tokens
            .revoke_api_token(info.id, audit.actor(), now_ms())
            .await;
        drop(token);
        return Err(match revoked {
            Ok(_) => error.context(format!(
                "API token {} was revoked again and is not shown",
                info.id
            )),
            Err(revoke_error) => error.context(format!(
                "API token {} could not be revoked either ({revoke_error}): revoke it with \
                 `holdfast token revoke {}`",
                info.id, info.id
            )),
        });
    }
    audit.close().await;
    eprintln!(
        "created API token {} ({}, role {}, scope {}{}); it is shown only once, below: store it now",
        info.id,
        info.name,
        args.role,
        info.scope,
        info.expires_at_ms
            .map(|at| format!(", expires {}", format_ms(at)))
            .unwrap_or_default()
    );
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", token.expose_secret())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn status(info: &ApiTokenInfo, now: i64) -> &'static str {
    if info.revoked_at_ms.is_some() {
        "revoked"
    } else if info.expires_at_ms.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    }
}

async fn list(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let db = super::audit::connect_db(config).await?;
    let infos = TokenStore::new(db.clone()).list_api_tokens().await;
    db.close().await;
    let infos = infos?;
    let now = now_ms();
    let mut stdout = std::io::stdout().lock();
    if json {
        let tokens: Vec<Value> = infos
            .iter()
            .map(|info| {
                json!({
                    "id": info.id,
                    "name": info.name,
                    "roles": info.roles,
                    "scope": info.scope,
                    "created_by": info.created_by,
                    "created_at": format_ms(info.created_at_ms),
                    "expires_at": info.expires_at_ms.map(format_ms),
                    "revoked_at": info.revoked_at_ms.map(format_ms),
                    "revoked_by": info.revoked_by,
                    "status": status(info, now),
                })
            })
            .collect();
        writeln!(stdout, "{}", serde_json::to_string_pretty(&tokens)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if infos.is_empty() {
        eprintln!("no API tokens");
        return Ok(ExitCode::SUCCESS);
    }
    let width = infos
        .iter()
        .map(|info| info.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        stdout,
        "{:>4}  {:<width$}  {:<18}  {:<7}  {:<20}  {:<20}  {:<16}  scope",
        "id", "name", "role", "status", "created", "expires", "created by"
    )?;
    for info in &infos {
        writeln!(
            stdout,
            "{:>4}  {:<width$}  {:<18}  {:<7}  {:<20}  {:<20}  {:<16}  {}",
            info.id,
            info.name,
            info.roles.join(", "),
            status(info, now),
            format_ms(info.created_at_ms),
            info.expires_at_ms
                .map_or_else(|| "never".to_owned(), format_ms),
            info.created_by,
            if info.scope == "nothing" {
                "-"
            } else {
                &info.scope
            },
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke(config: &Config, id: i64) -> anyhow::Result<ExitCode> {
    let audit = CliAudit::open(config).await?;
    let tokens = TokenStore::new(audit.db().clone());
    let name = tokens
        .list_api_tokens()
        .await
        .context("cannot list the API tokens")?
        .into_iter()
        .find(|info| info.id == id)
        .map(|info| info.name);
    let params = json!({ "token_id": id, "name": name });
    let result = tokens
        .revoke_api_token(id, audit.actor(), now_ms())
        .await
        .map_err(anyhow::Error::from);
    let newly_revoked = audit
        .audited(
            AuditAction::TokenRevoke,
            params,
            result,
            |newly_revoked, mut params| {
                if !newly_revoked {
                    params["already_revoked"] = json!(true);
                }
                params
            },
        )
        .await?;
    audit.close().await;
    let name = name.unwrap_or_default();
    if newly_revoked {
        println!("revoked API token {id} ({name})");
    } else {
        println!("API token {id} ({name}) was already revoked");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(role: Role) -> CreateArgs {
        CreateArgs {
            name: "robot".to_owned(),
            role,
            teams: Vec::new(),
            channels: Vec::new(),
            all: false,
            expires_days: None,
        }
    }

    #[test]
    fn channels_must_name_team_and_channel() {
        assert_eq!(
            parse_channel("legal/general"),
            Ok(ChannelRef::new("legal", "general"))
        );
        for bad in ["legal", "/general", "legal/", " / "] {
            assert!(parse_channel(bad).is_err(), "{bad:?}");
        }
        assert!(parse_team(" ").is_err());
    }

    #[test]
    fn scopes_are_required_exactly_where_messages_are_read() {
        let error = scope_of(&args(Role::ComplianceOfficer)).expect_err("no scope");
        assert!(error.to_string().contains("--team"), "{error}");
        assert_eq!(scope_of(&args(Role::Ingest)).expect("ok"), Scope::Nothing);
        let mut ingest_with_team = args(Role::Ingest);
        ingest_with_team.teams.push("legal".to_owned());
        assert!(scope_of(&ingest_with_team).is_err());
        let mut legal = args(Role::Legal);
        legal.teams.push("legal".to_owned());
        legal.channels.push(ChannelRef::new("sales", "leads"));
        let scope = scope_of(&legal).expect("scoped");
        assert!(scope.allows("legal", "x"));
        assert!(scope.allows("sales", "leads"));
        assert!(!scope.allows("sales", "other"));
    }
}
