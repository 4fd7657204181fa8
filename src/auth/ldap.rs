//! LDAP and Active Directory: a service bind to find the user, a bind as
//! the user to check the password, then the user's groups (`memberOf`, or
//! a group search), optionally nested.
//!
//! One connection per login, at most `max_connections` at a time; every
//! step has a timeout, and when the directory is down or slow the login
//! fails with [`AuthError::DirectoryUnavailable`] and nothing stays open
//! (the connection's driver task is aborted when the login ends).
//!
//! This module must never:
//! - bind with an empty password (an unauthenticated bind that servers
//!   accept), or put user input into a filter unescaped;
//! - log or return the user's password or the service bind password (kept
//!   as `SecretString`, read from a file or an environment variable);
//! - use plain `ldap://` without StartTLS unless `allow_plaintext` says so;
//! - accept a login whose search found no entry or more than one;
//! - tell an unknown user from a wrong password.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, ResultEntry, SearchEntry};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::filter;
use super::mapping::normalize_group;
use super::{AuthError, Identity};

/// Longest username sent to the directory, in bytes.
pub const MAX_USERNAME_BYTES: usize = 256;

/// Most groups collected for one user (nested lookups stop there).
pub const MAX_GROUPS: usize = 1000;

/// Deepest nested-group lookup accepted in configuration.
pub const MAX_NESTED_GROUP_DEPTH: u32 = 10;

/// The default group filter of `group_mode = "search"`: both group classes
/// of RFC 4519.
pub const DEFAULT_GROUP_FILTER: &str = "(|(&(objectClass=groupOfNames)(member={dn}))(&(objectClass=groupOfUniqueNames)(uniqueMember={dn})))";

/// How a user's groups are found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMode {
    /// Read the user's `memberOf` attribute (Active Directory, OpenLDAP
    /// with the memberof overlay).
    #[default]
    MemberOf,
    /// Search `group_base_dn` with `group_filter` (`{dn}` is the user's DN).
    Search,
}

/// The `[auth.ldap]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade `ldap://` with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// Permit `ldap://` without StartTLS (passwords in clear on the wire).
    #[serde(default)]
    pub allow_plaintext: bool,
    /// PEM file of the CA(s) that sign the server's certificate; the
    /// system's roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The service account that searches for users; anonymous when absent.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// A file holding the service account's password.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// An environment variable holding the service account's password.
    #[serde(default)]
    pub bind_password_env: Option<String>,
    pub user_base_dn: String,
    /// Must contain `{username}`.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    #[serde(default = "default_username_attribute")]
    pub username_attribute: String,
    #[serde(default = "default_email_attribute")]
    pub email_attribute: String,
    #[serde(default = "default_display_name_attribute")]
    pub display_name_attribute: String,
    /// Matches disabled accounts (checked on the user's entry after a
    /// correct password): such a login fails with `Disabled`.
    #[serde(default)]
    pub disabled_filter: Option<String>,
    #[serde(default)]
    pub group_mode: GroupMode,
    #[serde(default = "default_member_of_attribute")]
    pub member_of_attribute: String,
    /// Where groups are searched (`group_mode = "search"`).
    #[serde(default)]
    pub group_base_dn: Option<String>,
    /// Group search filter; `{dn}` is the member's DN, `{username}` the
    /// canonical username. Default: [`DEFAULT_GROUP_FILTER`].
    #[serde(default)]
    pub group_filter: Option<String>,
    /// Follow groups of groups this many levels (0: direct groups only).
    #[serde(default)]
    pub nested_group_depth: u32,
    #[serde(default = "default_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Each LDAP operation (bind, search).
    #[serde(default = "default_timeout_ms")]
    pub operation_timeout_ms: u64,
    /// Concurrent directory connections at most.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_user_filter() -> String {
    "(&(objectClass=inetOrgPerson)(uid={username}))".to_owned()
}
fn default_username_attribute() -> String {
    "uid".to_owned()
}
fn default_email_attribute() -> String {
    "mail".to_owned()
}
fn default_display_name_attribute() -> String {
    "cn".to_owned()
}
fn default_member_of_attribute() -> String {
    "memberOf".to_owned()
}
fn default_timeout_ms() -> u64 {
    5_000
}
fn default_max_connections() -> usize {
    8
}

