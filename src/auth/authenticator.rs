//! The `[auth]` configuration section and the [`Authenticator`] the login
//! endpoint and the CLI call: rate limit, directory, role mapping.
//!
//! ```toml
//! [auth]
//! directory = "ldap"            # or "local" (the default)
//!
//! [auth.ldap]
//! url = "ldaps://ldap.example.com"
//! # ... see docs/ldap.md
//!
//! [[auth.groups]]
//! group = "cn=compliance,ou=groups,dc=example,dc=com"
//! role = "compliance_officer"
//! teams = ["trading"]
//!
//! [auth.rate_limit]
//! max_failures_per_user = 5
//! ```
//!
//! This module must never count a login the directory could not answer
//! (down, timed out) as a failed password, nor check a password while the
//! user or the address is locked out.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::ldap::{LdapConfig, LdapDirectory};
use super::limiter::{Clock, LimiterConfig, LoginLimiter, SystemClock};
use super::local::{BOOTSTRAP_ADMIN_GROUP, LocalDirectory};
use super::mapping::{GroupRuleConfig, RoleMapping};
use super::roles::{Principal, Role};
use super::{AuthError, Directory};

/// The users file of the local directory, relative to the data directory.
pub const DEFAULT_USERS_FILE: &str = "users.toml";

/// Which directory people are looked up in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryKind {
    #[default]
    Local,
    Ldap,
}

/// The `[auth]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub directory: DirectoryKind,
    /// The local directory's file; `<data_dir>/users.toml` when absent.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// Required when `directory = "ldap"`.
    #[serde(default)]
    pub ldap: Option<LdapConfig>,
    /// Group → role + scope. When absent: the local `admins` group is
    /// `admin` (so the bootstrap admin can log in), nothing else.
    #[serde(default = "default_groups")]
    pub groups: Vec<GroupRuleConfig>,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// How long a sign-in session lasts, in minutes (1 to 10080).
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u64,
    /// Mark the web console's session cookie `Secure` (only sent over
    /// HTTPS): set it when clients reach holdfast through TLS.
    #[serde(default)]
    pub secure_cookie: bool,
}

/// A working day.
pub const DEFAULT_SESSION_MINUTES: u64 = 480;

fn default_session_minutes() -> u64 {
    DEFAULT_SESSION_MINUTES
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            directory: DirectoryKind::Local,
            users_file: None,
            ldap: None,
            groups: default_groups(),
            rate_limit: RateLimitConfig::default(),
            session_minutes: DEFAULT_SESSION_MINUTES,
            secure_cookie: false,
        }
    }
}

fn default_groups() -> Vec<GroupRuleConfig> {
    vec![GroupRuleConfig {
        group: BOOTSTRAP_ADMIN_GROUP.to_owned(),
        role: Role::Admin,
        teams: Vec::new(),
        channels: Vec::new(),
        all: false,
    }]
}

/// The `[auth.rate_limit]` section (see [`LimiterConfig`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default = "default_failures_per_user")]
    pub max_failures_per_user: u32,
    #[serde(default = "default_failures_per_ip")]
    pub max_failures_per_ip: u32,
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
    #[serde(default = "default_lockout_secs")]
    pub lockout_secs: u64,
    #[serde(default = "default_max_lockout_secs")]
    pub max_lockout_secs: u64,
}

fn default_failures_per_user() -> u32 {
    LimiterConfig::default().max_failures_per_user
}
fn default_failures_per_ip() -> u32 {
    LimiterConfig::default().max_failures_per_ip
}
fn default_window_secs() -> u64 {
    LimiterConfig::default().window.as_secs()
}
fn default_lockout_secs() -> u64 {
    LimiterConfig::default().lockout.as_secs()
}
fn default_max_lockout_secs() -> u64 {
    LimiterConfig::default().max_lockout.as_secs()
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_failures_per_user: default_failures_per_user(),
            max_failures_per_ip: default_failures_per_ip(),
            window_secs: default_window_secs(),
            lockout_secs: default_lockout_secs(),
            max_lockout_secs: default_max_lockout_secs(),
        }
    }
}

