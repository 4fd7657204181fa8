//! The package manifest (`manifest.json`), its signature (`manifest.sig`),
//! and checking a package against both.
//!
//! The manifest is written once, with every file's size and SHA-256, and
//! signed over its exact bytes; it holds no message content. Verification
//! reads a package directory or its zip download and says exactly what
//! differs: a file changed, missing or added, a count or the manifest
//! itself altered, or a signature by another key.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::Db;

use super::job::{ExportRequest, Requester};
use super::sign::{Signature, Signer, TrustedKey};
use super::{ChannelInfo, ExportError, ExportFormat, PackageInfo};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const SIGNATURE_FILE: &str = "manifest.sig";
/// The manifest layout's version; a reader refuses a newer one.
pub const MANIFEST_VERSION: u32 = 1;

/// The store's chain head when the export started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreHead {
    pub seq: u64,
    /// The chain hash of that record, hex (empty for an empty archive).
    pub hash: String,
}

impl StoreHead {
    pub async fn of(db: &Db) -> Result<StoreHead, crate::db::DbError> {
        let head = db.segments().await?.into_iter().last();
        Ok(StoreHead {
            seq: head.as_ref().map_or(0, |segment| segment.last_seq as u64),
            hash: head
                .map(|segment| hex::encode(segment.last_hash))
                .unwrap_or_default(),
        })
    }
}

/// A scheduled export's range of store sequence numbers: `after+1..=upto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqRange {
    pub after: u64,
    pub upto: u64,
}

/// One file of the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the package, forward slashes.
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

impl FileEntry {
    /// Hashes `path` (inside `dir`). Blocking.
    pub fn of(dir: &Path, path: &Path) -> Result<FileEntry, ExportError> {
        let file = std::fs::File::open(path).map_err(|error| ExportError::io(path, error))?;
        let (bytes, sha256) = hash_reader(file).map_err(|error| ExportError::io(path, error))?;
        Ok(FileEntry {
            name: super::relative_name(dir, path),
            bytes,
            sha256,
        })
    }
}

fn hash_reader(mut reader: impl Read) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// How the manifest is signed (the key is named, never included, except an
/// Ed25519 public key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningInfo {
    pub algorithm: String,
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// Counts of the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub events: u64,
    pub channels: Vec<ChannelInfo>,
    pub warnings: u64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub manifest_version: u32,
    pub generator: String,
    pub export_id: String,
    pub matter: String,
    /// The request as given (source, formats, Bates).
    pub request: ExportRequest,
    /// The selection in words.
    pub selection: String,
    pub formats: Vec<ExportFormat>,
    pub requested_by: String,
    /// The scope the export was limited to.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_range: Option<SeqRange>,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub finished_at: String,
    /// The store's chain head when the export started: every exported
    /// event is at or before it (`holdfast verify --expect-head` checks it).
    pub store_head: StoreHead,
    pub counts: Counts,
    pub files: Vec<FileEntry>,
    pub signing: SigningInfo,
}

impl Manifest {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        info: &PackageInfo,
        request: &ExportRequest,
        requester: &Requester,
        schedule: Option<String>,
        seq_range: Option<SeqRange>,
        head: StoreHead,
        exported: u64,
        warnings: u64,
        files: Vec<FileEntry>,
        signer: &Signer,
    ) -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            generator: format!("holdfast {}", env!("CARGO_PKG_VERSION")),
            export_id: info.export_id.clone(),
            matter: info.matter.clone(),
            request: request.clone(),
            selection: info.selection.clone(),
            formats: request.formats.clone(),
            requested_by: requester.name.clone(),
            scope: requester.scope.to_string(),
            schedule,
            seq_range,
            created_at: crate::event::format_at(info.created_at_us),
            finished_at: crate::event::format_at(chrono::Utc::now().timestamp_micros()),
            store_head: head,
            counts: Counts {
                events: exported,
                channels: info.channels.clone(),
                warnings,
            },
            files,
            signing: SigningInfo {
                algorithm: signer.algorithm().to_owned(),
                key_id: signer.key_id(),
                public_key: signer.public_key_hex(),
            },
        }
    }

    /// The bytes written to `manifest.json` (and signed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("manifests serialize");
        bytes.push(b'\n');
        bytes
    }
}

/// The outcome of checking a package.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PackageCheck {
    pub export_id: Option<String>,
    /// Which key the signature was checked with, in words.
    pub key: String,
    /// Whether the signature holds for that key.
    pub signature_valid: bool,
    /// Whether the key was given by the operator (or the installation's),
    /// rather than read from the manifest itself.
    pub key_trusted: bool,
    pub files_checked: usize,
    /// Every difference found, one sentence each.
    pub problems: Vec<String>,
}

