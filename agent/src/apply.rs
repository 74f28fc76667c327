//! Applying the node's configuration: the pool file (every IP with its status and pool),
//! ZoneMTA's `pools` (only the IPs that send), then the reload command.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::files;

/// `agentConfig` as mailops sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig {
    pub version: String,
    pub push_interval_seconds: u64,
    pub ips: Vec<AgentIp>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentIp {
    pub address: String,
    /// ACTIVE, PAUSED, WARMING or RETIRED.
    pub status: String,
    pub pool: Option<String>,
}

impl AgentIp {
    /// Whether the MTA should send from it.
    pub fn sends(&self) -> bool {
        matches!(self.status.as_str(), "ACTIVE" | "WARMING")
    }
}

/// The longest a reload command may run.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of a failed command's output kept in its error.
const OUTPUT_CHARS: usize = 600;

#[derive(Clone, Debug, Default)]
pub struct Applier {
    pub pool_file: Option<PathBuf>,
    pub zonemta_pools_file: Option<PathBuf>,
    pub reload_command: Option<String>,
}

impl Applier {
    /// Writes the files and runs the reload command; the error says what failed, for
    /// operators (`Node.configError`).
    pub async fn apply(&self, config: &AgentConfig) -> Result<(), String> {
        if let Some(path) = &self.pool_file {
            let json = pool_file_json(config);
            files::write_atomically(path, json.as_bytes(), 0o644)
                .map_err(|e| format!("pool file: {e:#}"))?;
        }
        if let Some(path) = &self.zonemta_pools_file {
            files::write_atomically(path, zonemta_pools(config).as_bytes(), 0o644)
                .map_err(|e| format!("ZoneMTA pools file: {e:#}"))?;
        }
        if let Some(command) = &self.reload_command {
            run_reload(command, &config.version).await?;
        }
        Ok(())
    }
}

/// `{ "version": …, "ips": [ { "address", "status", "pool" } ] }`, every IP of the node.
pub fn pool_file_json(config: &AgentConfig) -> String {
    let body = serde_json::json!({ "version": config.version, "ips": config.ips });
    let mut text = serde_json::to_string_pretty(&body).unwrap_or_default();
    text.push('\n');
    text
}

/// ZoneMTA's `pools` setting: one `[[pools.<pool>]]` entry per ACTIVE or WARMING address,
/// in mailops's pool (`default` when it has none). PAUSED and RETIRED addresses are left
/// out, so ZoneMTA stops sending from them once it reloads.
pub fn zonemta_pools(config: &AgentConfig) -> String {
    let mut text = format!(
        "# Written by mailops-agent from mailops configuration {}; changes here are overwritten.\n\
         # The sending IPs of this node that are ACTIVE or WARMING, by pool.\n",
        config.version
    );
    let mut sending: Vec<&AgentIp> = config.ips.iter().filter(|ip| ip.sends()).collect();
    sending.sort_by(|a, b| a.pool.cmp(&b.pool).then(a.address.cmp(&b.address)));
    for ip in sending {
        let pool = ip.pool.as_deref().unwrap_or("default");
        text.push_str(&format!(
            "\n[[pools.{}]]\naddress = {}\n",
            toml_string(pool),
            toml_string(&ip.address)
        ));
    }
    text
}

fn toml_string(text: &str) -> String {
    // JSON string escapes are valid TOML basic-string escapes.
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// Runs the reload command with `sh -c`, with `MAILOPS_CONFIG_VERSION` set.
async fn run_reload(command: &str, version: &str) -> Result<(), String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("MAILOPS_CONFIG_VERSION", version)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(RELOAD_TIMEOUT, child).await {
        Err(_) => {
            return Err(format!(
                "reload command did not finish within {RELOAD_TIMEOUT:?}"
            ));
        }
        Ok(Err(e)) => return Err(format!("reload command could not start: {e}")),
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        return Ok(());
    }
    let mut said = String::from_utf8_lossy(&output.stderr).trim().to_string();
    if said.is_empty() {
        said = String::from_utf8_lossy(&output.stdout).trim().to_string();
    }
    let said: String = said.chars().take(OUTPUT_CHARS).collect();
    Err(format!(
        "reload command failed ({}){}{}",
        output.status,
        if said.is_empty() { "" } else { ": " },
        said
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AgentConfig {
        let ip = |address: &str, status: &str, pool: Option<&str>| AgentIp {
            address: address.into(),
            status: status.into(),
            pool: pool.map(Into::into),
        };
        AgentConfig {
            version: "0123456789abcdef".into(),
            push_interval_seconds: 15,
            ips: vec![
                ip("192.0.2.1", "ACTIVE", None),
                ip("192.0.2.2", "PAUSED", None),
                ip("192.0.2.3", "WARMING", Some("bulk")),
                ip("2001:db8::1", "RETIRED", Some("bulk")),
            ],
        }
    }

    #[test]
    fn zonemta_pools_list_only_the_addresses_that_send() {
        let text = zonemta_pools(&config());
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        let pools = parsed["pools"].as_table().unwrap();
        assert_eq!(pools["default"].as_array().unwrap().len(), 1);
        assert_eq!(pools["default"][0]["address"].as_str(), Some("192.0.2.1"));
        assert_eq!(pools["bulk"][0]["address"].as_str(), Some("192.0.2.3"));
        assert_eq!(pools["bulk"].as_array().unwrap().len(), 1);
        assert!(!text.contains("192.0.2.2") && !text.contains("2001:db8::1"));
    }

    #[test]
    fn the_pool_file_has_every_ip() {
        let value: serde_json::Value = serde_json::from_str(&pool_file_json(&config())).unwrap();
        assert_eq!(value["version"], "0123456789abcdef");
        assert_eq!(value["ips"].as_array().unwrap().len(), 4);
        assert_eq!(
            value["ips"][1],
            serde_json::json!({ "address": "192.0.2.2", "status": "PAUSED", "pool": null })
        );
    }

    #[tokio::test]
    async fn a_failing_reload_says_why_and_a_good_one_sees_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen");
        let applier = Applier {
            pool_file: Some(dir.path().join("pools.json")),
            zonemta_pools_file: None,
            reload_command: Some(format!("echo $MAILOPS_CONFIG_VERSION > {}", seen.display())),
        };
        applier.apply(&config()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap().trim(),
            "0123456789abcdef"
        );
        let failing = Applier {
            reload_command: Some("echo 'zone-mta is not running' >&2; exit 3".into()),
            ..applier
        };
        let error = failing.apply(&config()).await.unwrap_err();
        assert!(
            error.contains("exit status: 3") && error.contains("zone-mta is not running"),
            "{error}"
        );
    }
}
