//! Configuration: defaults, then a TOML file, then `HOLDFAST_*` environment
//! variables, then command-line flags. Unknown keys and unknown `HOLDFAST_*`
//! variables are errors that name them. With no configuration at all,
//! holdfast runs on embedded defaults (data in `./holdfast-data`, SQLite
//! inside it, a generated master key, listening on 127.0.0.1:8420).
//!
//! Secrets (the ingest token) are held as `SecretString` and never printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use crate::auth::AuthConfig;
use crate::store::keys::KekSource;
use crate::store::{Durability, StoreOptions, default_database_url};

pub const DEFAULT_DATA_DIR: &str = "holdfast-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8420";
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// How often `serve` makes new events searchable (milliseconds).
pub const DEFAULT_INDEX_REFRESH_MS: u64 = 250;

/// Errors reading the configuration. Each names the file, key or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: {problem}")]
    Env { var: String, problem: String },
    #[error("config key {key}: {problem}")]
    Invalid { key: String, problem: String },
}

/// The configuration file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub keys: KeysSection,
    #[serde(default)]
    pub ingest: IngestSection,
    #[serde(default)]
    pub index: IndexSection,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub retention: RetentionSection,
    #[serde(default)]
    pub export: crate::export::schedule::ExportConfig,
}

/// `[retention]`: where the policies are and when runs happen.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Directory of `*.toml` policy files (docs/retention.md).
    pub policy_dir: Option<PathBuf>,
    /// When `serve` runs retention: a cron expression with seconds, in UTC
    /// (`"0 0 3 * * *"`: every day at 03:00).
    pub schedule: Option<String>,
    /// Reclaim the disk of deleted records after each run (default true).
    pub compact: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSection {
    pub refresh_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    pub durability: Option<Durability>,
    pub segment_max_bytes: Option<u64>,
    pub max_group_events: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    pub kek_file: Option<PathBuf>,
    pub kek_env: Option<String>,
    pub kek_command: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    pub token_file: Option<PathBuf>,
    pub max_body_bytes: Option<u64>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database_url: String,
    pub durability: Durability,
    pub segment_max_bytes: u64,
    pub max_group_events: usize,
    pub kek: Option<KekSource>,
    /// The ingest token given by `HOLDFAST_INGEST_TOKEN`.
    pub ingest_token: Option<SecretString>,
    /// A file holding the ingest token (default: `<data_dir>/ingest.token`).
    pub ingest_token_file: Option<PathBuf>,
    pub max_body_bytes: u64,
    /// Longest time between an event's acknowledgement and its being
    /// searchable, give or take one index commit.
    pub index_refresh_ms: u64,
    /// Who may sign in and what they may see (`[auth]`).
    pub auth: AuthConfig,
    /// The retention policy directory; without one nothing is ever deleted.
    pub policy_dir: Option<PathBuf>,
    /// Serve the web console's files from this directory instead of the
    /// copies built into the binary (`HOLDFAST_CONSOLE_DIR`, for working on
    /// the console).
    pub console_dir: Option<PathBuf>,
    /// When `serve` runs retention (UTC cron with seconds), if at all.
    pub retention_schedule: Option<cron::Schedule>,
    /// The schedule as written.
    pub retention_schedule_text: Option<String>,
    pub retention_compact: bool,
    /// `[export]`: where packages go, templates, signing, schedules.
    pub export: crate::export::schedule::ExportConfig,
    /// The checked `[[export.schedules]]`.
    pub export_schedules: Vec<crate::export::schedule::Schedule>,
}

impl Config {
    /// Where export packages are built and kept.
    pub fn exports_dir(&self) -> PathBuf {
        self.export
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("exports"))
    }

    /// The signer of export manifests (`[export] signing`), making the
    /// Ed25519 key in the data directory on first use.
    pub fn export_signer(
        &self,
    ) -> Result<crate::export::sign::Signer, crate::export::sign::KeyFileError> {
        match (&self.export.signing.as_deref(), &self.export.hmac_key_file) {
            (Some("hmac"), Some(file)) => crate::export::sign::Signer::hmac_from_file(file),
            _ => crate::export::sign::Signer::ed25519_in(&self.data_dir),
        }
    }
}

/// Parses a cron schedule (seconds first, UTC), with a message naming the
/// expected shape on error.
pub fn parse_schedule(text: &str) -> Result<cron::Schedule, String> {
    use std::str::FromStr;
    cron::Schedule::from_str(text).map_err(|error| {
        format!(
            "{text:?} is not a cron schedule ({error}); expected six or seven fields starting with seconds, in UTC, e.g. \"0 0 3 * * *\" for 03:00 every day"
        )
    })
}