impl PackageCheck {
    pub fn ok(&self) -> bool {
        self.signature_valid && self.problems.is_empty()
    }
}

/// A package's files as read for checking: name → (bytes, sha256), plus
/// the manifest's and the signature's bytes.
struct Contents {
    files: BTreeMap<String, (u64, String)>,
    /// Names found more than once (in a zip): which copy a reader takes
    /// depends on the tool, so such a package is never intact.
    duplicates: Vec<String>,
    manifest: Option<Vec<u8>>,
    signature: Option<Vec<u8>>,
}

fn read_dir_contents(dir: &Path) -> Result<Contents, ExportError> {
    let mut contents = Contents {
        files: BTreeMap::new(),
        duplicates: Vec::new(),
        manifest: None,
        signature: None,
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries =
            std::fs::read_dir(&current).map_err(|error| ExportError::io(&current, error))?;
        for entry in entries {
            let entry = entry.map_err(|error| ExportError::io(&current, error))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|error| ExportError::io(&path, error))?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let name = super::relative_name(dir, &path);
            if name == MANIFEST_FILE {
                contents.manifest =
                    Some(std::fs::read(&path).map_err(|error| ExportError::io(&path, error))?);
            } else if name == SIGNATURE_FILE {
                contents.signature =
                    Some(std::fs::read(&path).map_err(|error| ExportError::io(&path, error))?);
            } else {
                let file =
                    std::fs::File::open(&path).map_err(|error| ExportError::io(&path, error))?;
                let hashed = hash_reader(file).map_err(|error| ExportError::io(&path, error))?;
                contents.files.insert(name, hashed);
            }
        }
    }
    Ok(contents)
}

fn read_zip_contents(path: &Path) -> Result<Contents, ExportError> {
    let file = std::fs::File::open(path).map_err(|error| ExportError::io(path, error))?;
    let bad = |message: String| ExportError::Format {
        format: "zip",
        message: format!("{}: {message}", path.display()),
    };
    let listed = central_directory_names(path).map_err(|error| ExportError::io(path, error))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|error| bad(error.to_string()))?;
    let mut contents = Contents {
        files: BTreeMap::new(),
        duplicates: Vec::new(),
        manifest: None,
        signature: None,
    };
    // The reader keeps one entry per name: a name the central directory
    // lists twice is a package whose content depends on the unzip tool.
    if let Some(listed) = listed {
        let mut seen = std::collections::BTreeSet::new();
        for full in listed {
            let name = full
                .split_once('/')
                .map_or(full.as_str(), |(_, rest)| rest)
                .to_owned();
            if !seen.insert(name.clone()) && !contents.duplicates.contains(&name) {
                contents.duplicates.push(name);
            }
        }
    }
    // Packages are zipped under one top directory (`exp-000042/`).
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|error| bad(error.to_string()))?;
        if entry.is_dir() {
            continue;
        }
        let full = entry
            .name()
            .map_err(|error| bad(error.to_string()))?
            .into_owned();
        let name = full
            .split_once('/')
            .map_or(full.as_str(), |(_, rest)| rest)
            .to_owned();
        if name == MANIFEST_FILE || name == SIGNATURE_FILE {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|error| ExportError::io(path, error))?;
            if name == MANIFEST_FILE {
                contents.manifest = Some(bytes);
            } else {
                contents.signature = Some(bytes);
            }
        } else {
            let hashed = hash_reader(&mut entry).map_err(|error| ExportError::io(path, error))?;
            contents.files.insert(name, hashed);
        }
    }
    Ok(contents)
}

/// The entry names of the zip's central directory, in order (`None` when
/// the end-of-central-directory record is missing or points to Zip64).
/// The zip reader keeps one entry per name, so duplicates are looked for
/// here, in the directory itself.
fn central_directory_names(path: &Path) -> std::io::Result<Option<Vec<String>>> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    // The record is 22 bytes plus a comment of at most 65535.
    let tail = length.min(22 + 65_535);
    file.seek(SeekFrom::Start(length - tail))?;
    let mut bytes = Vec::with_capacity(tail as usize);
    file.read_to_end(&mut bytes)?;
    let Some(at) = bytes
        .windows(4)
        .rposition(|window| window == [0x50, 0x4b, 0x05, 0x06])
    else {
        return Ok(None);
    };
    let Some(record) = bytes.get(at..at + 22) else {
        return Ok(None);
    };
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let (entries, size, offset) = (u16_at(record, 10), u32_at(record, 12), u32_at(record, 16));
    if entries == u16::MAX || size == u32::MAX || offset == u32::MAX {
        return Ok(None);
    }
    if u64::from(offset) + u64::from(size) > length {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(u64::from(offset)))?;
    let mut directory = vec![0u8; size as usize];
    file.read_exact(&mut directory)?;
    let mut names = Vec::with_capacity(usize::from(entries));
    let mut i = 0usize;
    while i + 46 <= directory.len() && directory[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] {
        let name_len = usize::from(u16_at(&directory, i + 28));
        let extra_len = usize::from(u16_at(&directory, i + 30));
        let comment_len = usize::from(u16_at(&directory, i + 32));
        let Some(name) = directory.get(i + 46..i + 46 + name_len) else {
            break;
        };
        names.push(String::from_utf8_lossy(name).into_owned());
        i += 46 + name_len + extra_len + comment_len;
    }
    Ok(Some(names))
}

