//! `mailops-agent run`: collect every push interval into the spool, deliver the spool,
//! follow the configuration, report with a heartbeat; stop cleanly on SIGTERM or SIGINT
//! (everything unsent stays spooled for the next start).

use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use tokio::sync::watch;

use crate::{
    apply::Applier,
    client::{Client, graphql_endpoint},
    collect::Collectors,
    control::Control,
    enroll::{node_key, saved_server},
    send::deliver,
    settings::Settings,
    spool::{Batch, Spool},
};

/// The most samples of one batch (`ingestMetrics` takes 10,000).
pub const MAX_BATCH_SAMPLES: usize = 10_000;

/// The push interval when neither a flag nor mailops gives one.
pub const DEFAULT_PUSH_INTERVAL: Duration = Duration::from_secs(15);

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let settings = settings.checked()?;
    let dir = &settings.state_dir;
    let key = node_key(dir)?.with_context(|| {
        format!(
            "no node key in {}: enroll this node first (mailops-agent enroll --state-dir {} …)",
            dir.display(),
            dir.display()
        )
    })?;
    let server = settings
        .server
        .clone()
        .or_else(|| saved_server(dir))
        .context("no --server given and none saved by enroll")?;
    let client = Client::new(graphql_endpoint(&server)?, format!("ApiKey {key}"))?;
    let spool = Spool::open(
        &dir.join("spool"),
        settings.spool_max_bytes,
        settings.spool_max_age,
    )?;
    let mut collectors = Collectors::new(&settings.sources())?;
    let control = Control::new(
        client.clone(),
        Applier {
            pool_file: settings.pool_file.clone(),
            zonemta_pools_file: settings.zonemta_pools_file.clone(),
            reload_command: settings.reload_command.clone(),
        },
    );
    let mut server_interval = control.push_interval.subscribe();
    let level = spool.level();
    tracing::info!(
        server = client.endpoint(),
        spooled = level.batches,
        version = crate::VERSION,
        "mailops-agent started"
    );

    // Bound before anything runs, so a taken address stops the agent with a clear error.
    let events_listener = match settings.events_listen {
        Some(address) => Some(crate::events::bind(address).await?),
        None => None,
    };
    let zonemta_log = match settings.zonemta_log_listen {
        Some(address) => Some(crate::zonemta_log::bind(address).await?),
        None => None,
    };
    let (stop, stopped) = watch::channel(false);
    if let Some(socket) = zonemta_log {
        tokio::spawn(crate::zonemta_log::receive(
            socket,
            spool.clone(),
            stopped.clone(),
        ));
    }
    if let Some(listener) = events_listener {
        let (spool, stopped) = (spool.clone(), stopped.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::events::serve(listener, spool, stopped).await {
                tracing::error!(error = format!("{e:#}"), "the events endpoint stopped");
            }
        });
    }
    let sender = tokio::spawn(deliver(spool.clone(), client.clone(), stopped.clone()));
    let follower = tokio::spawn(control.clone().follow(stopped.clone()));

    // CPU use is measured between two readings; the first needs one to compare with.
    tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL).await;
    let mut next = tokio::time::Instant::now();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = &mut signal => break,
        }
        let mut samples = collectors.collect().await;
        samples.extend(spool.samples(Utc::now()));
        // mailops takes at most MAX_BATCH_SAMPLES per batch: many exporters make several.
        for chunk in samples.chunks(MAX_BATCH_SAMPLES) {
            let batch = Batch::new(chunk.to_vec());
            // When the disk is full or gone the collection cannot be kept, and the log says so.
            match spool.push(&batch) {
                Ok(()) => {
                    tracing::debug!(batch_id = %batch.batch_id, samples = batch.samples.len(), "batch spooled")
                }
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "a batch could not be spooled and is lost"
                ),
            }
        }
        tokio::spawn({
            let control = control.clone();
            async move { control.report().await }
        });
        let interval = settings
            .push_interval
            .or(*server_interval.borrow_and_update())
            .unwrap_or(DEFAULT_PUSH_INTERVAL);
        next += interval;
        let now = tokio::time::Instant::now();
        if next < now {
            // A collection that took longer than the interval: start again from now.
            next = now;
        }
    }
    tracing::info!(
        spooled = spool.level().batches,
        "stopping; unsent batches stay spooled"
    );
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = sender.await;
        let _ = follower.await;
    })
    .await;
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// `mailops-agent check`: one collection, printed as JSON.
pub async fn check(sources: crate::collect::Sources) -> anyhow::Result<()> {
    if let Some(url) = &sources.redis {
        let client = redis::Client::open(url.as_str()).with_context(|| format!("--redis {url}"))?;
        crate::collect::read_info(&client)
            .await
            .with_context(|| format!("--redis {url}: INFO failed"))?;
    }
    if let Some(url) = &sources.rspamd {
        crate::collect::RspamdStat::new(url, sources.rspamd_password.clone())?
            .collect(Utc::now())
            .await
            .with_context(|| format!("--rspamd {url}: /stat failed"))?;
    }
    if let Some(url) = &sources.zonemta_api {
        crate::collect::ZoneMtaApi::new(url)?
            .collect(Utc::now())
            .await
            .with_context(|| format!("--zonemta-api {url}"))?;
    }
    if let Some(url) = &sources.zonemta_counters_redis {
        crate::collect::ZoneMtaCounters::new(url, sources.zonemta_counters_prefix.as_deref())?
            .collect(Utc::now())
            .await
            .with_context(|| format!("--zonemta-counters-redis {url}"))?;
    }
    let mut collectors = Collectors::new(&sources)?;
    tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL).await;
    let samples = collectors.collect().await;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "samples": samples }))?
    );
    Ok(())
}