/// Overrides from the command line.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
}

/// `HOLDFAST_*` variables that configure holdfast (besides the one `kek_env` names).
pub const ENV_VARS: [&str; 19] = [
    "HOLDFAST_CONFIG",
    "HOLDFAST_DATA_DIR",
    "HOLDFAST_LISTEN",
    "HOLDFAST_DATABASE_URL",
    "HOLDFAST_DURABILITY",
    "HOLDFAST_SEGMENT_MAX_BYTES",
    "HOLDFAST_KEK_FILE",
    "HOLDFAST_KEK_ENV",
    "HOLDFAST_KEK_COMMAND",
    "HOLDFAST_INGEST_TOKEN",
    "HOLDFAST_MAX_BODY_BYTES",
    "HOLDFAST_INDEX_REFRESH_MS",
    "HOLDFAST_ADMIN_PASSWORD",
    "HOLDFAST_NEW_PASSWORD",
    "HOLDFAST_LOG",
    "HOLDFAST_LOG_FORMAT",
    "HOLDFAST_POLICY_DIR",
    "HOLDFAST_RETENTION_SCHEDULE",
    "HOLDFAST_CONSOLE_DIR",
];

impl Config {
    /// Loads from the process environment.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(key, value)| {
                let key = key.into_string().ok()?;
                key.starts_with("HOLDFAST_")
                    .then(|| (key, value.to_string_lossy().into_owned()))
            })
            .collect();
        Config::load_from(overrides, &env)
    }

    /// Loads with an explicit environment (for tests).
    pub fn load_from(
        overrides: &Overrides,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            env.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let config_path = overrides
            .config_file
            .clone()
            .or_else(|| get("HOLDFAST_CONFIG").map(PathBuf::from));
        let file = match &config_path {
            Some(path) => parse_file(path)?,
            None => ConfigFile::default(),
        };

        let kek_env_name = get("HOLDFAST_KEK_ENV").or_else(|| file.keys.kek_env.clone());
        for (key, _) in env {
            if !ENV_VARS.contains(&key.as_str()) && Some(key) != kek_env_name.as_ref() {
                return Err(ConfigError::Env {
                    var: key.clone(),
                    problem: format!(
                        "unknown holdfast variable; known ones are {}",
                        ENV_VARS.join(", ")
                    ),
                });
            }
        }

        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| get("HOLDFAST_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let listen_text = overrides
            .listen
            .clone()
            .or_else(|| get("HOLDFAST_LISTEN"))
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().map_err(|_| ConfigError::Invalid {
            key: "listen".to_owned(),
            problem: format!("{listen_text:?} is not an address like 127.0.0.1:8420"),
        })?;
        let database_url = get("HOLDFAST_DATABASE_URL")
            .or(file.database_url)
            .unwrap_or_else(|| default_database_url(&data_dir));
        let durability = match get("HOLDFAST_DURABILITY") {
            Some(value) => match value.as_str() {
                "batch" => Durability::Batch,
                "every" => Durability::Every,
                other => {
                    return Err(ConfigError::Env {
                        var: "HOLDFAST_DURABILITY".to_owned(),
                        problem: format!("{other:?} is not one of batch, every"),
                    });
                }
            },
            None => file.store.durability.unwrap_or_default(),
        };
        let segment_max_bytes = env_number(&get, "HOLDFAST_SEGMENT_MAX_BYTES")?
            .or(file.store.segment_max_bytes)
            .unwrap_or(256 * 1024 * 1024);
        if segment_max_bytes < 1024 * 1024 {
            return Err(ConfigError::Invalid {
                key: "store.segment_max_bytes".to_owned(),
                problem: format!("{segment_max_bytes} is below the minimum of 1048576"),
            });
        }
        let max_group_events = file.store.max_group_events.unwrap_or(20_000);
        if max_group_events == 0 {
            return Err(ConfigError::Invalid {
                key: "store.max_group_events".to_owned(),
                problem: "must be at least 1".to_owned(),
            });
        }

        let kek_file = get("HOLDFAST_KEK_FILE")
            .map(PathBuf::from)
            .or(file.keys.kek_file);
        let kek_command = get("HOLDFAST_KEK_COMMAND").or(file.keys.kek_command);
        let kek = match (kek_file, kek_env_name, kek_command) {
            (None, None, None) => None,
            (Some(path), None, None) => Some(KekSource::File(path)),
            (None, Some(var), None) => Some(KekSource::Env(var)),
            (None, None, Some(command)) => Some(KekSource::Command(command)),
            _ => {
                return Err(ConfigError::Invalid {
                    key: "keys".to_owned(),
                    problem: "set only one of kek_file, kek_env, kek_command".to_owned(),
                });
            }
        };

        let max_body_bytes = env_number(&get, "HOLDFAST_MAX_BODY_BYTES")?
            .or(file.ingest.max_body_bytes)
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            return Err(ConfigError::Invalid {
                key: "ingest.max_body_bytes".to_owned(),
                problem: "must be at least 1".to_owned(),
            });
        }
        let retention_schedule_text =
            get("HOLDFAST_RETENTION_SCHEDULE").or(file.retention.schedule.clone());
        let retention_schedule = match &retention_schedule_text {
            Some(text) => Some(
                parse_schedule(text).map_err(|problem| ConfigError::Invalid {
                    key: "retention.schedule".to_owned(),
                    problem,
                })?,
            ),
            None => None,
        };
        let index_refresh_ms = env_number(&get, "HOLDFAST_INDEX_REFRESH_MS")?
            .or(file.index.refresh_ms)
            .unwrap_or(DEFAULT_INDEX_REFRESH_MS);
        if !(10..=60_000).contains(&index_refresh_ms) {
            return Err(ConfigError::Invalid {
                key: "index.refresh_ms".to_owned(),
                problem: format!("must be between 10 and 60000, got {index_refresh_ms}"),
            });
        }
        file.auth.check().map_err(|error| match error {
            crate::auth::AuthError::Config { field, problem } => ConfigError::Invalid {
                key: field,
                problem,
            },
            other => ConfigError::Invalid {
                key: "auth".to_owned(),
                problem: other.to_string(),
            },
        })?;
        let export_schedules = file
            .export
            .schedules()
            .map_err(|problem| ConfigError::Invalid {
                key: problem.key,
                problem: problem.problem,
            })?;
        let ingest_token = get("HOLDFAST_INGEST_TOKEN").map(SecretString::from);
        if let Some(token) = &ingest_token
            && secrecy::ExposeSecret::expose_secret(token).trim().len() < 16
        {
            return Err(ConfigError::Env {
                var: "HOLDFAST_INGEST_TOKEN".to_owned(),
                problem: "a token must be at least 16 characters".to_owned(),
            });
        }

        Ok(Config {
            data_dir,
            listen,
            database_url,
            durability,
            segment_max_bytes,
            max_group_events,
            kek,
            ingest_token,
            ingest_token_file: file.ingest.token_file,
            max_body_bytes,
            index_refresh_ms,
            policy_dir: get("HOLDFAST_POLICY_DIR")
                .map(PathBuf::from)
                .or(file.retention.policy_dir),
            console_dir: get("HOLDFAST_CONSOLE_DIR").map(PathBuf::from),
            retention_schedule,
            retention_schedule_text,
            retention_compact: file.retention.compact.unwrap_or(true),
            auth: file.auth,
            export: file.export,
            export_schedules,
        })
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn describe(&self) -> String {
        let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let mut out = String::new();
        out.push_str(&format!(
            "data_dir = {}\n",
            quote(&self.data_dir.display().to_string())
        ));
        out.push_str(&format!("listen = {}\n", quote(&self.listen.to_string())));
        out.push_str(&format!(
            "database_url = {}\n",
            quote(&crate::db::redact_url(&self.database_url))
        ));
        out.push_str("\n[store]\n");
        let durability = match self.durability {
            Durability::Batch => "batch",
            Durability::Every => "every",
        };
        out.push_str(&format!("durability = {}\n", quote(durability)));
        out.push_str(&format!("segment_max_bytes = {}\n", self.segment_max_bytes));
        out.push_str(&format!("max_group_events = {}\n", self.max_group_events));
        out.push_str("\n[keys]\n");
        match &self.kek {
            None => out.push_str(&format!(
                "# kek_file (default) = {}\n",
                quote(&self.data_dir.join("master.key").display().to_string())
            )),
            Some(KekSource::File(path)) => {
                out.push_str(&format!(
                    "kek_file = {}\n",
                    quote(&path.display().to_string())
                ));
            }
            Some(KekSource::Env(var)) => out.push_str(&format!("kek_env = {}\n", quote(var))),
            Some(KekSource::Command(command)) => {
                out.push_str(&format!("kek_command = {}\n", quote(command)));
            }
        }
        out.push_str("\n[ingest]\n");
        if self.ingest_token.is_some() {
            out.push_str("# token: set by HOLDFAST_INGEST_TOKEN (not shown)\n");
        } else {
            let path = self
                .ingest_token_file
                .clone()
                .unwrap_or_else(|| self.data_dir.join("ingest.token"));
            out.push_str(&format!(
                "token_file = {}\n",
                quote(&path.display().to_string())
            ));
        }
        out.push_str(&format!("max_body_bytes = {}\n", self.max_body_bytes));
        out.push_str("\n[index]\n");
        out.push_str(&format!("refresh_ms = {}\n", self.index_refresh_ms));
        out.push_str("\n[retention]\n");
        match &self.policy_dir {
            Some(dir) => out.push_str(&format!(
                "policy_dir = {}\n",
                quote(&dir.display().to_string())
            )),
            None => out.push_str("# policy_dir: not set, nothing is ever deleted\n"),
        }
        match &self.retention_schedule_text {
            Some(schedule) => out.push_str(&format!("schedule = {}\n", quote(schedule))),
            None => out.push_str("# schedule: not set, retention runs only on demand\n"),
        }
        out.push_str(&format!("compact = {}\n", self.retention_compact));
        out.push_str("\n[export]\n");
        out.push_str(&format!(
            "dir = {}\n",
            quote(&self.exports_dir().display().to_string())
        ));
        match &self.export.template_dir {
            Some(dir) => out.push_str(&format!(
                "template_dir = {}\n",
                quote(&dir.display().to_string())
            )),
            None => out.push_str("# template_dir: not set, the built-in layouts\n"),
        }
        out.push_str(&format!(
            "signing = {}\n",
            quote(self.export.signing.as_deref().unwrap_or("ed25519"))
        ));
        if let Some(file) = &self.export.hmac_key_file {
            out.push_str(&format!(
                "hmac_key_file = {}\n",
                quote(&file.display().to_string())
            ));
        }
        for schedule in &self.export_schedules {
            out.push_str(&format!(
                "# schedule {}: cron {}, formats {}, {} delivery target(s)\n",
                schedule.name,
                quote(&schedule.cron_text),
                schedule
                    .formats
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                schedule.deliver.len()
            ));
        }
        out.push_str("\n[auth]\n");
        let auth = &self.auth;
        match auth.directory {
            crate::auth::DirectoryKind::Local => {
                out.push_str("directory = \"local\"\n");
                out.push_str(&format!(
                    "users_file = {}\n",
                    quote(&auth.users_file_path(&self.data_dir).display().to_string())
                ));
            }
            crate::auth::DirectoryKind::Ldap => {
                out.push_str("directory = \"ldap\"\n");
                if let Some(ldap) = &auth.ldap {
                    out.push_str(&format!("# ldap.url = {}\n", quote(&ldap.url)));
                    out.push_str(&format!(
                        "# ldap.user_base_dn = {}\n",
                        quote(&ldap.user_base_dn)
                    ));
                    out.push_str("# ldap bind password: not shown\n");
                }
            }
        }
        out.push_str(&format!("session_minutes = {}\n", auth.session_minutes));
        out.push_str(&format!("secure_cookie = {}\n", auth.secure_cookie));
        out.push_str(&format!("# group rules: {}\n", auth.groups.len()));
        out
    }

    /// What the store needs from this configuration.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            kek: self.kek.clone(),
            durability: self.durability,
            segment_max_bytes: self.segment_max_bytes,
            max_group_events: self.max_group_events,
        }
    }
}