impl RateLimitConfig {
    pub fn limiter_config(&self) -> Result<LimiterConfig, AuthError> {
        for (field, value) in [
            (
                "max_failures_per_user",
                u64::from(self.max_failures_per_user),
            ),
            ("max_failures_per_ip", u64::from(self.max_failures_per_ip)),
            ("window_secs", self.window_secs),
            ("lockout_secs", self.lockout_secs),
            ("max_lockout_secs", self.max_lockout_secs),
        ] {
            if value == 0 {
                return Err(AuthError::config(
                    format!("auth.rate_limit.{field}"),
                    "must be at least 1",
                ));
            }
        }
        if self.max_lockout_secs < self.lockout_secs {
            return Err(AuthError::config(
                "auth.rate_limit.max_lockout_secs",
                "must not be less than lockout_secs",
            ));
        }
        Ok(LimiterConfig {
            max_failures_per_user: self.max_failures_per_user,
            max_failures_per_ip: self.max_failures_per_ip,
            window: Duration::from_secs(self.window_secs),
            lockout: Duration::from_secs(self.lockout_secs),
            max_lockout: Duration::from_secs(self.max_lockout_secs),
            ..LimiterConfig::default()
        })
    }
}

impl AuthConfig {
    /// The configured directory (reads the LDAP bind password and CA file).
    pub fn directory(&self, data_dir: &Path) -> Result<Directory, AuthError> {
        match (self.directory, &self.ldap) {
            (DirectoryKind::Local, None) => Ok(Directory::Local(LocalDirectory::new(
                self.users_file_path(data_dir),
            ))),
            (DirectoryKind::Local, Some(_)) => Err(AuthError::config(
                "auth.ldap",
                "is set but auth.directory is \"local\": set directory = \"ldap\" or remove it",
            )),
            (DirectoryKind::Ldap, None) => Err(AuthError::config(
                "auth.ldap",
                "is needed when auth.directory = \"ldap\"",
            )),
            (DirectoryKind::Ldap, Some(ldap)) => {
                Ok(Directory::Ldap(LdapDirectory::new(ldap.clone())?))
            }
        }
    }

    /// The local users file (also with LDAP: service accounts' tokens and
    /// the CLI may still use it).
    pub fn users_file_path(&self, data_dir: &Path) -> PathBuf {
        match &self.users_file {
            Some(path) if path.is_absolute() => path.clone(),
            Some(path) => data_dir.join(path),
            None => data_dir.join(DEFAULT_USERS_FILE),
        }
    }

    pub fn mapping(&self) -> Result<RoleMapping, AuthError> {
        RoleMapping::from_config(&self.groups)
    }

    /// How long a session lasts, checked.
    pub fn session_length(&self) -> Result<Duration, AuthError> {
        if !(1..=10_080).contains(&self.session_minutes) {
            return Err(AuthError::config(
                "auth.session_minutes",
                format!(
                    "must be between 1 and 10080 (a week), got {}",
                    self.session_minutes
                ),
            ));
        }
        Ok(Duration::from_secs(self.session_minutes * 60))
    }

    /// Everything checkable without the network: the group rules, the rate
    /// limits, the session length, and that the directory section is
    /// consistent. The server refuses to start when this fails.
    pub fn check(&self) -> Result<(), AuthError> {
        self.mapping()?;
        self.rate_limit.limiter_config()?;
        self.session_length()?;
        match (self.directory, &self.ldap) {
            (DirectoryKind::Local, Some(_)) => Err(AuthError::config(
                "auth.ldap",
                "is set but auth.directory is \"local\": set directory = \"ldap\" or remove it",
            )),
            (DirectoryKind::Ldap, None) => Err(AuthError::config(
                "auth.ldap",
                "is needed when auth.directory = \"ldap\"",
            )),
            _ => Ok(()),
        }
    }

    /// Directory, mapping and rate limiter, checked.
    pub fn authenticator(&self, data_dir: &Path) -> Result<Authenticator, AuthError> {
        Ok(Authenticator::new(
            self.directory(data_dir)?,
            self.mapping()?,
            LoginLimiter::new(self.rate_limit.limiter_config()?, Arc::new(SystemClock)),
        ))
    }
}

