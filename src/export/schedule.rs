//! Export configuration (`[export]` and `[[export.schedules]]`), checked at
//! load time with errors naming the key.
//!
//! A schedule exports, on each run, every live event archived since its
//! previous run (store seqs after its watermark, up to the head when the run
//! starts) that its teams and channels select. Across runs every event is
//! exported exactly once, events with identical timestamps and events that
//! arrive late for an earlier day included; a schedule that was down for
//! days catches up in its next run, without gaps.

use std::path::PathBuf;

use serde::Deserialize;

use crate::search::ChannelRef;

use super::Bates;
use super::ExportFormat;

/// `[export]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Where packages are built and kept (default `<data_dir>/exports`).
    pub dir: Option<PathBuf>,
    /// Templates (CSV column sets, PDF layout) overriding the built-in ones.
    pub template_dir: Option<PathBuf>,
    /// `ed25519` (default; key made in the data directory) or `hmac`.
    pub signing: Option<String>,
    /// With `signing = "hmac"`: the shared key file (hex, mode 0600).
    pub hmac_key_file: Option<PathBuf>,
    #[serde(default)]
    pub schedules: Vec<ScheduleConfig>,
}

/// `[[export.schedules]]`: one scheduled export.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique; names the schedule in packages, the audit trail and
    /// `holdfast export run-schedule NAME`.
    pub name: String,
    /// Cron with seconds, UTC (`"0 0 1 * * *"`: every day at 01:00).
    pub cron: String,
    pub formats: Vec<ExportFormat>,
    /// Teams whose events are exported (empty with no channels: all).
    #[serde(default)]
    pub teams: Vec<String>,
    /// Single channels, as `team/channel`.
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub matter: String,
    #[serde(default)]
    pub bates: Option<Bates>,
    /// Where each package is delivered, besides the export directory.
    #[serde(default)]
    pub deliver: Vec<TargetConfig>,
}

/// A delivery target: exactly one of `dir` or `url`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A directory (local disk, NAS mount): the package is copied under a
    /// temporary name and renamed.
    pub dir: Option<PathBuf>,
    /// An HTTPS endpoint: the package is POSTed as a zip.
    pub url: Option<String>,
    /// A PEM file of CA certificates to trust for `url` (a private CA).
    pub ca_file: Option<PathBuf>,
    /// An environment variable holding a bearer token for `url`.
    pub token_env: Option<String>,
    /// Attempts before a delivery is left for the background retry
    /// (default 5).
    pub max_attempts: Option<u32>,
}

/// A checked schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub cron: cron::Schedule,
    pub cron_text: String,
    pub formats: Vec<ExportFormat>,
    pub teams: Vec<String>,
    pub channels: Vec<ChannelRef>,
    pub matter: String,
    pub bates: Option<Bates>,
    pub deliver: Vec<Target>,
}

/// A checked delivery target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Dir(PathBuf),
    Https {
        url: String,
        ca_file: Option<PathBuf>,
        token_env: Option<String>,
        max_attempts: u32,
    },
}

impl Target {
    /// How the target is named in the deliveries table and messages.
    pub fn label(&self) -> String {
        match self {
            Target::Dir(dir) => format!("dir:{}", dir.display()),
            Target::Https { url, .. } => url.clone(),
        }
    }

    pub fn max_attempts(&self) -> u32 {
        match self {
            Target::Dir(_) => 5,
            Target::Https { max_attempts, .. } => *max_attempts,
        }
    }
}

/// A problem in `[export]`, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigProblem {
    pub key: String,
    pub problem: String,
}

fn problem(key: String, text: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        key,
        problem: text.into(),
    }
}

/// Whether `url` may receive packages: HTTPS, or plain HTTP to this machine
/// only (a local relay, tests).
fn check_url(url: &str) -> Result<(), String> {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!(
                "{url:?}: packages go over HTTPS; plain http:// is allowed to 127.0.0.1 or localhost only"
            ));
        }
        rest
    } else {
        return Err(format!("{url:?}: expected an https:// URL"));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?}: no host"));
    }
    Ok(())
}

