//! What the benchmark programs share besides the test kit (which starts mailops): a
//! closed-loop load generator, percentiles, and writing results into BENCHMARKS.md.
#![allow(dead_code)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

pub const CONCURRENCY: usize = 32;
pub const WINDOW: Duration = Duration::from_secs(5);

/// Requests per second over `WINDOW` with `CONCURRENCY` clients in a closed loop. Every
/// response is checked with `check` before it counts.
pub async fn throughput(
    client: &reqwest::Client,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
    check: fn(&[u8]) -> bool,
) -> f64 {
    let make = Arc::new(make);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..50 {
        let body = make(client)
            .send()
            .await
            .expect("sent")
            .bytes()
            .await
            .expect("body");
        assert!(
            check(&body),
            "unexpected response: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, make, done, stop) =
                (client.clone(), make.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let body = make(&client)
                        .send()
                        .await
                        .expect("sent")
                        .bytes()
                        .await
                        .expect("body");
                    assert!(
                        check(&body),
                        "unexpected response: {}",
                        String::from_utf8_lossy(&body)
                    );
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(WINDOW).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("load task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// A GraphQL response with data and no errors.
pub fn graphql_ok(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v["errors"].is_null() && v["data"].is_object())
        .unwrap_or(false)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// Replaces the section between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`.
pub fn write_section(name: &str, command: &str, body: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    let current = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let (open, close) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    );
    let section = format!("{open}\nCommand: `{command}`\n\n{body}{close}");
    let updated = match (current.find(&open), current.find(&close)) {
        (Some(start), Some(end)) => format!(
            "{}{section}{}",
            &current[..start],
            &current[end + close.len()..]
        ),
        _ => format!("{}\n\n{section}\n", current.trim_end()),
    };
    std::fs::write(path, updated).expect("write BENCHMARKS.md");
}