/// Checks the package at `path` (a directory, or a `.zip` download):
/// signature, then every file against the manifest. With `key` `None`, the
/// signature is checked with the public key written in the manifest, which
/// proves the package intact but not who made it (said in `key`).
/// Blocking.
pub fn verify_package(path: &Path, key: Option<TrustedKey>) -> Result<PackageCheck, ExportError> {
    let contents = if path.is_dir() {
        read_dir_contents(path)?
    } else {
        read_zip_contents(path)?
    };
    let mut check = PackageCheck::default();
    for name in &contents.duplicates {
        check.problems.push(format!(
            "{name} appears more than once in the zip: readers may take either copy"
        ));
    }
    let Some(manifest_bytes) = contents.manifest else {
        check.problems.push(format!("{MANIFEST_FILE} is missing"));
        return Ok(check);
    };
    let manifest: Result<Manifest, _> = serde_json::from_slice(&manifest_bytes);
    let signature: Option<Result<Signature, _>> = contents
        .signature
        .as_deref()
        .map(serde_json::from_slice::<Signature>);
    // The signature first: it says whether the manifest can be believed.
    let manifest_key = manifest
        .as_ref()
        .ok()
        .and_then(|manifest| manifest.signing.public_key.as_deref())
        .and_then(TrustedKey::ed25519_hex);
    let (key, trusted) = match key {
        Some(key) => (Some(key), true),
        None => (manifest_key, false),
    };
    check.key_trusted = trusted;
    match (&key, signature) {
        (_, None) => check.problems.push(format!("{SIGNATURE_FILE} is missing")),
        (_, Some(Err(error))) => check
            .problems
            .push(format!("{SIGNATURE_FILE} is not a signature: {error}")),
        (None, Some(Ok(_))) => {
            check.key = "none".to_owned();
            check.problems.push(
                "no key to check the signature with: the manifest carries no public key (HMAC?); pass the key file"
                    .to_owned(),
            );
        }
        (Some(key), Some(Ok(signature))) => {
            check.key = format!(
                "{} key {}{}",
                key.algorithm(),
                key.key_id(),
                if trusted {
                    ""
                } else {
                    " (read from the manifest itself)"
                }
            );
            match key.check(&manifest_bytes, &signature) {
                Ok(()) => check.signature_valid = true,
                Err(reason) => check.problems.push(reason),
            }
        }
    }
    let manifest = match manifest {
        Ok(manifest) => manifest,
        Err(error) => {
            check
                .problems
                .push(format!("{MANIFEST_FILE} cannot be read: {error}"));
            return Ok(check);
        }
    };
    check.export_id = Some(manifest.export_id.clone());
    if manifest.manifest_version > MANIFEST_VERSION {
        check.problems.push(format!(
            "manifest version {} is newer than this holdfast reads ({MANIFEST_VERSION})",
            manifest.manifest_version
        ));
    }
    let mut listed = BTreeMap::new();
    for entry in &manifest.files {
        listed.insert(entry.name.clone(), entry);
        check.files_checked += 1;
        match contents.files.get(&entry.name) {
            None => check.problems.push(format!("{} is missing", entry.name)),
            Some((bytes, sha256)) => {
                if *bytes != entry.bytes {
                    check.problems.push(format!(
                        "{}: {} bytes, the manifest says {}",
                        entry.name, bytes, entry.bytes
                    ));
                }
                if *sha256 != entry.sha256 {
                    check.problems.push(format!(
                        "{}: SHA-256 {} differs from the manifest's {}",
                        entry.name, sha256, entry.sha256
                    ));
                }
            }
        }
    }
    for name in contents.files.keys() {
        if !listed.contains_key(name) {
            check
                .problems
                .push(format!("{name} is not listed in the manifest (added?)"));
        }
    }
    let channel_total: u64 = manifest.counts.channels.iter().map(|c| c.events).sum();
    if channel_total != manifest.counts.events {
        check.problems.push(format!(
            "the manifest's channel counts add up to {channel_total}, its total says {}",
            manifest.counts.events
        ));
    }
    Ok(check)
}
