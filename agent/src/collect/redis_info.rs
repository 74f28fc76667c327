//! A Redis's `INFO`: memory, clients, operations per second, keys and replication.

use chrono::{DateTime, Utc};

use super::Sample;

/// Reads `INFO` (all sections the agent uses) from the Redis at `client`.
pub async fn read_info(client: &redis::Client) -> anyhow::Result<String> {
    let mut connection = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .arg("clients")
        .arg("stats")
        .arg("keyspace")
        .arg("replication")
        .query_async(&mut connection)
        .await?;
    Ok(info)
}

/// The samples of an `INFO` answer: `redis.memory.used_bytes`, `redis.clients`,
/// `redis.ops_per_second`, `redis.keys` (all databases), `redis.replication.connected_replicas`
/// and, on a replica, `redis.replication.link_up` (1 while its link to the primary is up).
pub fn parse_info(info: &str, now: DateTime<Utc>) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut keys = 0.0;
    let mut saw_keyspace = false;
    for line in info.lines() {
        let Some((field, value)) = line.trim().split_once(':') else {
            continue;
        };
        let number = || value.trim().parse::<f64>().ok();
        let name = match field {
            "used_memory" => "redis.memory.used_bytes",
            "connected_clients" => "redis.clients",
            "instantaneous_ops_per_sec" => "redis.ops_per_second",
            "connected_slaves" => "redis.replication.connected_replicas",
            "master_link_status" => {
                let up = if value.trim() == "up" { 1.0 } else { 0.0 };
                samples.push(Sample::new("redis.replication.link_up", now, up));
                continue;
            }
            db if db.starts_with("db") && db[2..].chars().all(|c| c.is_ascii_digit()) => {
                // db0:keys=12,expires=0,avg_ttl=0
                saw_keyspace = true;
                keys += value
                    .split(',')
                    .find_map(|part| part.strip_prefix("keys="))
                    .and_then(|n| n.parse::<f64>().ok())
                    .unwrap_or(0.0);
                continue;
            }
            _ => continue,
        };
        if let Some(value) = number() {
            samples.push(Sample::new(name, now, value));
        }
    }
    if saw_keyspace || info.contains("# Keyspace") {
        samples.push(Sample::new("redis.keys", now, keys));
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_info_answer_gives_the_catalog_samples() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n\
            # Clients\r\nconnected_clients:7\r\n# Stats\r\ninstantaneous_ops_per_sec:42\r\n\
            # Replication\r\nrole:slave\r\nmaster_link_status:up\r\nconnected_slaves:0\r\n\
            # Keyspace\r\ndb0:keys=10,expires=1,avg_ttl=0\r\ndb3:keys=5,expires=0,avg_ttl=0\r\n";
        let samples = parse_info(info, Utc::now());
        let value = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
        assert_eq!(value("redis.memory.used_bytes"), Some(1048576.0));
        assert_eq!(value("redis.clients"), Some(7.0));
        assert_eq!(value("redis.ops_per_second"), Some(42.0));
        assert_eq!(value("redis.keys"), Some(15.0));
        assert_eq!(value("redis.replication.connected_replicas"), Some(0.0));
        assert_eq!(value("redis.replication.link_up"), Some(1.0));
    }
}
