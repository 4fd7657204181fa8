//! Where an export's files come from: an unpacked folder or a zip archive,
//! read one file (entry) at a time.
//!
//! A zip is opened once (its central directory lists every entry); each
//! entry is then decompressed as it is read, so memory holds one entry's
//! reader, never the archive. This module never extracts anything to disk
//! and never follows an entry name outside the export (`..`, absolute paths).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use zip::ZipArchive;

use super::ImportError;

/// Largest file read whole (a Slack day file or metadata file). Anything
/// larger is reported, not read: it is not a file Slack writes.
pub(crate) const MAX_WHOLE_FILE_BYTES: u64 = 1 << 30;

/// One file of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Path inside the export, `/`-separated, relative to the container root.
    pub name: String,
    /// Uncompressed size in bytes (as the zip directory or the file system says).
    pub size: u64,
    /// Index in the zip archive.
    index: Option<usize>,
}

/// An export's files.
pub(crate) enum Container {
    Dir(PathBuf),
    Zip {
        path: PathBuf,
        archive: Box<ZipArchive<BufReader<File>>>,
    },
}

/// Why one file could not be read: reported with the file's name, and the
/// import goes on with the other files.
#[derive(Debug)]
pub(crate) struct EntryError(pub String);

/// The four bytes that start a zip archive (local file header), and those of
/// an empty archive (end of central directory).
const ZIP_MAGIC: [&[u8; 4]; 2] = [b"PK\x03\x04", b"PK\x05\x06"];

