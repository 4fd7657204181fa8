//! Export jobs: started in the background with progress and cancel, run
//! now from the command line, and run by schedule; every export's end is
//! written to the audit trail.
//!
//! A schedule run is exact: it exports the seqs after the schedule's
//! watermark up to the head, and moves the watermark in the same
//! transaction that marks its export done, only if no other run moved it
//! first. A run that fails leaves the watermark where it was, so the next
//! run exports the same events again (and those archived since).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::audit::{AuditAction, AuditEntry, AuditLog, AuditOutcome};
use crate::db::exports::{DeliveryRow, ExportEnd, ExportRow};

use super::delivery;
use super::job::{self, BuildError, Built, ExportRequest, Exporter, Progress, Requester};
use super::schedule::{Schedule, Target};

/// Why a schedule run or an export could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no export schedule named {0:?} (see [[export.schedules]] in the configuration)")]
    UnknownSchedule(String),
    #[error("schedule {0} is already running")]
    ScheduleBusy(String),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error("{0}")]
    Db(#[from] crate::db::DbError),
    #[error("another run of schedule {0} exported this range first; nothing was recorded twice")]
    Raced(String),
}

/// What a schedule run did.
#[derive(Debug, Clone)]
pub struct ScheduleOutcome {
    pub schedule: String,
    /// `None` when nothing new was archived since the last run.
    pub export_id: Option<i64>,
    pub seq_after: u64,
    pub seq_upto: u64,
    pub events: u64,
    pub package_dir: Option<std::path::PathBuf>,
    pub deliveries: Vec<DeliveryRow>,
}

pub struct ExportService {
    exporter: Exporter,
    audit: AuditLog,
    schedules: Vec<Schedule>,
    running: Mutex<HashMap<i64, Arc<Progress>>>,
    schedules_running: Mutex<std::collections::HashSet<String>>,
    /// Test hook: retry deliveries after milliseconds, not seconds.
    quick_backoff: bool,
}

fn end_of(built: &Built, status: &'static str) -> (String, String, i64, i64) {
    (
        status.to_owned(),
        built.package_dir.display().to_string(),
        built.manifest.counts.events as i64,
        built.manifest.counts.warnings as i64,
    )
}

impl ExportService {
    pub fn new(exporter: Exporter, audit: AuditLog, schedules: Vec<Schedule>) -> ExportService {
        ExportService {
            exporter,
            audit,
            schedules,
            running: Mutex::new(HashMap::new()),
            schedules_running: Mutex::new(Default::default()),
            quick_backoff: false,
        }
    }

    /// Retries deliveries after milliseconds (tests).
    pub fn with_quick_backoff(mut self) -> ExportService {
        self.quick_backoff = true;
        self
    }

