//! The installation's export signing key, and checking a signature.
//!
//! Ed25519 by default: the private key (`export-signing.key`, 32 bytes as
//! hex, mode 0600) is made on first use in the data directory and its
//! public half written beside it (`export-signing.pub`), for recipients to
//! check packages with. Where configured, HMAC-SHA256 with a shared key file
//! instead (the recipient then needs the same key). Keys are never logged or
//! written into a package; the manifest names the key by fingerprint only
//! (and carries the Ed25519 public key, which is not secret).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The private key file in the data directory.
pub const SIGNING_KEY_FILE: &str = "export-signing.key";
/// The public key file in the data directory (hex).
pub const PUBLIC_KEY_FILE: &str = "export-signing.pub";

/// A problem with a key file.
#[derive(Debug, thiserror::Error)]
#[error("export signing key {path}: {reason}")]
pub struct KeyFileError {
    pub path: String,
    pub reason: String,
}

fn key_error(path: &Path, reason: impl Into<String>) -> KeyFileError {
    KeyFileError {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// What signs manifests.
pub enum Signer {
    Ed25519(SigningKey),
    Hmac {
        key: Zeroizing<Vec<u8>>,
        key_id: String,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({}, key {})", self.algorithm(), self.key_id())
    }
}

/// A manifest's signature, as written to `manifest.sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// `ed25519` or `hmac-sha256`.
    pub algorithm: String,
    /// The key's fingerprint.
    pub key_id: String,
    /// Base64 of the signature (or MAC) over the exact bytes of
    /// `manifest.json`.
    pub signature: String,
}

/// The fingerprint of key material: 16 hex digits of a tagged SHA-256.
fn fingerprint(tag: &[u8], bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tag);
    hasher.update(bytes);
    hex::encode(&hasher.finalize()[..8])
}

/// The fingerprint of an Ed25519 public key.
pub fn ed25519_key_id(public: &VerifyingKey) -> String {
    fingerprint(b"holdfast export ed25519 v1", public.as_bytes())
}

fn hmac_key_id(key: &[u8]) -> String {
    fingerprint(b"holdfast export hmac v1", key)
}

/// Reads a file of hex digits, refusing one others can read when it is secret.
fn read_hex(path: &Path, secret: bool) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let metadata = std::fs::metadata(path).map_err(|error| key_error(path, error.to_string()))?;
    if secret {
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(key_error(
                path,
                format!(
                    "mode {mode:04o}: a key file must not be readable by group or others (chmod 600)"
                ),
            ));
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|error| key_error(path, error.to_string()))?,
    );
    let bytes = hex::decode(text.trim())
        .map_err(|_| key_error(path, "expected hex digits (the key as hexadecimal text)"))?;
    Ok(Zeroizing::new(bytes))
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), KeyFileError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|error| key_error(path, error.to_string()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| key_error(path, error.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|error| key_error(path, error.to_string()))?;
    }
    Ok(())
}

impl Signer {
    /// The installation's Ed25519 key in `data_dir`, made (with its public
    /// half) when missing.
    pub fn ed25519_in(data_dir: &Path) -> Result<Signer, KeyFileError> {
        let path = data_dir.join(SIGNING_KEY_FILE);
        let public_path = data_dir.join(PUBLIC_KEY_FILE);
        if !path.exists() {
            let mut seed = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(seed.as_mut());
            let key = SigningKey::from_bytes(&seed);
            let text = Zeroizing::new(format!("{}\n", hex::encode(seed.as_ref())));
            match write_new(&path, &text, 0o600) {
                Ok(()) => {}
                // Another process made it at the same moment: use theirs.
                Err(_) if path.exists() => {}
                Err(error) => return Err(error),
            }
            if !public_path.exists() {
                let public = format!("{}\n", hex::encode(key.verifying_key().as_bytes()));
                let _ = write_new(&public_path, &public, 0o644);
            }
        }
        let bytes = read_hex(&path, true)?;
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| key_error(&path, format!("expected 32 bytes, got {}", bytes.len())))?;
        let key = SigningKey::from_bytes(&seed);
        if !public_path.exists() {
            let public = format!("{}\n", hex::encode(key.verifying_key().as_bytes()));
            write_new(&public_path, &public, 0o644)?;
        }
        Ok(Signer::Ed25519(key))
    }

    /// HMAC-SHA256 with the key in `path` (at least 32 bytes as hex, mode
    /// 0600).
    pub fn hmac_from_file(path: &Path) -> Result<Signer, KeyFileError> {
        let key = read_hex(path, true)?;
        if key.len() < 32 {
            return Err(key_error(
                path,
                format!("an HMAC key needs at least 32 bytes, got {}", key.len()),
            ));
        }
        let key_id = hmac_key_id(&key);
        Ok(Signer::Hmac { key, key_id })
    }

    pub fn algorithm(&self) -> &'static str {
        match self {
            Signer::Ed25519(_) => "ed25519",
            Signer::Hmac { .. } => "hmac-sha256",
        }
    }

    pub fn key_id(&self) -> String {
        match self {
            Signer::Ed25519(key) => ed25519_key_id(&key.verifying_key()),
            Signer::Hmac { key_id, .. } => key_id.clone(),
        }
    }

    /// The Ed25519 public key as hex (`None` for HMAC).
    pub fn public_key_hex(&self) -> Option<String> {
        match self {
            Signer::Ed25519(key) => Some(hex::encode(key.verifying_key().as_bytes())),
            Signer::Hmac { .. } => None,
        }
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        let bytes = match self {
            Signer::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            Signer::Hmac { key, .. } => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        };
        Signature {
            algorithm: self.algorithm().to_owned(),
            key_id: self.key_id(),
            signature: BASE64.encode(bytes),
        }
    }
}

