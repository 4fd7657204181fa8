//! One writer per data directory: an advisory lock file naming its holder.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Held for as long as a process writes to the data directory; released on drop.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock or names who holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, StoreError> {
        let path = data_dir.join("holdfast.lock");
        let io_error = |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder's description is best effort: it may be mid-write.
                let _ = file.read_to_string(&mut holder);
                return Err(StoreError::Locked {
                    data_dir: data_dir.display().to_string(),
                    holder: holder.trim().to_owned(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io_error(source)),
        }
        let holder = format!(
            "pid {} ({}), since {}",
            std::process::id(),
            std::env::args().collect::<Vec<_>>().join(" "),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0).map_err(io_error)?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        file.write_all(holder.as_bytes()).map_err(io_error)?;
        Ok(DataDirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = DataDirLock::acquire(dir.path()).expect("first");
        let error = DataDirLock::acquire(dir.path()).expect_err("second");
        let message = error.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(lock);
        DataDirLock::acquire(dir.path()).expect("free again");
    }
}
