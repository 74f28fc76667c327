//! What a notification says: the Alertmanager webhook message (version 4), from which the
//! Slack and e-mail renderings are made, so every kind tells the same thing.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::alerts::AlertSnapshot;

/// Labels a policy may group by; `...` groups by every label.
pub const GROUPABLE_LABELS: [&str; 7] = [
    "alertname",
    "severity",
    "condition",
    "node",
    "ip",
    "rule_id",
    "node_id",
];

/// The most alerts one message carries; the rest are counted in `truncatedAlerts`.
pub const MAX_ALERTS_PER_MESSAGE: usize = 200;

/// Alertmanager's "no end yet".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One alert of a message, as Alertmanager's webhook sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// The Alertmanager webhook message, version 4, plus the group's notification number
/// (`sequence`), which Alertmanager receivers ignore and others may drop duplicates by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    pub version: String,
    pub group_key: String,
    pub truncated_alerts: usize,
    /// `firing` or `resolved`.
    pub status: String,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<WebhookAlert>,
    pub sequence: i64,
}

/// The labels an alert carries in notifications.
pub fn labels(alert: &AlertSnapshot) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), alert.rule.clone()),
        ("severity".to_string(), alert.severity.to_ascii_lowercase()),
        (
            "condition".to_string(),
            alert.condition.to_ascii_lowercase(),
        ),
        ("rule_id".to_string(), alert.rule_id.to_string()),
    ]);
    if let Some(hostname) = &alert.hostname {
        labels.insert("node".into(), hostname.clone());
    }
    if let Some(node_id) = alert.node_id {
        labels.insert("node_id".into(), node_id.to_string());
    }
    if let Some(ip) = &alert.ip {
        labels.insert("ip".into(), ip.clone());
    }
    labels
}

fn annotations(alert: &AlertSnapshot) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([
        ("summary".to_string(), alert.message.clone()),
        ("message".to_string(), alert.message.clone()),
        ("threshold".to_string(), number(alert.threshold)),
    ]);
    if let Some(value) = alert.value {
        annotations.insert("value".into(), number(value));
    }
    annotations
}

