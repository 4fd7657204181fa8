//! `holdfast user ...` and `holdfast group ...`: the local directory's
//! users file (`[auth] users_file`, by default `<data_dir>/users.toml`).
//!
//! Every change is recorded in the audit trail (`user_change`) before it is
//! reported; a password change, a disable and a removal also end the
//! user's open sessions. Passwords come from standard input
//! (`--password-stdin`) or `HOLDFAST_NEW_PASSWORD`, never from an argument,
//! and never reach an audit record, a log line or the output.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use secrecy::SecretString;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::audit::CliAudit;
use crate::audit::AuditAction;
use crate::auth::{DirectoryKind, LocalDirectory, LocalUser, NewUser, TokenStore, UsersFile};
use crate::config::Config;

/// The environment variable a new password may come from (scripts).
pub const NEW_PASSWORD_ENV: &str = "HOLDFAST_NEW_PASSWORD";

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user to the local directory. The password comes from
    /// --password-stdin or HOLDFAST_NEW_PASSWORD (at least 12 characters),
    /// never from an argument.
    Add {
        /// The username: 1 to 64 of a-z 0-9 . _ - @, starting with a letter
        /// or digit (stored lowercase).
        username: String,
        /// The person's name, as shown in lists and sessions.
        #[arg(long, value_name = "NAME")]
        display_name: Option<String>,
        /// The person's e-mail address.
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
        /// A local group to put the user in; repeat for several. Groups map
        /// to roles and scopes in [[auth.groups]] (`admins` is `admin` by
        /// default).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Set a user's password (from --password-stdin or HOLDFAST_NEW_PASSWORD)
    /// and end their open sessions.
    Passwd {
        /// The username.
        username: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Refuse a user's logins (the entry stays) and end their open sessions.
    Disable {
        /// The username.
        username: String,
    },
    /// Allow a disabled user to log in again.
    Enable {
        /// The username.
        username: String,
    },
    /// Remove a user from the local directory and end their open sessions.
    Remove {
        /// The username.
        username: String,
    },
    /// List the local users (never a password hash).
    List {
        /// Print a JSON array of users.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Put a user in a local group (created with its first member).
    AddMember {
        /// The group name (compared without case).
        group: String,
        /// The username.
        username: String,
    },
    /// Take a user out of a local group; an error if they were not in it.
    RemoveMember {
        /// The group name (compared without case).
        group: String,
        /// The username.
        username: String,
    },
    /// List the local groups, their members and the roles [[auth.groups]]
    /// gives them.
    List {
        /// Print a JSON array of groups.
        #[arg(long)]
        json: bool,
    },
}

/// Where a new password comes from.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the new password from the first line of standard input (pipe it
    /// in; it is never taken as an argument). Without this flag the
    /// password is taken from the HOLDFAST_NEW_PASSWORD environment variable.
    #[arg(long)]
    pub password_stdin: bool,
}

impl PasswordArgs {
    /// The new password, from standard input or the environment.
    fn read(&self) -> anyhow::Result<SecretString> {
        let from_env = std::env::var_os(NEW_PASSWORD_ENV);
        if self.password_stdin {
            if from_env.is_some() {
                bail!(
                    "--password-stdin and {NEW_PASSWORD_ENV} are both given: give the password one way"
                );
            }
            return read_password_line();
        }
        let Some(value) = from_env else {
            bail!(
                "no password given: pipe it in with --password-stdin, or set {NEW_PASSWORD_ENV} \
                 (a password is never taken as an argument)"
            );
        };
        let Ok(value) = value.into_string() else {
            bail!("{NEW_PASSWORD_ENV} is not valid UTF-8");
        };
        let value = Zeroizing::new(value);
        if value.is_empty() {
            bail!("{NEW_PASSWORD_ENV} is empty");
        }
        Ok(SecretString::from(value.as_str().to_owned()))
    }
}

/// The first line of standard input, without its line break.
fn read_password_line() -> anyhow::Result<SecretString> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!(
            "--password-stdin reads a password piped in, and standard input is a terminal \
             (it would echo): pipe it in, e.g. from a password manager"
        );
    }
    let mut line = Zeroizing::new(String::new());
    let n_bytes = stdin
        .lock()
        .read_line(&mut line)
        .context("--password-stdin: cannot read standard input")?;
    if n_bytes == 0 {
        bail!("--password-stdin: standard input is empty");
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        bail!("--password-stdin: the first line of standard input is empty");
    }
    Ok(SecretString::from(password.to_owned()))
}

fn users_file_path(config: &Config) -> PathBuf {
    config.auth.users_file_path(&config.data_dir)
}

fn note_if_ldap(config: &Config) {
    if config.auth.directory == DirectoryKind::Ldap {
        eprintln!(
            "note: auth.directory is \"ldap\": people log in through LDAP; the local users file \
             {} is not used for their logins",
            users_file_path(config).display()
        );
    }
}