impl LdapConfig {
    /// A configuration with the defaults for everything but the server and
    /// the user base DN.
    pub fn new(url: impl Into<String>, user_base_dn: impl Into<String>) -> LdapConfig {
        LdapConfig {
            url: url.into(),
            starttls: false,
            allow_plaintext: false,
            ca_file: None,
            bind_dn: None,
            bind_password_file: None,
            bind_password_env: None,
            user_base_dn: user_base_dn.into(),
            user_filter: default_user_filter(),
            username_attribute: default_username_attribute(),
            email_attribute: default_email_attribute(),
            display_name_attribute: default_display_name_attribute(),
            disabled_filter: None,
            group_mode: GroupMode::MemberOf,
            member_of_attribute: default_member_of_attribute(),
            group_base_dn: None,
            group_filter: None,
            nested_group_depth: 0,
            connect_timeout_ms: default_timeout_ms(),
            operation_timeout_ms: default_timeout_ms(),
            max_connections: default_max_connections(),
        }
    }
}

/// A checked LDAP directory; cheap to clone.
#[derive(Clone)]
pub struct LdapDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    config: LdapConfig,
    bind_password: Option<SecretString>,
    tls: Option<Arc<rustls::ClientConfig>>,
    group_filter: String,
    connect_timeout: Duration,
    operation_timeout: Duration,
    connections: Semaphore,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("url", &self.inner.config.url)
            .field("user_base_dn", &self.inner.config.user_base_dn)
            .field("bind_dn", &self.inner.config.bind_dn)
            .finish_non_exhaustive()
    }
}

fn config_error(field: &str, problem: impl Into<String>) -> AuthError {
    AuthError::config(format!("auth.ldap.{field}"), problem)
}

impl LdapDirectory {
    /// Checks the configuration, reads the bind password (file or
    /// environment) and the CA file. Errors name the field.
    pub fn new(config: LdapConfig) -> Result<LdapDirectory, AuthError> {
        Self::with_env(config, |name| std::env::var(name).ok())
    }

