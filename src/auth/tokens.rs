//! Access tokens (JWT, HS256 pinned) and opaque refresh tokens.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

const ISSUER: &str = "mailops";
const AUDIENCE: &str = "mailops-api";
const ACCESS_TYPE: &str = "access";
/// A JWT longer than this is refused before it is decoded.
const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    sub: Uuid,
    iss: String,
    aud: String,
    typ: String,
    iat: i64,
    exp: i64,
}

/// Signs and checks access tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

/// A signed access token and when it stops being accepted.
pub struct AccessToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl TokenKeys {
    pub fn new(secret: &SecretString, access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        TokenKeys {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn issue_access(&self, user_id: Uuid) -> AppResult<AccessToken> {
        let now = Utc::now();
        let expires_at = now
            + chrono::Duration::from_std(self.access_ttl)
                .map_err(|e| AppError::internal(format!("access token lifetime: {e}")))?;
        let claims = AccessClaims {
            sub: user_id,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            typ: ACCESS_TYPE.into(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .map_err(|e| AppError::internal(format!("signing an access token failed: {e}")))?;
        Ok(AccessToken { token, expires_at })
    }

    /// The user id of a valid access token, or why it is not valid. The reasons are safe
    /// to show: they say nothing about the secret.
    pub fn verify_access(&self, token: &str) -> Result<Uuid, &'static str> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err("access token is too long");
        }
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => "access token has expired",
                ErrorKind::InvalidAudience => "access token is not meant for this API",
                ErrorKind::InvalidIssuer => "access token has an unknown issuer",
                ErrorKind::InvalidAlgorithm => {
                    "access token uses an algorithm that is not accepted"
                }
                ErrorKind::InvalidSignature => "access token signature is invalid",
                _ => "access token is malformed",
            })?;
        if data.claims.typ != ACCESS_TYPE {
            return Err("token is not an access token");
        }
        Ok(data.claims.sub)
    }
}

impl TokenKeys {
    /// When a valid access token stops being accepted; `None` when it is not valid.
    pub fn access_expiry(&self, token: &str) -> Option<DateTime<Utc>> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).ok()?;
        DateTime::from_timestamp(data.claims.exp, 0)
    }
}

/// `bytes` random bytes, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A new refresh token: 256 random bits.
pub fn new_refresh_token() -> SecretString {
    SecretString::from(random_token(32))
}

/// The stored form of a high-entropy secret (refresh tokens, API keys): hex SHA-256. A slow
/// hash adds nothing for 256 random bits.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write as _;
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Loads the embedded-mode JWT secret from `path`, creating it (mode 0600) on first start.
pub fn load_or_create_secret(path: &std::path::Path) -> anyhow::Result<SecretString> {
    use anyhow::Context as _;
    if path.exists() {
        let secret =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let secret = secret.trim().to_string();
        anyhow::ensure!(
            secret.len() >= crate::config::MIN_JWT_SECRET_BYTES,
            "{} holds a secret shorter than {} bytes; delete it to generate a new one",
            path.display(),
            crate::config::MIN_JWT_SECRET_BYTES
        );
        return Ok(SecretString::from(secret));
    }
    let secret = random_token(48);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, secret.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(SecretString::from(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(
            &SecretString::from(secret.to_string()),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn an_issued_token_verifies_with_its_user() {
        let keys = keys(&"k".repeat(32));
        let id = Uuid::now_v7();
        let token = keys.issue_access(id).expect("issue").token;
        assert_eq!(keys.verify_access(&token), Ok(id));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token = keys(&"a".repeat(32))
            .issue_access(Uuid::now_v7())
            .expect("issue")
            .token;
        assert!(keys(&"b".repeat(32)).verify_access(&token).is_err());
    }

    #[test]
    fn secret_hashes_are_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
