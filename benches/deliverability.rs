//! What classifying refusals costs: the classifier alone per event, and `ingestMailEvents`
//! with classification on against the same batches with it off (refusals stored without a
//! category, as before mailops classified them), on Postgres, in one run.
//!
//!     cargo bench --bench deliverability
//!
//! The batches are `mailops dev seed`'s mail: 1,000 events each, 11% of them refusals
//! worded as Gmail, Microsoft, postgrey and Spamhaus word them. 8 agents push 15 batches
//! each at once; each configuration runs twice on a fresh database, alternating, and the
//! best run counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use mailops::{mailflow::BounceRules, seed};

const AGENTS: usize = 8;
const BATCHES_PER_AGENT: usize = 15;
const BATCH_EVENTS: usize = 1_000;
const POOL: usize = 16;

/// Events per second through `ingestMailEvents`, on a fresh database.
async fn ingest_rate(
    classify: bool,
    batches: &[Vec<mailops::mailflow::MailEventBatchInput>],
) -> f64 {
    let mut server = testkit::TestApp::builder(testkit::Backend::Postgres)
        .with_config(move |c| {
            testkit::for_benchmarks(c);
            c.database.max_connections = POOL as u32;
            c.mail.classify_refusals = classify;
        })
        .spawn()
        .await;
    let nodes = seed::register_nodes(&server.state, 0..AGENTS)
        .await
        .unwrap();
    let keys: Vec<String> = nodes.iter().map(|n| n.key.clone()).collect();
    let graphql = format!("http://{}/graphql", server.addr);
    let (time, _) = common::send_agent_batches(
        &graphql,
        &keys,
        common::mail_batch_bodies(batches),
        "ingestMailEvents",
        BATCH_EVENTS,
    )
    .await;
    server.stop().await;
    (AGENTS * BATCHES_PER_AGENT * BATCH_EVENTS) as f64 / time.as_secs_f64()
}

/// Nanoseconds per `classify` of these refusals, best of five passes.
fn classify_ns(rules: &BounceRules, refusals: &[(Option<i32>, Option<String>)]) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        for (code, response) in refusals {
            std::hint::black_box(rules.classify(*code, response.as_deref()));
        }
        best = best.min(started.elapsed());
    }
    best.as_nanos() as f64 / refusals.len() as f64
}

#[tokio::main]
async fn main() {
    let ips: Vec<Vec<String>> = (0..AGENTS)
        .map(|i| {
            vec![
                format!("198.18.0.{}", i + 1),
                format!("2001:db8:{:x}::25", i + 1),
            ]
        })
        .collect();
    let batches = common::seed_mail_batches(BATCHES_PER_AGENT, &ips);
    let refusals: Vec<(Option<i32>, Option<String>)> = batches
        .iter()
        .flatten()
        .flat_map(|b| b.events.iter())
        .filter(|e| matches!(e.status.as_str(), "DEFERRED" | "BOUNCED"))
        .map(|e| (e.smtp_code, e.response.clone()))
        .collect();
    let events = AGENTS * BATCHES_PER_AGENT * BATCH_EVENTS;
    let rules = BounceRules::default();
    let per_refusal = classify_ns(&rules, &refusals);
    let per_event = per_refusal * refusals.len() as f64 / events as f64;

    let (mut off, mut on) = (0.0_f64, 0.0_f64);
    for _ in 0..2 {
        off = off.max(ingest_rate(false, &batches).await);
        on = on.max(ingest_rate(true, &batches).await);
    }
    let table = format!(
        "| refusals classified | classify, per refusal | classify, per event ingested | `ingestMailEvents`, classification off (events/s) | on (events/s) | on ÷ off |\n|---|---|---|---|---|---|\n\
         | {} of {events} | {per_refusal:.0} ns | {per_event:.0} ns | {off:.0} | {on:.0} | {:.0}% |\n",
        refusals.len(),
        100.0 * on / off
    );
    print!("{table}");
    common::write_section(
        "deliverability",
        "cargo bench --bench deliverability",
        &format!(
            "Machine: {}. Release build. The classifier: the built-in table ({} rules) over the refusals of the batches, best of five passes. Ingestion: Postgres, pool of {POOL}; {AGENTS} agents at once, {BATCHES_PER_AGENT} batches of {BATCH_EVENTS} events each over loopback HTTP/1.1; `MAILOPS_MAIL_CLASSIFY_REFUSALS=false` is the before (refusals stored and counted without a category), each configuration twice on a fresh database, alternating, best run.\n\n{table}",
            common::machine(),
            mailops::mailflow::BUILT_IN_RULES
        ),
    );
}
