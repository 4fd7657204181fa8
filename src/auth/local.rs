//! The local directory: users and groups in a TOML file (by default
//! `<data_dir>/users.toml`) with Argon2id password hashes. The embedded
//! default, so holdfast runs without an LDAP server.
//!
//! ```toml
//! version = 1
//!
//! [[users]]
//! username = "allen-p"
//! display_name = "Philip Allen"
//! email = "philip.allen@enron.com"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! groups = ["compliance"]
//! # disabled = true
//! ```
//!
//! This module must never:
//! - write the file in place: every save writes a temporary file (0600),
//!   syncs it, renames it over the old one and syncs the directory, under an
//!   exclusive lock on `<file>.lock` so two writers cannot lose each other's
//!   changes;
//! - keep, log or return a plain password (only PHC hashes are stored, and
//!   `Debug` of a user prints no hash);
//! - answer an unknown user faster than a wrong password, or say "disabled"
//!   before the password was checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::password;
use super::{AuthError, Identity};

/// The only version of the users file so far.
pub const USERS_FILE_VERSION: u32 = 1;

/// The user created on first start when the file has no users.
pub const BOOTSTRAP_ADMIN: &str = "admin";

/// The group the bootstrap admin is put in; map it to the `admin` role.
pub const BOOTSTRAP_ADMIN_GROUP: &str = "admins";

/// Longest username, in bytes.
pub const MAX_USERNAME_LEN: usize = 64;

/// Errors of the users file and of changes to it. Each names the file, the
/// user and the field concerned; none carries a password or a hash.
#[derive(Debug, thiserror::Error)]
pub enum LocalDirectoryError {
    #[error("users file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("users file {path}, line {line}, column {column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("users file {path}, line {line}: user {username:?}, field {field}: {problem}")]
    InvalidEntry {
        path: String,
        line: usize,
        username: String,
        field: &'static str,
        problem: String,
    },
    #[error("users file {path}: version {found} is not supported (expected {USERS_FILE_VERSION})")]
    UnsupportedVersion { path: String, found: u32 },
    #[error("{field}: {problem}")]
    InvalidInput {
        field: &'static str,
        problem: String,
    },
    #[error("user {username:?} already exists")]
    UserExists { username: String },
    #[error("no user {username:?}")]
    NoSuchUser { username: String },
    #[error("password: {problem}")]
    WeakPassword { problem: String },
    #[error("password hashing failed: {problem}")]
    Hash { problem: String },
}

/// One user of the file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalUser {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// An Argon2id PHC string.
    pub password_hash: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// Set for generated one-time passwords; the API asks for a new
    /// password before anything else.
    #[serde(default, skip_serializing_if = "is_false")]
    pub must_change_password: bool,
    #[serde(default)]
    pub groups: Vec<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl fmt::Debug for LocalUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalUser")
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("email", &self.email)
            .field("password_hash", &"..")
            .field("disabled", &self.disabled)
            .field("must_change_password", &self.must_change_password)
            .field("groups", &self.groups)
            .finish()
    }
}

/// What a new user is, apart from the password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub groups: Vec<String>,
}

/// The whole users file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    pub version: u32,
    #[serde(default)]
    pub users: Vec<LocalUser>,
}

impl Default for UsersFile {
    fn default() -> Self {
        UsersFile {
            version: USERS_FILE_VERSION,
            users: Vec::new(),
        }
    }
}

/// What [`ensure_bootstrap_admin`] did.
#[derive(Debug)]
pub enum Bootstrap {
    /// The file already had users; nothing changed.
    Existing,
    /// `admin` was created with the password given (from
    /// `HOLDFAST_ADMIN_PASSWORD`).
    CreatedWithGivenPassword,
    /// `admin` was created with this generated one-time password: print it
    /// once, never log it. The user must change it at first login.
    CreatedWithGeneratedPassword(SecretString),
}

