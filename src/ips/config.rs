//! DNSBL configuration: the name server to ask, the zones to ask about and how to read
//! their answers, and the check schedule.

use std::{net::Ipv4Addr, net::SocketAddr, time::Duration};

use crate::config::{ConfigError, bool_var, duration_var, invalid, u32_var};

/// One DNSBL zone and what its answers mean.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSpec {
    pub name: String,
    /// Known answers and their meaning (e.g. 127.0.0.2 → SBL). An answer in 127.0.0.0/8
    /// that is not in this list still means listed; its category is the address itself.
    pub codes: Vec<(Ipv4Addr, String)>,
    /// A new listing on a critical zone may pause the IP (see `auto_pause`).
    pub critical: bool,
}

impl ZoneSpec {
    pub fn category_of(&self, answer: Ipv4Addr) -> String {
        self.codes
            .iter()
            .find(|(code, _)| *code == answer)
            .map_or_else(|| answer.to_string(), |(_, label)| label.clone())
    }
}

#[derive(Clone, Debug)]
pub struct DnsblConfig {
    /// The resolver asked for every look-up: a local caching resolver in production
    /// (public resolvers are refused by most zones).
    pub nameserver: SocketAddr,
    pub timeout: Duration,
    /// Look-ups in flight at once.
    pub concurrency: usize,
    pub zones: Vec<ZoneSpec>,
    /// Pause an ACTIVE or WARMING IP that is newly listed on a critical zone.
    pub auto_pause: bool,
    /// How often every ACTIVE and WARMING IP is checked.
    pub check_interval: Duration,
    /// How often queued check jobs are looked for.
    pub job_poll_interval: Duration,
    /// The wait before the first retry of a failed check; it doubles with each attempt.
    pub retry_base: Duration,
    /// Attempts of one check job before it is FAILED.
    pub max_attempts: u32,
}

/// The zones checked unless `MAILOPS_DNSBL_ZONES` says otherwise (SORBS closed in 2024).
pub const DEFAULT_ZONES: [&str; 7] = [
    "zen.spamhaus.org",
    "b.barracudacentral.org",
    "bl.spamcop.net",
    "psbl.surriel.com",
    "dnsbl-1.uceprotect.net",
    "bl.mailspike.net",
    "ix.dnsbl.manitu.net",
];

/// The documented answers of the default zones.
fn known_codes(zone: &str) -> Vec<(Ipv4Addr, String)> {
    let table: &[(u8, &str)] = match zone {
        "zen.spamhaus.org" => &[
            (2, "SBL"),
            (3, "CSS"),
            (4, "XBL"),
            (5, "XBL"),
            (6, "XBL"),
            (7, "XBL"),
            (9, "DROP"),
            (10, "PBL"),
            (11, "PBL"),
        ],
        "b.barracudacentral.org" => &[(2, "BRBL")],
        "bl.spamcop.net" => &[(2, "SCBL")],
        "psbl.surriel.com" => &[(2, "PSBL")],
        "dnsbl-1.uceprotect.net" => &[(2, "UCEPROTECT-1")],
        "bl.mailspike.net" => &[(2, "MAILSPIKE-BL")],
        "ix.dnsbl.manitu.net" => &[(2, "NIXSPAM")],
        _ => &[],
    };
    table
        .iter()
        .map(|(last, label)| (Ipv4Addr::new(127, 0, 0, *last), (*label).to_string()))
        .collect()
}

const ZONES_VAR: &str = "MAILOPS_DNSBL_ZONES";

/// Parses `zone[=127.0.0.2:LABEL,127.0.0.3:LABEL];zone…`.
pub fn parse_zones(text: &str) -> Result<Vec<ZoneSpec>, String> {
    let mut zones: Vec<ZoneSpec> = Vec::new();
    for entry in text
        .split([';', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, codes) = entry.split_once('=').unwrap_or((entry, ""));
        let name = crate::nodes::validate_hostname(ZONES_VAR, name.trim())
            .map_err(|e| e.client_message())?;
        let codes = if codes.trim().is_empty() {
            known_codes(&name)
        } else {
            let mut parsed = Vec::new();
            for pair in codes.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (address, label) = pair
                    .split_once(':')
                    .ok_or_else(|| format!("'{pair}' of zone {name} is not ADDRESS:LABEL"))?;
                let address: Ipv4Addr = address
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{address}' of zone {name} is not an IPv4 address"))?;
                let label = label.trim();
                if label.is_empty() || label.len() > 32 {
                    return Err(format!(
                        "label of {address} on zone {name} must be 1 to 32 characters"
                    ));
                }
                parsed.push((address, label.to_string()));
            }
            parsed
        };
        if zones.iter().any(|z| z.name == name) {
            return Err(format!("zone {name} is listed twice"));
        }
        zones.push(ZoneSpec {
            name,
            codes,
            critical: false,
        });
    }
    if zones.is_empty() {
        return Err("names no zone".into());
    }
    Ok(zones)
}

