//! `mailops-agent enroll`: registers the node and keeps its key.
//!
//! The state directory holds `node.key` (the node key, mode 0600), `server` (mailops's
//! GraphQL address) and `node.json` (the node's id and hostname). Enrolling again on the
//! same machine presents the key it has, which mailops requires to register an existing
//! hostname again.

use std::{os::unix::fs::DirBuilderExt as _, path::Path};

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::{
    client::{Client, Failure, graphql_endpoint},
    collect::sending_addresses,
    files,
    settings::EnrollArgs,
};

const REGISTER: &str = "mutation($input: RegisterNodeInput!) {
    registerNode(input: $input) { apiKey node { id hostname } } }";

pub const KEY_FILE: &str = "node.key";
pub const SERVER_FILE: &str = "server";

/// The node key in the state directory, if there is one.
pub fn node_key(state_dir: &Path) -> anyhow::Result<Option<String>> {
    let path = state_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(key) => Ok(Some(key.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The server `enroll` registered with, if any.
pub fn saved_server(state_dir: &Path) -> Option<String> {
    std::fs::read_to_string(state_dir.join(SERVER_FILE))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

pub async fn enroll(args: EnrollArgs) -> anyhow::Result<()> {
    let endpoint = graphql_endpoint(&args.server)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.state_dir)
        .with_context(|| format!("--state-dir {}: cannot create it", args.state_dir.display()))?;
    let hostname = match args.hostname {
        Some(name) => name,
        None => sysinfo::System::host_name()
            .context("this machine has no host name; give --hostname")?,
    };
    let ips: Vec<String> = if args.ips.is_empty() {
        sending_addresses()
            .iter()
            .map(ToString::to_string)
            .collect()
    } else {
        args.ips.iter().map(ToString::to_string).collect()
    };
    if ips.is_empty() {
        bail!("this machine has no address but loopback and link-local ones; give --ip");
    }
    let labels: Vec<_> = args
        .labels
        .iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect();
    let existing = node_key(&args.state_dir)?;
    let client = Client::new(
        endpoint.clone(),
        format!("ApiKey {}", args.enrollment_key.trim()),
    )?;
    let input = json!({
        "hostname": hostname,
        "roles": args.roles,
        "ipAddresses": ips,
        "agentVersion": crate::VERSION,
        "labels": labels,
        "nodeKey": existing,
    });
    let data = client
        .run(REGISTER, json!({ "input": input }))
        .await
        .map_err(|failure| match failure {
            Failure::Refused { code, message } => {
                anyhow::anyhow!("mailops refused the registration ({code}): {message}")
            }
            Failure::Retry { reason, .. } => anyhow::anyhow!("registration failed: {reason}"),
        })?;
    let registration = &data["registerNode"];
    let key = registration["apiKey"]
        .as_str()
        .context("mailops answered without a node key")?;
    files::write_atomically(&args.state_dir.join(KEY_FILE), key.as_bytes(), 0o600)?;
    files::write_atomically(
        &args.state_dir.join(SERVER_FILE),
        format!("{endpoint}\n").as_bytes(),
        0o644,
    )?;
    files::write_atomically(
        &args.state_dir.join("node.json"),
        serde_json::to_string_pretty(&registration["node"])?.as_bytes(),
        0o644,
    )?;
    println!(
        "enrolled {} as node {} with {}; its key is in {}",
        registration["node"]["hostname"]
            .as_str()
            .unwrap_or(&hostname),
        registration["node"]["id"].as_str().unwrap_or("?"),
        ips.join(", "),
        args.state_dir.join(KEY_FILE).display()
    );
    Ok(())
}