/// Everything a password login needs.
#[derive(Debug)]
pub struct Authenticator {
    directory: Directory,
    mapping: RoleMapping,
    limiter: LoginLimiter,
}

impl Authenticator {
    pub fn new(directory: Directory, mapping: RoleMapping, limiter: LoginLimiter) -> Authenticator {
        Authenticator {
            directory,
            mapping,
            limiter,
        }
    }

    /// With a given clock for the limiter (tests).
    pub fn with_clock(
        directory: Directory,
        mapping: RoleMapping,
        limiter: LimiterConfig,
        clock: Arc<dyn Clock>,
    ) -> Authenticator {
        Authenticator::new(directory, mapping, LoginLimiter::new(limiter, clock))
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn mapping(&self) -> &RoleMapping {
        &self.mapping
    }

    pub fn limiter(&self) -> &LoginLimiter {
        &self.limiter
    }

    /// A password login from `address`: refused without checking the
    /// password while the user or the address is locked out; wrong
    /// passwords, unknown and disabled users count as failures; a directory
    /// that cannot answer does not.
    pub async fn login(
        &self,
        username: &str,
        password: &SecretString,
        address: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        if let Err(retry_after) = self.limiter.check(username, address) {
            return Err(AuthError::RateLimited { retry_after });
        }
        match self
            .directory
            .login(username, password, &self.mapping)
            .await
        {
            Ok(principal) => {
                self.limiter.record_success(username, address);
                Ok(principal)
            }
            Err(error @ (AuthError::InvalidCredentials | AuthError::Disabled)) => {
                self.limiter.record_failure(username, address);
                Err(error)
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_local_with_the_admins_group() {
        let config: AuthConfig = toml::from_str("").expect("empty section");
        assert_eq!(config, AuthConfig::default());
        let mapping = config.mapping().expect("valid");
        assert_eq!(mapping.grants_for(&["admins"]).len(), 1);
        let Directory::Local(local) = config.directory(Path::new("/srv/holdfast")).expect("ok")
        else {
            panic!("local by default");
        };
        assert_eq!(local.path(), Path::new("/srv/holdfast/users.toml"));
    }

    #[test]
    fn the_whole_section_parses_and_mistakes_are_named() {
        let config: AuthConfig = toml::from_str(
            r#"
            directory = "ldap"
            users_file = "people.toml"

            [ldap]
            url = "ldap://ldap.example.com"
            starttls = true
            user_base_dn = "ou=people,dc=example,dc=com"

            [[groups]]
            group = "cn=legal,ou=groups,dc=example,dc=com"
            role = "legal"
            teams = ["legal"]

            [rate_limit]
            max_failures_per_user = 3
            "#,
        )
        .expect("parses");
        assert_eq!(
            config.groups.len(),
            1,
            "configured groups replace the default"
        );
        assert_eq!(
            config.users_file_path(Path::new("/d")),
            PathBuf::from("/d/people.toml")
        );
        let authenticator = config.authenticator(Path::new("/d")).expect("valid");
        assert!(matches!(authenticator.directory(), Directory::Ldap(_)));

        let mut local_with_ldap = config.clone();
        local_with_ldap.directory = DirectoryKind::Local;
        let error = local_with_ldap
            .directory(Path::new("/d"))
            .expect_err("contradiction");
        assert!(error.to_string().contains("auth.ldap"), "{error}");
        let mut ldap_without = config.clone();
        ldap_without.ldap = None;
        assert!(ldap_without.directory(Path::new("/d")).is_err());
        let mut zero = config;
        zero.rate_limit.window_secs = 0;
        let error = zero
            .authenticator(Path::new("/d"))
            .expect_err("zero window");
        assert!(
            error.to_string().contains("auth.rate_limit.window_secs"),
            "{error}"
        );
        let error = toml::from_str::<AuthConfig>("directory = \"ad\"").expect_err("unknown");
        assert!(error.to_string().contains("ad"), "{error}");
        let error = toml::from_str::<AuthConfig>("[rate_limit]\nmax_failures = 1\n")
            .expect_err("unknown key");
        assert!(error.to_string().contains("max_failures"), "{error}");
    }
}