impl DnsblConfig {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let nameserver = match get("MAILOPS_DNSBL_NAMESERVER") {
            None => SocketAddr::from(([127, 0, 0, 1], 53)),
            Some(text) => parse_nameserver(&text).ok_or_else(|| {
                invalid(
                    "MAILOPS_DNSBL_NAMESERVER",
                    format!("'{text}' is not an IP address with an optional :port"),
                )
            })?,
        };
        let mut zones = match get(ZONES_VAR) {
            None => parse_zones(&DEFAULT_ZONES.join(";")).map_err(|p| invalid(ZONES_VAR, p))?,
            Some(text) => parse_zones(&text).map_err(|p| invalid(ZONES_VAR, p))?,
        };
        let critical =
            get("MAILOPS_DNSBL_CRITICAL_ZONES").unwrap_or_else(|| "zen.spamhaus.org".into());
        for name in critical.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            match zones.iter_mut().find(|z| z.name == name) {
                Some(zone) => zone.critical = true,
                // The default critical zone may be left out of a custom zone list.
                None if get("MAILOPS_DNSBL_CRITICAL_ZONES").is_none() => {}
                None => {
                    return Err(invalid(
                        "MAILOPS_DNSBL_CRITICAL_ZONES",
                        format!("{name} is not one of the zones in {ZONES_VAR}"),
                    ));
                }
            }
        }
        let concurrency = u32_var(get, "MAILOPS_DNSBL_CONCURRENCY", 32)?;
        if !(1..=1024).contains(&concurrency) {
            return Err(invalid("MAILOPS_DNSBL_CONCURRENCY", "must be 1 to 1024"));
        }
        let max_attempts = u32_var(get, "MAILOPS_DNSBL_MAX_ATTEMPTS", 5)?;
        if !(1..=20).contains(&max_attempts) {
            return Err(invalid("MAILOPS_DNSBL_MAX_ATTEMPTS", "must be 1 to 20"));
        }
        Ok(DnsblConfig {
            nameserver,
            timeout: duration_var(get, "MAILOPS_DNSBL_TIMEOUT", Duration::from_secs(2))?,
            concurrency: concurrency as usize,
            zones,
            auto_pause: bool_var(get, "MAILOPS_DNSBL_AUTO_PAUSE", false)?,
            check_interval: duration_var(
                get,
                "MAILOPS_DNSBL_CHECK_INTERVAL",
                Duration::from_secs(30 * 60),
            )?,
            job_poll_interval: duration_var(
                get,
                "MAILOPS_DNSBL_JOB_POLL_INTERVAL",
                Duration::from_secs(5),
            )?,
            retry_base: duration_var(get, "MAILOPS_DNSBL_RETRY_BASE", Duration::from_secs(60))?,
            max_attempts,
        })
    }
}

fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<DnsblConfig, ConfigError> {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DnsblConfig::from_lookup(&|name: &str| vars.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_seven_standard_zones_with_zen_critical() {
        let config = config(&[]).expect("defaults");
        let names: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(names, DEFAULT_ZONES);
        assert!(config.zones[0].critical && !config.zones[1].critical);
        assert_eq!(
            config.zones[0].category_of(Ipv4Addr::new(127, 0, 0, 4)),
            "XBL"
        );
        assert!(!config.auto_pause);
        assert_eq!(config.check_interval, Duration::from_secs(1800));
        assert_eq!(config.nameserver.to_string(), "127.0.0.1:53");
    }

    #[test]
    fn zones_take_their_own_return_codes() {
        let zones =
            parse_zones("bl.example.org=127.0.0.2:SPAM, 127.0.0.3:MALWARE; zen.spamhaus.org")
                .unwrap();
        assert_eq!(zones[0].category_of(Ipv4Addr::new(127, 0, 0, 3)), "MALWARE");
        assert_eq!(
            zones[0].category_of(Ipv4Addr::new(127, 0, 0, 9)),
            "127.0.0.9"
        );
        assert_eq!(zones[1].category_of(Ipv4Addr::new(127, 0, 0, 10)), "PBL");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("MAILOPS_DNSBL_NAMESERVER", "resolver.local"),
            ("MAILOPS_DNSBL_ZONES", "bad zone"),
            ("MAILOPS_DNSBL_ZONES", "bl.example.org=2:SPAM"),
            ("MAILOPS_DNSBL_CRITICAL_ZONES", "unknown.example.org"),
            ("MAILOPS_DNSBL_CONCURRENCY", "0"),
            ("MAILOPS_DNSBL_TIMEOUT", "2"),
        ] {
            let err = config(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
        }
    }
}
