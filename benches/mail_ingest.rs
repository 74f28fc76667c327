//! Mail event ingestion through GraphQL against text COPY of the same rows, on Postgres.
//!
//!     cargo bench --bench mail_ingest
//!
//! 15 agents push at once, each sending batches of 1,000 events (20 minutes × 50 events,
//! from `mailops dev seed`'s generator) with `ingestMailEvents` over loopback HTTP, one
//! batch after another. Each answer comes after the commit that stored the raw events,
//! the batch record and both counter tiers. Then the events those batches stored are read
//! back, the table is emptied, and the same rows are written with `COPY … FROM STDIN` in
//! the same 1,000-row pieces over as many connections as mailops's pool has: the
//! database's own speed for these rows, and the baseline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use mailops::{seed, state::AppState};
use sea_orm::{ConnectionTrait as _, Statement};

use uuid::Uuid;

const AGENTS: usize = 15;
const BATCHES_PER_AGENT: usize = 20;
const BATCH_EVENTS: usize = 1_000;
const POOL: usize = 16;
const COLUMNS: &str = "id, node_id, ts, message_id, status, sending_ip, recipient_domain, provider, zone, smtp_code, response";

/// The stored events as lines of CSV, in the order of `COLUMNS`.
async fn stored_csv_lines(state: &AppState) -> Vec<String> {
    let sql = format!("SELECT {COLUMNS} FROM mail_events");
    let rows = state
        .db
        .query_all_raw(Statement::from_string(state.db.get_database_backend(), sql))
        .await
        .unwrap();
    let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let optional = |text: Option<String>| text.map(|t| quote(&t)).unwrap_or_default();
    rows.iter()
        .map(|r| {
            let id: Uuid = r.try_get_by_index(0).unwrap();
            let node: Uuid = r.try_get_by_index(1).unwrap();
            let ts: i64 = r.try_get_by_index(2).unwrap();
            let code: Option<i32> = r.try_get_by_index(9).unwrap();
            format!(
                "{id},{node},{ts},{},{},{},{},{},{},{},{}\n",
                quote(&r.try_get_by_index::<String>(3).unwrap()),
                quote(&r.try_get_by_index::<String>(4).unwrap()),
                quote(&r.try_get_by_index::<String>(5).unwrap()),
                quote(&r.try_get_by_index::<String>(6).unwrap()),
                quote(&r.try_get_by_index::<String>(7).unwrap()),
                optional(r.try_get_by_index(8).unwrap()),
                code.map(|c| c.to_string()).unwrap_or_default(),
                optional(r.try_get_by_index(10).unwrap()),
            )
        })
        .collect()
}

async fn through_copy(state: &AppState, lines: &[String]) -> Duration {
    let payloads: Vec<Vec<u8>> = lines
        .chunks(BATCH_EVENTS)
        .map(|chunk| chunk.concat().into_bytes())
        .collect();
    let statement = format!("COPY mail_events ({COLUMNS}) FROM STDIN (FORMAT csv)");
    common::copy_in(state, &statement, payloads, POOL).await
}

#[tokio::main]
async fn main() {
    let mut server = common::ingest_server(POOL).await;
    let graphql = format!("http://{}/graphql", server.addr);

    let nodes = seed::register_nodes(&server.state, 0..AGENTS)
        .await
        .unwrap();
    let keys: Vec<String> = nodes.iter().map(|n| n.key.clone()).collect();
    let ips: Vec<Vec<String>> = (0..AGENTS)
        .map(|i| {
            vec![
                format!("198.18.{}.{}", i / 250, i % 250 + 1),
                format!("2001:db8:{:x}::25", i + 1),
            ]
        })
        .collect();
    let events = (AGENTS * BATCHES_PER_AGENT * BATCH_EVENTS) as f64;
    let (graphql_time, _) = common::send_agent_batches(
        &graphql,
        &keys,
        {
            let batches = common::seed_mail_batches(BATCHES_PER_AGENT, &ips);
            assert!(
                batches
                    .iter()
                    .flatten()
                    .all(|b| b.events.len() == BATCH_EVENTS)
            );
            common::mail_batch_bodies(&batches)
        },
        "ingestMailEvents",
        BATCH_EVENTS,
    )
    .await;

    let lines = stored_csv_lines(&server.state).await;
    assert_eq!(lines.len() as f64, events);
    server
        .state
        .db
        .execute_unprepared("TRUNCATE mail_events")
        .await
        .unwrap();
    let copy_time = through_copy(&server.state, &lines).await;

    let graphql_rate = events / graphql_time.as_secs_f64();
    let copy_rate = events / copy_time.as_secs_f64();
    let table = format!(
        "| agents at once | batches | events | `ingestMailEvents` (events/s) | COPY of the same rows (events/s) | GraphQL ÷ COPY |\n|---|---|---|---|---|---|\n\
         | {AGENTS} | {} | {} | {graphql_rate:.0} | {copy_rate:.0} | {:.0}% |\n",
        AGENTS * BATCHES_PER_AGENT,
        events as u64,
        100.0 * graphql_rate / copy_rate
    );
    print!("{table}");
    common::write_section(
        "mail_ingest",
        "cargo bench --bench mail_ingest",
        &format!(
            "Machine: {}. Postgres, pool of {POOL} connections; batches of {BATCH_EVENTS} events, each agent sending its batches one after another, all agents at once, over loopback HTTP/1.1 with the load generator in the same process. COPY (CSV) writes the raw rows those batches stored, in the same 1,000-row pieces, over {POOL} connections. The GraphQL side also writes the batch record, the per-minute and per-hour counters and the node's `lastSeenAt` in the same transaction.\n\n{table}",
            common::machine()
        ),
    );
    server.stop().await;
}