    /// As [`LdapDirectory::new`], with the environment given (tests).
    pub fn with_env(
        config: LdapConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<LdapDirectory, AuthError> {
        let url = config.url.trim();
        let tls = if let Some(rest) = url.strip_prefix("ldaps://") {
            check_host(rest)?;
            if config.starttls {
                return Err(config_error(
                    "starttls",
                    "ldaps:// is TLS already; StartTLS is for ldap://",
                ));
            }
            true
        } else if let Some(rest) = url.strip_prefix("ldap://") {
            check_host(rest)?;
            if !config.starttls && !config.allow_plaintext {
                return Err(config_error(
                    "url",
                    "plain ldap:// sends passwords in clear: set starttls = true, use ldaps://, \
                     or set allow_plaintext = true",
                ));
            }
            config.starttls
        } else {
            return Err(config_error(
                "url",
                format!("{url:?} must start with ldap:// or ldaps://"),
            ));
        };
        if tls {
            // ldap3 builds its default TLS configuration (system roots) on
            // the process-wide provider: make sure there is one, ours.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let tls_config = match (&config.ca_file, tls) {
            (Some(_), false) => {
                return Err(config_error(
                    "ca_file",
                    "is set but the connection does not use TLS",
                ));
            }
            (Some(path), true) => Some(tls_with_ca(path)?),
            (None, _) => None,
        };
        let bind_password = match (
            &config.bind_dn,
            &config.bind_password_file,
            &config.bind_password_env,
        ) {
            (None, None, None) => None,
            (None, _, _) => {
                return Err(config_error(
                    "bind_dn",
                    "a bind password is configured but no bind_dn",
                ));
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(config_error(
                    "bind_password_file",
                    "set bind_password_file or bind_password_env, not both",
                ));
            }
            (Some(_), None, None) => {
                return Err(config_error(
                    "bind_dn",
                    "needs bind_password_file or bind_password_env",
                ));
            }
            (Some(_), Some(path), None) => Some(read_password_file(path)?),
            (Some(_), None, Some(name)) => match env(name) {
                Some(value) if !value.is_empty() => Some(SecretString::from(value)),
                _ => {
                    return Err(config_error(
                        "bind_password_env",
                        format!("environment variable {name} is not set or empty"),
                    ));
                }
            },
        };
        if config.user_base_dn.trim().is_empty() {
            return Err(config_error("user_base_dn", "must not be empty"));
        }
        filter::check_template(&config.user_filter, &["username"])
            .map_err(|problem| config_error("user_filter", problem))?;
        for (field, attribute) in [
            ("username_attribute", &config.username_attribute),
            ("email_attribute", &config.email_attribute),
            ("display_name_attribute", &config.display_name_attribute),
            ("member_of_attribute", &config.member_of_attribute),
        ] {
            check_attribute(attribute).map_err(|problem| config_error(field, problem))?;
        }
        if let Some(disabled) = &config.disabled_filter {
            filter::check_filter(disabled)
                .map_err(|problem| config_error("disabled_filter", problem))?;
        }
        let group_filter = config
            .group_filter
            .clone()
            .unwrap_or_else(|| DEFAULT_GROUP_FILTER.to_owned());
        if config.group_mode == GroupMode::Search {
            if config
                .group_base_dn
                .as_deref()
                .is_none_or(|base| base.trim().is_empty())
            {
                return Err(config_error(
                    "group_base_dn",
                    "is needed when group_mode = \"search\"",
                ));
            }
            filter::check_template(&group_filter, &["dn"])
                .map_err(|problem| config_error("group_filter", problem))?;
        }
        if config.nested_group_depth > MAX_NESTED_GROUP_DEPTH {
            return Err(config_error(
                "nested_group_depth",
                format!("at most {MAX_NESTED_GROUP_DEPTH}"),
            ));
        }
        for (field, millis) in [
            ("connect_timeout_ms", config.connect_timeout_ms),
            ("operation_timeout_ms", config.operation_timeout_ms),
        ] {
            if millis == 0 || millis > 300_000 {
                return Err(config_error(field, "must be between 1 and 300000"));
            }
        }
        if config.max_connections == 0 || config.max_connections > 1024 {
            return Err(config_error(
                "max_connections",
                "must be between 1 and 1024",
            ));
        }
        Ok(LdapDirectory {
            inner: Arc::new(Inner {
                bind_password,
                tls: tls_config,
                group_filter,
                connect_timeout: Duration::from_millis(config.connect_timeout_ms),
                operation_timeout: Duration::from_millis(config.operation_timeout_ms),
                connections: Semaphore::new(config.max_connections),
                config,
            }),
        })
    }

    pub fn config(&self) -> &LdapConfig {
        &self.inner.config
    }

    /// Checks `password` for `username` against the directory.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<Identity, AuthError> {
        // An empty password is an unauthenticated bind (RFC 4513 5.1.2),
        // which a server answers with success.
        if password.expose_secret().is_empty()
            || username.trim().is_empty()
            || username.len() > MAX_USERNAME_BYTES
        {
            return Err(AuthError::InvalidCredentials);
        }
        let inner = &self.inner;
        let _permit = tokio::time::timeout(inner.operation_timeout, inner.connections.acquire())
            .await
            .map_err(|_| AuthError::unavailable("too many concurrent directory logins; try again"))?
            .map_err(|_| AuthError::unavailable("directory connections closed"))?;
        let mut session = self.connect().await?;
        let outcome = self.login(&mut session, username, password).await;
        session.close(inner.operation_timeout).await;
        outcome
    }