/// Whether `path` is a file that starts like a zip archive.
pub(crate) fn looks_like_zip(path: &Path) -> Result<bool, ImportError> {
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(|source| ImportError::io(path, source))?;
    let mut read = 0;
    while read < magic.len() {
        match file.read(&mut magic[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(ImportError::io(path, source)),
        }
    }
    Ok(read == 4 && ZIP_MAGIC.iter().any(|m| **m == magic))
}

impl Container {
    /// Opens a folder, or a file as a zip archive (a file that is not a
    /// valid zip is a [`ImportError::CorruptZip`]).
    pub(crate) fn open(path: &Path) -> Result<Container, ImportError> {
        let metadata = std::fs::metadata(path).map_err(|source| ImportError::io(path, source))?;
        if metadata.is_dir() {
            return Ok(Container::Dir(path.to_path_buf()));
        }
        let file = File::open(path).map_err(|source| ImportError::io(path, source))?;
        let archive =
            ZipArchive::new(BufReader::with_capacity(1 << 16, file)).map_err(|error| {
                ImportError::CorruptZip {
                    path: path.display().to_string(),
                    detail: error.to_string(),
                }
            })?;
        Ok(Container::Zip {
            path: path.to_path_buf(),
            archive: Box::new(archive),
        })
    }

    /// Every file, sorted by name (directories are not listed). For a folder
    /// this walks at most `max_depth` levels below the root.
    pub(crate) fn entries(&self, max_depth: usize) -> Result<Vec<Entry>, ImportError> {
        let mut entries = Vec::new();
        match self {
            Container::Dir(root) => walk(root, root, max_depth, &mut entries)?,
            Container::Zip { path, archive } => {
                for index in 0..archive.len() {
                    let entry =
                        archive
                            .by_index_data(index)
                            .map_err(|error| ImportError::CorruptZip {
                                path: path.display().to_string(),
                                detail: error.to_string(),
                            })?;
                    if entry.is_dir() {
                        continue;
                    }
                    let name = entry
                        .name()
                        .map_err(|error| ImportError::CorruptZip {
                            path: path.display().to_string(),
                            detail: format!("entry {index}: {error}"),
                        })?
                        .into_owned();
                    entries.push(Entry {
                        name,
                        size: entry.size(),
                        index: Some(index),
                    });
                }
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Reads one file whole as UTF-8 text.
    pub(crate) fn read_to_string(&mut self, entry: &Entry) -> Result<String, EntryError> {
        if entry.size > MAX_WHOLE_FILE_BYTES {
            return Err(EntryError(format!(
                "{} bytes: larger than the {MAX_WHOLE_FILE_BYTES} bytes a file of this kind may have; not read",
                entry.size
            )));
        }
        let mut text = String::with_capacity(entry.size as usize);
        self.with_reader(entry, |reader| {
            reader
                .take(MAX_WHOLE_FILE_BYTES + 1)
                .read_to_string(&mut text)
        })
        .and_then(|result| result.map_err(|error| EntryError(describe_read_error(&error))))?;
        Ok(text)
    }

    /// Runs `read` on a buffered reader of one file.
    pub(crate) fn with_reader<T>(
        &mut self,
        entry: &Entry,
        read: impl FnOnce(&mut dyn BufRead) -> T,
    ) -> Result<T, EntryError> {
        match self {
            Container::Dir(root) => {
                let path = safe_join(root, &entry.name)
                    .ok_or_else(|| EntryError("path leaves the export folder".to_owned()))?;
                let file = File::open(&path).map_err(|error| EntryError(error.to_string()))?;
                let mut reader = BufReader::with_capacity(1 << 16, file);
                Ok(read(&mut reader))
            }
            Container::Zip { archive, .. } => {
                let index = entry
                    .index
                    .ok_or_else(|| EntryError("not an entry of this archive".to_owned()))?;
                let file = archive
                    .by_index(index)
                    .map_err(|error| EntryError(format!("corrupt zip entry: {error}")))?;
                let mut reader = BufReader::with_capacity(1 << 16, file);
                Ok(read(&mut reader))
            }
        }
    }
}

/// A read error, in words an operator can act on.
pub(crate) fn describe_read_error(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::InvalidData if error.to_string().contains("UTF-8") => {
            "not UTF-8 text".to_owned()
        }
        io::ErrorKind::UnexpectedEof => {
            "the file ends early (a truncated or corrupt zip entry)".to_owned()
        }
        _ => format!("cannot read: {error}"),
    }
}

/// `root/name` when `name` is a plain relative path that stays inside `root`.
pub(crate) fn safe_join(root: &Path, name: &str) -> Option<PathBuf> {
    let relative = Path::new(name);
    if relative
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
    {
        Some(root.join(relative))
    } else {
        None
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    depth_left: usize,
    entries: &mut Vec<Entry>,
) -> Result<(), ImportError> {
    let listing = std::fs::read_dir(dir).map_err(|source| ImportError::io(dir, source))?;
    for item in listing {
        let item = item.map_err(|source| ImportError::io(dir, source))?;
        let path = item.path();
        let file_type = item
            .file_type()
            .map_err(|source| ImportError::io(&path, source))?;
        if file_type.is_dir() {
            if depth_left > 0 {
                walk(root, &path, depth_left - 1, entries)?;
            } else {
                // Listed so that the importer can report it as not imported.
                entries.push(Entry {
                    name: relative_name(root, &path) + "/",
                    size: 0,
                    index: None,
                });
            }
        } else {
            let size = item
                .metadata()
                .map_err(|source| ImportError::io(&path, source))?
                .len();
            entries.push(Entry {
                name: relative_name(root, &path),
                size,
                index: None,
            });
        }
    }
    Ok(())
}

fn relative_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|component| component.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_cannot_leave_the_export() {
        let root = Path::new("/export");
        assert_eq!(
            safe_join(root, "general/2024-01-02.json"),
            Some(PathBuf::from("/export/general/2024-01-02.json"))
        );
        assert_eq!(safe_join(root, "../etc/passwd"), None);
        assert_eq!(safe_join(root, "/etc/passwd"), None);
        assert_eq!(safe_join(root, "a/./b"), Some(PathBuf::from("/export/a/b")));
    }
}
