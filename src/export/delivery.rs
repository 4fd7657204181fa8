//! Delivering packages: to a directory (local disk or a NAS mount) and to an
//! HTTPS endpoint, with retries.
//!
//! A directory delivery copies the package under a hidden temporary name
//! and renames it when complete, so a reader never sees a half package. An
//! HTTPS delivery POSTs the package as a zip. Every attempt is recorded in
//! `export_deliveries`; a delivery that keeps failing stays `pending` and is
//! retried in the background with backoff (and shown by `export show` and
//! the API), never dropped silently.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::db::Db;
use crate::db::exports::DeliveryRow;

use super::ExportError;
use super::schedule::Target;

/// Longest wait between two attempts of one delivery.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Writes `package_dir` as a zip under one top directory named after it.
/// Blocking.
pub fn zip_package(package_dir: &Path, out: impl Write + std::io::Seek) -> Result<(), ExportError> {
    let top = package_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "package".to_owned());
    let mut zip = zip::ZipWriter::new(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let mut files = Vec::new();
    collect_files(package_dir, &mut files)?;
    files.sort();
    for path in files {
        let name = format!("{top}/{}", super::relative_name(package_dir, &path));
        zip.start_file(name, options)
            .map_err(|error| zip_error(&path, &error))?;
        let mut file = std::fs::File::open(&path).map_err(|error| ExportError::io(&path, error))?;
        std::io::copy(&mut file, &mut zip).map_err(|error| ExportError::io(&path, error))?;
    }
    zip.finish()
        .map_err(|error| zip_error(package_dir, &error))?;
    Ok(())
}

fn zip_error(path: &Path, error: &zip::result::ZipError) -> ExportError {
    ExportError::Format {
        format: "zip",
        message: format!("{}: {error}", path.display()),
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ExportError> {
    for entry in std::fs::read_dir(dir).map_err(|error| ExportError::io(dir, error))? {
        let entry = entry.map_err(|error| ExportError::io(dir, error))?;
        let path = entry.path();
        if entry
            .file_type()
            .map_err(|error| ExportError::io(&path, error))?
            .is_dir()
        {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Copies the package into `target_dir` (temporary name, then rename).
/// Blocking.
pub fn deliver_to_dir(package_dir: &Path, target_dir: &Path) -> Result<PathBuf, String> {
    let name = package_dir
        .file_name()
        .ok_or_else(|| "the package has no name".to_owned())?;
    let final_path = target_dir.join(name);
    if final_path.exists() {
        // Delivered before (a retry after the rename) only if it is this
        // very package: another installation's, or one made before a
        // restore, may carry the same name.
        let ours = std::fs::read(package_dir.join(super::manifest::MANIFEST_FILE))
            .map_err(|error| format!("{}: {error}", package_dir.display()))?;
        let theirs = std::fs::read(final_path.join(super::manifest::MANIFEST_FILE));
        return match theirs {
            Ok(theirs) if theirs == ours => Ok(final_path),
            _ => Err(format!(
                "{} exists and is not this package (another installation's, or one made before a restore?); move it away and the delivery will be retried",
                final_path.display()
            )),
        };
    }
    let temp = target_dir.join(format!(".{}.partial", name.to_string_lossy()));
    let _ = std::fs::remove_dir_all(&temp);
    copy_tree(package_dir, &temp).map_err(|error| format!("{}: {error}", temp.display()))?;
    std::fs::rename(&temp, &final_path)
        .map_err(|error| format!("{}: {error}", final_path.display()))?;
    std::fs::File::open(target_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|error| format!("{}: {error}", target_dir.display()))?;
    Ok(final_path)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            std::fs::File::open(&target)?.sync_all()?;
        }
    }
    std::fs::File::open(to)?.sync_all()
}

/// POSTs the package as a zip to `url`.
async fn post_zip(
    package_dir: &Path,
    url: &str,
    ca_file: Option<&Path>,
    token_env: Option<&str>,
) -> Result<(), String> {
    let dir = package_dir.to_path_buf();
    let zipped = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let mut buffer = std::io::Cursor::new(Vec::new());
        zip_package(&dir, &mut buffer).map_err(|error| error.to_string())?;
        Ok(buffer.into_inner())
    })
    .await
    .map_err(|error| error.to_string())??;
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .connect_timeout(Duration::from_secs(20));
    if let Some(ca_file) = ca_file {
        let pem =
            std::fs::read(ca_file).map_err(|error| format!("{}: {error}", ca_file.display()))?;
        for certificate in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|error| format!("{}: {error}", ca_file.display()))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let client = builder.build().map_err(|error| error.to_string())?;
    let name = package_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut request = client
        .post(url)
        .header("content-type", "application/zip")
        .header("x-holdfast-export", name)
        .body(zipped);
    if let Some(var) = token_env {
        let token = std::env::var(var).map_err(|_| {
            format!("the environment variable {var} (the endpoint's token) is not set")
        })?;
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|error| {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            text.push_str(&format!(": {inner}"));
            source = inner.source();
        }
        text
    })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        Err(format!("the endpoint answered {status}: {body}"))
    }
}

