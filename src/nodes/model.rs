//! The nodes domain's data: roles, labels, and what callers send to register, list and
//! change nodes.

use async_graphql::{Enum, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use super::status::NodeStatus;

/// What a node does in the cluster.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeRole {
    /// WildDuck IMAP server.
    Imap,
    /// Outbound MTA (ZoneMTA or Haraka).
    Mta,
    /// Inbound MX.
    Mx,
    /// MongoDB member.
    Mongodb,
    /// Redis server.
    Redis,
    /// Rspamd scanner.
    Rspamd,
    /// Webmail front end.
    Webmail,
    /// Anything else.
    Other,
}

pub const ALL_ROLES: [NodeRole; 8] = [
    NodeRole::Imap,
    NodeRole::Mta,
    NodeRole::Mx,
    NodeRole::Mongodb,
    NodeRole::Redis,
    NodeRole::Rspamd,
    NodeRole::Webmail,
    NodeRole::Other,
];

impl NodeRole {
    pub fn bit(self) -> i32 {
        1 << (self as i32)
    }

    pub fn mask(roles: &[NodeRole]) -> i32 {
        roles.iter().fold(0, |mask, role| mask | role.bit())
    }

    pub fn from_mask(mask: i32) -> Vec<NodeRole> {
        ALL_ROLES
            .into_iter()
            .filter(|role| mask & role.bit() != 0)
            .collect()
    }
}

/// A key/value label on a node, such as `dc=fra1`.
#[derive(SimpleObject, InputObject, Clone, Debug, PartialEq, Eq, Hash)]
#[graphql(input_name = "LabelInput")]
pub struct Label {
    /// Up to 63 characters: letters, digits, `.`, `_`, `/` and `-`.
    pub key: String,
    /// Up to 255 bytes.
    pub value: String,
}

impl Label {
    /// Labels stored as a JSON object of strings, in key order.
    pub fn from_json(labels: &serde_json::Value) -> Vec<Label> {
        labels
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(k, v)| Label {
                        key: k.clone(),
                        value: v.as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Narrows `nodes`; all given conditions must hold. Retired nodes are listed only when
/// `statuses` names RETIRED.
#[derive(InputObject, Debug, Default)]
pub struct NodeFilter {
    /// Nodes with any of these roles.
    pub roles: Option<Vec<NodeRole>>,
    /// Nodes in any of these statuses.
    pub statuses: Option<Vec<NodeStatus>>,
    /// Part of the hostname.
    pub search: Option<String>,
    /// Nodes carrying all of these labels.
    pub labels: Option<Vec<Label>>,
}

/// What an agent reports about its node.
#[derive(InputObject)]
pub struct RegisterNodeInput {
    /// The node's DNS name (RFC 1123); folded to lower case.
    pub hostname: String,
    /// At least one.
    pub roles: Vec<NodeRole>,
    /// Up to 64 IPv4 or IPv6 addresses.
    #[graphql(default)]
    pub ip_addresses: Vec<String>,
    /// The agent's version, up to 64 characters.
    pub agent_version: Option<String>,
    /// Up to 64.
    #[graphql(default)]
    pub labels: Vec<Label>,
    /// The node's current key (`mko_…`), when a node of this hostname is registered
    /// already: an agent reinstalled on the same machine presents it to enroll again.
    /// Without it (or an admin's re-enrollment key for the node) an existing hostname is
    /// refused. Write-only.
    #[graphql(secret)]
    pub node_key: Option<String>,
}

// Written by hand so that a presented node key never reaches a log line.
impl std::fmt::Debug for RegisterNodeInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterNodeInput")
            .field("hostname", &self.hostname)
            .field("roles", &self.roles)
            .field("ipAddresses", &self.ip_addresses)
            .field("agentVersion", &self.agent_version)
            .field("labels", &self.labels)
            .field("nodeKey", &self.node_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Changes to a node; fields left out stay as they are.
#[derive(InputObject, Debug, Default)]
pub struct UpdateNodeInput {
    /// Replaces all labels.
    pub labels: Option<Vec<Label>>,
    /// Replaces all roles; at least one.
    pub roles: Option<Vec<NodeRole>>,
    /// Up to 1024 characters; an empty string clears it.
    pub description: Option<String>,
}

/// A new enrollment key.
#[derive(InputObject, Debug)]
pub struct CreateEnrollmentKeyInput {
    /// What the key is for, e.g. "fra1 rollout". Up to 128 characters.
    pub name: String,
    /// After this time the key registers nothing. Must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
    /// How many registrations it allows; unlimited when left out.
    pub max_uses: Option<i32>,
}
