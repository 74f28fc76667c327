//! Access tokens (JWT, HS256 pinned) and opaque refresh tokens.
//!
//! mailops signs and checks its own tokens with one HMAC key, so it implements exactly
//! that part of JWT (RFC 7519 with JWS HS256) and nothing else: no other algorithm can
//! be named in a header and accepted, and no RSA or elliptic-curve code is in the build.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

const ISSUER: &str = "mailops";
const AUDIENCE: &str = "mailops-api";
const ACCESS_TYPE: &str = "access";
/// The JOSE header of every token mailops signs.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
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
    /// The user's session version when the token was issued.
    #[serde(default)]
    ver: i32,
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
}

/// Signs and checks access tokens.
#[derive(Clone)]
pub struct TokenKeys {
    mac: Hmac<Sha256>,
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
        // HMAC takes a key of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        TokenKeys {
            mac,
            access_ttl,
            refresh_ttl,
        }
    }

    fn signature(&self, signing_input: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        mac
    }

    /// Signs an access token for `user_id` under its current `session_version`.
    pub fn issue_access(&self, user_id: Uuid, session_version: i32) -> AppResult<AccessToken> {
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
            ver: session_version,
        };
        let claims = serde_json::to_vec(&claims)
            .map_err(|e| AppError::internal(format!("encoding access token claims: {e}")))?;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = self.signature(&signing_input).finalize().into_bytes();
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
        Ok(AccessToken { token, expires_at })
    }

    /// The claims of a valid access token, or why it is not valid. The reasons are safe
    /// to show: they say nothing about the secret.
    fn verify(&self, token: &str) -> Result<AccessClaims, &'static str> {
        const MALFORMED: &str = "access token is malformed";
        if token.len() > MAX_TOKEN_BYTES {
            return Err("access token is too long");
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MALFORMED);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| MALFORMED);
        let header: JoseHeader = serde_json::from_slice(&decode(header)?).map_err(|_| MALFORMED)?;
        if header.alg != "HS256" {
            return Err("access token uses an algorithm that is not accepted");
        }
        let signing_input = &token[..token.len() - signature.len() - 1];
        self.signature(signing_input)
            .verify_slice(&decode(signature)?)
            .map_err(|_| "access token signature is invalid")?;
        let claims: AccessClaims =
            serde_json::from_slice(&decode(claims)?).map_err(|_| MALFORMED)?;
        if claims.iss != ISSUER {
            return Err("access token has an unknown issuer");
        }
        if claims.aud != AUDIENCE {
            return Err("access token is not meant for this API");
        }
        if Utc::now().timestamp() >= claims.exp {
            return Err("access token has expired");
        }
        if claims.typ != ACCESS_TYPE {
            return Err("token is not an access token");
        }
        Ok(claims)
    }

    /// The user id and session version of a valid access token, or why it is not valid.
    pub fn verify_access(&self, token: &str) -> Result<(Uuid, i32), &'static str> {
        self.verify(token).map(|claims| (claims.sub, claims.ver))
    }

    /// When a valid access token stops being accepted; `None` when it is not valid.
    pub fn access_expiry(&self, token: &str) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.verify(token).ok()?.exp, 0)
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
        let token = keys.issue_access(id, 3).expect("issue").token;
        assert_eq!(keys.verify_access(&token), Ok((id, 3)));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token = keys(&"a".repeat(32))
            .issue_access(Uuid::now_v7(), 0)
            .expect("issue")
            .token;
        assert!(keys(&"b".repeat(32)).verify_access(&token).is_err());
    }

    #[test]
    fn a_token_naming_another_algorithm_is_refused_before_its_signature_is_checked() {
        let keys = keys(&"k".repeat(32));
        let token = keys.issue_access(Uuid::now_v7(), 0).expect("issue").token;
        let (_, rest) = token.split_once('.').expect("three parts");
        for alg in ["none", "HS512", "RS256", "hs256"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            assert_eq!(
                keys.verify_access(&format!("{header}.{rest}")),
                Err("access token uses an algorithm that is not accepted"),
                "{alg}"
            );
        }
        assert_eq!(keys.verify_access("a.b"), Err("access token is malformed"));
        assert_eq!(
            keys.verify_access("a.b.c.d"),
            Err("access token is malformed")
        );
    }

    #[test]
    fn secret_hashes_are_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