/// A key a package's signature is checked with.
pub enum TrustedKey {
    Ed25519(VerifyingKey),
    Hmac(Zeroizing<Vec<u8>>),
}

impl TrustedKey {
    /// An Ed25519 public key file (64 hex digits, as `export-signing.pub`).
    pub fn ed25519_public_file(path: &Path) -> Result<TrustedKey, KeyFileError> {
        let bytes = read_hex(path, false)?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            key_error(
                path,
                format!("expected a 32-byte public key, got {} bytes", bytes.len()),
            )
        })?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| key_error(path, "not a valid Ed25519 public key"))?;
        Ok(TrustedKey::Ed25519(key))
    }

    /// An HMAC key file.
    pub fn hmac_file(path: &Path) -> Result<TrustedKey, KeyFileError> {
        Ok(TrustedKey::Hmac(read_hex(path, true)?))
    }

    /// The Ed25519 public key written in a manifest (proves the package is
    /// intact, not who made it).
    pub fn ed25519_hex(text: &str) -> Option<TrustedKey> {
        let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes)
            .ok()
            .map(TrustedKey::Ed25519)
    }

    pub fn algorithm(&self) -> &'static str {
        match self {
            TrustedKey::Ed25519(_) => "ed25519",
            TrustedKey::Hmac(_) => "hmac-sha256",
        }
    }

    pub fn key_id(&self) -> String {
        match self {
            TrustedKey::Ed25519(key) => ed25519_key_id(key),
            TrustedKey::Hmac(key) => hmac_key_id(key),
        }
    }

    /// Whether `signature` is a valid signature of `message` by this key;
    /// `Err` says why not.
    pub fn check(&self, message: &[u8], signature: &Signature) -> Result<(), String> {
        if signature.algorithm != self.algorithm() {
            return Err(format!(
                "the package is signed with {} but the key given is {}",
                signature.algorithm,
                self.algorithm()
            ));
        }
        let bytes = BASE64
            .decode(signature.signature.trim())
            .map_err(|_| "the signature is not valid base64".to_owned())?;
        match self {
            TrustedKey::Ed25519(key) => {
                let bytes: [u8; 64] = bytes
                    .try_into()
                    .map_err(|_| "an Ed25519 signature has 64 bytes".to_owned())?;
                key.verify(message, &ed25519_dalek::Signature::from_bytes(&bytes))
                    .map_err(|_| {
                        format!(
                            "the signature does not match manifest.json for key {}",
                            self.key_id()
                        )
                    })
            }
            TrustedKey::Hmac(key) => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
                mac.update(message);
                mac.verify_slice(&bytes).map_err(|_| {
                    format!(
                        "the HMAC does not match manifest.json for key {}",
                        self.key_id()
                    )
                })
            }
        }
    }
}

/// Where a trusted key comes from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file given by the operator.
    File(PathBuf),
    /// The public key written in the manifest itself.
    Manifest,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn ed25519_key_is_made_once_and_signatures_check() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::ed25519_in(dir.path()).unwrap();
        let again = Signer::ed25519_in(dir.path()).unwrap();
        assert_eq!(signer.key_id(), again.key_id());
        let mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let signature = signer.sign(b"manifest");
        let trusted = TrustedKey::ed25519_public_file(&dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(trusted.key_id(), signer.key_id());
        trusted.check(b"manifest", &signature).unwrap();
        let error = trusted.check(b"manifest!", &signature).unwrap_err();
        assert!(error.contains("does not match"), "{error}");
    }

    #[test]
    fn hmac_needs_a_private_file_of_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hmac.key");
        std::fs::write(&path, "00ff").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = Signer::hmac_from_file(&path).unwrap_err();
        assert!(error.to_string().contains("at least 32 bytes"), "{error}");
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = Signer::hmac_from_file(&path).unwrap_err();
        assert!(error.to_string().contains("chmod 600"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let signer = Signer::hmac_from_file(&path).unwrap();
        let signature = signer.sign(b"m");
        let trusted = TrustedKey::hmac_file(&path).unwrap();
        trusted.check(b"m", &signature).unwrap();
        assert!(trusted.check(b"n", &signature).is_err());
        let ed = TrustedKey::ed25519_hex(&hex::encode([7u8; 32]));
        if let Some(ed) = ed {
            assert!(
                ed.check(b"m", &signature)
                    .unwrap_err()
                    .contains("signed with hmac")
            );
        }
    }
}
