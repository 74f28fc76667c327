//! DNSBL look-ups: the query name of an address on a zone, the reading of a zone's
//! answers, the RFC 5782 test of a zone, and a bounded-concurrency check of many
//! addresses on many zones.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
    time::Duration,
};

use tokio::{sync::Semaphore, task::JoinSet};

use hickory_resolver::{
    TokioResolver,
    config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts},
    net::{NetError, runtime::TokioRuntimeProvider},
    proto::rr::{RData, RecordType},
};

use super::config::{DnsblConfig, ZoneSpec};
use crate::error::{AppError, AppResult};

/// The reversed form of an address under a zone: `4.3.2.1.zone.` for 1.2.3.4, and 32
/// nibbles for IPv6 (RFC 5782 §2.4).
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let mut name = String::with_capacity(80 + zone.len());
    match ip {
        IpAddr::V4(v4) => {
            for octet in v4.octets().iter().rev() {
                name.push_str(&octet.to_string());
                name.push('.');
            }
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0x0f, byte >> 4] {
                    name.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                    name.push('.');
                }
            }
        }
    }
    name.push_str(zone);
    name.push('.');
    name
}

/// What one zone said about one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Listed {
        codes: Vec<Ipv4Addr>,
        categories: Vec<String>,
        reason: Option<String>,
    },
    Clear,
    /// No usable answer: the zone refused, timed out or could not be trusted.
    Unknown(String),
}

impl Verdict {
    pub fn state(&self) -> &'static str {
        match self {
            Verdict::Listed { .. } => "LISTED",
            Verdict::Clear => "CLEAR",
            Verdict::Unknown(_) => "UNKNOWN",
        }
    }
}

/// The meaning of 127.255.255.252–255: the zone refused to answer, never a listing.
pub fn error_answer(answer: Ipv4Addr) -> Option<&'static str> {
    match answer.octets() {
        [127, 255, 255, 252] => Some("query refused (typo in the zone name)"),
        [127, 255, 255, 253] => Some("query refused"),
        [127, 255, 255, 254] => Some("query refused: the name server is an open resolver"),
        [127, 255, 255, 255] => Some("rate limited: too many queries"),
        _ => None,
    }
}

/// Reads the A answers of a zone.
pub fn interpret(zone: &ZoneSpec, answers: &[Ipv4Addr]) -> Verdict {
    if answers.is_empty() {
        return Verdict::Clear;
    }
    if let Some(error) = answers.iter().find_map(|a| error_answer(*a)) {
        return Verdict::Unknown(format!("{}: {error}", zone.name));
    }
    if let Some(odd) = answers.iter().find(|a| a.octets()[0] != 127) {
        return Verdict::Unknown(format!("{}: unexpected answer {odd}", zone.name));
    }
    let mut codes = answers.to_vec();
    codes.sort();
    codes.dedup();
    let mut categories: Vec<String> = codes.iter().map(|c| zone.category_of(*c)).collect();
    categories.dedup();
    Verdict::Listed {
        codes,
        categories,
        reason: None,
    }
}

/// Whether a zone can be believed right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneHealth {
    Trusted,
    /// The zone answered, but wrongly for its test entries.
    Untrusted(String),
    /// The zone did not answer at all.
    Unreachable(String),
}

enum Answer {
    Addresses(Vec<Ipv4Addr>),
    Failed(String),
}

/// Looks addresses up on the configured zones through the configured name server.
pub struct Checker {
    resolver: TokioResolver,
    zones: Arc<[ZoneSpec]>,
    concurrency: usize,
    timeout: Duration,
}

/// The results of one check: the health of each zone and a verdict per address × zone.
#[derive(Debug)]
pub struct CheckReport {
    pub zones: Vec<(ZoneSpec, ZoneHealth)>,
    /// `(address, zone index, verdict)`.
    pub verdicts: Vec<(IpAddr, usize, Verdict)>,
    pub lookups: u64,
}