impl UsersFile {
    /// Reads the file; a missing file is an empty directory (first start).
    pub fn load(path: &Path) -> Result<UsersFile, LocalDirectoryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(UsersFile::default());
            }
            Err(source) => {
                return Err(LocalDirectoryError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        UsersFile::parse(&text, path)
    }

    /// Parses and checks the text of a users file; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<UsersFile, LocalDirectoryError> {
        let file: UsersFile = toml::from_str(text).map_err(|error| {
            let (line, column) = error
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((1, 1));
            LocalDirectoryError::Parse {
                path: path.display().to_string(),
                line,
                column,
                message: error.message().trim_end().to_owned(),
            }
        })?;
        if file.version != USERS_FILE_VERSION {
            return Err(LocalDirectoryError::UnsupportedVersion {
                path: path.display().to_string(),
                found: file.version,
            });
        }
        let mut seen = BTreeSet::new();
        for user in &file.users {
            let invalid =
                |field: &'static str, problem: String| LocalDirectoryError::InvalidEntry {
                    path: path.display().to_string(),
                    line: user_line(text, &user.username),
                    username: user.username.clone(),
                    field,
                    problem,
                };
            if let Err(problem) = check_username(&user.username) {
                return Err(invalid("username", problem));
            }
            if user.username != user.username.to_lowercase() {
                return Err(invalid("username", "must be lowercase".to_owned()));
            }
            if !seen.insert(user.username.clone()) {
                return Err(invalid("username", "appears twice".to_owned()));
            }
            if let Err(problem) = password::check_hash(&user.password_hash) {
                return Err(invalid("password_hash", problem));
            }
            for group in &user.groups {
                if let Err(problem) = check_group(group) {
                    return Err(invalid("groups", problem));
                }
            }
        }
        Ok(file)
    }

    /// Writes the file atomically: a temporary file with mode 0600 in the
    /// same directory, synced, renamed over `path`, directory synced.
    pub fn save(&self, path: &Path) -> Result<(), LocalDirectoryError> {
        let io_error = |source| LocalDirectoryError::Io {
            path: path.display().to_string(),
            source,
        };
        let body = toml::to_string_pretty(self).map_err(|error| LocalDirectoryError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(error.to_string()),
        })?;
        let text = format!(
            "# holdfast local directory: users, groups and Argon2id password hashes.\n\
             # Managed by `holdfast user ...` and `holdfast group ...`.\n\n{body}"
        );
        let directory = parent_dir(path);
        let temporary = temporary_path(path);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(io_error)?;
        let written = (|| {
            // A leftover temporary file keeps its old mode: force 0600.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, path)?;
            File::open(&directory)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written.map_err(io_error)
    }

    /// The user named `username` (any case).
    pub fn user(&self, username: &str) -> Option<&LocalUser> {
        let username = normalize_username(username);
        self.users.iter().find(|user| user.username == username)
    }

    fn user_mut(&mut self, username: &str) -> Result<&mut LocalUser, LocalDirectoryError> {
        let username = normalize_username(username);
        self.users
            .iter_mut()
            .find(|user| user.username == username)
            .ok_or(LocalDirectoryError::NoSuchUser { username })
    }

    /// Adds a user with a password (checked for length, then hashed).
    pub fn add_user(
        &mut self,
        new_user: NewUser,
        password: &SecretString,
    ) -> Result<(), LocalDirectoryError> {
        let username = normalize_username(&new_user.username);
        check_username(&username).map_err(|problem| LocalDirectoryError::InvalidInput {
            field: "username",
            problem,
        })?;
        if self.user(&username).is_some() {
            return Err(LocalDirectoryError::UserExists { username });
        }
        let mut groups = Vec::new();
        for group in new_user.groups {
            check_group(&group).map_err(|problem| LocalDirectoryError::InvalidInput {
                field: "groups",
                problem,
            })?;
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        let password_hash = new_hash(password)?;
        self.users.push(LocalUser {
            username,
            display_name: non_empty(new_user.display_name),
            email: non_empty(new_user.email),
            password_hash,
            disabled: false,
            must_change_password: false,
            groups,
        });
        Ok(())
    }

    /// Sets a new password (and clears "must change password").
    pub fn set_password(
        &mut self,
        username: &str,
        password: &SecretString,
    ) -> Result<(), LocalDirectoryError> {
        let password_hash = new_hash(password)?;
        let user = self.user_mut(username)?;
        user.password_hash = password_hash;
        user.must_change_password = false;
        Ok(())
    }

    /// Disables a user: the password still checks, the login is refused.
    pub fn disable(&mut self, username: &str) -> Result<(), LocalDirectoryError> {
        self.user_mut(username)?.disabled = true;
        Ok(())
    }

    pub fn enable(&mut self, username: &str) -> Result<(), LocalDirectoryError> {
        self.user_mut(username)?.disabled = false;
        Ok(())
    }

    pub fn remove_user(&mut self, username: &str) -> Result<LocalUser, LocalDirectoryError> {
        let username = normalize_username(username);
        let position = self
            .users
            .iter()
            .position(|user| user.username == username)
            .ok_or_else(|| LocalDirectoryError::NoSuchUser {
                username: username.clone(),
            })?;
        Ok(self.users.remove(position))
    }

    /// Puts a user in a group; already a member is not an error.
    pub fn add_to_group(&mut self, username: &str, group: &str) -> Result<(), LocalDirectoryError> {
        check_group(group).map_err(|problem| LocalDirectoryError::InvalidInput {
            field: "group",
            problem,
        })?;
        let user = self.user_mut(username)?;
        if !user
            .groups
            .iter()
            .any(|existing| existing.eq_ignore_ascii_case(group))
        {
            user.groups.push(group.to_owned());
        }
        Ok(())
    }

    /// Takes a user out of a group; returns whether they were in it.
    pub fn remove_from_group(
        &mut self,
        username: &str,
        group: &str,
    ) -> Result<bool, LocalDirectoryError> {
        let user = self.user_mut(username)?;
        let before = user.groups.len();
        user.groups
            .retain(|existing| !existing.eq_ignore_ascii_case(group));
        Ok(user.groups.len() != before)
    }

    /// Every group with its members, sorted.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for user in &self.users {
            for group in &user.groups {
                groups
                    .entry(group.clone())
                    .or_default()
                    .push(user.username.clone());
            }
        }
        groups
    }

    /// Checks a password (CPU-bound: call it off the async runtime).
    pub fn authenticate(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<Identity, AuthError> {
        if password.expose_secret().is_empty() {
            return Err(AuthError::InvalidCredentials);
        }
        let Some(user) = self.user(username) else {
            password::verify_dummy(password);
            return Err(AuthError::InvalidCredentials);
        };
        if !password::verify_password(password, &user.password_hash) {
            return Err(AuthError::InvalidCredentials);
        }
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        Ok(Identity {
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            email: user.email.clone(),
            groups: user.groups.clone(),
            must_change_password: user.must_change_password,
        })
    }
}

