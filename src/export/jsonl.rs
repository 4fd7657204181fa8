//! The JSONL writer: `events.jsonl`, the lossless format of a package.
//!
//! One event per line, in package order, each line exactly the event's wire
//! form ([`Event::to_json_bytes`](crate::event::Event::to_json_bytes))
//! followed by `\n`: the file is NDJSON that `holdfast import` (or the
//! ingest API) of another holdfast takes as it is and that gives back
//! identical events.
//!
//! Must never put anything else on a line (no sequence number, no wrapper,
//! no header line): that would break re-ingest. Streams each event straight
//! to the file through a large buffer; keeps nothing in memory.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{ChannelInfo, ExportError, ExportEvent, FormatWriter, PackageInfo, Warnings};

/// The file this writer produces, relative to the package directory.
pub const FILE_NAME: &str = "events.jsonl";

/// Size of the buffer between the writer and the file.
const FILE_BUFFER_BYTES: usize = 1024 * 1024;

/// Writes `events.jsonl`.
pub struct JsonlWriter {
    /// The file's full path, for errors.
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonlWriter {
    /// Opens `events.jsonl` in `package_dir`. Nothing of `info` changes the
    /// file: it holds the events only.
    pub fn create(package_dir: &Path, _info: &PackageInfo) -> Result<JsonlWriter, ExportError> {
        let path = package_dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| ExportError::io(&path, error))?;
        Ok(JsonlWriter {
            path,
            out: BufWriter::with_capacity(FILE_BUFFER_BYTES, file),
        })
    }
}

impl FormatWriter for JsonlWriter {
    fn begin_channel(&mut self, _channel: &ChannelInfo) -> Result<(), ExportError> {
        Ok(())
    }

    fn write(&mut self, event: &ExportEvent, _warnings: &mut Warnings) -> Result<(), ExportError> {
        // The canonical form never holds a raw newline: JSON escapes them.
        let line = event.event.to_json_bytes();
        self.out
            .write_all(&line)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|error| ExportError::io(&self.path, error))
    }

    fn end_channel(&mut self, _warnings: &mut Warnings) -> Result<(), ExportError> {
        Ok(())
    }

    fn finish(self: Box<Self>, _warnings: &mut Warnings) -> Result<Vec<PathBuf>, ExportError> {
        let JsonlWriter { path, out } = *self;
        let file = out
            .into_inner()
            .map_err(|error| ExportError::io(&path, error.into_error()))?;
        file.sync_all()
            .map_err(|error| ExportError::io(&path, error))?;
        Ok(vec![PathBuf::from(FILE_NAME)])
    }
}

#[cfg(test)]
mod tests {
    use crate::event::Event;
    use crate::export::csv::tests::{corpus_by_channel, package_info, package_order, run};

    use super::*;

    #[test]
    fn every_line_is_the_wire_form_of_its_event_in_package_order() {
        let corpus = corpus_by_channel();
        let events = package_order(&corpus);
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = JsonlWriter::create(dir.path(), &package_info(None)).expect("create");
        let (files, warnings) = run(Box::new(writer), &corpus);
        assert_eq!(files, [PathBuf::from(FILE_NAME)]);
        assert!(warnings.is_empty());

        let bytes = std::fs::read(dir.path().join(FILE_NAME)).expect("read back");
        assert!(bytes.ends_with(b"\n"));
        let lines: Vec<&[u8]> = bytes
            .strip_suffix(b"\n")
            .expect("ends with a newline")
            .split(|&byte| byte == b'\n')
            .collect();
        assert_eq!(lines.len(), events.len());
        for (line, source) in lines.iter().zip(&events) {
            assert_eq!(*line, source.event.to_json_bytes().as_slice());
            let parsed = Event::from_json_bytes(line).expect("re-ingestable");
            assert_eq!(parsed, source.event);
        }
        // The multi-line message stays on one line, its CR and LF escaped.
        let text = std::str::from_utf8(&bytes).expect("UTF-8");
        assert!(text.contains(r#"second line\r\nthird line"#));
        assert!(!text.contains('\r'));
    }

    #[test]
    fn the_file_is_ingestable_as_an_ndjson_batch() {
        let corpus = corpus_by_channel();
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = JsonlWriter::create(dir.path(), &package_info(None)).expect("create");
        run(Box::new(writer), &corpus);
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).expect("read back");
        let entries = crate::event::parse_batch(&bytes).expect("a readable batch");
        let events = package_order(&corpus);
        assert_eq!(entries.len(), events.len());
        for (entry, source) in entries.into_iter().zip(events) {
            assert_eq!(entry.event.expect("valid"), source.event);
        }
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(FILE_NAME), b"kept").expect("write");
        let Err(ExportError::Io { path, .. }) =
            JsonlWriter::create(dir.path(), &package_info(None))
        else {
            panic!("expected an I/O error");
        };
        assert_eq!(path, dir.path().join(FILE_NAME));
        assert_eq!(
            std::fs::read(dir.path().join(FILE_NAME)).expect("read"),
            b"kept"
        );
    }
}