    async fn login(
        &self,
        session: &mut Session,
        username: &str,
        password: &SecretString,
    ) -> Result<Identity, AuthError> {
        let inner = &self.inner;
        let config = &inner.config;
        self.service_bind(session).await?;
        let Some(entry) = self.find_user(session, username).await? else {
            return Err(AuthError::InvalidCredentials);
        };
        let bind = self
            .op(
                "user bind",
                session
                    .ldap
                    .simple_bind(&entry.dn, password.expose_secret()),
            )
            .await?;
        match bind.rc {
            0 => {}
            49 => {
                return Err(if ad_account_restricted(&bind.text) {
                    AuthError::Disabled
                } else {
                    AuthError::InvalidCredentials
                });
            }
            51 | 52 => {
                return Err(AuthError::unavailable(format!(
                    "user bind: result code {}",
                    bind.rc
                )));
            }
            rc => {
                tracing::warn!(rc, username, "ldap user bind refused");
                return Err(AuthError::InvalidCredentials);
            }
        }
        // Reads after the password check run with the service account's
        // rights, not the user's.
        self.service_bind(session).await?;
        if let Some(disabled_filter) = &config.disabled_filter {
            let found = self
                .search(
                    session,
                    SearchKind::DisabledCheck,
                    &entry.dn,
                    ldap3::Scope::Base,
                    disabled_filter,
                    vec!["1.1".to_owned()],
                )
                .await?;
            if !found.is_empty() {
                return Err(AuthError::Disabled);
            }
        }
        let groups = self.groups(session, &entry, username).await?;
        let canonical = attribute(&entry, &config.username_attribute)
            .into_iter()
            .find(|value| value.eq_ignore_ascii_case(username.trim()))
            .or_else(|| first_attribute(&entry, &config.username_attribute))
            .unwrap_or_else(|| username.trim().to_owned());
        Ok(Identity {
            username: canonical,
            display_name: first_attribute(&entry, &config.display_name_attribute),
            email: first_attribute(&entry, &config.email_attribute),
            groups,
            must_change_password: false,
        })
    }

