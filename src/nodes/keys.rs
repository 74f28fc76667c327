//! Agent credentials: node API keys (`mko_<id>_<secret>`) and enrollment keys
//! (`mke_<id>_<secret>`). The id finds the row; the secret is checked by comparing its
//! SHA-256 with the stored one in constant time.

use chrono::{Duration as ChronoDuration, Utc};
use entity::{
    enrollment_key::Model as EnrollmentKeyRow, node::Model as NodeRow,
    node_key::Model as NodeKeyRow,
};
use sea_orm::ConnectionTrait;
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use crate::{
    auth::{hash_secret, random_token},
    error::AppResult,
    realtime::CredentialHolder,
};

use super::{NodeStatus, store};

/// Longer keys are refused before anything is hashed or looked up.
pub const MAX_KEY_BYTES: usize = 128;
/// `last_used_at` is written when it is older than this, not on every request.
const LAST_USED_RESOLUTION: ChronoDuration = ChronoDuration::seconds(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Node,
    Enrollment,
}

impl KeyKind {
    fn prefix(self) -> &'static str {
        match self {
            KeyKind::Node => "mko_",
            KeyKind::Enrollment => "mke_",
        }
    }
}

/// A key as the caller presented it.
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedKey<'a> {
    pub kind: KeyKind,
    pub id: Uuid,
    pub secret: &'a str,
}

pub fn parse(raw: &str) -> Option<PresentedKey<'_>> {
    if raw.len() > MAX_KEY_BYTES {
        return None;
    }
    let (kind, rest) = if let Some(rest) = raw.strip_prefix(KeyKind::Node.prefix()) {
        (KeyKind::Node, rest)
    } else {
        (
            KeyKind::Enrollment,
            raw.strip_prefix(KeyKind::Enrollment.prefix())?,
        )
    };
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.is_empty() {
        return None;
    }
    Some(PresentedKey {
        kind,
        id: Uuid::try_parse(id).ok()?,
        secret,
    })
}

/// A new key of `kind` for the row `id`: the full key (shown once) and the hash to store.
pub fn generate(kind: KeyKind, id: Uuid) -> (String, String) {
    let secret = random_token(32);
    let key = format!("{}{}_{secret}", kind.prefix(), id.simple());
    (key, hash_secret(&secret))
}

fn secret_matches(stored_hash: &str, secret: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// Revokes every key of a node; its agent's open WebSockets close once the operation
/// has finished.
pub async fn revoke_all_of_node(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    reason: &str,
) -> AppResult<()> {
    store::keys::revoke_all_of_node(conn, node_id).await?;
    crate::realtime::after_commit::sessions_revoked(CredentialHolder::Node(node_id), reason);
    Ok(())
}

/// Revokes one node key; its WebSockets close once the operation has finished.
pub async fn revoke_one(conn: &impl ConnectionTrait, key: NodeKeyRow) -> AppResult<NodeKeyRow> {
    let key_id = key.id;
    let revoked = store::keys::revoke(conn, key).await?;
    crate::realtime::after_commit::sessions_revoked(
        CredentialHolder::NodeKey(key_id),
        "this node key was revoked",
    );
    Ok(revoked)
}

/// Why a presented key is refused. Safe to show: says nothing about the secret.
pub type Refusal = &'static str;

/// The node a node key acts for.
pub async fn authenticate_node(
    db: &impl ConnectionTrait,
    key: &PresentedKey<'_>,
) -> AppResult<Result<(NodeKeyRow, NodeRow), Refusal>> {
    const UNKNOWN: Refusal = "unknown or revoked API key";
    let Some(row) = store::keys::find(db, key.id).await? else {
        return Ok(Err(UNKNOWN));
    };
    if !secret_matches(&row.secret_hash, key.secret) {
        return Ok(Err(UNKNOWN));
    }
    let Some(node) = store::nodes::find(db, row.node_id).await? else {
        return Ok(Err(UNKNOWN));
    };
    // Checked before revocation (retiring revokes every key) so the holder learns why.
    if node.status == NodeStatus::Retired.as_str() {
        return Ok(Err("this node is retired; its keys no longer work"));
    }
    if row.revoked_at.is_some() {
        return Ok(Err(UNKNOWN));
    }
    Ok(Ok((row, node)))
}

/// The enrollment key, if it may still register nodes.
pub async fn authenticate_enrollment(
    db: &impl ConnectionTrait,
    key: &PresentedKey<'_>,
) -> AppResult<Result<EnrollmentKeyRow, Refusal>> {
    const UNKNOWN: Refusal = "unknown or revoked enrollment key";
    let Some(row) = store::enrollment::find(db, key.id).await? else {
        return Ok(Err(UNKNOWN));
    };
    if !secret_matches(&row.secret_hash, key.secret) || row.revoked_at.is_some() {
        return Ok(Err(UNKNOWN));
    }
    if row.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Ok(Err("enrollment key has expired"));
    }
    if row.max_uses.is_some_and(|max| row.uses >= max) {
        return Ok(Err("enrollment key has been used up"));
    }
    Ok(Ok(row))
}

/// Records that a node key was used, at most once a minute per key, off the request path.
pub fn touch_node_key(db: &sea_orm::DatabaseConnection, key: &NodeKeyRow) {
    let now = Utc::now();
    if key
        .last_used_at
        .is_some_and(|at| now - at < LAST_USED_RESOLUTION)
    {
        return;
    }
    let (db, id) = (db.clone(), key.id);
    tokio::spawn(async move {
        if let Err(e) = store::keys::set_last_used(&db, id, now).await {
            e.log_if_internal();
            tracing::warn!("could not record when a node key was last used");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_and_match_their_hash() {
        let id = Uuid::now_v7();
        let (key, hash) = generate(KeyKind::Node, id);
        assert!(key.starts_with("mko_"));
        let parsed = parse(&key).expect("parses");
        assert_eq!(parsed.kind, KeyKind::Node);
        assert_eq!(parsed.id, id);
        assert!(secret_matches(&hash, parsed.secret));
        assert!(!secret_matches(&hash, "another secret"));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for key in [
            "",
            "mko_",
            "mko_abc_def",
            "xyz_0190f0f0f0f0f0f0f0f0f0f0f0f0f0f0_s",
            &"m".repeat(200),
        ] {
            assert!(parse(key).is_none(), "{key}");
        }
    }
}