fn number(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The values of the `group_by` labels (every label for `...`).
pub fn group_labels(
    labels: &BTreeMap<String, String>,
    group_by: &[String],
) -> BTreeMap<String, String> {
    if group_by.iter().any(|l| l == "...") {
        return labels.clone();
    }
    labels
        .iter()
        .filter(|(name, _)| group_by.contains(name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A label set as Alertmanager prints it: `{alertname="Disk", node="mta-01"}`.
pub fn label_set(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// A group's key: the route, then the group labels, as Alertmanager builds it.
pub fn group_key(route: &str, group_labels: &BTreeMap<String, String>) -> String {
    let route = match route {
        "default" => "{}".to_string(),
        index => format!("{{}}/{{route=\"{index}\"}}"),
    };
    format!("{route}:{}", label_set(group_labels))
}

/// Alertmanager's fingerprint of a label set: FNV-1a (64 bits) over the sorted names and
/// values, each followed by the byte 255.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, value) in labels {
        feed(name.as_bytes());
        feed(&[255]);
        feed(value.as_bytes());
        feed(&[255]);
    }
    format!("{hash:016x}")
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn webhook_alert(alert: &AlertSnapshot, external_url: &str) -> WebhookAlert {
    let labels = labels(alert);
    WebhookAlert {
        status: if alert.firing() { "firing" } else { "resolved" }.into(),
        fingerprint: fingerprint(&labels),
        labels,
        annotations: annotations(alert),
        starts_at: time(alert.starts_at),
        ends_at: alert.ends_at.map_or_else(|| ZERO_TIME.to_string(), time),
        generator_url: format!("{external_url}/alerts/{}", alert.alert_id),
    }
}

fn common(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some((first, rest)) = maps.split_first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter(|(k, v)| rest.iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What the message of one group's notification needs.
pub struct MessageParts<'a> {
    pub receiver: &'a str,
    pub group_key: &'a str,
    pub group_labels: BTreeMap<String, String>,
    pub external_url: &'a str,
    pub sequence: i64,
}

/// The message about `alerts` (firing ones first, then resolved ones, each oldest first).
pub fn message(parts: MessageParts<'_>, alerts: &[AlertSnapshot]) -> WebhookMessage {
    let mut ordered: Vec<&AlertSnapshot> = alerts.iter().collect();
    ordered.sort_by_key(|a| (!a.firing(), a.starts_at, a.alert_id));
    let truncated = ordered.len().saturating_sub(MAX_ALERTS_PER_MESSAGE);
    ordered.truncate(MAX_ALERTS_PER_MESSAGE);
    let alerts: Vec<WebhookAlert> = ordered
        .iter()
        .map(|a| webhook_alert(a, parts.external_url))
        .collect();
    let firing = alerts.iter().any(|a| a.status == "firing");
    WebhookMessage {
        version: "4".into(),
        group_key: parts.group_key.into(),
        truncated_alerts: truncated,
        status: if firing { "firing" } else { "resolved" }.into(),
        receiver: parts.receiver.into(),
        group_labels: parts.group_labels,
        common_labels: common(&alerts.iter().map(|a| &a.labels).collect::<Vec<_>>()),
        common_annotations: common(&alerts.iter().map(|a| &a.annotations).collect::<Vec<_>>()),
        external_url: parts.external_url.into(),
        alerts,
        sequence: parts.sequence,
    }
}

impl WebhookMessage {
    fn count(&self, status: &str) -> usize {
        self.alerts.iter().filter(|a| a.status == status).count()
    }

    /// `[FIRING:2] Disk almost full mta-01.example.com`, as Alertmanager titles it.
    pub fn title(&self) -> String {
        let status = if self.status == "firing" {
            format!("FIRING:{}", self.count("firing"))
        } else {
            "RESOLVED".to_string()
        };
        let values: Vec<&str> = self.group_labels.values().map(String::as_str).collect();
        format!("[{status}] {}", values.join(" "))
            .trim_end()
            .to_string()
    }

    /// One line per alert, for plain text.
    fn alert_lines(&self) -> Vec<String> {
        self.alerts
            .iter()
            .map(|a| {
                let mut line = format!(
                    "[{}] {}",
                    a.status.to_ascii_uppercase(),
                    a.annotations.get("summary").cloned().unwrap_or_default()
                );
                for (name, label) in [("node", "node"), ("ip", "IP")] {
                    if let Some(value) = a.labels.get(name) {
                        line.push_str(&format!("; {label} {value}"));
                    }
                }
                if let Some(value) = a.annotations.get("value") {
                    line.push_str(&format!("; value {value}"));
                }
                if let Some(threshold) = a.annotations.get("threshold") {
                    line.push_str(&format!("; threshold {threshold}"));
                }
                line.push_str(&format!("; since {}; {}", a.starts_at, a.generator_url));
                line
            })
            .collect()
    }

    /// The plain-text body of a mail.
    pub fn text(&self) -> String {
        let mut text = format!("{}\n\n", self.title());
        for line in self.alert_lines() {
            text.push_str(&line);
            text.push('\n');
        }
        if self.truncated_alerts > 0 {
            text.push_str(&format!("… and {} more\n", self.truncated_alerts));
        }
        text.push_str(&format!("\nmailops: {}\n", self.external_url));
        text
    }

    /// The HTML body of a mail: a table of the alerts.
    pub fn html(&self) -> String {
        let e = html_escape;
        let mut html = format!(
            "<!doctype html><html><body><h2>{}</h2><table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th>status</th><th>alert</th><th>node</th><th>IP</th><th>value</th><th>threshold</th><th>message</th><th>since</th></tr>",
            e(&self.title())
        );
        for a in &self.alerts {
            let label = |name: &str| e(a.labels.get(name).map_or("", String::as_str));
            let annotation = |name: &str| e(a.annotations.get(name).map_or("", String::as_str));
            html.push_str(&format!(
                "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&a.status.to_ascii_uppercase()),
                e(&a.generator_url),
                label("alertname"),
                label("node"),
                label("ip"),
                annotation("value"),
                annotation("threshold"),
                annotation("summary"),
                e(&a.starts_at),
            ));
        }
        html.push_str("</table>");
        if self.truncated_alerts > 0 {
            html.push_str(&format!("<p>… and {} more</p>", self.truncated_alerts));
        }
        html.push_str(&format!(
            "<p><a href=\"{0}\">{0}</a></p></body></html>",
            e(&self.external_url)
        ));
        html
    }

    /// The JSON a Slack incoming webhook takes (and Mattermost and Rocket.Chat).
    pub fn slack(&self) -> serde_json::Value {
        let lines: Vec<String> = self.alert_lines().iter().map(|l| slack_escape(l)).collect();
        let mut text = lines.join("\n");
        if self.truncated_alerts > 0 {
            text.push_str(&format!("\n… and {} more", self.truncated_alerts));
        }
        serde_json::json!({
            "text": slack_escape(&self.title()),
            "attachments": [{
                "color": if self.status == "firing" { "#d63232" } else { "#2eb886" },
                "title": slack_escape(&self.title()),
                "title_link": self.external_url,
                "text": text,
                "footer": "mailops",
            }],
        })
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Slack reads `&`, `<` and `>` as markup.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(rule: &str, firing: bool) -> AlertSnapshot {
        AlertSnapshot {
            alert_id: uuid::Uuid::now_v7(),
            severity: "CRITICAL".into(),
            state: if firing { "FIRING" } else { "RESOLVED" }.into(),
            hostname: Some("mta-01.example.com".into()),
            value: Some(93.5),
            threshold: 90.0,
            ends_at: (!firing).then(Utc::now),
            ..AlertSnapshot::synthetic(
                rule,
                "mta-01.example.com: disk 93.5 > 90".into(),
                Utc::now(),
            )
        }
    }

    #[test]
    fn the_fingerprint_is_alertmanagers() {
        // Alertmanager (prometheus/common model.LabelSet.Fingerprint) gives
        // 0xcbf29ce484222325 for the empty set.
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        let a = BTreeMap::from([("alertname".to_string(), "Disk".to_string())]);
        let b = BTreeMap::from([("alertname".to_string(), "Disk ".to_string())]);
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
    }

    #[test]
    fn a_message_has_the_version_4_shape_with_common_labels() {
        let alerts = [snapshot("Disk", true), snapshot("Disk", false)];
        let labels = labels(&alerts[0]);
        let grouped = group_labels(&labels, &["alertname".into(), "node".into()]);
        let key = group_key("default", &grouped);
        assert_eq!(key, "{}:{alertname=\"Disk\", node=\"mta-01.example.com\"}");
        let message = message(
            MessageParts {
                receiver: "ops",
                group_key: &key,
                group_labels: grouped,
                external_url: "https://mailops.example.com",
                sequence: 3,
            },
            &alerts,
        );
        let json = serde_json::to_value(&message).unwrap();
        for field in [
            "version",
            "groupKey",
            "truncatedAlerts",
            "status",
            "receiver",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "alerts",
        ] {
            assert!(json.get(field).is_some(), "{field} in {json}");
        }
        assert_eq!(json["version"], "4");
        assert_eq!(json["status"], "firing");
        assert_eq!(json["alerts"][0]["status"], "firing");
        assert_eq!(json["alerts"][1]["status"], "resolved");
        assert_eq!(json["alerts"][0]["endsAt"], ZERO_TIME);
        assert!(
            json["alerts"][0]["generatorURL"]
                .as_str()
                .unwrap()
                .starts_with("https://mailops.example.com/alerts/")
        );
        assert_eq!(json["commonLabels"]["alertname"], "Disk");
        assert_eq!(json["commonLabels"]["severity"], "critical");
        assert_eq!(message.title(), "[FIRING:1] Disk mta-01.example.com");
        assert!(message.html().contains("<td>93.5</td>"));
    }

    #[test]
    fn text_is_escaped_for_html_and_slack() {
        let mut alert = snapshot("<script>", true);
        alert.message = "a & b <c>".into();
        let message = message(
            MessageParts {
                receiver: "ops",
                group_key: "k",
                group_labels: BTreeMap::from([("alertname".into(), "<script>".into())]),
                external_url: "https://x",
                sequence: 1,
            },
            &[alert],
        );
        assert!(!message.html().contains("<script>"));
        let slack = message.slack().to_string();
        assert!(slack.contains("a &amp; b &lt;c&gt;"), "{slack}");
    }

    #[test]
    fn a_long_group_is_truncated_and_counted() {
        let alerts: Vec<AlertSnapshot> = (0..MAX_ALERTS_PER_MESSAGE + 5)
            .map(|_| snapshot("Disk", true))
            .collect();
        let parts = MessageParts {
            receiver: "ops",
            group_key: "k",
            group_labels: BTreeMap::new(),
            external_url: "https://x",
            sequence: 1,
        };
        let message = message(parts, &alerts);
        assert_eq!(message.alerts.len(), MAX_ALERTS_PER_MESSAGE);
        assert_eq!(message.truncated_alerts, 5);
    }
}