    async fn connect(&self) -> Result<Session, AuthError> {
        let inner = &self.inner;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(inner.connect_timeout)
            .set_starttls(inner.config.starttls);
        if let Some(tls) = &inner.tls {
            settings = settings.set_config(tls.clone());
        }
        let url = inner.config.url.trim().to_owned();
        let (connection, ldap) = tokio::time::timeout(
            inner.connect_timeout,
            LdapConnAsync::with_settings(settings, &url),
        )
        .await
        .map_err(|_| AuthError::unavailable(format!("connecting to {url} timed out")))?
        .map_err(|error| AuthError::unavailable(format!("connecting to {url}: {error}")))?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.drive().await {
                tracing::debug!(%error, "ldap connection ended");
            }
        });
        Ok(Session { ldap, driver })
    }

    /// Binds as the service account (or anonymously).
    async fn service_bind(&self, session: &mut Session) -> Result<(), AuthError> {
        let inner = &self.inner;
        let (dn, password) = match (&inner.config.bind_dn, &inner.bind_password) {
            (Some(dn), Some(password)) => (dn.as_str(), password.expose_secret()),
            _ => ("", ""),
        };
        let result = self
            .op("service bind", session.ldap.simple_bind(dn, password))
            .await?;
        if result.rc != 0 {
            return Err(AuthError::unavailable(format!(
                "service bind as {dn:?} refused (result code {}): check bind_dn and its password",
                result.rc
            )));
        }
        Ok(())
    }

    async fn find_user(
        &self,
        session: &mut Session,
        username: &str,
    ) -> Result<Option<SearchEntry>, AuthError> {
        let config = &self.inner.config;
        let filter = filter::render(&config.user_filter, &[("username", username.trim())]);
        let mut attributes = vec![
            config.username_attribute.clone(),
            config.email_attribute.clone(),
            config.display_name_attribute.clone(),
        ];
        if config.group_mode == GroupMode::MemberOf {
            attributes.push(config.member_of_attribute.clone());
        }
        let mut entries = self
            .search(
                session,
                SearchKind::User,
                &config.user_base_dn,
                ldap3::Scope::Subtree,
                &filter,
                attributes,
            )
            .await?;
        match entries.len() {
            0 => Ok(None),
            1 => Ok(entries.pop()),
            n_entries => {
                tracing::warn!(
                    username,
                    n_entries,
                    "ldap user search found more than one entry; refusing the login"
                );
                Ok(None)
            }
        }
    }

    /// The user's groups (DNs), nested up to the configured depth.
    async fn groups(
        &self,
        session: &mut Session,
        user: &SearchEntry,
        username: &str,
    ) -> Result<Vec<String>, AuthError> {
        let config = &self.inner.config;
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut groups: Vec<String> = Vec::new();
        let mut frontier: Vec<String> = match config.group_mode {
            GroupMode::MemberOf => attribute(user, &config.member_of_attribute),
            GroupMode::Search => self.groups_of(session, &user.dn, username).await?,
        };
        let mut depth = 0;
        loop {
            let mut next = Vec::new();
            for group in frontier {
                if groups.len() >= MAX_GROUPS {
                    tracing::warn!(username, "more than {MAX_GROUPS} groups; ignoring the rest");
                    return Ok(groups);
                }
                if seen.insert(normalize_group(&group)) {
                    groups.push(group.clone());
                    next.push(group);
                }
            }
            if depth >= config.nested_group_depth || next.is_empty() {
                return Ok(groups);
            }
            depth += 1;
            let mut parents = Vec::new();
            for group in &next {
                let found = match config.group_mode {
                    GroupMode::MemberOf => {
                        let entries = self
                            .search(
                                session,
                                SearchKind::ParentGroups,
                                group,
                                ldap3::Scope::Base,
                                "(objectClass=*)",
                                vec![config.member_of_attribute.clone()],
                            )
                            .await?;
                        entries
                            .iter()
                            .flat_map(|entry| attribute(entry, &config.member_of_attribute))
                            .collect()
                    }
                    GroupMode::Search => self.groups_of(session, group, username).await?,
                };
                parents.extend(found);
            }
            frontier = parents;
        }
    }

    /// Groups naming `member_dn` as a member (`group_mode = "search"`).
    async fn groups_of(
        &self,
        session: &mut Session,
        member_dn: &str,
        username: &str,
    ) -> Result<Vec<String>, AuthError> {
        let config = &self.inner.config;
        let base = config.group_base_dn.clone().unwrap_or_default();
        let filter = filter::render(
            &self.inner.group_filter,
            &[("dn", member_dn), ("username", username.trim())],
        );
        let entries = self
            .search(
                session,
                SearchKind::Groups,
                &base,
                ldap3::Scope::Subtree,
                &filter,
                vec!["1.1".to_owned()],
            )
            .await?;
        Ok(entries.into_iter().map(|entry| entry.dn).collect())
    }

    /// A search; referrals are ignored. What a result code other than
    /// success means depends on the kind of search (see [`SearchKind`]).
    async fn search(
        &self,
        session: &mut Session,
        kind: SearchKind,
        base: &str,
        scope: ldap3::Scope,
        filter: &str,
        attributes: Vec<String>,
    ) -> Result<Vec<SearchEntry>, AuthError> {
        let what = kind.what();
        let ldap = &mut session.ldap;
        ldap.with_search_options(ldap3::SearchOptions::new().sizelimit(kind.size_limit()));
        let ldap3::SearchResult(entries, result) = self
            .op(what, ldap.search(base, scope, filter, attributes))
            .await?;
        match (result.rc, kind) {
            // More than one user matches: refused, whatever was returned.
            (4, SearchKind::User) => {
                tracing::warn!("ldap user search matched more than one entry; refusing the login");
                return Err(AuthError::InvalidCredentials);
            }
            // Success, a referral, or "size limit exceeded" with what fit.
            (0 | 4 | 10, _) => {}
            // A group the service account cannot see adds nothing.
            (32 | 50, SearchKind::ParentGroups) => return Ok(Vec::new()),
            // The user's entry went away since the search.
            (32, SearchKind::DisabledCheck) => return Err(AuthError::InvalidCredentials),
            (32, _) => {
                return Err(AuthError::unavailable(format!(
                    "{what}: base DN {base:?} does not exist"
                )));
            }
            // Anything else fails closed: a disabled check that cannot run
            // does not let the user in.
            (rc, _) => {
                return Err(AuthError::unavailable(format!(
                    "{what} failed (result code {rc}): {}",
                    result.text
                )));
            }
        }
        Ok(entries
            .into_iter()
            .filter(|entry: &ResultEntry| !entry.is_ref())
            .map(SearchEntry::construct)
            .collect())
    }

    /// Runs one LDAP operation with the operation timeout; transport
    /// errors are "directory unavailable", result codes are the caller's.
    async fn op<T>(
        &self,
        what: &'static str,
        operation: impl Future<Output = Result<T, LdapError>>,
    ) -> Result<T, AuthError> {
        match tokio::time::timeout(self.inner.operation_timeout, operation).await {
            Err(_) => Err(AuthError::unavailable(format!(
                "{what} timed out after {} ms",
                self.inner.operation_timeout.as_millis()
            ))),
            Ok(Err(error)) => Err(AuthError::unavailable(format!("{what}: {error}"))),
            Ok(Ok(value)) => Ok(value),
        }
    }
}

