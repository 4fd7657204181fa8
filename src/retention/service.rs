//! Retention inside `serve`: one run at a time, on the configured cron
//! schedule and on demand from the API, each run audited.

// Policy errors carry two file locations; loading policies is rare.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};

use super::policy::{PolicyError, PolicySet};
use super::run::{self, Plan, RetentionError, RunOptions, RunOutcome, Trigger};
use crate::audit::{AuditAction, AuditEntry, AuditLog, AuditOutcome};
use crate::index::SearchIndex;
use crate::store::Store;

/// Errors of the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// Another run is in progress.
    #[error("a retention run is already in progress")]
    Busy,
}

/// Retention for a running server.
pub struct RetentionService {
    store: Store,
    index: Arc<SearchIndex>,
    policy_dir: Option<PathBuf>,
    compact: bool,
    running: tokio::sync::Mutex<()>,
}

impl RetentionService {
    pub fn new(
        store: Store,
        index: Arc<SearchIndex>,
        policy_dir: Option<PathBuf>,
        compact: bool,
    ) -> RetentionService {
        RetentionService {
            store,
            index,
            policy_dir,
            compact,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The policies in force now (read again for every plan and run, so an
    /// edited file takes effect without a restart). No directory: none.
    pub fn policies(&self) -> Result<PolicySet, PolicyError> {
        match &self.policy_dir {
            Some(dir) => PolicySet::load_dir(dir),
            None => Ok(PolicySet::empty()),
        }
    }

    pub async fn plan(&self, as_of: Option<NaiveDate>) -> Result<Plan, ServiceError> {
        let policies = self.policies()?;
        let as_of = as_of.unwrap_or_else(|| Utc::now().date_naive());
        Ok(run::plan(&self.store, &self.index, &policies, as_of).await?)
    }

    /// Runs now, as of today; refused while another run is in progress.
    pub async fn run(
        &self,
        started_by: &str,
        trigger: Trigger,
    ) -> Result<RunOutcome, ServiceError> {
        let _running = self.running.try_lock().map_err(|_| ServiceError::Busy)?;
        let policies = self.policies()?;
        let mut options = RunOptions::today(started_by, trigger);
        options.compact = self.compact;
        Ok(run::run(&self.store, &self.index, &policies, &options).await?)
    }

    /// Finishes runs interrupted by a crash (at `serve` start).
    pub async fn resume(&self) -> Result<u64, ServiceError> {
        let _running = self.running.lock().await;
        Ok(run::resume_unfinished(&self.store, &self.index).await?)
    }

    /// Runs on `schedule` (UTC) until the task is aborted; every run,
    /// failed or not, is written to the audit trail as `scheduler`.
    pub fn start_schedule(
        self: Arc<Self>,
        schedule: cron::Schedule,
        audit: AuditLog,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let Some(next) = schedule.upcoming(Utc).next() else {
                    tracing::warn!("the retention schedule has no further times");
                    return;
                };
                let wait = (next - Utc::now()).to_std().unwrap_or_default();
                tracing::info!(next = %next, "next scheduled retention run");
                tokio::time::sleep(wait).await;
                let result = self.run("scheduler", Trigger::Schedule).await;
                let action = match &result {
                    Err(ServiceError::Retention(RetentionError::FloorLowered(_))) => {
                        AuditAction::PolicyRefused
                    }
                    _ => AuditAction::PolicyRun,
                };
                let entry = AuditEntry::new("scheduler".to_owned(), action).client("scheduler");
                let entry = match &result {
                    Ok(outcome) => entry.params(run_params(outcome)),
                    Err(error) => {
                        tracing::error!(%error, "scheduled retention run failed");
                        entry
                            .outcome(AuditOutcome::Failed)
                            .detail(error.to_string())
                    }
                };
                if let Err(error) = audit.append(entry).await {
                    tracing::error!(%error, "cannot audit the scheduled retention run");
                }
            }
        })
    }
}

/// What the audit trail keeps of a run: no content, the certificate's hash.
pub fn run_params(outcome: &RunOutcome) -> serde_json::Value {
    serde_json::json!({
        "run_id": outcome.run_id,
        "as_of": outcome.certificate.as_of,
        "events_deleted": outcome.certificate.events_deleted,
        "epochs_destroyed": outcome.certificate.epochs_destroyed.len(),
        "events_carried": outcome.certificate.events_carried,
        "certificate_sha256": outcome.certificate_sha256,
        "chain_head_seq": outcome.certificate.chain_head.seq,
    })
}
