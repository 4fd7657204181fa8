//! The audit chain's key and hash: what each record's `hash` is computed
//! over, and the key it is computed with.
//!
//! Each record's hash is HMAC-SHA-256, under the archive's audit key, of the
//! canonical encoding below, which includes the previous record's hash. The
//! key lives in a file outside the database, so someone who can edit the
//! database (a DBA, a stolen backup) cannot recompute the chain after
//! changing a record; someone who can also read the key file can, and only a
//! head recorded elsewhere ([`ExpectedHead`]) catches that.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::AuditError;

/// Length of a chain hash in bytes.
pub const HASH_LEN: usize = 32;

/// The name of the audit key file in the data directory.
pub const AUDIT_KEY_FILE: &str = "audit.key";

/// Domain tag and version of the canonical encoding.
///
/// **Do not change.** The encoding of version 1 is frozen: every existing
/// trail was hashed with it. A new encoding needs a new tag and a column
/// saying which records use it.
const ENCODING_TAG: &[u8] = b"holdfast-audit-v1";

const FINGERPRINT_TAG: &[u8] = b"holdfast-audit-key-fingerprint-v1";

/// A record's chain hash (HMAC-SHA-256), shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AuditHash(pub [u8; HASH_LEN]);

impl AuditHash {
    /// The `prev_hash` of the first record: 32 zero bytes.
    pub const GENESIS: AuditHash = AuditHash([0; HASH_LEN]);

    /// From stored bytes; `None` when the length is wrong.
    pub fn from_slice(bytes: &[u8]) -> Option<AuditHash> {
        bytes.try_into().ok().map(AuditHash)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for AuditHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for AuditHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditHash({self})")
    }
}

impl std::str::FromStr for AuditHash {
    type Err = AuditError;

    fn from_str(text: &str) -> Result<AuditHash, AuditError> {
        let mut bytes = [0u8; HASH_LEN];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| AuditError::BadHead {
            text: text.to_owned(),
        })?;
        Ok(AuditHash(bytes))
    }
}

impl serde::Serialize for AuditHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

/// The head of the trail: the last record's `seq` and hash (`0` and
/// [`AuditHash::GENESIS`] for an empty trail). Written `SEQ:HASH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: AuditHash,
}

impl AuditHead {
    pub const EMPTY: AuditHead = AuditHead {
        seq: 0,
        hash: AuditHash::GENESIS,
    };
}

impl std::fmt::Display for AuditHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// A head recorded outside the server (in a SIEM, a ticket, on paper) that
/// the trail must still pass through: `SEQ:HASH` (the record at `SEQ` has
/// this hash) or `HASH` alone (some record has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedHead {
    pub seq: Option<u64>,
    pub hash: AuditHash,
}

impl From<AuditHead> for ExpectedHead {
    fn from(head: AuditHead) -> ExpectedHead {
        ExpectedHead {
            seq: Some(head.seq),
            hash: head.hash,
        }
    }
}

impl std::fmt::Display for ExpectedHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "{seq}:{}", self.hash),
            None => write!(f, "{}", self.hash),
        }
    }
}

impl std::str::FromStr for ExpectedHead {
    type Err = AuditError;

    fn from_str(text: &str) -> Result<ExpectedHead, AuditError> {
        let bad = || AuditError::BadHead {
            text: text.to_owned(),
        };
        let trimmed = text.trim();
        let (seq, hash) = match trimmed.split_once(':') {
            Some((seq, hash)) => (Some(seq.parse::<u64>().map_err(|_| bad())?), hash),
            None => (None, trimmed),
        };
        if seq == Some(0) {
            return Err(bad());
        }
        let hash = hash.parse::<AuditHash>().map_err(|_| bad())?;
        Ok(ExpectedHead { seq, hash })
    }
}

/// The fields of a record that its hash covers, as stored.
#[derive(Debug, Clone, Copy)]
pub struct ChainFields<'a> {
    pub seq: u64,
    pub prev_hash: &'a AuditHash,
    pub at_us: i64,
    pub actor: &'a str,
    pub role: Option<&'a str>,
    pub client: Option<&'a str>,
    pub action: &'a str,
    /// The parameters' JSON text exactly as stored.
    pub params: &'a str,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
}