impl CheckReport {
    /// True when no zone answered at all: the name server itself is the problem.
    pub fn nothing_answered(&self) -> bool {
        !self.zones.is_empty()
            && self
                .zones
                .iter()
                .all(|(_, health)| matches!(health, ZoneHealth::Unreachable(_)))
    }
}

impl Checker {
    /// A checker with its own resolver, so that every check asks afresh rather than
    /// trusting answers cached by an earlier one.
    pub fn new(config: &DnsblConfig) -> AppResult<Checker> {
        let mut connection = ConnectionConfig::udp();
        connection.port = config.nameserver.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = config.nameserver.port();
        let server = NameServerConfig::new(config.nameserver.ip(), true, vec![connection, tcp]);
        let mut options = ResolverOpts::default();
        options.timeout = config.timeout;
        options.attempts = 0;
        options.ndots = 0;
        options.cache_size = 256;
        options.max_active_requests = config.concurrency.max(32);
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, Vec::new(), vec![server]),
            TokioRuntimeProvider::default(),
        )
        .with_options(options)
        .build()
        .map_err(|e| AppError::internal(format!("the DNSBL resolver could not be built: {e}")))?;
        Ok(Checker {
            resolver,
            zones: config.zones.clone().into(),
            concurrency: config.concurrency,
            timeout: config.timeout,
        })
    }

    async fn a_records(&self, name: &str) -> Answer {
        // The resolver's own timeout covers one exchange; this one also bounds its retries.
        let lookup =
            tokio::time::timeout(self.timeout * 2, self.resolver.lookup(name, RecordType::A)).await;
        match lookup {
            Err(_) => Answer::Failed("timed out".into()),
            Ok(Ok(lookup)) => Answer::Addresses(
                lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::A(a) => Some(a.0),
                        _ => None,
                    })
                    .collect(),
            ),
            Ok(Err(e)) if e.is_nx_domain() || e.is_no_records_found() => {
                Answer::Addresses(Vec::new())
            }
            Ok(Err(NetError::Timeout)) => Answer::Failed("timed out".into()),
            Ok(Err(e)) => Answer::Failed(e.to_string()),
        }
    }

    async fn txt(&self, name: &str) -> Option<String> {
        let lookup =
            tokio::time::timeout(self.timeout, self.resolver.lookup(name, RecordType::TXT))
                .await
                .ok()?
                .ok()?;
        let texts: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(txt.to_string()),
                _ => None,
            })
            .collect();
        (!texts.is_empty()).then(|| texts.join(" ").chars().take(1024).collect())
    }

    /// RFC 5782 §5: 127.0.0.2 must be listed and 127.0.0.1 must not.
    pub async fn zone_health(&self, zone: &ZoneSpec) -> ZoneHealth {
        let listed = query_name(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), &zone.name);
        let clear = query_name(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), &zone.name);
        let (listed, clear) = tokio::join!(self.a_records(&listed), self.a_records(&clear));
        match (listed, clear) {
            (Answer::Failed(e), _) | (_, Answer::Failed(e)) => {
                ZoneHealth::Unreachable(format!("{}: test look-up failed: {e}", zone.name))
            }
            (Answer::Addresses(listed), Answer::Addresses(clear)) => {
                if !matches!(interpret(zone, &listed), Verdict::Listed { .. }) {
                    ZoneHealth::Untrusted(format!(
                        "{}: test entry 127.0.0.2 is not listed",
                        zone.name
                    ))
                } else if !clear.is_empty() {
                    ZoneHealth::Untrusted(format!("{}: test entry 127.0.0.1 is listed", zone.name))
                } else {
                    ZoneHealth::Trusted
                }
            }
        }
    }

    /// One address on one zone; the TXT reason is fetched only for a listing.
    pub async fn lookup(&self, ip: IpAddr, zone: &ZoneSpec) -> Verdict {
        let name = query_name(ip, &zone.name);
        match self.a_records(&name).await {
            Answer::Failed(e) => Verdict::Unknown(format!("{}: {e}", zone.name)),
            Answer::Addresses(answers) => match interpret(zone, &answers) {
                Verdict::Listed {
                    codes, categories, ..
                } => Verdict::Listed {
                    codes,
                    categories,
                    reason: self.txt(&name).await,
                },
                other => other,
            },
        }
    }

    /// Checks every address on every zone, at most `concurrency` look-ups at a time. A
    /// zone whose test entries fail gives UNKNOWN for every address, with the reason.
    pub async fn check(self: Arc<Self>, addresses: &[IpAddr]) -> CheckReport {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let mut tests = JoinSet::new();
        for index in 0..self.zones.len() {
            let checker = self.clone();
            let permits = permits.clone();
            tests.spawn(async move {
                let _permit = permits.acquire_owned().await;
                (index, checker.zone_health(&checker.zones[index]).await)
            });
        }
        let mut healths: Vec<ZoneHealth> =
            vec![ZoneHealth::Unreachable("not tested".into()); self.zones.len()];
        while let Some(done) = tests.join_next().await {
            if let Ok((index, health)) = done {
                healths[index] = health;
            }
        }

        let mut lookups = 2 * self.zones.len() as u64;
        let mut verdicts = Vec::with_capacity(addresses.len() * self.zones.len());
        let mut queries = JoinSet::new();
        for (index, health) in healths.iter().enumerate() {
            for ip in addresses.iter().copied() {
                match health {
                    ZoneHealth::Trusted => {
                        let checker = self.clone();
                        let permits = permits.clone();
                        lookups += 1;
                        queries.spawn(async move {
                            let _permit = permits.acquire_owned().await;
                            (ip, index, checker.lookup(ip, &checker.zones[index]).await)
                        });
                    }
                    ZoneHealth::Untrusted(reason) | ZoneHealth::Unreachable(reason) => {
                        verdicts.push((ip, index, Verdict::Unknown(reason.clone())));
                    }
                }
            }
        }
        while let Some(done) = queries.join_next().await {
            match done {
                Ok(verdict) => {
                    if matches!(verdict.2, Verdict::Listed { .. }) {
                        // The TXT look-up for the reason.
                        lookups += 1;
                    }
                    verdicts.push(verdict);
                }
                Err(e) => tracing::error!(error = %e, "a DNSBL look-up task failed"),
            }
        }
        CheckReport {
            zones: self.zones.iter().cloned().zip(healths).collect(),
            verdicts,
            lookups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zen() -> ZoneSpec {
        super::super::config::parse_zones("zen.spamhaus.org")
            .unwrap()
            .remove(0)
    }

    #[test]
    fn query_names_reverse_octets_and_ipv6_nibbles() {
        assert_eq!(
            query_name("192.0.2.99".parse().unwrap(), "bl.example.org"),
            "99.2.0.192.bl.example.org."
        );
        assert_eq!(
            query_name(
                "2001:db8:1:2:3:4:567:89ab".parse().unwrap(),
                "bl.example.org"
            ),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example.org."
        );
    }

    #[test]
    fn return_codes_are_read_per_zone_and_error_codes_are_never_listings() {
        let zen = zen();
        match interpret(
            &zen,
            &[Ipv4Addr::new(127, 0, 0, 4), Ipv4Addr::new(127, 0, 0, 2)],
        ) {
            Verdict::Listed { categories, .. } => assert_eq!(categories, ["SBL", "XBL"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(interpret(&zen, &[]), Verdict::Clear);
        for last in 252..=255 {
            let verdict = interpret(&zen, &[Ipv4Addr::new(127, 255, 255, last)]);
            assert!(
                matches!(verdict, Verdict::Unknown(_)),
                "{last}: {verdict:?}"
            );
        }
        assert!(matches!(
            interpret(&zen, &[Ipv4Addr::new(10, 0, 0, 1)]),
            Verdict::Unknown(_)
        ));
    }
}
