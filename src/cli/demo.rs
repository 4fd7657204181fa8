//! `holdfast demo`: the service on a generated sample archive, with sample
//! people of each role, so a newcomer sees the console working at once.
//!
//! The demo keeps to its own data directory (`./holdfast-demo` unless
//! `--data-dir` says otherwise) and its own configuration: it reads no
//! configuration file and no `HOLDFAST_*` variable but the log ones and
//! `HOLDFAST_CONSOLE_DIR`, so it can never write sample data into a real
//! archive's database.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rand::RngCore;
use secrecy::SecretString;

use crate::auth::{GroupRuleConfig, NewUser, Role, UsersFile};
use crate::config::{Config, Overrides};
use crate::generate::{self, GenerateOptions};
use crate::retention::holds::{HoldCriteria, NewHold, create_hold};
use crate::search::Scope;
use crate::store::Store;

/// The file the demo's sign-in names and passwords are kept in (0600).
pub const CREDENTIALS_FILE: &str = "demo-credentials.txt";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8420")]
    pub listen: String,
    /// Events in the generated archive (first start only).
    #[arg(long, default_value_t = 5000)]
    pub events: u64,
    /// Seed of the generated archive (first start only).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// A sample person: username, display name, group, what the group grants.
struct DemoUser {
    username: &'static str,
    display_name: &'static str,
    group: &'static str,
    role: Role,
    teams: &'static [&'static str],
    describe: &'static str,
}

/// The team the scoped officer may see (one of the generator's teams).
pub const SCOPED_TEAM: &str = "energy-trading";

const USERS: &[DemoUser] = &[
    DemoUser {
        username: "officer",
        display_name: "Olivia Officer",
        group: "compliance",
        role: Role::ComplianceOfficer,
        teams: &[],
        describe: "all teams",
    },
    DemoUser {
        username: "scoped-officer",
        display_name: "Sam Scoped",
        group: "compliance-energy-trading",
        role: Role::ComplianceOfficer,
        teams: &[SCOPED_TEAM],
        describe: "team energy-trading only",
    },
    DemoUser {
        username: "counsel",
        display_name: "Lee Counsel",
        group: "legal",
        role: Role::Legal,
        teams: &[],
        describe: "all teams",
    },
    DemoUser {
        username: "auditor",
        display_name: "Ada Auditor",
        group: "auditors",
        role: Role::Auditor,
        teams: &[],
        describe: "the audit trail",
    },
    DemoUser {
        username: "admin",
        display_name: "Avery Admin",
        group: "admins",
        role: Role::Admin,
        teams: &[],
        describe: "holds, exports, retention, audit",
    },
];

/// The demo's retention policy: a year, so the plan would delete the older
/// half of the sample archive (from 400 days ago) and keep the recent half.
const DEMO_POLICY: &str = "# The demo's retention policy (docs/retention.md).\n\
version = 1\n\n\
[[policy]]\n\
name = \"demo-one-year\"\n\
keep_days = 365\n\
min_keep_days = 30\n";

/// The demo's group rules: one group per sample person.
fn group_rules() -> Vec<GroupRuleConfig> {
    USERS
        .iter()
        .map(|user| GroupRuleConfig {
            group: user.group.to_owned(),
            role: user.role,
            teams: user.teams.iter().map(|team| (*team).to_owned()).collect(),
            channels: Vec::new(),
            all: user.role.reads_messages() && user.teams.is_empty(),
        })
        .collect()
}

/// The demo's configuration: embedded defaults in `data_dir`.
pub fn config(data_dir: &Path, listen: &str) -> anyhow::Result<Config> {
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(key, _)| {
            matches!(
                key.as_str(),
                "HOLDFAST_LOG" | "HOLDFAST_LOG_FORMAT" | "HOLDFAST_CONSOLE_DIR"
            )
        })
        .collect();
    let mut config = Config::load_from(
        &Overrides {
            config_file: None,
            data_dir: Some(data_dir.to_path_buf()),
            listen: Some(listen.to_owned()),
        },
        &env,
    )?;
    config.auth.groups = group_rules();
    config.policy_dir = Some(data_dir.join("policies"));
    Ok(config)
}

pub async fn run(data_dir: Option<PathBuf>, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir.unwrap_or_else(|| PathBuf::from("holdfast-demo"));
    let config = config(&data_dir, &args.listen)?;
    let credentials_path = data_dir.join(CREDENTIALS_FILE);
    if credentials_path.exists() {
        eprintln!(
            "holdfast demo: reusing the sample archive in {}",
            data_dir.display()
        );
    } else {
        // Never sample data into a real archive: only a new or empty
        // directory becomes a demo.
        let holds_something = std::fs::read_dir(&data_dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false);
        if holds_something {
            anyhow::bail!(
                "{} is not empty and is not a demo archive (it has no {CREDENTIALS_FILE}); holdfast demo only uses a new directory or its own: choose another --data-dir (or delete it, if it is a demo whose first start was interrupted)",
                data_dir.display()
            );
        }
        seed(&config, &credentials_path, args.events, args.seed).await?;
    }
    let credentials = std::fs::read_to_string(&credentials_path)
        .with_context(|| format!("cannot read {}", credentials_path.display()))?;
    eprintln!();
    eprintln!("holdfast demo: a generated sample archive, not for real data.");
    eprintln!("Sign in to the web console (its address follows) as:");
    for line in credentials.lines().filter(|line| !line.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').collect();
        if let [username, password, role, scope] = fields[..] {
            eprintln!("  {username:<15} password {password}   {role}, {scope}");
        }
    }
    eprintln!(
        "(kept in {}; stop with Ctrl-C, start again with the same command)",
        credentials_path.display()
    );
    eprintln!();
    super::serve(&config).await
}

