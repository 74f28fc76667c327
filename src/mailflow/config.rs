//! Mail flow settings: how long raw events and counters are kept, and which recipient
//! domains count as which provider.

use std::time::Duration;

use crate::config::{ConfigError, bool_var, duration_var, invalid};

/// The provider of a recipient domain no group names.
pub const OTHER_PROVIDER: &str = "other";
const MAX_GROUPS: usize = 32;
const MAX_DOMAINS: usize = 256;

/// Recipient domains grouped by mailbox provider. A domain belongs to a group when it is
/// one of the group's domains or a subdomain of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderGroups {
    groups: Vec<(String, Vec<String>)>,
}

impl Default for ProviderGroups {
    fn default() -> Self {
        let group = |name: &str, domains: &[&str]| {
            (
                name.to_owned(),
                domains.iter().map(|d| (*d).to_owned()).collect(),
            )
        };
        ProviderGroups {
            groups: vec![
                group("gmail", &["gmail.com", "googlemail.com"]),
                group(
                    "outlook",
                    &[
                        "outlook.com",
                        "hotmail.com",
                        "live.com",
                        "msn.com",
                        "hotmail.co.uk",
                        "hotmail.fr",
                        "outlook.fr",
                        "live.co.uk",
                    ],
                ),
                group(
                    "yahoo",
                    &[
                        "yahoo.com",
                        "ymail.com",
                        "rocketmail.com",
                        "aol.com",
                        "yahoo.co.uk",
                        "yahoo.fr",
                        "yahoo.co.jp",
                    ],
                ),
            ],
        }
    }
}

impl ProviderGroups {
    /// Parses `gmail=gmail.com,googlemail.com;outlook=outlook.com,hotmail.com`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, domains) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not name=domain,domain"))?;
            let name = name.trim();
            let valid_name = name.len() <= 32
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid_name || name == OTHER_PROVIDER {
                return Err(format!(
                    "'{name}' is not a group name (lower-case letters, digits and '-', at most 32, not '{OTHER_PROVIDER}')"
                ));
            }
            if groups.iter().any(|(n, _)| n == name) {
                return Err(format!("group '{name}' is given twice"));
            }
            let domains: Vec<String> = domains
                .split(',')
                .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect();
            if domains.is_empty() {
                return Err(format!("group '{name}' has no domains"));
            }
            if let Some(bad) = domains
                .iter()
                .find(|d| d.len() > 253 || !d.contains('.') || d.contains(char::is_whitespace))
            {
                return Err(format!("'{bad}' in group '{name}' is not a domain"));
            }
            groups.push((name.to_owned(), domains));
        }
        if groups.is_empty() {
            return Err("names no group".into());
        }
        if groups.len() > MAX_GROUPS {
            return Err(format!("{} groups; at most {MAX_GROUPS}", groups.len()));
        }
        let domains: usize = groups.iter().map(|(_, d)| d.len()).sum();
        if domains > MAX_DOMAINS {
            return Err(format!("{domains} domains; at most {MAX_DOMAINS}"));
        }
        Ok(ProviderGroups { groups })
    }

    /// The provider of a lower-case recipient domain: its group, or `other`.
    pub fn classify(&self, domain: &str) -> &str {
        self.groups
            .iter()
            .find(|(_, domains)| {
                domains.iter().any(|d| {
                    domain == d
                        || domain
                            .strip_suffix(d.as_str())
                            .is_some_and(|head| head.ends_with('.'))
                })
            })
            .map_or(OTHER_PROVIDER, |(name, _)| name)
    }

    /// The group names, in configured order, then `other`.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .map(|(name, _)| name.as_str())
            .chain(std::iter::once(OTHER_PROVIDER))
    }
}

#[derive(Clone, Debug)]
pub struct MailFlowConfig {
    /// How long raw events are kept; older events are refused at ingestion.
    pub events_retention: Duration,
    /// How long the per-minute counters are kept.
    pub minute_retention: Duration,
    /// How long the per-hour counters are kept.
    pub hour_retention: Duration,
    pub providers: ProviderGroups,
    /// How DEFERRED and BOUNCED events are classified: `MAILOPS_BOUNCE_RULES`' rules, then
    /// the built-in table.
    pub bounce_rules: super::bounces::BounceRules,
    /// Whether refusals are classified at all. Off, they are stored and counted without
    /// a category, as before mailops classified them: one counter row per bucket, node,
    /// IP and provider instead of one per category besides.
    pub classify_refusals: bool,
}

impl MailFlowConfig {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let events_retention = duration_var(
            get,
            "MAILOPS_MAIL_EVENTS_RETENTION",
            Duration::from_secs(7 * 86_400),
        )?;
        let minute_retention = duration_var(
            get,
            "MAILOPS_MAIL_FLOW_MINUTE_RETENTION",
            Duration::from_secs(30 * 86_400),
        )?;
        let hour_retention = duration_var(
            get,
            "MAILOPS_MAIL_FLOW_HOUR_RETENTION",
            Duration::from_secs(400 * 86_400),
        )?;
        if minute_retention < events_retention {
            return Err(invalid(
                "MAILOPS_MAIL_FLOW_MINUTE_RETENTION",
                "must be at least MAILOPS_MAIL_EVENTS_RETENTION",
            ));
        }
        if hour_retention < minute_retention {
            return Err(invalid(
                "MAILOPS_MAIL_FLOW_HOUR_RETENTION",
                "must be at least MAILOPS_MAIL_FLOW_MINUTE_RETENTION",
            ));
        }
        let providers = match get("MAILOPS_MAIL_PROVIDERS") {
            None => ProviderGroups::default(),
            Some(text) => ProviderGroups::parse(&text)
                .map_err(|problem| invalid("MAILOPS_MAIL_PROVIDERS", problem))?,
        };
        let bounce_rules = match get("MAILOPS_BOUNCE_RULES") {
            None => super::bounces::BounceRules::default(),
            Some(path) => super::bounces::BounceRules::with_file(std::path::Path::new(&path))
                .map_err(|problem| invalid("MAILOPS_BOUNCE_RULES", problem))?,
        };
        Ok(MailFlowConfig {
            events_retention,
            minute_retention,
            hour_retention,
            providers,
            bounce_rules,
            classify_refusals: bool_var(get, "MAILOPS_MAIL_CLASSIFY_REFUSALS", true)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_subdomains_belong_to_their_group() {
        let groups = ProviderGroups::default();
        assert_eq!(groups.classify("gmail.com"), "gmail");
        assert_eq!(groups.classify("eu.hotmail.com"), "outlook");
        assert_eq!(groups.classify("notgmail.com"), "other");
        assert_eq!(groups.classify("example.org"), "other");
    }

    #[test]
    fn custom_groups_are_checked() {
        let groups = ProviderGroups::parse("corp=corp.example; gmail = gmail.com").unwrap();
        assert_eq!(groups.classify("mail.corp.example"), "corp");
        assert_eq!(
            groups.names().collect::<Vec<_>>(),
            ["corp", "gmail", "other"]
        );
        assert!(ProviderGroups::parse("other=x.com").is_err());
        assert!(ProviderGroups::parse("a=x.com;a=y.com").is_err());
        assert!(ProviderGroups::parse("a=").is_err());
        assert!(ProviderGroups::parse("Bad=x.com").is_err());
    }
}