/// The searches of a login, each with its own reading of result codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SearchKind {
    /// The user's entry, by the user filter.
    User,
    /// The disabled filter on the user's entry.
    DisabledCheck,
    /// Groups naming a DN as member (`group_mode = "search"`).
    Groups,
    /// A group's own `memberOf` (nested groups).
    ParentGroups,
}

impl SearchKind {
    fn what(self) -> &'static str {
        match self {
            SearchKind::User => "user search",
            SearchKind::DisabledCheck => "disabled check",
            SearchKind::Groups => "group search",
            SearchKind::ParentGroups => "nested group lookup",
        }
    }

    /// Entries asked for at most: two users are enough to refuse.
    fn size_limit(self) -> i32 {
        match self {
            SearchKind::User => 2,
            _ => MAX_GROUPS as i32,
        }
    }
}

/// One connection and the task that drives it; the task is aborted when
/// the session ends, whatever happened.
struct Session {
    ldap: Ldap,
    driver: JoinHandle<()>,
}

impl Session {
    async fn close(mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.ldap.unbind()).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Active Directory answers a correct password of a disabled, expired or
/// locked account with result 49 and `data 533` / `701` / `775` in the
/// diagnostic message.
fn ad_account_restricted(diagnostic: &str) -> bool {
    ["data 533", "data 701", "data 775"]
        .iter()
        .any(|code| diagnostic.contains(code))
}

fn attribute(entry: &SearchEntry, name: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, values)| values.clone())
        .unwrap_or_default()
}

fn first_attribute(entry: &SearchEntry, name: &str) -> Option<String> {
    attribute(entry, name)
        .into_iter()
        .find(|value| !value.trim().is_empty())
}

fn check_host(rest: &str) -> Result<(), AuthError> {
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(config_error("url", "has no host"));
    }
    Ok(())
}

fn check_attribute(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if !name
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | ';' | '.'))
    {
        return Err(format!("{name:?} is not an attribute name"));
    }
    Ok(())
}

