//! A full DNSBL check of 1,000 IPs × 7 zones against a DNS server on loopback.
//!
//!     cargo bench --bench dnsbl
//!
//! Measures, against the same in-process UDP server (tests/api/dns_server.rs) serving the
//! seven default zones with 10% of the addresses listed (with TXT reasons):
//! - the checker alone (zone tests, A look-ups, TXT for listings) at several concurrency
//!   bounds, the default one marked;
//! - a baseline: the same A queries as raw UDP exchanges, no resolver, same concurrency;
//! - the whole job through mailops on embedded SQLite: queued, claimed, checked and its
//!   7,000 results and listings stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
    time::{Duration, Instant},
};

use hickory_resolver::proto::{
    op::{Message, Query},
    rr::{Name, RecordType},
};
use mailops::{
    audit::{Actor, AuditContext},
    ips::{self, Checker, DEFAULT_ZONES, DnsblConfig},
};
use testkit::{
    Backend, TestApp,
    dns_server::{self, DnsServer},
};
use tokio::net::UdpSocket;

const IPS: usize = 1000;
const DEFAULT_CONCURRENCY: usize = 32;

fn addresses() -> Vec<IpAddr> {
    (0..IPS)
        .map(|n| IpAddr::V4(Ipv4Addr::new(198, 18, (n / 256) as u8, (n % 256) as u8)))
        .collect()
}

async fn serve() -> DnsServer {
    let dns = DnsServer::start().await;
    for (z, zone) in DEFAULT_ZONES.iter().enumerate() {
        dns.healthy_zone(zone);
        for (n, ip) in addresses().into_iter().enumerate() {
            if (n + z) % 10 == 0 {
                dns.list(ip, zone, &[2], Some("listed for the benchmark"));
            }
        }
    }
    dns
}

fn config(dns: &DnsServer, concurrency: usize) -> DnsblConfig {
    let vars: HashMap<&str, String> = HashMap::from([
        ("MAILOPS_DNSBL_NAMESERVER", dns.addr.to_string()),
        ("MAILOPS_DNSBL_CONCURRENCY", concurrency.to_string()),
        ("MAILOPS_DNSBL_TIMEOUT", "2s".to_string()),
    ]);
    DnsblConfig::from_lookup(&|k: &str| vars.get(k).cloned()).expect("config")
}

