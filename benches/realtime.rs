//! Subscriptions at scale: one mailops instance on Postgres with the Redis event bus.
//!
//!     cargo bench --bench realtime
//!
//! The server runs in this process; the WebSocket clients run in a child process (this
//! same program, started with `--clients`), so the server's resident memory is measured
//! alone. For 1,000, 5,000 and 10,000 subscribers, each subscribed to `metricsUpdated`:
//! - resident memory of the server per idle subscribed connection: VmRSS of this process
//!   before the clients connect and after they all hold a subscription, divided by their
//!   number;
//! - latency from ingest to delivery: an agent ingests a batch whose id carries the time
//!   the request was sent; every client notes when the batch reached it. The figure
//!   includes the ingest transaction itself, so it is an upper bound for commit → delivery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{BufRead as _, Write as _},
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use testkit::{Backend, TestApp};
use tokio_tungstenite::tungstenite::Message;

const SUBSCRIBERS: [usize; 3] = [1_000, 5_000, 10_000];
/// Scrapes of `/metrics` timed at each size.
const SCRAPES: usize = 20;
const BATCHES: usize = 20;
const BETWEEN_BATCHES: Duration = Duration::from_millis(250);

fn epoch_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Lets this process hold as many sockets as the hard limit allows.
fn raise_fd_limit() {
    // SAFETY: plain libc calls on a struct owned here.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn main() {
    raise_fd_limit();
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Some(i) = args.iter().position(|a| a == "--clients") {
        let count: usize = args[i + 1].parse().unwrap();
        let addr = args[i + 2].clone();
        let token = args[i + 3].clone();
        runtime.block_on(clients(count, addr, token));
    } else {
        runtime.block_on(server());
    }
}

/// The child: `count` subscribers; prints `ready`, then one latency in microseconds per
/// delivery when told `report` on stdin.
async fn clients(count: usize, addr: String, token: String) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(count);
    let connect_slots = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    for _ in 0..count {
        let (addr, token, tx, ready_tx, slots) = (
            addr.clone(),
            token.clone(),
            tx.clone(),
            ready_tx.clone(),
            connect_slots.clone(),
        );
        tokio::spawn(async move {
            let permit = slots.acquire_owned().await.unwrap();
            let request = testkit::ws::upgrade_request(&addr, "graphql-transport-ws");
            let (mut socket, _) = tokio_tungstenite::connect_async(request)
                .await
                .expect("connect");
            let send = |v: Value| Message::text(v.to_string());
            socket
                .send(send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })))
                .await
                .unwrap();
            socket
                .send(send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { metricsUpdated { batchId } }" } })))
                .await
                .unwrap();
            socket.send(send(json!({ "type": "ping" }))).await.unwrap();
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text).unwrap();
                match value["type"].as_str() {
                    Some("pong") => {
                        ready_tx.send(()).await.unwrap();
                        break;
                    }
                    Some("connection_ack") => {}
                    _ => panic!("unexpected {value}"),
                }
            }
            drop(permit);
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let received = epoch_nanos();
                let value: Value = serde_json::from_str(&text).unwrap();
                let batch = value["payload"]["data"]["metricsUpdated"]["batchId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("unexpected {value}"));
                let sent: u128 = batch.trim_start_matches("b-").parse().unwrap();
                let _ = tx.send(((received - sent) / 1_000) as u64);
            }
        });
    }
    for _ in 0..count {
        ready_rx.recv().await.unwrap();
    }
    println!("ready");
    let mut line = String::new();
    tokio::task::spawn_blocking(move || {
        std::io::stdin().lock().read_line(&mut line).unwrap();
    })
    .await
    .unwrap();
    let mut out = std::io::stdout().lock();
    while let Ok(micros) = rx.try_recv() {
        writeln!(out, "{micros}").unwrap();
    }
    writeln!(out, "end").unwrap();
}