/// One attempt at delivering `package_dir` to `target`.
pub async fn attempt(package_dir: &Path, target: &Target) -> Result<(), String> {
    match target {
        Target::Dir(dir) => {
            let package = package_dir.to_path_buf();
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || deliver_to_dir(&package, &dir).map(|_| ()))
                .await
                .map_err(|error| error.to_string())?
        }
        Target::Https {
            url,
            ca_file,
            token_env,
            ..
        } => post_zip(package_dir, url, ca_file.as_deref(), token_env.as_deref()).await,
    }
}

/// The wait before attempt `attempt + 1` (1 s, 2 s, 4 s, ... at most an hour).
pub fn backoff(attempt: u32) -> Duration {
    let seconds = 1u64 << attempt.min(12);
    Duration::from_secs(seconds).min(MAX_BACKOFF)
}

/// Delivers with up to `target.max_attempts()` attempts now, recording each;
/// on failure the row stays `pending` with its next attempt time. Returns
/// the final row.
pub async fn deliver(
    db: &Db,
    export_id: i64,
    package_dir: &Path,
    target: &Target,
    quick_backoff: bool,
) -> Result<DeliveryRow, crate::db::DbError> {
    let previous = db
        .deliveries_of(export_id)
        .await?
        .into_iter()
        .find(|row| row.target == target.label());
    let mut row = previous.unwrap_or(DeliveryRow {
        export_id,
        target: target.label(),
        status: "pending".to_owned(),
        attempts: 0,
        last_error: None,
        next_attempt_at_ms: None,
        delivered_at_ms: None,
    });
    if row.status == "delivered" {
        return Ok(row);
    }
    for round in 0..target.max_attempts() {
        row.attempts += 1;
        match attempt(package_dir, target).await {
            Ok(()) => {
                row.status = "delivered".to_owned();
                row.last_error = None;
                row.next_attempt_at_ms = None;
                row.delivered_at_ms = Some(chrono::Utc::now().timestamp_millis());
                db.record_delivery(&row).await?;
                tracing::info!(export_id, target = %row.target, attempts = row.attempts, "export delivered");
                return Ok(row);
            }
            Err(error) => {
                tracing::warn!(export_id, target = %row.target, attempt = row.attempts, %error, "export delivery failed");
                row.last_error = Some(error);
                let wait = if quick_backoff {
                    Duration::from_millis(50 << round.min(6))
                } else {
                    backoff(row.attempts.saturating_sub(1).clamp(0, 32) as u32)
                };
                row.next_attempt_at_ms =
                    Some(chrono::Utc::now().timestamp_millis() + wait.as_millis() as i64);
                db.record_delivery(&row).await?;
                if round + 1 < target.max_attempts() {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    tracing::error!(export_id, target = %row.target, attempts = row.attempts, error = row.last_error.as_deref().unwrap_or_default(), "export delivery still failing; it stays pending and is retried in the background");
    Ok(row)
}