impl ExportConfig {
    /// The checked schedules.
    pub fn schedules(&self) -> Result<Vec<Schedule>, ConfigProblem> {
        let mut names = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for (i, config) in self.schedules.iter().enumerate() {
            let key = |field: &str| format!("export.schedules[{i}].{field}");
            let name = config.name.trim();
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(problem(
                    key("name"),
                    format!(
                        "{:?}: 1 to 64 characters of A-Z, a-z, 0-9, '-', '_', '.'",
                        config.name
                    ),
                ));
            }
            if !names.insert(name.to_owned()) {
                return Err(problem(key("name"), format!("{name:?} is used twice")));
            }
            let cron = crate::config::parse_schedule(&config.cron)
                .map_err(|text| problem(key("cron"), text))?;
            if config.formats.is_empty() {
                return Err(problem(
                    key("formats"),
                    "at least one of csv, pdf, jsonl, actiance, eml",
                ));
            }
            let mut channels = Vec::new();
            for (j, text) in config.channels.iter().enumerate() {
                let Some((team, channel)) = text.split_once('/') else {
                    return Err(problem(
                        format!("export.schedules[{i}].channels[{j}]"),
                        format!("{text:?}: expected team/channel"),
                    ));
                };
                if team.is_empty() || channel.is_empty() {
                    return Err(problem(
                        format!("export.schedules[{i}].channels[{j}]"),
                        format!("{text:?}: expected team/channel"),
                    ));
                }
                channels.push(ChannelRef::new(team, channel));
            }
            let mut deliver = Vec::new();
            for (j, target) in config.deliver.iter().enumerate() {
                let key = |field: &str| format!("export.schedules[{i}].deliver[{j}].{field}");
                deliver.push(match (&target.dir, &target.url) {
                    (Some(dir), None) => {
                        if !dir.is_absolute() {
                            return Err(problem(key("dir"), "must be an absolute path"));
                        }
                        if target.ca_file.is_some() || target.token_env.is_some() {
                            return Err(problem(
                                key("dir"),
                                "ca_file and token_env go with url, not dir",
                            ));
                        }
                        Target::Dir(dir.clone())
                    }
                    (None, Some(url)) => {
                        check_url(url).map_err(|text| problem(key("url"), text))?;
                        let max_attempts = target.max_attempts.unwrap_or(5);
                        if !(1..=100).contains(&max_attempts) {
                            return Err(problem(key("max_attempts"), "between 1 and 100"));
                        }
                        Target::Https {
                            url: url.clone(),
                            ca_file: target.ca_file.clone(),
                            token_env: target.token_env.clone(),
                            max_attempts,
                        }
                    }
                    _ => {
                        return Err(problem(
                            format!("export.schedules[{i}].deliver[{j}]"),
                            "set exactly one of dir or url",
                        ));
                    }
                });
            }
            let schedule = Schedule {
                name: name.to_owned(),
                cron,
                cron_text: config.cron.clone(),
                formats: config.formats.clone(),
                teams: config.teams.clone(),
                channels,
                matter: config.matter.clone(),
                bates: config.bates.clone(),
                deliver,
            };
            schedule
                .request()
                .validate()
                .map_err(|error| problem(key(&error.field), error.message))?;
            out.push(schedule);
        }
        match self.signing.as_deref() {
            None | Some("ed25519") => {
                if self.hmac_key_file.is_some() {
                    return Err(problem(
                        "export.hmac_key_file".to_owned(),
                        "set signing = \"hmac\" to sign with it",
                    ));
                }
            }
            Some("hmac") => {
                if self.hmac_key_file.is_none() {
                    return Err(problem(
                        "export.hmac_key_file".to_owned(),
                        "signing = \"hmac\" needs the key file",
                    ));
                }
            }
            Some(other) => {
                return Err(problem(
                    "export.signing".to_owned(),
                    format!("{other:?}: expected \"ed25519\" or \"hmac\""),
                ));
            }
        }
        Ok(out)
    }
}