fn parse_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.display().to_string(),
        message: error.to_string().trim_end().to_owned(),
    })
}

fn env_number<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
) -> Result<Option<T>, ConfigError> {
    get(var)
        .map(|value| {
            value.trim().parse().map_err(|_| ConfigError::Env {
                var: var.to_owned(),
                problem: format!("{value:?} is not a whole number"),
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write_config(text: &str) -> (tempfile::TempDir, Overrides) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("holdfast.toml");
        std::fs::write(&path, text).expect("write");
        (
            dir,
            Overrides {
                config_file: Some(path),
                ..Overrides::default()
            },
        )
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = Config::load_from(&Overrides::default(), &[]).expect("defaults");
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.database_url, "sqlite:holdfast-data/holdfast.db");
        assert_eq!(config.durability, Durability::Batch);
        assert!(config.kek.is_none());
    }

    #[test]
    fn file_then_env_then_flags() {
        let (_dir, mut overrides) = write_config(
            "data_dir = \"/from/file\"\nlisten = \"127.0.0.1:1\"\n[store]\ndurability = \"every\"\n",
        );
        let config = Config::load_from(&overrides, &[]).expect("file");
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.durability, Durability::Every);
        let environment = env(&[
            ("HOLDFAST_DATA_DIR", "/from/env"),
            ("HOLDFAST_DURABILITY", "batch"),
        ]);
        let config = Config::load_from(&overrides, &environment).expect("env");
        assert_eq!(config.data_dir, PathBuf::from("/from/env"));
        assert_eq!(config.durability, Durability::Batch);
        overrides.data_dir = Some(PathBuf::from("/from/flag"));
        let config = Config::load_from(&overrides, &environment).expect("flag");
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:1");
    }

    #[test]
    fn a_typo_in_the_file_names_the_key_and_line() {
        let (_dir, overrides) = write_config("data_dir = \"x\"\n[store]\ndurabilty = \"every\"\n");
        let message = Config::load_from(&overrides, &[])
            .expect_err("typo")
            .to_string();
        assert!(
            message.contains("durabilty") && message.contains("line 3"),
            "{message}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let (_dir, overrides) = write_config("[store]\ndurability = \"sometimes\"\n");
        let message = Config::load_from(&overrides, &[])
            .expect_err("bad")
            .to_string();
        assert!(message.contains("sometimes"), "{message}");
        let message = Config::load_from(
            &Overrides::default(),
            &env(&[("HOLDFAST_LISTEN", "nowhere")]),
        )
        .expect_err("bad listen")
        .to_string();
        assert!(
            message.contains("listen") && message.contains("nowhere"),
            "{message}"
        );
        let message =
            Config::load_from(&Overrides::default(), &env(&[("HOLDFAST_DATA_DIRR", "x")]))
                .expect_err("unknown var")
                .to_string();
        assert!(message.contains("HOLDFAST_DATA_DIRR"), "{message}");
        for (value, mentions) in [
            ("5", "index.refresh_ms"),
            ("soon", "HOLDFAST_INDEX_REFRESH_MS"),
        ] {
            let message = Config::load_from(
                &Overrides::default(),
                &env(&[("HOLDFAST_INDEX_REFRESH_MS", value)]),
            )
            .expect_err("bad refresh")
            .to_string();
            assert!(message.contains(mentions), "{message}");
        }
        let (_dir, overrides) = write_config("[index]\nrefresh_ms = 120000\n");
        let message = Config::load_from(&overrides, &[])
            .expect_err("too slow")
            .to_string();
        assert!(
            message.contains("index.refresh_ms") && message.contains("120000"),
            "{message}"
        );
        let (_dir, overrides) = write_config("[index]\nrefresh = 100\n");
        let message = Config::load_from(&overrides, &[])
            .expect_err("unknown key")
            .to_string();
        assert!(message.contains("refresh"), "{message}");
        let message = Config::load_from(
            &Overrides::default(),
            &env(&[("HOLDFAST_MAX_BODY_BYTES", "lots")]),
        )
        .expect_err("not a number")
        .to_string();
        assert!(message.contains("HOLDFAST_MAX_BODY_BYTES"), "{message}");
        let (_dir, overrides) =
            write_config("[keys]\nkek_file = \"/a\"\nkek_command = \"cat /a\"\n");
        let message = Config::load_from(&overrides, &[])
            .expect_err("two sources")
            .to_string();
        assert!(message.contains("only one"), "{message}");
        let missing = Overrides {
            config_file: Some(PathBuf::from("/nonexistent/holdfast.toml")),
            ..Overrides::default()
        };
        let message = Config::load_from(&missing, &[])
            .expect_err("missing")
            .to_string();
        assert!(message.contains("/nonexistent/holdfast.toml"), "{message}");
    }

    #[test]
    fn describe_is_valid_toml_without_secrets() {
        let environment = env(&[
            ("HOLDFAST_INGEST_TOKEN", "a-very-secret-token-value"),
            (
                "HOLDFAST_DATABASE_URL",
                "postgres://holdfast:pw-secret@db/archive",
            ),
        ]);
        let config = Config::load_from(&Overrides::default(), &environment).expect("valid");
        let text = config.describe();
        assert!(!text.contains("a-very-secret-token-value"), "{text}");
        assert!(!text.contains("pw-secret"), "{text}");
        // What it prints reads back as a configuration file.
        let (_dir, overrides) = write_config(&text);
        let again = Config::load_from(&overrides, &[]).expect("describe output is a valid config");
        assert_eq!(again.data_dir, config.data_dir);
        assert_eq!(again.max_body_bytes, config.max_body_bytes);
    }

    #[test]
    fn the_variable_named_by_kek_env_is_allowed() {
        let environment = env(&[("HOLDFAST_KEK_ENV", "HOLDFAST_KEK"), ("HOLDFAST_KEK", "xx")]);
        let config = Config::load_from(&Overrides::default(), &environment).expect("allowed");
        assert_eq!(config.kek, Some(KekSource::Env("HOLDFAST_KEK".to_owned())));
    }
}