    pub fn exporter(&self) -> &Exporter {
        &self.exporter
    }

    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// Marks exports a stopped process left running as failed, and removes
    /// their partial packages (at start).
    pub async fn fail_interrupted(&self) -> Result<u64, crate::db::DbError> {
        if let Ok(mut entries) = tokio::fs::read_dir(&self.exporter.exports_dir).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(".partial-exp-")
                    && let Err(error) = tokio::fs::remove_dir_all(entry.path()).await
                {
                    tracing::warn!(path = %entry.path().display(), %error, "cannot remove a partial export package");
                }
            }
        }
        self.exporter
            .store
            .db()
            .fail_interrupted_exports(chrono::Utc::now().timestamp_millis())
            .await
    }

    /// Starts an export in the background; its id. The request is checked
    /// first (an invalid one starts nothing).
    pub async fn start(
        self: &Arc<Self>,
        request: ExportRequest,
        requester: Requester,
        role: Option<String>,
    ) -> Result<i64, ServiceError> {
        job::check_request(&self.exporter, &request, &requester).await?;
        let export_id = self.insert(&request, &requester, None, None).await?;
        let progress = Arc::new(Progress::default());
        self.track(export_id, &progress);
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let result = job::build(
                &service.exporter,
                export_id,
                &request,
                &requester,
                None,
                None,
                Arc::clone(&progress),
            )
            .await;
            service
                .finish(export_id, &requester, role.as_deref(), None, &result)
                .await;
            service.untrack(export_id);
        });
        Ok(export_id)
    }

    /// Checks a request and records the export it starts (status
    /// `running`); its id. Then [`ExportService::run_prepared`] builds it.
    pub async fn prepare(
        &self,
        request: &ExportRequest,
        requester: &Requester,
    ) -> Result<i64, ServiceError> {
        job::check_request(&self.exporter, request, requester).await?;
        Ok(self.insert(request, requester, None, None).await?)
    }

    /// Builds a prepared export now and waits for it (the command line).
    pub async fn run_prepared(
        &self,
        export_id: i64,
        request: ExportRequest,
        requester: Requester,
        progress: Arc<Progress>,
    ) -> Result<Built, ServiceError> {
        self.track(export_id, &progress);
        let result = job::build(
            &self.exporter,
            export_id,
            &request,
            &requester,
            None,
            None,
            progress,
        )
        .await;
        self.finish(export_id, &requester, None, None, &result)
            .await;
        self.untrack(export_id);
        Ok(result?)
    }

    /// Checks, records and builds an export now, and waits for it.
    pub async fn run_now(
        &self,
        request: ExportRequest,
        requester: Requester,
        progress: Arc<Progress>,
    ) -> Result<(i64, Built), ServiceError> {
        let export_id = self.prepare(&request, &requester).await?;
        let built = self
            .run_prepared(export_id, request, requester, progress)
            .await?;
        Ok((export_id, built))
    }

    async fn insert(
        &self,
        request: &ExportRequest,
        requester: &Requester,
        schedule: Option<&str>,
        seq_range: Option<(i64, i64)>,
    ) -> Result<i64, crate::db::DbError> {
        let text = serde_json::to_string(request).expect("requests serialize");
        self.exporter
            .store
            .db()
            .insert_export(
                &requester.name,
                schedule,
                &text,
                chrono::Utc::now().timestamp_millis(),
                seq_range,
            )
            .await
    }

    fn track(&self, export_id: i64, progress: &Arc<Progress>) {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(export_id, Arc::clone(progress));
    }

    fn untrack(&self, export_id: i64) {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&export_id);
    }

    /// The live progress of a running export.
    pub fn progress(&self, export_id: i64) -> Option<Arc<Progress>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&export_id)
            .cloned()
    }

    /// Asks a running export to stop; false when it is not running here.
    pub fn cancel(&self, export_id: i64) -> bool {
        match self.progress(export_id) {
            Some(progress) => {
                progress.cancel();
                true
            }
            None => false,
        }
    }

    pub async fn get(&self, export_id: i64) -> Result<Option<ExportRow>, crate::db::DbError> {
        self.exporter.store.db().get_export(export_id).await
    }

    /// Records the end of an export and audits it.
    async fn finish(
        &self,
        export_id: i64,
        requester: &Requester,
        role: Option<&str>,
        schedule: Option<&str>,
        result: &Result<Built, BuildError>,
    ) {
        let now = chrono::Utc::now().timestamp_millis();
        let db = self.exporter.store.db();
        let (recorded, entry) = match result {
            Ok(built) => {
                let (status, dir, events, warnings) = end_of(built, "done");
                let end = ExportEnd {
                    status: &status,
                    finished_at_ms: now,
                    total_events: events,
                    exported_events: events,
                    package_dir: Some(&dir),
                    manifest_sha256: Some(&built.manifest_sha256),
                    warnings,
                    error: None,
                };
                (
                    db.finish_export(export_id, &end).await,
                    AuditEntry::new(requester.name.clone(), AuditAction::ExportComplete).params(
                        serde_json::json!({
                            "export_id": export_id,
                            "schedule": schedule,
                            "events": events,
                            "channels": built.manifest.counts.channels.len(),
                            "warnings": warnings,
                            "formats": built.manifest.formats,
                            "manifest_sha256": built.manifest_sha256,
                        }),
                    ),
                )
            }
            Err(error) => {
                let status = if matches!(error, BuildError::Cancelled) {
                    "cancelled"
                } else {
                    "failed"
                };
                let text = error.to_string();
                let end = ExportEnd {
                    status,
                    finished_at_ms: now,
                    total_events: 0,
                    exported_events: 0,
                    package_dir: None,
                    manifest_sha256: None,
                    warnings: 0,
                    error: Some(&text),
                };
                if status == "failed" {
                    tracing::error!(export_id, error = %text, "export failed");
                }
                (
                    db.finish_export(export_id, &end).await,
                    AuditEntry::new(requester.name.clone(), AuditAction::ExportComplete)
                        .params(serde_json::json!({ "export_id": export_id, "schedule": schedule, "status": status }))
                        .outcome(AuditOutcome::Failed)
                        .detail(text),
                )
            }
        };
        if let Err(error) = recorded {
            tracing::error!(export_id, %error, "cannot record the end of an export");
        }
        let entry = match role {
            Some(role) => entry.role(role.to_owned()),
            None => entry,
        };
        if let Err(error) = self.audit.append(entry.client("export job")).await {
            tracing::error!(export_id, %error, "cannot audit the end of an export");
        }
    }

    /// Runs schedule `name` now.
    pub async fn run_schedule(&self, name: &str) -> Result<ScheduleOutcome, ServiceError> {
        let schedule = self
            .schedules
            .iter()
            .find(|schedule| schedule.name == name)
            .ok_or_else(|| ServiceError::UnknownSchedule(name.to_owned()))?
            .clone();
        {
            let mut running = self
                .schedules_running
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if !running.insert(schedule.name.clone()) {
                return Err(ServiceError::ScheduleBusy(schedule.name.clone()));
            }
        }
        let result = self.run_schedule_locked(&schedule).await;
        self.schedules_running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&schedule.name);
        result
    }

    async fn run_schedule_locked(
        &self,
        schedule: &Schedule,
    ) -> Result<ScheduleOutcome, ServiceError> {
        let db = self.exporter.store.db();
        let after = db.schedule_watermark(&schedule.name).await?.max(0) as u64;
        let upto = self
            .exporter
            .store
            .last_seq()
            .await
            .map_err(BuildError::from)?;
        let mut outcome = ScheduleOutcome {
            schedule: schedule.name.clone(),
            export_id: None,
            seq_after: after,
            seq_upto: upto,
            events: 0,
            package_dir: None,
            deliveries: Vec::new(),
        };
        if upto <= after {
            return Ok(outcome);
        }
        let requester = Requester {
            name: format!("schedule:{}", schedule.name),
            scope: schedule.scope(),
        };
        let request = schedule.request();
        let export_id = self
            .insert(
                &request,
                &requester,
                Some(&schedule.name),
                Some((after as i64, upto as i64)),
            )
            .await?;
        let progress = Arc::new(Progress::default());
        self.track(export_id, &progress);
        let result = job::build(
            &self.exporter,
            export_id,
            &request,
            &requester,
            Some(&schedule.name),
            Some((after, upto)),
            progress,
        )
        .await;
        self.untrack(export_id);
        let built = match result {
            Ok(built) => built,
            Err(error) => {
                let result = Err(error);
                self.finish(export_id, &requester, None, Some(&schedule.name), &result)
                    .await;
                return Err(result.err().map(ServiceError::Build).expect("an error"));
            }
        };
        let (status, dir, events, warnings) = end_of(&built, "done");
        let end = ExportEnd {
            status: &status,
            finished_at_ms: chrono::Utc::now().timestamp_millis(),
            total_events: events,
            exported_events: events,
            package_dir: Some(&dir),
            manifest_sha256: Some(&built.manifest_sha256),
            warnings,
            error: None,
        };
        let moved = db
            .commit_schedule_run(
                &schedule.name,
                after as i64,
                upto as i64,
                chrono::Utc::now().timestamp_millis(),
                export_id,
                &end,
            )
            .await?;
        if !moved {
            let _ = tokio::fs::remove_dir_all(&built.package_dir).await;
            let result: Result<Built, BuildError> = Err(BuildError::Task(format!(
                "another run of schedule {} exported this range first",
                schedule.name
            )));
            self.finish(export_id, &requester, None, Some(&schedule.name), &result)
                .await;
            return Err(ServiceError::Raced(schedule.name.clone()));
        }
        let entry = AuditEntry::new(requester.name.clone(), AuditAction::ExportComplete)
            .client("scheduler")
            .params(serde_json::json!({
                "export_id": export_id,
                "schedule": schedule.name,
                "seq_after": after,
                "seq_upto": upto,
                "events": events,
                "warnings": warnings,
                "formats": built.manifest.formats,
                "manifest_sha256": built.manifest_sha256,
            }));
        if let Err(error) = self.audit.append(entry).await {
            tracing::error!(export_id, %error, "cannot audit a scheduled export");
        }
        outcome.export_id = Some(export_id);
        outcome.events = events as u64;
        outcome.package_dir = Some(built.package_dir.clone());
        for target in &schedule.deliver {
            outcome.deliveries.push(
                delivery::deliver(
                    db,
                    export_id,
                    &built.package_dir,
                    target,
                    self.quick_backoff,
                )
                .await?,
            );
        }
        Ok(outcome)
    }

    /// Runs every schedule on its cron (UTC) until the tasks are aborted.
    pub fn start_schedules(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        for schedule in &self.schedules {
            let service = Arc::clone(self);
            let schedule = schedule.clone();
            handles.push(tokio::spawn(async move {
                loop {
                    let Some(next) = schedule.cron.upcoming(chrono::Utc).next() else {
                        tracing::warn!(schedule = %schedule.name, "the export schedule has no further times");
                        return;
                    };
                    let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                    match service.run_schedule(&schedule.name).await {
                        Ok(outcome) => tracing::info!(
                            schedule = %schedule.name,
                            export_id = ?outcome.export_id,
                            events = outcome.events,
                            "scheduled export done"
                        ),
                        Err(error) => {
                            tracing::error!(schedule = %schedule.name, %error, "scheduled export failed")
                        }
                    }
                }
            }));
        }
        handles
    }

    /// Retries pending deliveries whose time has come, every `every`.
    pub fn start_delivery_retries(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let service = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(error) = service.retry_due_deliveries().await {
                    tracing::error!(%error, "cannot retry export deliveries");
                }
            }
        })
    }

    /// One pass over the deliveries that are due; how many were delivered.
    pub async fn retry_due_deliveries(&self) -> Result<usize, crate::db::DbError> {
        let db = self.exporter.store.db();
        let due = db
            .due_deliveries(chrono::Utc::now().timestamp_millis())
            .await?;
        let mut delivered = 0;
        for row in due {
            let Some(export) = db.get_export(row.export_id).await? else {
                continue;
            };
            let (Some(dir), Some(schedule)) = (&export.package_dir, &export.schedule) else {
                continue;
            };
            let Some(target) = self
                .schedules
                .iter()
                .find(|s| &s.name == schedule)
                .and_then(|s| s.deliver.iter().find(|t| t.label() == row.target))
            else {
                tracing::warn!(
                    export_id = row.export_id,
                    target = %row.target,
                    "a pending export delivery's schedule or target is no longer configured; it stays pending (deliver it by hand)"
                );
                continue;
            };
            let target: Target = target.clone();
            let row = delivery::deliver(
                db,
                row.export_id,
                Path::new(dir),
                &target,
                self.quick_backoff,
            )
            .await?;
            if row.status == "delivered" {
                delivered += 1;
            }
        }
        Ok(delivered)
    }
}

/// A delivery as the CLI and the API print it.
pub fn delivery_json(row: &crate::db::exports::DeliveryRow) -> serde_json::Value {
    serde_json::json!({
        "target": row.target,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "delivered_at_ms": row.delivered_at_ms,
    })
}

/// An export as the CLI and the API print it.
pub fn export_json(
    row: &crate::db::exports::ExportRow,
    deliveries: &[crate::db::exports::DeliveryRow],
) -> serde_json::Value {
    serde_json::json!({
        "id": job::export_name(row.export_id),
        "export_id": row.export_id,
        "status": row.status,
        "requested_by": row.requested_by,
        "schedule": row.schedule,
        "request": serde_json::from_str::<serde_json::Value>(&row.request).unwrap_or_default(),
        "created_at_ms": row.created_at_ms,
        "finished_at_ms": row.finished_at_ms,
        "events": row.exported_events,
        "warnings": row.warnings,
        "seq_from": row.seq_from,
        "seq_to": row.seq_to,
        "manifest_sha256": row.manifest_sha256,
        "error": row.error,
        "deliveries": deliveries.iter().map(delivery_json).collect::<Vec<_>>(),
    })
}