impl Schedule {
    /// The request each run builds (its seq range is added per run).
    pub fn request(&self) -> super::job::ExportRequest {
        use crate::retention::holds::HoldCriteria;
        super::job::ExportRequest {
            source: super::job::Source::Criteria {
                criteria: HoldCriteria {
                    teams: self.teams.clone(),
                    channels: self.channels.clone(),
                    // Every time: the seq range does the selecting.
                    from: Some("1970-01-01".to_owned()),
                    ..HoldCriteria::default()
                },
            },
            formats: self.formats.clone(),
            matter: self.matter.clone(),
            bates: self.bates.clone(),
        }
    }

    /// The scope a run of this schedule exports within (it is set by the
    /// administrator in configuration).
    pub fn scope(&self) -> crate::search::Scope {
        use crate::search::Scope;
        if self.teams.is_empty() && self.channels.is_empty() {
            return Scope::All;
        }
        Scope::teams(self.teams.clone()).union(Scope::channels(self.channels.clone()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Schedule>, String> {
        let config: ExportConfig = toml::from_str(text).map_err(|error| error.to_string())?;
        config.schedules().map_err(|error| error.to_string())
    }

    #[test]
    fn a_good_schedule_loads() {
        let schedules = parse(
            r#"
            [[schedules]]
            name = "infosec-daily"
            cron = "0 0 1 * * *"
            formats = ["csv", "actiance"]
            teams = ["trading"]
            channels = ["legal/case-4711"]
            deliver = [{ dir = "/mnt/drop" }, { url = "https://siem.example/upload", token_env = "SIEM_TOKEN" }]
            "#,
        )
        .unwrap();
        assert_eq!(schedules.len(), 1);
        assert_eq!(schedules[0].deliver.len(), 2);
        assert!(schedules[0].scope().allows("legal", "case-4711"));
        assert!(schedules[0].scope().allows("trading", "any"));
        assert!(!schedules[0].scope().allows("legal", "other"));
    }

    #[test]
    fn bad_schedules_name_the_key() {
        let cases = [
            (
                r#"[[schedules]]
name = "a"
cron = "every day"
formats = ["csv"]"#,
                "export.schedules[0].cron",
            ),
            (
                r#"[[schedules]]
name = "a b"
cron = "0 0 1 * * *"
formats = ["csv"]"#,
                "export.schedules[0].name",
            ),
            (
                r#"[[schedules]]
name = "a"
cron = "0 0 1 * * *"
formats = []"#,
                "export.schedules[0].formats",
            ),
            (
                r#"[[schedules]]
name = "a"
cron = "0 0 1 * * *"
formats = ["csv"]
channels = ["nochannel"]"#,
                "export.schedules[0].channels[0]",
            ),
            (
                r#"[[schedules]]
name = "a"
cron = "0 0 1 * * *"
formats = ["csv"]
deliver = [{ url = "http://example.com/x" }]"#,
                "export.schedules[0].deliver[0].url",
            ),
            (
                r#"[[schedules]]
name = "a"
cron = "0 0 1 * * *"
formats = ["csv"]
deliver = [{ dir = "relative" }]"#,
                "export.schedules[0].deliver[0].dir",
            ),
            (
                r#"[[schedules]]
name = "a"
cron = "0 0 1 * * *"
formats = ["csv"]
deliver = [{ }]"#,
                "export.schedules[0].deliver[0]",
            ),
            (
                r#"[[schedules]]
name = "a"
cron = "0 0 1 * * *"
formats = ["csv"]
[[schedules]]
name = "a"
cron = "0 0 1 * * *"
formats = ["csv"]"#,
                "export.schedules[1].name",
            ),
            (r#"signing = "rsa""#, "export.signing"),
            (r#"signing = "hmac""#, "export.hmac_key_file"),
            (
                r#"[[schedules]]
name = "a"
cron = "0 0 1 * * *"
formats = ["csv"]
bates = { prefix = "HF" }"#,
                "export.schedules[0].bates",
            ),
        ];
        for (text, key) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.starts_with(key), "{text}\n→ {error}");
        }
        let error =
            parse("[[schedules]]\nname = \"a\"\ncron = \"0 0 1 * * *\"\nformats = [\"docx\"]")
                .unwrap_err();
        assert!(error.contains("docx"), "{error}");
    }
}
