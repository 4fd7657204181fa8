//! The master key (KEK) and the data keys (DEKs) it wraps.
//!
//! The KEK comes from a file (which must be mode 0600 or stricter), an
//! environment variable or a command's standard output, as 32 bytes written
//! as 64 hex digits or base64. It never leaves this module unwrapped: no
//! `Debug`, no `Display`, no log line shows it or a data key. Errors name the
//! source, never the material.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::format::NONCE_LEN;

/// Where the master key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// A file holding the key; refused when group or others may read it.
    File(PathBuf),
    /// An environment variable holding the key.
    Env(String),
    /// A shell command whose standard output is the key (a vault client, say).
    Command(String),
}

impl std::fmt::Display for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KekSource::File(path) => write!(f, "key file {}", path.display()),
            KekSource::Env(var) => write!(f, "environment variable {var}"),
            KekSource::Command(command) => write!(f, "key command `{command}`"),
        }
    }
}

/// Problems with keys. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the master key from {source_name}: {reason}")]
    Unreadable { source_name: String, reason: String },
    #[error(
        "{source_name} has mode {mode:04o}: a master key file must not be readable by group or others (chmod 600)"
    )]
    TooOpen { source_name: String, mode: u32 },
    #[error(
        "the master key from {source_name} is malformed: expected 32 bytes as 64 hex digits or base64, got {n_chars} characters"
    )]
    Malformed { source_name: String, n_chars: usize },
    #[error(
        "the master key does not open this archive: the archive was sealed with key {expected}, the key given has fingerprint {actual}"
    )]
    WrongKey { expected: String, actual: String },
    #[error(
        "the data key of epoch {epoch_id} does not unwrap: the key table was altered or the master key is wrong"
    )]
    UnwrapFailed { epoch_id: i64 },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The master key. Its bytes are zeroized on drop and never printed.
pub struct MasterKey {
    key: SecretBox<[u8; 32]>,
    fingerprint: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(fingerprint {})", self.fingerprint)
    }
}

const DEK_AD_PREFIX: &[u8] = b"holdfast-dek-v1";
const CHECK_AD: &[u8] = b"holdfast-kek-check-v1";
const CHECK_PLAINTEXT: &[u8] = b"holdfast master key check";