/// Changes the users file on a blocking thread (a password is hashed with
/// Argon2id, which takes a while).
async fn modify<T: Send + 'static>(
    config: &Config,
    change: impl FnOnce(&mut UsersFile) -> Result<T, crate::auth::LocalDirectoryError> + Send + 'static,
) -> anyhow::Result<T> {
    let directory = LocalDirectory::new(users_file_path(config));
    tokio::task::spawn_blocking(move || directory.modify(change))
        .await
        .context("the users file task failed")?
        .map_err(anyhow::Error::from)
}

fn canonical(file: &UsersFile, username: &str) -> String {
    file.user(username)
        .map_or_else(|| username.to_owned(), |user| user.username.clone())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub async fn run_user(config: &Config, command: UserCommand) -> anyhow::Result<ExitCode> {
    if let UserCommand::List { json } = command {
        return list_users(config, json);
    }
    // The password is read before anything is opened or changed.
    let password = match &command {
        UserCommand::Add { password, .. } | UserCommand::Passwd { password, .. } => {
            Some(password.read()?)
        }
        _ => None,
    };
    note_if_ldap(config);
    let audit = CliAudit::open(config).await?;
    let path = users_file_path(config);
    match command {
        UserCommand::Add {
            username,
            display_name,
            email,
            groups,
            ..
        } => {
            let password = password.expect("read above for add");
            let params = json!({
                "change": "add",
                "username": username,
                "display_name": display_name,
                "email": email,
                "groups": groups,
                "users_file": path.display().to_string(),
            });
            let new_user = NewUser {
                username: username.clone(),
                display_name,
                email,
                groups,
            };
            let result = modify(config, move |file| {
                file.add_user(new_user, &password)?;
                Ok(canonical(file, &username))
            })
            .await;
            let username = audit
                .audited(
                    AuditAction::UserChange,
                    params,
                    result,
                    |name, mut params| {
                        params["username"] = json!(name);
                        params
                    },
                )
                .await?;
            println!("added user {username} to {}", path.display());
        }
        UserCommand::Passwd { username, .. } => {
            let password = password.expect("read above for passwd");
            let params = json!({ "change": "passwd", "username": username });
            let name = username.clone();
            let result = modify(config, move |file| {
                file.set_password(&name, &password)?;
                Ok(canonical(file, &name))
            })
            .await;
            let revoked = revoke_sessions(&audit, result).await;
            let (username, n_sessions) = audit
                .audited(AuditAction::UserChange, params, revoked, describe_revoked)
                .await?;
            println!("set a new password for {username}; ended {n_sessions} open session(s)");
        }
        UserCommand::Disable { username } => {
            let params = json!({ "change": "disable", "username": username });
            let name = username.clone();
            let result = modify(config, move |file| {
                file.disable(&name)?;
                Ok(canonical(file, &name))
            })
            .await;
            let revoked = revoke_sessions(&audit, result).await;
            let (username, n_sessions) = audit
                .audited(AuditAction::UserChange, params, revoked, describe_revoked)
                .await?;
            println!("disabled user {username}; ended {n_sessions} open session(s)");
        }
        UserCommand::Enable { username } => {
            let params = json!({ "change": "enable", "username": username });
            let name = username.clone();
            let result = modify(config, move |file| {
                file.enable(&name)?;
                Ok(canonical(file, &name))
            })
            .await;
            let username = audit
                .audited(
                    AuditAction::UserChange,
                    params,
                    result,
                    |name, mut params| {
                        params["username"] = json!(name);
                        params
                    },
                )
                .await?;
            println!("enabled user {username}");
        }
        UserCommand::Remove { username } => {
            let params = json!({ "change": "remove", "username": username });
            let name = username.clone();
            let result = modify(config, move |file| {
                let removed: LocalUser = file.remove_user(&name)?;
                Ok((removed.username, removed.groups))
            })
            .await;
            let removed = match result {
                Ok((name, groups)) => TokenStore::new(audit.db().clone())
                    .revoke_sessions_of(&name, now_ms())
                    .await
                    .map(|n_sessions| (name, groups, n_sessions))
                    .context("the user was removed, but their sessions could not be ended"),
                Err(error) => Err(error),
            };
            let (username, _, n_sessions) = audit
                .audited(
                    AuditAction::UserChange,
                    params,
                    removed,
                    |(name, groups, n_sessions), mut params| {
                        params["username"] = json!(name);
                        params["groups"] = json!(groups);
                        params["sessions_revoked"] = json!(n_sessions);
                        params
                    },
                )
                .await?;
            println!("removed user {username}; ended {n_sessions} open session(s)");
        }
        UserCommand::List { .. } => unreachable!("handled above"),
    }
    audit.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Ends the open sessions of the user a change returned.
async fn revoke_sessions(
    audit: &CliAudit,
    changed: anyhow::Result<String>,
) -> anyhow::Result<(String, u64)> {
    let username = changed?;
    let n_sessions = TokenStore::new(audit.db().clone())
        .revoke_sessions_of(&username, now_ms())
        .await
        .with_context(|| {
            format!("the users file was changed, but the sessions of {username} could not be ended")
        })?;
    Ok((username, n_sessions))
}

fn describe_revoked((username, n_sessions): &(String, u64), mut params: Value) -> Value {
    params["username"] = json!(username);
    params["sessions_revoked"] = json!(n_sessions);
    params
}

fn list_users(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let path = users_file_path(config);
    let file = UsersFile::load(&path)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        let users: Vec<Value> = file
            .users
            .iter()
            .map(|user| {
                json!({
                    "username": user.username,
                    "display_name": user.display_name,
                    "email": user.email,
                    "groups": user.groups,
                    "disabled": user.disabled,
                    "must_change_password": user.must_change_password,
                })
            })
            .collect();
        writeln!(stdout, "{}", serde_json::to_string_pretty(&users)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if file.users.is_empty() {
        eprintln!("no users in {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let width = file
        .users
        .iter()
        .map(|user| user.username.len())
        .max()
        .unwrap_or(0)
        .max(8);
    writeln!(
        stdout,
        "{:<width$}  {:<8}  {:<24}  {:<32}  groups",
        "username", "status", "display name", "email"
    )?;
    for user in &file.users {
        let status = if user.disabled {
            "disabled"
        } else if user.must_change_password {
            "new"
        } else {
            "active"
        };
        writeln!(
            stdout,
            "{:<width$}  {:<8}  {:<24}  {:<32}  {}",
            user.username,
            status,
            user.display_name.as_deref().unwrap_or("-"),
            user.email.as_deref().unwrap_or("-"),
            user.groups.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_group(config: &Config, command: GroupCommand) -> anyhow::Result<ExitCode> {
    match command {
        GroupCommand::List { json } => list_groups(config, json),
        GroupCommand::AddMember { group, username } => {
            note_if_ldap(config);
            let audit = CliAudit::open(config).await?;
            let params = json!({ "change": "add_member", "group": group, "username": username });
            let (group_name, name) = (group.clone(), username.clone());
            let result = modify(config, move |file| {
                file.add_to_group(&name, &group_name)?;
                Ok(canonical(file, &name))
            })
            .await;
            let username = audit
                .audited(
                    AuditAction::UserChange,
                    params,
                    result,
                    |name, mut params| {
                        params["username"] = json!(name);
                        params
                    },
                )
                .await?;
            audit.close().await;
            println!("{username} is in group {group}");
            Ok(ExitCode::SUCCESS)
        }
        GroupCommand::RemoveMember { group, username } => {
            note_if_ldap(config);
            let audit = CliAudit::open(config).await?;
            let params = json!({ "change": "remove_member", "group": group, "username": username });
            let (group_name, name) = (group.clone(), username.clone());
            let result = modify(config, move |file| {
                let was_member = file.remove_from_group(&name, &group_name)?;
                Ok((canonical(file, &name), was_member))
            })
            .await
            .and_then(|(name, was_member)| {
                if was_member {
                    Ok(name)
                } else {
                    Err(anyhow::anyhow!("user {name:?} is not in group {group:?}"))
                }
            });
            let username = audit
                .audited(
                    AuditAction::UserChange,
                    params,
                    result,
                    |name, mut params| {
                        params["username"] = json!(name);
                        params
                    },
                )
                .await?;
            audit.close().await;
            println!("{username} is no longer in group {group}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A local group as `group list` shows it.
struct GroupView {
    name: String,
    members: Vec<String>,
    /// Role and scope ([`None`] for roles that reach no message data) of
    /// each [[auth.groups]] rule that names the group.
    grants: Vec<(&'static str, Option<String>)>,
}

fn list_groups(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let path = users_file_path(config);
    let file = UsersFile::load(&path)?;
    let mapping = config.auth.mapping()?;
    let groups: Vec<GroupView> = file
        .groups()
        .into_iter()
        .map(|(name, members)| {
            let grants = mapping
                .grants_for(std::slice::from_ref(&name))
                .into_iter()
                .map(|grant| {
                    let scope = grant.role.reads_messages().then(|| grant.scope.to_string());
                    (grant.role.as_str(), scope)
                })
                .collect();
            GroupView {
                name,
                members,
                grants,
            }
        })
        .collect();
    let mut stdout = std::io::stdout().lock();
    if json {
        let groups: Vec<Value> = groups
            .iter()
            .map(|group| {
                let grants: Vec<Value> = group
                    .grants
                    .iter()
                    .map(|(role, scope)| match scope {
                        Some(scope) => json!({ "role": role, "scope": scope }),
                        None => json!({ "role": role }),
                    })
                    .collect();
                json!({ "group": group.name, "members": group.members, "grants": grants })
            })
            .collect();
        writeln!(stdout, "{}", serde_json::to_string_pretty(&groups)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if groups.is_empty() {
        eprintln!("no groups in {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let width = groups
        .iter()
        .map(|group| group.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    writeln!(stdout, "{:<width$}  {:<32}  members", "group", "roles")?;
    for group in &groups {
        let roles = if group.grants.is_empty() {
            "(none: no [[auth.groups]] rule)".to_owned()
        } else {
            group
                .grants
                .iter()
                .map(|(role, scope)| match scope {
                    Some(scope) => format!("{role} ({scope})"),
                    None => (*role).to_owned(),
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        writeln!(
            stdout,
            "{:<width$}  {roles:<32}  {}",
            group.name,
            group.members.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
