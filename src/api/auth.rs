//! The configured ingest credential: a token from `HOLDFAST_INGEST_TOKEN`,
//! a token file, or generated into the data directory on first run, that
//! may post events and nothing else (`access.rs`). Only its SHA-256 is kept
//! in memory. People sign in for sessions and service accounts get named
//! API tokens (`holdfast token create`); this one exists so that a chat
//! connector can be pointed at a fresh install at once.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The token's hash; comparing hashes keeps the token out of memory dumps of the state.
#[derive(Clone)]
pub struct TokenHash([u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl TokenHash {
    pub fn of(token: &SecretString) -> TokenHash {
        TokenHash(Sha256::digest(token.expose_secret().trim().as_bytes()).into())
    }

    pub(crate) fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Constant-time comparison of the two digests.
        presented
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Where the ingest token came from, for the startup message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOrigin {
    Environment,
    File(String),
    Generated(String),
}

/// The configured token, or the one in the token file, or a new one written
/// to `<data_dir>/ingest.token` with mode 0600.
pub fn load_or_create_ingest_token(
    config: &Config,
) -> std::io::Result<(SecretString, TokenOrigin)> {
    if let Some(token) = &config.ingest_token {
        return Ok((token.clone(), TokenOrigin::Environment));
    }
    let path = config
        .ingest_token_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("ingest.token"));
    if path.exists() {
        return read_token_file(&path)
            .map(|token| (token, TokenOrigin::File(path.display().to_string())));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok((
        SecretString::from(token),
        TokenOrigin::Generated(path.display().to_string()),
    ))
}

fn read_token_file(path: &Path) -> std::io::Result<SecretString> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "token file {} has mode {mode:04o}; it must not be readable by group or others (chmod 600)",
            path.display()
        )));
    }
    let token = std::fs::read_to_string(path)?;
    if token.trim().len() < 16 {
        return Err(std::io::Error::other(format!(
            "token file {} holds fewer than 16 characters",
            path.display()
        )));
    }
    Ok(SecretString::from(token.trim().to_owned()))
}