impl MasterKey {
    /// Loads the key from its source.
    pub fn load(source: &KekSource) -> Result<MasterKey, KeyError> {
        let source_name = source.to_string();
        let unreadable = |reason: String| KeyError::Unreadable {
            source_name: source_name.clone(),
            reason,
        };
        let text: Zeroizing<String> = match source {
            KekSource::File(path) => {
                let metadata = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
                let mode = metadata.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::TooOpen {
                        source_name: source_name.clone(),
                        mode,
                    });
                }
                Zeroizing::new(
                    std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?,
                )
            }
            KekSource::Env(var) => Zeroizing::new(std::env::var(var).map_err(|error| {
                unreadable(match error {
                    std::env::VarError::NotPresent => "it is not set".to_owned(),
                    std::env::VarError::NotUnicode(_) => "it is not valid unicode".to_owned(),
                })
            })?),
            KekSource::Command(command) => {
                let output = Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .output()
                    .map_err(|e| unreadable(e.to_string()))?;
                if !output.status.success() {
                    // stderr is the command's own diagnostics; stdout (the key) is never shown.
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    return Err(unreadable(format!(
                        "it exited with {}: {}",
                        output.status,
                        stderr.trim()
                    )));
                }
                Zeroizing::new(
                    String::from_utf8(output.stdout)
                        .map_err(|_| unreadable("its output is not UTF-8".to_owned()))?,
                )
            }
        };
        MasterKey::parse(&text, &source_name)
    }

    /// Parses key material: 64 hex digits or base64 of 32 bytes, surrounding
    /// whitespace ignored.
    pub fn parse(text: &str, source_name: &str) -> Result<MasterKey, KeyError> {
        let text = text.trim();
        let malformed = || KeyError::Malformed {
            source_name: source_name.to_owned(),
            n_chars: text.chars().count(),
        };
        let mut bytes = Zeroizing::new([0u8; 32]);
        if text.len() == 64 && hex::decode_to_slice(text, bytes.as_mut()).is_ok() {
            return Ok(MasterKey::from_bytes(*bytes));
        }
        let decoded = Zeroizing::new(BASE64.decode(text).map_err(|_| malformed())?);
        if decoded.len() != 32 {
            return Err(malformed());
        }
        bytes.copy_from_slice(&decoded);
        Ok(MasterKey::from_bytes(*bytes))
    }

    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        MasterKey::from_bytes(*bytes)
    }

    fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        let mut hasher = Sha256::new();
        hasher.update(b"holdfast-kek-fingerprint-v1");
        hasher.update(bytes);
        let fingerprint = hex::encode(&hasher.finalize()[..8]);
        MasterKey {
            key: SecretBox::new(Box::new(bytes)),
            fingerprint,
        }
    }

    /// A short public name of this key (a truncated hash; reveals nothing of it).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Writes the key as hex to a new file created with mode 0600.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyError> {
        let write_error = |source| KeyError::Write {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write_error)?;
        let text = Zeroizing::new(format!("{}\n", hex::encode(self.key.expose_secret())));
        file.write_all(text.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        sync_parent_dir(path).map_err(write_error)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.key.expose_secret()))
    }

    /// A check value stored with the archive: only this key opens it.
    pub fn check_value(&self) -> String {
        BASE64.encode(seal(&self.cipher(), CHECK_PLAINTEXT, CHECK_AD))
    }

    /// Whether `check` (from [`MasterKey::check_value`]) was made by this key.
    pub fn verify_check(&self, check: &str, expected_fingerprint: &str) -> Result<(), KeyError> {
        let opened = BASE64
            .decode(check)
            .ok()
            .and_then(|sealed| open(&self.cipher(), &sealed, CHECK_AD));
        match opened {
            Some(plaintext) if plaintext.as_slice() == CHECK_PLAINTEXT => Ok(()),
            _ => Err(KeyError::WrongKey {
                expected: expected_fingerprint.to_owned(),
                actual: self.fingerprint.clone(),
            }),
        }
    }

    /// Wraps a data key for the epoch named by `label`.
    pub fn wrap(&self, dek: &DataKey, label: &EpochLabel<'_>) -> Vec<u8> {
        seal(&self.cipher(), dek.bytes.as_ref(), &label.associated_data())
    }

    /// Unwraps a data key; fails if the key, the label or the bytes differ.
    pub fn unwrap(
        &self,
        wrapped: &[u8],
        label: &EpochLabel<'_>,
        epoch_id: i64,
    ) -> Result<DataKey, KeyError> {
        let plaintext = open(&self.cipher(), wrapped, &label.associated_data())
            .ok_or(KeyError::UnwrapFailed { epoch_id })?;
        let bytes: [u8; 32] = plaintext
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::UnwrapFailed { epoch_id })?;
        Ok(DataKey {
            bytes: Zeroizing::new(bytes),
        })
    }
}

/// Makes a new or renamed directory entry durable: a key file that vanishes
/// after a power loss would leave the archive unreadable.
pub fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()
}

/// Where `keys rotate` stages a generated key before it replaces the key
/// file. If a crash leaves it behind after the archive moved to it, opening
/// the archive finishes the move.
pub fn staged_key_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    path.with_file_name(name)
}

/// What a data key is bound to when wrapped: its channel and day.
pub struct EpochLabel<'a> {
    pub team: &'a str,
    pub channel: &'a str,
    pub day: &'a str,
}

impl EpochLabel<'_> {
    fn associated_data(&self) -> Vec<u8> {
        let mut ad = DEK_AD_PREFIX.to_vec();
        for part in [self.team, self.channel, self.day] {
            ad.extend_from_slice(&(part.len() as u64).to_le_bytes());
            ad.extend_from_slice(part.as_bytes());
        }
        ad
    }
}

/// A data key (DEK) of one key epoch. Zeroized on drop, never printed.
pub struct DataKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn generate() -> DataKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        DataKey { bytes }
    }

    /// The AES-256-GCM cipher of this key.
    pub fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.bytes.as_ref()))
    }
}

