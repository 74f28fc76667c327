//! What the agent costs its node, and how fast its spool moves.
//!
//! 1. The real `mailops-agent run` binary, all collectors on (system, Redis INFO, the
//!    configuration feed, a pool file), against a mailops on Postgres: CPU time and
//!    resident memory per push interval, read from /proc, at a 1 s and a 15 s interval.
//! 2. The spool: batches of one real collection written (each fsynced before it counts),
//!    drained locally (read and removed), and drained into mailops through `ingestMetrics`,
//!    against the same batches posted straight to `ingestMetrics` by the same client (no
//!    spool) in the same run.
//!
//!     cargo bench -p mailops-agent --bench agent
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../benches/common/mod.rs"]
mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use mailops_agent::{
    client::Client,
    collect::Collectors,
    send::{INGEST, deliver, ingest_variables},
    spool::{Batch, Spool},
};
use testkit::{Backend, TestApp};

const AGENT: &str = env!("CARGO_BIN_EXE_mailops-agent");
const SPOOLED: usize = 2_000;

/// CPU time (user + system) and resident memory (KiB) of a process.
fn usage(pid: u32) -> (Duration, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (Duration::from_secs_f64(ticks as f64 / per_second), rss)
}

struct Footprint {
    interval: Duration,
    window: Duration,
    cpu_per_interval: Duration,
    cpu_share: f64,
    rss_kib: u64,
}

async fn footprint(
    app: &TestApp,
    state: &std::path::Path,
    interval: &str,
    window: Duration,
) -> Footprint {
    let pool_file = state.join("ips.json");
    let mut child = Command::new(AGENT)
        .args(["run", "--state-dir"])
        .arg(state)
        .args([
            "--push-interval",
            interval,
            "--redis",
            "redis://127.0.0.1:6379",
        ])
        .arg("--pool-file")
        .arg(&pool_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Past start-up: the first collection, the configuration read and applied.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        pool_file.exists(),
        "the agent did not apply its configuration"
    );
    let (before, _) = usage(child.id());
    tokio::time::sleep(window).await;
    let (after, rss_kib) = usage(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = app;
    let interval = mailops_agent::settings::parse_duration(interval).unwrap();
    let intervals = window.as_secs_f64() / interval.as_secs_f64();
    let cpu = after - before;
    Footprint {
        interval,
        window,
        cpu_per_interval: cpu.div_f64(intervals),
        cpu_share: cpu.as_secs_f64() / window.as_secs_f64(),
        rss_kib,
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let app = TestApp::builder(Backend::Postgres)
        .with_config(testkit::for_benchmarks)
        .spawn()
        .await;
    let key = app.enrollment_key(None).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let enrolled = Command::new(AGENT)
        .args([
            "enroll",
            "--server",
            &format!("http://{}", app.addr),
            "--enrollment-key",
            &key,
        ])
        .arg("--state-dir")
        .arg(&state)
        .args([
            "--hostname",
            "bench.example.com",
            "--ip",
            "192.0.2.1",
            "--roles",
            "MTA,REDIS",
        ])
        .output()
        .unwrap();
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );

    let mut footprints = Vec::new();
    for (interval, window) in [
        ("1s", Duration::from_secs(30)),
        ("15s", Duration::from_secs(60)),
    ] {
        footprints.push(footprint(&app, &state, interval, window).await);
    }

    // One real collection, as every spooled batch.
    let mut collectors = Collectors::new(&mailops_agent::collect::Sources {
        system: true,
        redis: Some("redis://127.0.0.1:6379".into()),
        ..Default::default()
    })
    .unwrap();
    tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL).await;
    let samples = collectors.collect().await;
    let per_batch = samples.len();
    let batches: Vec<Batch> = (0..SPOOLED).map(|_| Batch::new(samples.clone())).collect();
    let batch_bytes = serde_json::to_vec(&batches[0]).unwrap().len();
    let key = std::fs::read_to_string(state.join("node.key")).unwrap();
    let client = Client::new(app.url("/graphql"), format!("ApiKey {}", key.trim())).unwrap();

    let local = tempfile::tempdir().unwrap();
    let spool = Spool::open(local.path(), 10 << 30, Duration::from_secs(86_400)).unwrap();
    let started = Instant::now();
    for batch in &batches {
        spool.push(batch).unwrap();
    }
    let written = SPOOLED as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    while let Some((sequence, _)) = spool.oldest() {
        spool.remove(sequence, false);
    }
    let drained_locally = SPOOLED as f64 / started.elapsed().as_secs_f64();

    // Into mailops: the same batches straight, then through the spool (new ids each way).
    let fresh = |batches: &[Batch]| -> Vec<Batch> {
        batches
            .iter()
            .map(|b| Batch::new(b.samples.clone()))
            .collect()
    };
    let direct_batches = fresh(&batches);
    let started = Instant::now();
    for batch in &direct_batches {
        client.run(INGEST, ingest_variables(batch)).await.unwrap();
    }
    let direct = SPOOLED as f64 / started.elapsed().as_secs_f64();
    for batch in fresh(&batches) {
        spool.push(&batch).unwrap();
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let sender = tokio::spawn(deliver(spool.clone(), client.clone(), stopped));
    while spool.level().batches > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drained_to_mailops = SPOOLED as f64 / started.elapsed().as_secs_f64();
    stop.send(true).unwrap();
    sender.await.unwrap();

    let mut body = format!(
        "Machine: {}. Release build; mailops on Postgres in the benchmark's process, the agent \
         a separate process with every collector on (system, Redis INFO of the local Redis, the \
         configuration feed over WebSocket, a pool file). Load average at the end: {}.\n\n",
        common::machine(),
        common::load_average()
    );
    // SAFETY: sysconf has no preconditions.
    let tick_ms = 1000.0 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    body.push_str(&format!(
        "CPU time is what /proc/<pid>/stat counts, in ticks of {tick_ms:.0} ms: a row resting \
         on few ticks (the CPU column × intervals ÷ {tick_ms:.0} ms) is rough.\n\n"
    ));
    body.push_str("| push interval | measured over | CPU per interval | CPU share of one core | resident memory |\n|---|---|---|---|---|\n");
    for f in &footprints {
        body.push_str(&format!(
            "| {} s | {} s | {} ms | {:.2}% | {:.1} MiB |\n",
            f.interval.as_secs(),
            f.window.as_secs(),
            common::ms(f.cpu_per_interval),
            f.cpu_share * 100.0,
            f.rss_kib as f64 / 1024.0
        ));
    }
    body.push_str(&format!(
        "\nSpool: {SPOOLED} batches of one collection ({per_batch} samples, {batch_bytes} bytes of JSON each).\n\n\
         | operation | batches/s |\n|---|---|\n\
         | written (each fsynced, file and directory, before it counts) | {written:.0} |\n\
         | drained locally (read, parsed, removed) | {drained_locally:.0} |\n\
         | drained into mailops (`ingestMetrics`, one at a time, in order) | {drained_to_mailops:.0} |\n\
         | baseline: the same batches posted straight to `ingestMetrics` by the same client | {direct:.0} |\n\n\
         Draining into mailops runs at {:.0}% of posting the same batches without the spool.\n",
        drained_to_mailops / direct * 100.0
    ));
    print!("{body}");
    common::write_section("agent", "cargo bench -p mailops-agent --bench agent", &body);
}