/// First start: the sample archive, people, policy and credentials file.
async fn seed(
    config: &Config,
    credentials_path: &Path,
    events: u64,
    seed: u64,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    // Two stretches of chat: one from 400 days ago, which the demo's
    // one-year policy would delete, and one from the last days.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let older = events.max(2) / 2;
    let mut corpus = Vec::new();
    let mut older_end = 0;
    for (count, seed, start_ms) in [
        (older, seed, now_ms - 400 * 86_400_000),
        (
            events.max(2) - older,
            seed.wrapping_add(1),
            now_ms - 3 * 86_400_000,
        ),
    ] {
        let options = GenerateOptions {
            events: count,
            seed,
            start_ms,
            ..GenerateOptions::default()
        };
        generate::generate(&options, &mut corpus)?;
        if older_end == 0 {
            older_end = corpus.len();
        }
    }
    let custodians = busiest_people(&corpus[..older_end], 2);
    let (store, _recovery) = Store::open(&config.store_options()).await?;
    let report =
        crate::ingest::ingest_reader(&store, std::io::Cursor::new(corpus), 2000, |_| {}).await;
    store.close().await;
    let report = report?;
    eprintln!(
        "holdfast demo: generated and stored {} events in {}",
        report.accepted,
        config.data_dir.display()
    );
    let audit = super::audit::CliAudit::open(config).await?;
    audit
        .record_ok(
            crate::audit::AuditAction::Ingest,
            serde_json::json!({"source": "holdfast demo", "accepted": report.accepted}),
        )
        .await?;
    // A sample legal hold, so the holds screen and the retention plan show
    // one at work: it keeps the messages of the two busiest people of the
    // older stretch from the one-year policy.
    let hold = NewHold {
        name: "Raptor investigation".to_owned(),
        matter: "DEMO-2026-001".to_owned(),
        reason: "Sample hold of the demo: litigation reasonably anticipated".to_owned(),
        criteria: HoldCriteria {
            custodians,
            ..HoldCriteria::default()
        },
    };
    let created = create_hold(audit.db(), &Scope::All, audit.actor(), &hold)
        .await
        .map_err(anyhow::Error::from);
    audit
        .audited(
            crate::audit::AuditAction::HoldCreate,
            serde_json::json!({"name": hold.name, "matter": hold.matter, "source": "holdfast demo"}),
            created,
            |created, mut params| {
                params["hold_id"] = serde_json::json!(created.id);
                params
            },
        )
        .await?;
    audit.close().await;

    let policies = config.data_dir.join("policies");
    std::fs::create_dir_all(&policies)?;
    std::fs::write(policies.join("demo.toml"), DEMO_POLICY)?;

    let users_path = config.auth.users_file_path(&config.data_dir);
    let mut users = UsersFile::load(&users_path)?;
    let mut lines = String::from("# username\tpassword\trole\tscope (holdfast demo)\n");
    for user in USERS {
        let password = random_password();
        if users.user(user.username).is_some() {
            users.set_password(user.username, &SecretString::from(password.clone()))?;
        } else {
            users.add_user(
                NewUser {
                    username: user.username.to_owned(),
                    display_name: Some(user.display_name.to_owned()),
                    email: Some(format!("{}@demo.invalid", user.username)),
                    groups: vec![user.group.to_owned()],
                },
                &SecretString::from(password.clone()),
            )?;
        }
        lines.push_str(&format!(
            "{}\t{password}\t{}\t{}\n",
            user.username,
            user.role.as_str(),
            user.describe
        ));
    }
    users.save(&users_path)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(credentials_path)
        .with_context(|| format!("cannot create {}", credentials_path.display()))?;
    file.write_all(lines.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The `n` people with the most events in an NDJSON corpus.
fn busiest_people(ndjson: &[u8], n: usize) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for line in ndjson.split(|&byte| byte == b'\n') {
        if let Ok(event) = serde_json::from_slice::<serde_json::Value>(line)
            && let Some(user) = event["user"].as_str()
        {
            *counts.entry(user.to_owned()).or_default() += 1;
        }
    }
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(n).map(|(user, _)| user).collect()
}

/// 16 characters from an alphabet without look-alikes.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn every_role_that_signs_in_has_a_sample_person_and_the_rules_check() {
        let mapping = crate::auth::RoleMapping::from_config(&group_rules()).unwrap();
        for role in [
            Role::Admin,
            Role::ComplianceOfficer,
            Role::Legal,
            Role::Auditor,
        ] {
            assert!(USERS.iter().any(|user| user.role == role), "{role:?}");
        }
        let grants = mapping.grants_for(&["compliance-energy-trading"]);
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].scope.to_string(), format!("team {SCOPED_TEAM}"));
    }

    #[test]
    fn passwords_are_long_and_differ() {
        let (a, b) = (random_password(), random_password());
        assert_eq!(a.chars().count(), 16);
        assert_ne!(a, b);
    }
}