/// The local directory as the server uses it: the file is read at each
/// login, so changes made by `holdfast user ...` apply at once.
#[derive(Debug, Clone)]
pub struct LocalDirectory {
    path: PathBuf,
}

impl LocalDirectory {
    pub fn new(path: impl Into<PathBuf>) -> LocalDirectory {
        LocalDirectory { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks a password on a blocking thread (Argon2 takes tens of
    /// milliseconds).
    pub async fn authenticate(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<Identity, AuthError> {
        let path = self.path.clone();
        let username = username.to_owned();
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            UsersFile::load(&path)?.authenticate(&username, &password)
        })
        .await
        .map_err(|error| AuthError::unavailable(format!("login task failed: {error}")))?
    }

    /// Reads the file.
    pub fn load(&self) -> Result<UsersFile, LocalDirectoryError> {
        UsersFile::load(&self.path)
    }

    /// Changes the file under an exclusive lock: load, `change`, save
    /// atomically. Nothing is written when `change` fails.
    pub fn modify<T>(
        &self,
        change: impl FnOnce(&mut UsersFile) -> Result<T, LocalDirectoryError>,
    ) -> Result<T, LocalDirectoryError> {
        let _lock = lock_users_file(&self.path)?;
        let mut file = UsersFile::load(&self.path)?;
        let outcome = change(&mut file)?;
        file.save(&self.path)?;
        Ok(outcome)
    }
}

/// Creates `admin` (in group `admins`) when the file at `path` has no
/// users: with `given_password` (from `HOLDFAST_ADMIN_PASSWORD`) if any,
/// else with a generated one-time password that is returned to be printed
/// once.
pub fn ensure_bootstrap_admin(
    path: &Path,
    given_password: Option<SecretString>,
) -> Result<Bootstrap, LocalDirectoryError> {
    let _lock = lock_users_file(path)?;
    let mut file = UsersFile::load(path)?;
    if !file.users.is_empty() {
        return Ok(Bootstrap::Existing);
    }
    let new_admin = NewUser {
        username: BOOTSTRAP_ADMIN.to_owned(),
        display_name: Some("Administrator".to_owned()),
        email: None,
        groups: vec![BOOTSTRAP_ADMIN_GROUP.to_owned()],
    };
    let outcome = match given_password {
        Some(password) => {
            file.add_user(new_admin, &password)?;
            Bootstrap::CreatedWithGivenPassword
        }
        None => {
            let password = SecretString::from(password::generate_password());
            file.add_user(new_admin, &password)?;
            if let Some(admin) = file.users.last_mut() {
                admin.must_change_password = true;
            }
            Bootstrap::CreatedWithGeneratedPassword(password)
        }
    };
    file.save(path)?;
    Ok(outcome)
}

/// An exclusive lock on `<path>.lock`, released on drop.
fn lock_users_file(path: &Path) -> Result<File, LocalDirectoryError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let io_error = |source| LocalDirectoryError::Io {
        path: lock_path.display().to_string(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error)?;
    file.lock().map_err(io_error)?;
    Ok(file)
}

fn new_hash(password: &SecretString) -> Result<String, LocalDirectoryError> {
    password::check_new_password(password)
        .map_err(|problem| LocalDirectoryError::WeakPassword { problem })?;
    password::hash_password(password).map_err(|problem| LocalDirectoryError::Hash { problem })
}

fn normalize_username(username: &str) -> String {
    username.trim().to_lowercase()
}

/// 1 to 64 bytes of `a-z 0-9 . _ - @`, starting with a letter or digit.
fn check_username(username: &str) -> Result<(), String> {
    if username.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if username.len() > MAX_USERNAME_LEN {
        return Err(format!("longer than {MAX_USERNAME_LEN} bytes"));
    }
    if !username
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric())
    {
        return Err("must start with a letter or a digit".to_owned());
    }
    if let Some(bad) = username
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-' | '@')))
    {
        return Err(format!(
            "{bad:?} is not allowed (letters, digits, '.', '_', '-', '@')"
        ));
    }
    Ok(())
}

fn check_group(group: &str) -> Result<(), String> {
    if group.trim().is_empty() {
        return Err("a group name must not be empty".to_owned());
    }
    if group.len() > 256 {
        return Err("a group name must not be longer than 256 bytes".to_owned());
    }
    if group.chars().any(char::is_control) {
        return Err("a group name must not contain control characters".to_owned());
    }
    Ok(())
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "users.toml".to_owned());
    parent_dir(path).join(format!(".{name}.tmp.{}", std::process::id()))
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |newline| {
            before[newline + 1..].chars().count()
        })
        + 1;
    (line, column)
}

/// The line where `username = "<name>"` is written (1 when not found).
fn user_line(text: &str, username: &str) -> usize {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            line.starts_with("username") && line.contains(&format!("\"{username}\""))
        })
        .map_or(1, |index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_checked() {
        assert!(check_username("allen-p").is_ok());
        assert!(check_username("john.arnold@enron.com").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("-x").is_err());
        assert!(check_username("a b").is_err());
        assert!(check_username("*)(uid=*").is_err());
        assert!(check_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn positions_are_one_based() {
        assert_eq!(line_and_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_and_column("ab\ncd", 4), (2, 2));
        assert_eq!(user_line("x\n  username = \"b\"\n", "b"), 2);
    }

    #[test]
    fn debug_prints_no_hash() {
        let user = LocalUser {
            username: "a".to_owned(),
            display_name: None,
            email: None,
            password_hash: "$argon2id$secret-looking".to_owned(),
            disabled: false,
            must_change_password: false,
            groups: Vec::new(),
        };
        assert!(!format!("{user:?}").contains("argon2id"));
    }
}