async fn server() {
    let mut started = TestApp::builder(Backend::Postgres)
        .with_config(|c| {
            testkit::for_benchmarks(c);
            c.auth.access_token_ttl = testkit::duration("2h");
            // Every client signs in as the admin.
            c.limits.websockets_per_caller = 100_000;
        })
        .spawn()
        .await;
    let admin = started.admin_token().await;
    let enrollment = started.enrollment_key(None).await;
    let (_, agent_key) = started
        .register_node(&enrollment, "mx1.bench.example", &[])
        .await;

    let mut rows = Vec::new();
    let load_before = common::load_average();
    for subscribers in SUBSCRIBERS {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = vm_rss_kib();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--clients",
                &subscribers.to_string(),
                &started.addr.to_string(),
                &admin,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (line, returned) = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            (line, stdout)
        })
        .await
        .unwrap();
        let mut stdout = returned;
        assert_eq!(line.trim(), "ready");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = vm_rss_kib();
        let per_connection = (after.saturating_sub(before)) as f64 / subscribers as f64;
        let mut scrapes = Vec::new();
        for _ in 0..SCRAPES {
            let t = std::time::Instant::now();
            let text = started.get_text("/metrics").await;
            scrapes.push(t.elapsed());
            assert!(text.contains("mailops_websockets_open"));
        }
        scrapes.sort_unstable();

        for _ in 0..BATCHES {
            let batch = format!("b-{}", epoch_nanos());
            let body = started
                .gql_key(
                    &agent_key,
                    "mutation($b: MetricBatchInput!) { ingestMetrics(batch: $b) { accepted } }",
                    json!({ "b": { "batchId": batch, "samples": [
                        { "name": "system.load1", "ts": chrono::Utc::now().to_rfc3339(), "value": 0.5 }
                    ] } }),
                )
                .await;
            assert_eq!(body["data"]["ingestMetrics"]["accepted"], 1, "{body}");
            tokio::time::sleep(BETWEEN_BATCHES).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "report").unwrap();
        let latencies = tokio::task::spawn_blocking(move || {
            let mut latencies = Vec::new();
            let mut line = String::new();
            loop {
                line.clear();
                if stdout.read_line(&mut line).unwrap() == 0 || line.trim() == "end" {
                    break;
                }
                latencies.push(Duration::from_micros(line.trim().parse().unwrap()));
            }
            latencies
        })
        .await
        .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let mut latencies = latencies;
        latencies.sort_unstable();
        let expected = subscribers * BATCHES;
        let p50 = common::percentile(&latencies, 0.50);
        let p99 = common::percentile(&latencies, 0.99);
        println!(
            "{subscribers} subscribers: {per_connection:.1} KiB per connection, {} of {expected} deliveries, p50 {} ms, p99 {} ms",
            latencies.len(),
            common::ms(p50),
            common::ms(p99)
        );
        rows.push(format!(
            "| {subscribers} | {per_connection:.1} | {} / {expected} | {} | {} | {} | {} / {} |\n",
            latencies.len(),
            common::ms(p50),
            common::ms(p99),
            common::ms(*latencies.last().unwrap()),
            common::ms(common::percentile(&scrapes, 0.5)),
            common::ms(*scrapes.last().unwrap()),
        ));
    }

    let body = format!(
        "Machine: {}; 1-minute load average {load_before} before the run and {} after it (2 cores: anything above 2 means other work competed for the CPU). One instance on Postgres with the Redis event bus; clients in a child process on the same machine, each holding one `metricsUpdated` subscription over graphql-transport-ws. Memory: the server's VmRSS after all subscriptions are up minus before, per connection (goal ≤ 30 KiB); rows after the first reuse memory the allocator kept from the previous row, so the first row is the one to trust. Latency: ingest request sent → `next` received by each subscriber, {BATCHES} batches {} ms apart (includes the ingest transaction; goal p99 ≤ 100 ms at 10,000). `/metrics`: {SCRAPES} scrapes with every subscription open, before the batches.\n\n| subscribers | server RSS per idle connection (KiB) | deliveries | p50 (ms) | p99 (ms) | max (ms) | `/metrics` scrape p50 / max (ms) |\n|---|---|---|---|---|---|---|\n{}\n",
        common::machine(),
        common::load_average(),
        BETWEEN_BATCHES.as_millis(),
        rows.concat()
    );
    common::write_section("realtime", "cargo bench --bench realtime", &body);
    started.stop().await;
}