impl ChainFields<'_> {
    /// The canonical encoding, version 1. **Do not change**: every
    /// existing trail was hashed with it. The tag `holdfast-audit-v1`, then `seq` (u64 big-endian), `prev_hash`
    /// (32 bytes), `at_us` (i64 big-endian), then `actor`, `role`, `client`,
    /// `action`, `params`, `outcome`, `detail` in that order, each string as
    /// its length (u32 big-endian) and UTF-8 bytes, each optional string
    /// preceded by one byte, 0 for none or 1 for some. Lengths make the
    /// encoding unambiguous: no two different records encode alike.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            ENCODING_TAG.len()
                + 8
                + HASH_LEN
                + 8
                + 7 * 5
                + self.actor.len()
                + self.role.map_or(0, str::len)
                + self.client.map_or(0, str::len)
                + self.action.len()
                + self.params.len()
                + self.outcome.len()
                + self.detail.map_or(0, str::len),
        );
        out.extend_from_slice(ENCODING_TAG);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.prev_hash.0);
        out.extend_from_slice(&self.at_us.to_be_bytes());
        push_str(&mut out, self.actor);
        push_optional(&mut out, self.role);
        push_optional(&mut out, self.client);
        push_str(&mut out, self.action);
        push_str(&mut out, self.params);
        push_str(&mut out, self.outcome);
        push_optional(&mut out, self.detail);
        out
    }
}

fn push_str(out: &mut Vec<u8>, text: &str) {
    // Entries are validated far below 4 GiB; a longer string from a
    // tampered database still encodes unambiguously by saturating, and then
    // fails to match.
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn push_optional(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(0),
        Some(text) => {
            out.push(1);
            push_str(out, text);
        }
    }
}

/// The audit chain's key: 32 random bytes, zeroized on drop and never
/// printed. Its fingerprint (a truncated hash) is recorded in the database
/// when the trail starts, so a wrong key is named as such.
pub struct AuditKey {
    key: Zeroizing<[u8; 32]>,
    fingerprint: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey(fingerprint {})", self.fingerprint)
    }
}

