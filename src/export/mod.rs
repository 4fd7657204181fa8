//! Exports: the archive's contents as packages a court, an auditor or a
//! compliance vault can read, with a signed manifest that proves them
//! untouched.
//!
//! A package is a directory: the format files (CSV, PDF transcript, JSONL,
//! Actiance XML, Global Relay EML), `warnings.jsonl` (everything a writer
//! could not render exactly; nothing is skipped silently), `manifest.json`
//! (what was selected, by whom, counts per channel, the store's chain head,
//! SHA-256 of every file) and `manifest.sig` (its Ed25519 or HMAC
//! signature).
//!
//! Never reads outside the scope it is given: the selection takes the
//! caller's checked export [`Scope`](crate::search::Scope) and every event is
//! checked against it. Never changes the archive. Memory stays bounded by a
//! page of events whatever the export's size.

pub mod actiance;
pub mod csv;
pub mod delivery;
pub mod eml;
pub mod job;
pub mod jsonl;
pub mod manifest;
pub mod pdf;
pub mod schedule;
pub mod service;
pub mod sign;
mod writer;

use std::path::{Path, PathBuf};

pub use writer::{
    Bates, ChannelInfo, ExportEvent, FormatWriter, PackageInfo, Warning, Warnings, relative_name,
};

/// What can go wrong while exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file of the package could not be written or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A template (column set, PDF layout) is invalid.
    #[error("template {file}: {message}")]
    Template { file: String, message: String },
    /// A format writer failed for another reason.
    #[error("{format}: {message}")]
    Format {
        format: &'static str,
        message: String,
    },
}

impl ExportError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> ExportError {
        ExportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The open channel's state of a writer handed `event`: an error when no
    /// channel is open, or when the event belongs to another channel.
    pub fn open_channel<'a, T>(
        format: &'static str,
        event: &crate::event::Event,
        open: Option<&'a T>,
        info: impl Fn(&T) -> &ChannelInfo,
    ) -> Result<&'a T, ExportError> {
        let Some(state) = open else {
            return Err(ExportError::Format {
                format,
                message: format!("event {} is outside a channel", event.id),
            });
        };
        let channel = info(state);
        if channel.team != event.team || channel.channel != event.channel {
            return Err(ExportError::Format {
                format,
                message: format!(
                    "event {} of {}/{} is in the export of {}/{}",
                    event.id, event.team, event.channel, channel.team, channel.channel
                ),
            });
        }
        Ok(state)
    }

    /// A writer was handed channel `next` while channel `open` was not ended.
    pub fn channel_still_open(
        format: &'static str,
        next: &ChannelInfo,
        open: &ChannelInfo,
    ) -> ExportError {
        ExportError::Format {
            format,
            message: format!(
                "channel {}/{} begins before {}/{} ended",
                next.team, next.channel, open.team, open.channel
            ),
        }
    }
}

/// The formats a package can hold.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// Mattermost compliance-export columns plus holdfast's own.
    Csv,
    /// The transcript: per channel, threads, edits, deletes, Bates numbers.
    Pdf,
    /// Lossless, re-ingestable: one wire-format event per line.
    Jsonl,
    /// Actiance (Smarsh) XML.
    Actiance,
    /// Global Relay EML: one message per channel.
    Eml,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 5] = [
        ExportFormat::Csv,
        ExportFormat::Pdf,
        ExportFormat::Jsonl,
        ExportFormat::Actiance,
        ExportFormat::Eml,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Pdf => "pdf",
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Actiance => "actiance",
            ExportFormat::Eml => "eml",
        }
    }

    pub fn parse(name: &str) -> Option<ExportFormat> {
        ExportFormat::ALL
            .into_iter()
            .find(|format| format.as_str() == name)
    }

    /// Opens this format's writer on `package_dir`.
    pub fn writer(
        self,
        package_dir: &Path,
        info: &PackageInfo,
    ) -> Result<Box<dyn FormatWriter>, ExportError> {
        Ok(match self {
            ExportFormat::Csv => Box::new(csv::CsvWriter::create(package_dir, info)?),
            ExportFormat::Pdf => Box::new(pdf::PdfWriter::create(package_dir, info)?),
            ExportFormat::Jsonl => Box::new(jsonl::JsonlWriter::create(package_dir, info)?),
            ExportFormat::Actiance => {
                Box::new(actiance::ActianceWriter::create(package_dir, info)?)
            }
            ExportFormat::Eml => Box::new(eml::EmlWriter::create(package_dir, info)?),
        })
    }
}

impl std::fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