/// Encrypts with a fresh random nonce: returns nonce || ciphertext || tag.
fn seal(cipher: &Aes256Gcm, plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: ad,
            },
        )
        .expect("AES-GCM encryption only fails for inputs over 64 GiB");
    [nonce.as_slice(), &ciphertext].concat()
}

fn open(cipher: &Aes256Gcm, sealed: &[u8], ad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: ad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn label() -> EpochLabel<'static> {
        EpochLabel {
            team: "legal",
            channel: "town-square",
            day: "2024-01-01",
        }
    }

    #[test]
    fn hex_and_base64_give_the_same_key() {
        let from_hex = MasterKey::parse(HEX_KEY, "test").expect("hex");
        let bytes = hex::decode(HEX_KEY).expect("hex");
        let from_base64 =
            MasterKey::parse(&format!("  {}\n", BASE64.encode(bytes)), "test").expect("base64");
        assert_eq!(from_hex.fingerprint(), from_base64.fingerprint());
    }

    #[test]
    fn malformed_keys_are_named_without_their_content() {
        let error = MasterKey::parse("not-a-key-secret", "key file /k").expect_err("malformed");
        let message = error.to_string();
        assert!(
            message.contains("key file /k") && message.contains("16 characters"),
            "{message}"
        );
        assert!(!message.contains("not-a-key-secret"), "{message}");
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = MasterKey::parse(HEX_KEY, "test").expect("hex");
        let shown = format!("{key:?} {:?}", DataKey::generate());
        assert!(!shown.contains("0001020304"), "{shown}");
        assert!(!shown.contains("[0, 1, 2"), "{shown}");
    }

    #[test]
    fn wrap_unwrap_binds_the_label_and_the_key() {
        let kek = MasterKey::generate();
        let dek = DataKey::generate();
        let wrapped = kek.wrap(&dek, &label());
        kek.unwrap(&wrapped, &label(), 1)
            .expect("same key, same label");
        let other_label = EpochLabel {
            day: "2024-01-02",
            ..label()
        };
        assert!(kek.unwrap(&wrapped, &other_label, 1).is_err());
        assert!(MasterKey::generate().unwrap(&wrapped, &label(), 1).is_err());
    }

    #[test]
    fn check_value_tells_the_right_key() {
        let kek = MasterKey::generate();
        let check = kek.check_value();
        kek.verify_check(&check, kek.fingerprint())
            .expect("own check");
        let error = MasterKey::generate()
            .verify_check(&check, kek.fingerprint())
            .expect_err("other key");
        assert!(error.to_string().contains(kek.fingerprint()));
    }

    #[test]
    fn key_files_readable_by_others_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        MasterKey::generate().write_new_file(&path).expect("write");
        MasterKey::load(&KekSource::File(path.clone())).expect("0600 is fine");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = MasterKey::load(&KekSource::File(path)).expect_err("0644");
        assert!(
            matches!(error, KeyError::TooOpen { mode: 0o644, .. }),
            "{error}"
        );
    }

    #[test]
    fn key_command_output_is_the_key_and_failures_are_named() {
        let key = MasterKey::load(&KekSource::Command(format!("echo {HEX_KEY}"))).expect("cmd");
        assert_eq!(
            key.fingerprint(),
            MasterKey::parse(HEX_KEY, "t").expect("hex").fingerprint()
        );
        let error = MasterKey::load(&KekSource::Command("echo nope >&2; exit 3".into()))
            .expect_err("fails");
        assert!(error.to_string().contains("nope"), "{error}");
        let error = MasterKey::load(&KekSource::Env("HOLDFAST_TEST_UNSET_KEY_VAR".into()))
            .expect_err("unset");
        assert!(error.to_string().contains("not set"), "{error}");
    }

    proptest::proptest! {
        #[test]
        fn seal_open_round_trips(plaintext in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
                                 ad in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let cipher = DataKey::generate().cipher();
            let sealed = seal(&cipher, &plaintext, &ad);
            let opened = open(&cipher, &sealed, &ad).expect("opens");
            proptest::prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
            let mut tampered = sealed;
            let last = tampered.len() - 1;
            tampered[last] ^= 1;
            proptest::prop_assert!(open(&cipher, &tampered, &ad).is_none());
        }
    }
}
