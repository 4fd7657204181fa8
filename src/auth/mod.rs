//! Who may see what: directories (the local users file, LDAP / Active
//! Directory), roles and scopes, and failed-login rate limiting.
//!
//! A directory answers one question, "is this the password of this user,
//! and which groups are they in" ([`Identity`]); the [`RoleMapping`] turns
//! the groups into grants, giving the [`Principal`] a request runs as.
//!
//! This module must never:
//! - log, print, or put into an error a password, a password hash or the
//!   LDAP bind password (all are `SecretString`s or stay in the users file);
//! - tell an unknown user from a wrong password (both are
//!   [`AuthError::InvalidCredentials`], and the local directory spends the
//!   same time on both; with LDAP an unknown user is answered one bind
//!   sooner, which the rate limiter bounds); "disabled" is only said after
//!   a correct password;
//! - build an LDAP filter from unescaped user input, or bind with an empty
//!   password (an unauthenticated bind that a server accepts);
//! - fall back to plain-text LDAP unless the configuration asks for it;
//! - grant anything a configured group rule does not name.
//!
//! It knows nothing of HTTP or the command line: the API maps
//! [`AuthError`] to statuses (`DirectoryUnavailable` is a 503).

pub mod authenticator;
pub mod filter;
pub mod ldap;
pub mod limiter;
pub mod local;
pub mod mapping;
pub mod password;
pub mod roles;
pub mod tokens;

use secrecy::SecretString;

pub use authenticator::{AuthConfig, Authenticator, DirectoryKind, RateLimitConfig};
pub use ldap::{GroupMode, LdapConfig, LdapDirectory};
pub use limiter::{Clock, LimiterConfig, LoginLimiter, RetryAfter, SystemClock};
pub use local::{
    Bootstrap, LocalDirectory, LocalDirectoryError, LocalUser, NewUser, UsersFile,
    ensure_bootstrap_admin,
};
pub use mapping::{GroupRuleConfig, RoleMapping, normalize_group};
pub use roles::{Capability, Grant, Principal, Role, Via};
pub use tokens::{
    API_TOKEN_PREFIX, ApiTokenInfo, NewApiToken, Resolved, SESSION_PREFIX, TokenError, TokenKind,
    TokenStore,
};

/// What a directory says about a person whose password it checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The canonical username (the directory's spelling of it).
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// Local group names, or LDAP group DNs.
    pub groups: Vec<String>,
    /// The password was a generated one-time password (local directory):
    /// the API allows nothing but changing it.
    pub must_change_password: bool,
}

/// Why a login failed. None of the variants carries a password.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password, empty password: indistinguishable on
    /// purpose.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The password was right but the account is disabled.
    #[error("account is disabled")]
    Disabled,
    /// The directory cannot answer (down, timed out, refused the service
    /// bind, too many concurrent logins). Nothing was opened.
    #[error("directory unavailable: {reason}")]
    DirectoryUnavailable { reason: String },
    /// The directory configuration is wrong.
    #[error("auth config {field}: {problem}")]
    Config { field: String, problem: String },
    /// Too many failed logins of this user or from this address.
    #[error("too many failed logins; retry in {} s", retry_after.0.as_secs().max(1))]
    RateLimited { retry_after: RetryAfter },
    /// The local users file cannot be read or is invalid.
    #[error(transparent)]
    LocalDirectory(#[from] LocalDirectoryError),
}

impl AuthError {
    fn config(field: impl Into<String>, problem: impl Into<String>) -> AuthError {
        AuthError::Config {
            field: field.into(),
            problem: problem.into(),
        }
    }

    fn unavailable(reason: impl Into<String>) -> AuthError {
        AuthError::DirectoryUnavailable {
            reason: reason.into(),
        }
    }
}

/// Where people are looked up.
#[derive(Debug, Clone)]
pub enum Directory {
    Local(LocalDirectory),
    Ldap(LdapDirectory),
}

impl Directory {
    /// Checks `password` for `username` and returns who they are.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<Identity, AuthError> {
        match self {
            Directory::Local(local) => local.authenticate(username, password).await,
            Directory::Ldap(ldap) => ldap.authenticate(username, password).await,
        }
    }

    /// Authenticates and maps the groups to grants. A user whose groups
    /// map to nothing gets a principal without grants (`has_grants()` is
    /// false): the caller decides whether that may log in.
    pub async fn login(
        &self,
        username: &str,
        password: &SecretString,
        mapping: &RoleMapping,
    ) -> Result<Principal, AuthError> {
        let identity = self.authenticate(username, password).await?;
        let via = match self {
            Directory::Local(_) => Via::Local,
            Directory::Ldap(_) => Via::Ldap,
        };
        Ok(mapping.principal(identity, via))
    }
}
