//! Password hashing for the local directory: Argon2id PHC strings.
//!
//! Never logs, prints or returns a password; a hash that does not parse is
//! an error naming nothing but the problem. Verification of an unknown user
//! runs against a dummy hash with the same cost, so that the time taken does
//! not tell whether the user exists.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};

/// Length of generated one-time passwords (bootstrap admin, resets).
pub const GENERATED_PASSWORD_LEN: usize = 24;

/// Shortest password accepted when one is set.
pub const MIN_PASSWORD_LEN: usize = 12;

/// The hasher for new hashes: Argon2id, version 0x13, the argon2 crate's
/// defaults (19 MiB, 2 passes, 1 lane: OWASP's recommendation). Existing
/// hashes are verified with the parameters they carry.
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Hashes `password` into a PHC string (`$argon2id$v=19$...`).
pub fn hash_password(password: &SecretString) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| format!("cannot hash the password: {error}"))
}

/// Whether a PHC string is one we can verify (Argon2id).
pub fn check_hash(phc: &str) -> Result<(), String> {
    let hash = PasswordHash::new(phc).map_err(|error| format!("not a PHC string: {error}"))?;
    if hash.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "algorithm {} is not accepted (argon2id only)",
            hash.algorithm
        ));
    }
    Ok(())
}

/// Whether `password` matches the PHC string. An unparsable hash matches
/// nothing.
pub fn verify_password(password: &SecretString, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm.as_str() != "argon2id" {
        return false;
    }
    // `Argon2::default()` verifies with the parameters the hash carries.
    Argon2::default()
        .verify_password(password.expose_secret().as_bytes(), &hash)
        .is_ok()
}

/// Spends the time of one verification against a hash nobody can match,
/// for unknown users.
pub fn verify_dummy(password: &SecretString) {
    static DUMMY: LazyLock<Option<String>> =
        LazyLock::new(|| hash_password(&SecretString::from(generate_password())).ok());
    if let Some(dummy) = DUMMY.as_deref() {
        let _ = verify_password(password, dummy);
    }
}

/// A random password from an alphabet without look-alike characters.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = OsRng;
    (0..GENERATED_PASSWORD_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Checks a new password: long enough, not only spaces. The message never
/// contains the password.
pub fn check_new_password(password: &SecretString) -> Result<(), String> {
    let password = password.expose_secret();
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!(
            "a password must have at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    if password.trim().is_empty() {
        return Err("a password must not be only spaces".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trip_is_argon2id() {
        let password = SecretString::from("correct horse battery staple");
        let phc = hash_password(&password).expect("hashes");
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        check_hash(&phc).expect("our own hash is accepted");
        assert!(verify_password(&password, &phc));
        assert!(!verify_password(
            &SecretString::from("correct horse battery stapl"),
            &phc
        ));
        // Same password, new salt: a different hash.
        assert_ne!(phc, hash_password(&password).expect("hashes"));
    }

    #[test]
    fn foreign_or_broken_hashes_match_nothing() {
        let password = SecretString::from("anything at all");
        assert!(!verify_password(&password, ""));
        assert!(!verify_password(&password, "plaintext"));
        assert!(check_hash("$2b$12$abcdefghijklmnopqrstuv").is_err());
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$YWJjZGVmZ2hpamtsbW5vcA";
        assert!(check_hash(argon2i).is_err());
        assert!(!verify_password(&password, argon2i));
        verify_dummy(&password);
    }

    #[test]
    fn generated_passwords_are_long_and_different() {
        let first = generate_password();
        assert_eq!(first.len(), GENERATED_PASSWORD_LEN);
        assert!(first.chars().all(|ch| ch.is_ascii_alphanumeric()));
        assert_ne!(first, generate_password());
        check_new_password(&SecretString::from(first)).expect("long enough");
        let error = check_new_password(&SecretString::from("short")).expect_err("too short");
        assert!(!error.contains("short"));
    }
}