impl AuditKey {
    /// A fresh random key.
    pub fn generate() -> AuditKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        AuditKey::from_bytes(bytes)
    }

    /// A key from its bytes (tests, or a key kept in a vault).
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> AuditKey {
        let mut hasher = Sha256::new();
        hasher.update(FINGERPRINT_TAG);
        hasher.update(bytes.as_ref());
        let fingerprint = hex::encode(&hasher.finalize()[..8]);
        AuditKey {
            key: bytes,
            fingerprint,
        }
    }

    /// A short public name of the key (reveals nothing of it).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Loads a key file: 64 hex digits, mode 0600 or stricter.
    pub fn load(path: &Path) -> Result<AuditKey, AuditError> {
        let key_error = |reason: String| AuditError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let metadata = std::fs::metadata(path).map_err(|error| key_error(error.to_string()))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(key_error(format!(
                "mode {mode:04o}: an audit key file must not be readable by group or others (chmod 600)"
            )));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|error| key_error(error.to_string()))?,
        );
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; 32]);
        if text.len() != 64 || hex::decode_to_slice(text, bytes.as_mut()).is_err() {
            return Err(key_error(format!(
                "expected 32 bytes as 64 hex digits, got {} characters",
                text.chars().count()
            )));
        }
        Ok(AuditKey::from_bytes(bytes))
    }

    /// Loads the key file, or creates it (0600, synced with its directory)
    /// when it does not exist. Returns the key and whether it was created.
    /// A new key for an existing trail is refused later, by
    /// [`AuditLog::open`](super::AuditLog::open), which names both
    /// fingerprints.
    pub fn load_or_create(path: &Path) -> Result<(AuditKey, bool), AuditError> {
        if path.exists() {
            return Ok((AuditKey::load(path)?, false));
        }
        let key = AuditKey::generate();
        match key.write_new_file(path) {
            Ok(()) => Ok((key, true)),
            // Someone else (another process starting at once) created it.
            Err(AuditError::KeyFile { .. }) if path.exists() => Ok((AuditKey::load(path)?, false)),
            Err(error) => Err(error),
        }
    }

    /// Writes the key as hex to a new file created with mode 0600.
    pub fn write_new_file(&self, path: &Path) -> Result<(), AuditError> {
        let write_error = |error: std::io::Error| AuditError::KeyFile {
            path: path.display().to_string(),
            reason: error.to_string(),
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write_error)?;
        let text = Zeroizing::new(format!("{}\n", hex::encode(self.key.as_ref())));
        file.write_all(text.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        crate::store::keys::sync_parent_dir(path).map_err(write_error)
    }

    /// The chain hash of a record with these fields.
    pub fn chain_hash(&self, fields: &ChainFields<'_>) -> AuditHash {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref())
            .expect("HMAC takes a key of any length");
        mac.update(&fields.encode());
        AuditHash(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::from_bytes(Zeroizing::new([7u8; 32]))
    }

    fn fields(prev: &AuditHash) -> ChainFields<'_> {
        ChainFields {
            seq: 1,
            prev_hash: prev,
            at_us: 1_714_555_800_000_000,
            actor: "maria",
            role: Some("compliance_officer"),
            client: Some("127.0.0.1"),
            action: "search",
            params: r#"{"query":"wire transfer","hits":3}"#,
            outcome: "ok",
            detail: None,
        }
    }

    #[test]
    fn the_version_1_hash_is_frozen() {
        // If this changes, every existing trail stops verifying. The value
        // was computed independently (Python hmac) from the documented encoding.
        let hash = key().chain_hash(&fields(&AuditHash::GENESIS));
        assert_eq!(
            hash.to_hex(),
            "f5de05ace1e0987179e2cb0d607e1c9e0bb8ff909d0210d06bae289c28688f02"
        );
    }

    #[test]
    fn every_field_and_the_key_change_the_hash() {
        let genesis = AuditHash::GENESIS;
        let other_prev = AuditHash([1; HASH_LEN]);
        let base = fields(&genesis);
        let reference = key().chain_hash(&base);
        let variants = [
            ChainFields { seq: 2, ..base },
            ChainFields {
                prev_hash: &other_prev,
                ..base
            },
            ChainFields {
                at_us: base.at_us + 1,
                ..base
            },
            ChainFields {
                actor: "mari",
                ..base
            },
            ChainFields { role: None, ..base },
            ChainFields {
                role: Some(""),
                ..base
            },
            ChainFields {
                client: None,
                ..base
            },
            ChainFields {
                action: "view_post",
                ..base
            },
            ChainFields {
                params: "{}",
                ..base
            },
            ChainFields {
                outcome: "denied",
                ..base
            },
            ChainFields {
                detail: Some(""),
                ..base
            },
            // Moving bytes between adjacent fields changes the encoding.
            ChainFields {
                actor: "mariac",
                role: Some("ompliance_officer"),
                ..base
            },
        ];
        for variant in &variants {
            assert_ne!(key().chain_hash(variant), reference, "{variant:?}");
        }
        let other_key = AuditKey::from_bytes(Zeroizing::new([8u8; 32]));
        assert_ne!(other_key.chain_hash(&base), reference);
    }

    #[test]
    fn heads_parse_with_or_without_seq() {
        let hash = AuditHash([0xab; HASH_LEN]);
        let text = format!("42:{hash}");
        let expected: ExpectedHead = text.parse().expect("valid");
        assert_eq!(
            expected,
            ExpectedHead {
                seq: Some(42),
                hash
            }
        );
        assert_eq!(expected.to_string(), text);
        let bare: ExpectedHead = hash.to_hex().parse().expect("valid");
        assert_eq!(bare.seq, None);
        for bad in [
            "",
            "42:",
            "x:abab",
            "0:00",
            "42:abcd",
            &format!("-1:{hash}"),
        ] {
            assert!(
                matches!(bad.parse::<ExpectedHead>(), Err(AuditError::BadHead { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn key_files_round_trip_and_must_be_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(AUDIT_KEY_FILE);
        let (created, was_created) = AuditKey::load_or_create(&path).expect("create");
        assert!(was_created);
        let (loaded, was_created) = AuditKey::load_or_create(&path).expect("load");
        assert!(!was_created);
        assert_eq!(loaded.fingerprint(), created.fingerprint());
        assert_eq!(
            std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
            0o600
        );
        assert!(!format!("{loaded:?}").contains(&hex::encode(loaded.key.as_ref())));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let error = AuditKey::load(&path).expect_err("too open");
        assert!(error.to_string().contains("chmod 600"), "{error}");

        let short = dir.path().join("short.key");
        std::fs::write(&short, "abcd\n").expect("write");
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = AuditKey::load(&short).expect_err("malformed");
        assert!(error.to_string().contains("64 hex digits"), "{error}");
    }
}