/// Reads a password file; trailing line breaks are not part of it.
fn read_password_file(path: &std::path::Path) -> Result<SecretString, AuthError> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path).map_err(|error| {
        config_error(
            "bind_password_file",
            format!("cannot read {}: {error}", path.display()),
        )
    })?;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the ldap bind password file is readable by other users; chmod 600 it"
        );
    }
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(config_error(
            "bind_password_file",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(SecretString::from(password.to_owned()))
}

/// A TLS client configuration trusting the CAs of a PEM file only.
fn tls_with_ca(path: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, AuthError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let problem =
        |problem: String| config_error("ca_file", format!("{}: {problem}", path.display()));
    let pem = std::fs::read(path).map_err(|error| problem(error.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|error| problem(error.to_string()))?;
        roots
            .add(certificate)
            .map_err(|error| problem(error.to_string()))?;
    }
    if roots.is_empty() {
        return Err(problem("holds no certificate".to_owned()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| problem(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> LdapConfig {
        let mut config = LdapConfig::new("ldaps://ldap.example.com", "ou=people,dc=example,dc=com");
        config.bind_dn = Some("cn=holdfast,ou=services,dc=example,dc=com".to_owned());
        config.bind_password_env = Some("HOLDFAST_TEST_BIND".to_owned());
        config
    }

    fn check(config: LdapConfig) -> Result<LdapDirectory, AuthError> {
        LdapDirectory::with_env(config, |name| {
            (name == "HOLDFAST_TEST_BIND").then(|| "service-secret".to_owned())
        })
    }

    fn field_of(error: AuthError) -> String {
        match error {
            AuthError::Config { field, .. } => field,
            other => panic!("expected a config error, got {other}"),
        }
    }

    #[test]
    fn plain_ldap_needs_starttls_or_an_explicit_allow() {
        let mut config = base();
        config.url = "ldap://ldap.example.com:389".to_owned();
        let error = check(config.clone()).expect_err("plain ldap refused");
        assert!(error.to_string().contains("allow_plaintext"), "{error}");
        assert_eq!(field_of(error), "auth.ldap.url");
        config.starttls = true;
        check(config.clone()).expect("starttls accepted");
        config.starttls = false;
        config.allow_plaintext = true;
        check(config).expect("plaintext accepted when explicit");
    }

    #[test]
    fn configuration_mistakes_name_the_field() {
        type Change = Box<dyn Fn(&mut LdapConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("url", Box::new(|c| c.url = "http://x".to_owned())),
            ("url", Box::new(|c| c.url = "ldaps://".to_owned())),
            ("starttls", Box::new(|c| c.starttls = true)),
            (
                "user_filter",
                Box::new(|c| c.user_filter = "(uid=x)".to_owned()),
            ),
            (
                "user_filter",
                Box::new(|c| c.user_filter = "(&(uid={username})".to_owned()),
            ),
            ("bind_dn", Box::new(|c| c.bind_password_env = None)),
            (
                "bind_password_env",
                Box::new(|c| c.bind_password_env = Some("HOLDFAST_NOT_SET_ANYWHERE".to_owned())),
            ),
            (
                "bind_password_file",
                Box::new(|c| c.bind_password_file = Some("/nonexistent/bind".into())),
            ),
            (
                "ca_file",
                Box::new(|c| c.ca_file = Some("/nonexistent/ca.pem".into())),
            ),
            (
                "group_base_dn",
                Box::new(|c| c.group_mode = GroupMode::Search),
            ),
            (
                "group_filter",
                Box::new(|c| {
                    c.group_mode = GroupMode::Search;
                    c.group_base_dn = Some("ou=groups,dc=example,dc=com".to_owned());
                    c.group_filter = Some("(member=x)".to_owned());
                }),
            ),
            (
                "nested_group_depth",
                Box::new(|c| c.nested_group_depth = 11),
            ),
            (
                "operation_timeout_ms",
                Box::new(|c| c.operation_timeout_ms = 0),
            ),
            ("max_connections", Box::new(|c| c.max_connections = 0)),
            (
                "disabled_filter",
                Box::new(|c| c.disabled_filter = Some("employeeType=x".to_owned())),
            ),
            (
                "username_attribute",
                Box::new(|c| c.username_attribute = "u id".to_owned()),
            ),
        ];
        for (field, change) in cases {
            let mut config = base();
            change(&mut config);
            let error = check(config).expect_err(field);
            let message = error.to_string();
            assert_eq!(field_of(error), format!("auth.ldap.{field}"), "{message}");
            assert!(!message.contains("service-secret"), "{message}");
        }
    }

    #[test]
    fn bind_password_file_is_read_without_its_line_break() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bind");
        std::fs::write(&path, "s3cret pass\n").expect("write");
        let mut config = base();
        config.bind_password_env = None;
        config.bind_password_file = Some(path.clone());
        let directory = check(config).expect("valid");
        assert_eq!(
            directory
                .inner
                .bind_password
                .as_ref()
                .map(|password| password.expose_secret().to_owned()),
            Some("s3cret pass".to_owned())
        );
        assert!(!format!("{directory:?}").contains("s3cret"));
        std::fs::write(&path, "\n").expect("write");
        let mut config = base();
        config.bind_password_env = None;
        config.bind_password_file = Some(path);
        assert_eq!(
            field_of(check(config).expect_err("empty")),
            "auth.ldap.bind_password_file"
        );
    }

    #[test]
    fn config_deserializes_with_defaults_and_refuses_unknown_keys() {
        let config: LdapConfig = toml::from_str(
            r#"
            url = "ldaps://dc1.corp.example.com"
            bind_dn = "CN=svc-holdfast,OU=Service Accounts,DC=corp,DC=example,DC=com"
            bind_password_env = "HOLDFAST_LDAP_BIND_PASSWORD"
            user_base_dn = "OU=Staff,DC=corp,DC=example,DC=com"
            user_filter = "(&(objectClass=user)(sAMAccountName={username}))"
            username_attribute = "sAMAccountName"
            display_name_attribute = "displayName"
            disabled_filter = "(userAccountControl:1.2.840.113556.1.4.803:=2)"
            "#,
        )
        .expect("parses");
        assert_eq!(config.group_mode, GroupMode::MemberOf);
        assert_eq!(config.member_of_attribute, "memberOf");
        assert_eq!(config.operation_timeout_ms, 5_000);
        let error = toml::from_str::<LdapConfig>(
            "url = \"ldaps://x\"\nuser_base_dn = \"o=x\"\nbind_password = \"inline\"\n",
        )
        .expect_err("inline passwords are not a key");
        assert!(error.to_string().contains("bind_password"), "{error}");
    }

    #[tokio::test]
    async fn empty_password_and_empty_username_never_reach_the_server() {
        // Port 9 on localhost: nothing listens; an attempt to connect would
        // be DirectoryUnavailable, not InvalidCredentials.
        let mut config = LdapConfig::new("ldap://127.0.0.1:9", "dc=example,dc=com");
        config.allow_plaintext = true;
        let directory = check(config).expect("valid");
        for (username, password) in [("alice", ""), ("", "pw"), ("  ", "pw")] {
            let error = directory
                .authenticate(username, &SecretString::from(password.to_owned()))
                .await
                .expect_err("refused");
            assert!(matches!(error, AuthError::InvalidCredentials), "{error}");
        }
        let long = "a".repeat(MAX_USERNAME_BYTES + 1);
        let error = directory
            .authenticate(&long, &SecretString::from("pw".to_owned()))
            .await
            .expect_err("refused");
        assert!(matches!(error, AuthError::InvalidCredentials), "{error}");
        let error = directory
            .authenticate("alice", &SecretString::from("pw".to_owned()))
            .await
            .expect_err("nothing listens");
        assert!(
            matches!(error, AuthError::DirectoryUnavailable { .. }),
            "{error}"
        );
    }

    #[test]
    fn ad_restriction_codes_are_recognised() {
        assert!(ad_account_restricted(
            "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 533, v4563"
        ));
        assert!(!ad_account_restricted(
            "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563"
        ));
    }
}