/// Sends every A query as a raw UDP exchange, `concurrency` at a time.
async fn raw_udp(dns: &DnsServer, names: Vec<String>, concurrency: usize) -> Duration {
    let names = Arc::new(tokio::sync::Mutex::new(names));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let names = names.clone();
            let server = dns.addr;
            tokio::spawn(async move {
                let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                socket.connect(server).await.unwrap();
                let mut buffer = vec![0u8; 4096];
                loop {
                    let Some(name) = names.lock().await.pop() else {
                        break;
                    };
                    let mut message = Message::query();
                    message.metadata.recursion_desired = true;
                    message.add_query(Query::query(
                        Name::from_ascii(&name).unwrap(),
                        RecordType::A,
                    ));
                    socket.send(&message.to_vec().unwrap()).await.unwrap();
                    let len = socket.recv(&mut buffer).await.unwrap();
                    Message::from_vec(&buffer[..len]).unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

fn per_second(count: u64, elapsed: Duration) -> String {
    format!("{:.0}", count as f64 / elapsed.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let dns = serve().await;
    let ips = addresses();
    let mut rows = Vec::new();

    // Warm-up: sockets, allocator, the server's task.
    Arc::new(Checker::new(&config(&dns, DEFAULT_CONCURRENCY)).unwrap())
        .check(&ips[..100])
        .await;

    let mut default_rate = 0.0;
    for concurrency in [8, DEFAULT_CONCURRENCY, 128] {
        let checker = Arc::new(Checker::new(&config(&dns, concurrency)).unwrap());
        let start = Instant::now();
        let report = checker.check(&ips).await;
        let elapsed = start.elapsed();
        let unknown = report
            .verdicts
            .iter()
            .filter(|v| v.2.state() == "UNKNOWN")
            .count();
        assert_eq!(report.verdicts.len(), IPS * DEFAULT_ZONES.len());
        assert_eq!(unknown, 0, "every look-up answered");
        let rate = report.lookups as f64 / elapsed.as_secs_f64();
        if concurrency == DEFAULT_CONCURRENCY {
            default_rate = rate;
        }
        rows.push(format!(
            "| checker, concurrency {concurrency}{} | {} | {:.2} | {} |  |",
            if concurrency == DEFAULT_CONCURRENCY {
                " (default)"
            } else {
                ""
            },
            report.lookups,
            elapsed.as_secs_f64(),
            per_second(report.lookups, elapsed),
        ));
    }

    let names: Vec<String> = DEFAULT_ZONES
        .iter()
        .flat_map(|zone| {
            ips.iter()
                .map(move |ip| format!("{}.", dns_server::name_of(*ip, zone)))
        })
        .collect();
    let count = names.len() as u64;
    let elapsed = raw_udp(&dns, names, DEFAULT_CONCURRENCY).await;
    let raw_rate = count as f64 / elapsed.as_secs_f64();
    rows.push(format!(
        "| baseline: the A queries as raw UDP exchanges, concurrency {DEFAULT_CONCURRENCY} | {count} | {:.2} | {} | checker (default) = {:.0}% of it |",
        elapsed.as_secs_f64(),
        per_second(count, elapsed),
        100.0 * default_rate / raw_rate,
    ));

    // The whole job through mailops, results stored in SQLite.
    let nameserver = dns.addr;
    let mut server = TestApp::builder(Backend::Sqlite)
        .with_config(move |c| {
            testkit::for_benchmarks(c);
            c.dnsbl.nameserver = nameserver;
            c.dnsbl.job_poll_interval = testkit::duration("20ms");
            c.dnsbl.check_interval = testkit::duration("1d");
        })
        .spawn()
        .await;
    let audit = AuditContext::with_actor(Actor::cli());
    let input = mailops::ips::NewIps {
        addresses: Some(ips.iter().map(ToString::to_string).collect()),
        cidr: None,
        pool: None,
    };
    mailops::ips::add(&server.state.db, &audit, &input, None)
        .await
        .unwrap();
    let start = Instant::now();
    let job = ips::enqueue(&server.state.db, &audit, None).await.unwrap();
    let finished = loop {
        let row = ips::find_job(&server.state.db, job.id)
            .await
            .unwrap()
            .unwrap();
        if row.state == ips::JOB_SUCCEEDED || row.state == ips::JOB_FAILED {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let elapsed = start.elapsed();
    assert_eq!(
        finished.state,
        ips::JOB_SUCCEEDED,
        "{:?}",
        finished.last_error
    );
    let lookups = finished
        .result
        .as_ref()
        .and_then(|r| r["lookups"].as_u64())
        .unwrap_or(0);
    rows.push(format!(
        "| whole job through mailops (queue, check, store 7,000 results), SQLite, concurrency {DEFAULT_CONCURRENCY} | {lookups} | {:.2} | {} |  |",
        elapsed.as_secs_f64(),
        per_second(lookups, elapsed),
    ));
    server.stop().await;

    let table = format!(
        "Machine: {}. {IPS} IPv4 addresses × {} zones (the default list), 10% listed per zone (each listing also fetches its TXT reason), DNS server in the same process on loopback UDP.\n\n| run | look-ups | seconds | look-ups/s | ratio |\n|---|---|---|---|---|\n{}\n",
        common::machine(),
        DEFAULT_ZONES.len(),
        rows.join("\n"),
    );
    println!("{table}");
    common::write_section("dnsbl", "cargo bench --bench dnsbl", &table);
}
