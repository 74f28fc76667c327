//! What a node's agent applies on its node: the push interval and the node's sending IPs
//! with their status and pool, under a version that changes whenever any of it does.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::AppResult;

use super::{
    IpStatus,
    model::{AgentConfig, AgentIp},
    store::addresses::{NodeIp, ips_of_nodes},
};

/// The configuration of one node, read now.
pub async fn agent_config(
    conn: &impl ConnectionTrait,
    node_id: Uuid,
    push_interval: Duration,
) -> AppResult<AgentConfig> {
    let ips = ips_of_nodes(conn, &[node_id])
        .await?
        .remove(&node_id)
        .unwrap_or_default();
    config_of(push_interval, ips)
}

/// The configuration made of these IPs (in address order, as the store gives them).
pub fn config_of(push_interval: Duration, ips: Vec<NodeIp>) -> AppResult<AgentConfig> {
    let push_interval_seconds = i32::try_from(push_interval.as_secs().max(1)).unwrap_or(i32::MAX);
    let ips = ips
        .into_iter()
        .map(|ip| {
            Ok(AgentIp {
                status: IpStatus::parse(&ip.status)?,
                address: ip.address,
                pool: ip.pool,
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    Ok(AgentConfig {
        version: version_of(push_interval_seconds, &ips),
        push_interval_seconds,
        ips,
    })
}

/// 16 hex digits of a SHA-256 over everything the agent applies, so equal configurations
/// have equal versions on every instance and any change gives a new one.
fn version_of(push_interval_seconds: i32, ips: &[AgentIp]) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("push {push_interval_seconds}\n"));
    for ip in ips {
        hash.update(format!(
            "ip {} {} {}\n",
            ip.address,
            ip.status.as_str(),
            ip.pool.as_deref().unwrap_or("")
        ));
    }
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(address: &str, status: &str, pool: Option<&str>) -> NodeIp {
        NodeIp {
            id: Uuid::nil(),
            address: address.into(),
            status: status.into(),
            pool: pool.map(Into::into),
        }
    }

    #[test]
    fn every_change_gives_a_new_version() {
        let push = Duration::from_secs(15);
        let base = config_of(push, vec![ip("192.0.2.1", "ACTIVE", Some("a"))]).unwrap();
        let same = config_of(push, vec![ip("192.0.2.1", "ACTIVE", Some("a"))]).unwrap();
        assert_eq!(base.version, same.version);
        assert_eq!(base.version.len(), 16);
        let changes = [
            config_of(push, vec![ip("192.0.2.1", "PAUSED", Some("a"))]),
            config_of(push, vec![ip("192.0.2.1", "ACTIVE", Some("b"))]),
            config_of(push, vec![ip("192.0.2.1", "ACTIVE", None)]),
            config_of(push, vec![ip("192.0.2.2", "ACTIVE", Some("a"))]),
            config_of(push, vec![]),
            config_of(
                Duration::from_secs(30),
                vec![ip("192.0.2.1", "ACTIVE", Some("a"))],
            ),
        ];
        for changed in changes {
            assert_ne!(changed.unwrap().version, base.version);
        }
    }

    #[test]
    fn unknown_stored_status_is_an_error() {
        assert!(config_of(Duration::from_secs(15), vec![ip("192.0.2.1", "GONE", None)]).is_err());
    }
}
