//! Password hashing (argon2id with the OWASP parameters) and the password policy.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
    password_hash::SaltString,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::error::{AppError, AppResult};

pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer input is refused before hashing, so that nobody can make us hash megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes and verifies passwords on the blocking pool, a bounded number at a time: each
/// hash holds 19 MiB, so an unbounded burst of logins would be a memory attack.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that an unknown username costs
    /// the same time as a wrong password.
    dummy_hash: Arc<str>,
}

fn argon2() -> Argon2<'static> {
    // OWASP: argon2id, m = 19 MiB, t = 2, p = 1.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(format!("hashing a password failed: {e}")))
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

impl Passwords {
    pub fn new() -> AppResult<Self> {
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Passwords {
            permits: Arc::new(Semaphore::new(parallelism * 2)),
            dummy_hash: hash_blocking("mailops-dummy-password-for-timing")?.into(),
        })
    }

    pub async fn hash(&self, password: &SecretString) -> AppResult<String> {
        let password = password.clone();
        self.run_bounded("hashing", move || hash_blocking(password.expose_secret()))
            .await?
    }

    /// Verifies `password` against `hash`, or against a dummy hash when there is no user, so
    /// that both cases take the same time.
    pub async fn verify(&self, password: &SecretString, hash: Option<&str>) -> AppResult<bool> {
        let password = password.clone();
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.dummy_hash.to_string(), str::to_string);
        let matches = self
            .run_bounded("verification", move || {
                let capped = password.expose_secret().len() <= MAX_PASSWORD_BYTES;
                // An over-long password is still verified (against a truncation) so it
                // costs the same time, but can never match.
                let input: &str = if capped { password.expose_secret() } else { "" };
                verify_blocking(input, &hash) && capped
            })
            .await?;
        Ok(matches && known)
    }

    /// Runs `work` on the blocking pool once a permit is free, so that a flood of logins
    /// queues here instead of occupying every blocking thread.
    async fn run_bounded<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AppError::internal("password hasher closed"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AppError::internal(format!("password {what} task failed: {e}")))
    }
}

/// The password policy: at least 12 characters, at most 1 KiB, and not the username.
pub fn check_policy(username: &str, password: &str) -> Result<(), String> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.trim().eq_ignore_ascii_case(username.trim()) {
        return Err("must not be the username".into());
    }
    Ok(())
}

/// A random password for a new account, shown once.
pub fn generate() -> SecretString {
    SecretString::from(crate::auth::tokens::random_token(18))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let passwords = Passwords::new().expect("hasher");
        let hash = passwords
            .hash(&SecretString::from("correct horse battery"))
            .await
            .expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let good = SecretString::from("correct horse battery");
        let bad = SecretString::from("correct horse battery!");
        assert!(passwords.verify(&good, Some(&hash)).await.expect("verify"));
        assert!(!passwords.verify(&bad, Some(&hash)).await.expect("verify"));
        assert!(!passwords.verify(&good, None).await.expect("verify"));
    }

    #[test]
    fn policy_refuses_short_and_username_passwords() {
        assert!(check_policy("alice", "short").is_err());
        assert!(check_policy("alice-the-admin", "Alice-The-Admin").is_err());
        assert!(check_policy("alice", &"x".repeat(2000)).is_err());
        assert!(check_policy("alice", "a long enough password").is_ok());
    }
}
