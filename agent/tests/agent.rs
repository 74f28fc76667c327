#![allow(clippy::unwrap_used)]

//! The agent end to end: the real `mailops-agent` binary against a real mailops server on
//! embedded SQLite and on Postgres with Redis.

use std::{
    collections::BTreeSet,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait as _, Statement};
use serde_json::{Value, json};
use testkit::{TestApp, on_both_backends};

const AGENT: &str = env!("CARGO_BIN_EXE_mailops-agent");
const HOSTNAME: &str = "mta1.example.com";

/// One `mailops-agent` process; its log (JSON, debug) goes to a file that outlives it.
struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    fn start(state_dir: &Path, args: &[&str]) -> Agent {
        let log = state_dir.with_extension(format!(
            "{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = Command::new(AGENT)
            .args(["--log-format", "json", "run", "--state-dir"])
            .arg(state_dir)
            .args(args)
            .env("MAILOPS_AGENT_LOG", "mailops_agent=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent {
            child: Some(child),
            log,
        }
    }

    fn signal(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling a child this test started and has not yet reaped.
            unsafe { libc::kill(child.id() as i32, signal) };
            child.wait().unwrap();
        }
    }

    /// The log lines with this message.
    fn logged(&self, message: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == message)
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

fn enroll(app: &TestApp, key: &str, state_dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(AGENT)
        .args(["enroll", "--server", &format!("http://{}", app.addr)])
        .args(["--enrollment-key", key, "--state-dir"])
        .arg(state_dir)
        .args(["--hostname", HOSTNAME, "--roles", "MTA,REDIS"])
        .args(extra)
        .output()
        .unwrap()
}

/// A fresh mailops and a node enrolled into it by the real binary with one sending IP:
/// the server, an admin's token, the temporary directory and the agent's state directory.
async fn enrolled(
    backend: testkit::Backend,
    ip: &str,
) -> (TestApp, String, tempfile::TempDir, PathBuf) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token().await;
    let key = app.enrollment_key(None).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = enroll(&app, &key, &state, &["--ip", ip]);
    assert!(output.status.success(), "{output:?}");
    (app, admin, dir, state)
}

async fn eventually<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

const NODE: &str = "query($h: String!) { node(hostname: $h) { id configVersion appliedConfigVersion
    configError latest { system { load1 memoryUsedPercent } redis { clients memoryUsedBytes } } } }";

async fn node_of(app: &TestApp, token: &str) -> Value {
    app.gql(Some(token), NODE, json!({ "h": HOSTNAME })).await["data"]["node"].clone()
}

on_both_backends! {
    async fn an_enrolled_agent_feeds_mailops_and_takes_paused_ips_out_of_its_pools(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.admin_token().await;
        let key = app.enrollment_key(None).await;
        // Another node's IPs never reach this node's files.
        app.register_node(&key, "other.example.com", &["198.51.100.7"]).await;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");

        let enrolled = enroll(&app, &key, &state, &["--ip", "192.0.2.10", "--ip", "192.0.2.11"]);
        assert!(enrolled.status.success(), "{}", String::from_utf8_lossy(&enrolled.stderr));
        let mode = std::fs::metadata(state.join("node.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let first_key = std::fs::read_to_string(state.join("node.key")).unwrap();
        // Enrolling again on this machine presents the key it has, and gets a new one.
        let again = enroll(&app, &key, &state, &["--ip", "192.0.2.10", "--ip", "192.0.2.11"]);
        assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
        assert_ne!(std::fs::read_to_string(state.join("node.key")).unwrap(), first_key);
        // Without that key the hostname is refused, with mailops's reason.
        let stranger = enroll(&app, &key, &dir.path().join("elsewhere"), &["--ip", "192.0.2.12"]);
        assert!(!stranger.status.success());
        assert!(String::from_utf8_lossy(&stranger.stderr).contains("CONFLICT"));

        let pool_file = dir.path().join("ips.json");
        let zonemta = dir.path().join("pools.toml");
        let reloads = dir.path().join("reloads");
        let reload = format!("echo $MAILOPS_CONFIG_VERSION >> {}", reloads.display());
        let mut agent = Agent::start(&state, &[
            "--push-interval", "1s",
            "--pool-file", pool_file.to_str().unwrap(),
            "--zonemta-pools-file", zonemta.to_str().unwrap(),
            "--reload-command", &reload,
            "--redis", &std::env::var("MAILOPS_TEST_REDIS").unwrap_or("redis://127.0.0.1:6379".into()),
        ]);

        // System and Redis metrics arrive.
        let latest = eventually("system and Redis metrics", Duration::from_secs(20), async || {
            let node = node_of(&app, &admin).await;
            let latest = node["latest"].clone();
            (latest["system"]["load1"].is_number() && latest["redis"]["clients"].as_f64() >= Some(1.0))
                .then_some(latest)
        })
        .await;
        assert!(latest["system"]["memoryUsedPercent"].as_f64().unwrap() > 0.0);
        assert!(latest["redis"]["memoryUsedBytes"].as_f64().unwrap() > 0.0);

        // The pool file lists this node's IPs, all ACTIVE; the reload ran; mailops knows.
        let applied = eventually("the first configuration applied", Duration::from_secs(10), async || {
            let node = node_of(&app, &admin).await;
            (node["appliedConfigVersion"].is_string()
                && node["appliedConfigVersion"] == node["configVersion"])
                .then_some(node)
        })
        .await;
        let ips = read_json(&pool_file).unwrap();
        assert_eq!(ips["version"], applied["configVersion"]);
        assert_eq!(ips["ips"], json!([
            { "address": "192.0.2.10", "status": "ACTIVE", "pool": null },
            { "address": "192.0.2.11", "status": "ACTIVE", "pool": null },
        ]));
        assert!(std::fs::read_to_string(&reloads).unwrap().contains(applied["configVersion"].as_str().unwrap()));

        // An operator pauses one IP: within seconds it is out of ZoneMTA's pools.
        let paused_at = Instant::now();
        let body = app
            .gql(Some(&admin), "mutation { bulkIpAction(input: { addresses: [\"192.0.2.11\"], action: PAUSE }) { changed } }", json!({}))
            .await;
        assert_eq!(body["data"]["bulkIpAction"]["changed"], 1, "{body}");
        let ips = eventually("the pause in the pool file", Duration::from_secs(5), async || {
            read_json(&pool_file).filter(|ips| ips["ips"][1]["status"] == "PAUSED")
        })
        .await;
        let reached = paused_at.elapsed();
        let pools = std::fs::read_to_string(&zonemta).unwrap();
        assert!(pools.contains("192.0.2.10") && !pools.contains("192.0.2.11"), "{pools}");
        let node = eventually("appliedConfigVersion to follow", Duration::from_secs(5), async || {
            let node = node_of(&app, &admin).await;
            (node["appliedConfigVersion"] == ips["version"]).then_some(node)
        })
        .await;
        assert_eq!(node["configVersion"], ips["version"]);
        assert!(std::fs::read_to_string(&reloads).unwrap().contains(ips["version"].as_str().unwrap()));
        assert!(!std::fs::read_to_string(&pool_file).unwrap().contains("198.51.100.7"));
        eprintln!("the pause reached the pool file in {reached:?}");
        agent.signal(libc::SIGTERM);
        assert!(!agent.logged("mailops-agent started").is_empty());
    }
}

on_both_backends! {
    async fn a_failing_reload_is_reported_retried_and_cleared(backend) {
        let (app, admin, dir, state) = enrolled(backend, "192.0.2.20").await;
        let broken = dir.path().join("broken");
        std::fs::write(&broken, "").unwrap();
        // The reload fails while the file `broken` exists.
        let reload = format!("if [ -e {0} ]; then echo 'zone-mta: config test failed' >&2; exit 1; fi", broken.display());
        let mut agent = Agent::start(&state, &[
            "--push-interval", "1s",
            "--pool-file", dir.path().join("ips.json").to_str().unwrap(),
            "--reload-command", &reload,
        ]);
        let node = eventually("the failure reported", Duration::from_secs(10), async || {
            let node = node_of(&app, &admin).await;
            node["configError"].is_string().then_some(node)
        })
        .await;
        assert!(node["configError"].as_str().unwrap().contains("zone-mta: config test failed"), "{node}");
        assert!(node["appliedConfigVersion"].is_null());
        std::fs::remove_file(&broken).unwrap();
        // Retried with backoff (5 s at first) until it works.
        eventually("the retry to succeed", Duration::from_secs(20), async || {
            let node = node_of(&app, &admin).await;
            (node["configError"].is_null() && node["appliedConfigVersion"] == node["configVersion"]).then_some(())
        })
        .await;
        agent.signal(libc::SIGTERM);
    }
}

/// (batch id, sample timestamp in ms) of every `system.load1` sample stored for the node,
/// and how many metric batches are stored for it.
async fn stored(app: &TestApp, node_id: &str) -> (BTreeSet<String>, Vec<i64>) {
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let id = uuid::Uuid::parse_str(node_id).unwrap();
    let node_param = match backend {
        sea_orm::DatabaseBackend::Postgres => "$1",
        _ => "?",
    };
    let batches = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!("SELECT batch_id FROM metric_batches WHERE node_id = {node_param}"),
            [id.into()],
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get::<String>("", "batch_id").unwrap())
        .collect();
    let mut times: Vec<i64> = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT s.ts AS ts FROM metric_samples s JOIN metric_series r ON r.id = s.series_id
                 WHERE r.node_id = {node_param} AND r.name = 'system.load1'"
            ),
            [id.into()],
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get::<i64>("", "ts").unwrap())
        .collect();
    times.sort_unstable();
    (batches, times)
}

fn spooled_files(state: &Path) -> usize {
    std::fs::read_dir(state.join("spool"))
        .map(|dir| {
            dir.filter(|e| {
                let name = e
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                name.ends_with(".json") && name != "counters.json"
            })
            .count()
        })
        .unwrap_or(0)
}

on_both_backends! {
    async fn nothing_collected_is_lost_or_doubled_while_mailops_is_away_or_the_agent_is_killed(backend) {
        let (mut app, _admin, _dir, state) = enrolled(backend, "192.0.2.30").await;
        let node_id = serde_json::from_str::<Value>(&std::fs::read_to_string(state.join("node.json")).unwrap())
            .unwrap()["id"].as_str().unwrap().to_string();
        let mut first = Agent::start(&state, &["--push-interval", "1s"]);
        eventually("three batches stored", Duration::from_secs(20), async || {
            (stored(&app, &node_id).await.0.len() >= 3).then_some(())
        })
        .await;

        // mailops away for 30 s; the agent keeps collecting into its spool.
        let away_from = chrono::Utc::now().timestamp_millis();
        app.stop_for(Duration::from_secs(30)).await;
        let away_until = chrono::Utc::now().timestamp_millis();
        // Killed while it sends the backlog: once the first spooled batch is gone.
        let backlog = spooled_files(&state);
        let deadline = Instant::now() + Duration::from_secs(60);
        while spooled_files(&state) >= backlog {
            assert!(Instant::now() < deadline, "the agent did not send its backlog");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        first.signal(libc::SIGKILL);
        let left = spooled_files(&state);
        let mut second = Agent::start(&state, &["--push-interval", "1s"]);
        eventually("the spool drained", Duration::from_secs(60), async || {
            (spooled_files(&state) == 0).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        second.signal(libc::SIGTERM);

        let (batches, times) = stored(&app, &node_id).await;
        let spooled: BTreeSet<String> = first
            .logged("batch spooled")
            .into_iter()
            .chain(second.logged("batch spooled"))
            .map(|line| line["fields"]["batch_id"].as_str().unwrap().to_string())
            .collect();
        // Every batch spooled is stored, once: one load1 sample per batch, no time twice.
        assert!(spooled.is_subset(&batches), "lost: {:?}", spooled.difference(&batches).collect::<Vec<_>>());
        assert_eq!(times.len(), batches.len(), "a batch stored a sample twice or none");
        let distinct: BTreeSet<i64> = times.iter().copied().collect();
        assert_eq!(distinct.len(), times.len(), "a sample was stored twice");
        // Every second of the outage was collected and arrived.
        let during: Vec<i64> = times.iter().copied().filter(|t| (away_from..away_until).contains(t)).collect();
        let outage_seconds = (away_until - away_from) / 1000;
        assert!(during.len() as i64 >= outage_seconds - 1, "{} samples in a {outage_seconds} s outage", during.len());
        // No gap anywhere but the restart of the agent itself.
        let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(widest <= 3_000, "a gap of {widest} ms between samples");
        eprintln!(
            "{} batches stored; {} collected during the {outage_seconds} s outage; \
             {left} of {backlog} still spooled at the kill",
            batches.len(),
            during.len()
        );
    }
}

on_both_backends! {
    async fn the_agent_scrapes_node_exporter_through_the_exporter_mapping(backend) {
        let (app, admin, _dir, state) = enrolled(backend, "192.0.2.60").await;
        let port = testkit::servers::free_port();
        let mut exporter = Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's prometheus-node-exporter is installed (.ci/run installs it)");
        let url = format!("http://127.0.0.1:{port}/metrics");
        let mut agent = Agent::start(&state, &["--push-interval", "1s", "--no-system", "--scrape", &url]);

        // Mapped names, and CPU use derived from two scrapes.
        let latest = eventually("node_exporter's metrics", Duration::from_secs(30), async || {
            let latest = node_of(&app, &admin).await["latest"]["system"].clone();
            latest["load1"].is_number().then_some(latest)
        })
        .await;
        assert!(latest["memoryUsedPercent"].as_f64().unwrap() > 0.0, "{latest}");
        let query = "{ metrics(names: [\"system.cpu.used_percent\", \"node_memory_memfree_bytes\"], range: H1) { series { name } } }";
        eventually("the derived CPU figure and a kept series", Duration::from_secs(20), async || {
            let body = app.gql(Some(&admin), query, json!({})).await;
            let names: BTreeSet<String> = body["data"]["metrics"]["series"].as_array()?
                .iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
            (names.len() == 2).then_some(())
        })
        .await;
        agent.signal(libc::SIGTERM);
        let _ = exporter.kill();
        let _ = exporter.wait();
    }
}

/// Debian's rspamd on its default ports (11333 scanner, 11334 controller), started here
/// unless one already listens.
struct Rspamd(Option<Child>);

impl Rspamd {
    fn start() -> Rspamd {
        if std::net::TcpStream::connect("127.0.0.1:11334").is_ok() {
            return Rspamd(None);
        }
        for dir in ["/run/rspamd", "/var/lib/rspamd", "/var/log/rspamd"] {
            let _ = std::fs::create_dir_all(dir);
        }
        let child = Command::new("rspamd")
            .args(["-f", "-i", "-u", "root", "-g", "root"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's rspamd is installed (.ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect("127.0.0.1:11333").is_err()
            || std::net::TcpStream::connect("127.0.0.1:11334").is_err()
        {
            assert!(Instant::now() < deadline, "rspamd did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        Rspamd(Some(child))
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            // SIGTERM: the main process stops its workers (SIGKILL would orphan them).
            // SAFETY: signalling a child this test started and has not yet reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reads_a_real_rspamd_controller() {
    let _rspamd = Rspamd::start();
    let client = reqwest::Client::new();
    let before: Value = client
        .get("http://127.0.0.1:11334/stat")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = "From: a@example.com\r\nTo: b@example.org\r\nSubject: hello\r\nMessage-ID: <1@example.com>\r\n\r\nhello\r\n";
    for _ in 0..3 {
        let scanned = client
            .post("http://127.0.0.1:11333/checkv2")
            .body(message)
            .send()
            .await
            .unwrap();
        assert!(scanned.status().is_success());
    }
    let scanned = before["scanned"].as_f64().unwrap() + 3.0;

    let (app, admin, _dir, state) = enrolled(testkit::Backend::Postgres, "192.0.2.70").await;
    let mut agent = Agent::start(
        &state,
        &[
            "--push-interval",
            "1s",
            "--no-system",
            "--rspamd",
            "http://127.0.0.1:11334",
        ],
    );
    let query = "{ metrics(names: [\"rspamd.scanned\", \"rspamd.latency_ms\", \"rspamd.actions\"], range: H1, aggregate: MAX) {
        series { name labels { key value } points { value } } } }";
    let series = eventually(
        "Rspamd's counters in mailops",
        Duration::from_secs(20),
        async || {
            let body = app.gql(Some(&admin), query, json!({})).await;
            let series = body["data"]["metrics"]["series"].as_array()?.clone();
            (series.iter().any(|s| s["name"] == "rspamd.scanned")
                && series.iter().any(|s| s["name"] == "rspamd.latency_ms"))
            .then_some(series)
        },
    )
    .await;
    let last = |s: &Value| {
        s["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["value"].as_f64())
            .next_back()
            .unwrap()
    };
    let stored = series
        .iter()
        .find(|s| s["name"] == "rspamd.scanned")
        .unwrap();
    assert!(last(stored) >= scanned, "{stored}");
    assert!(series.iter().any(|s| s["name"] == "rspamd.actions"
        && s["labels"][0]["key"] == "action"
        && s["labels"][0]["value"] == "no action"));
    agent.signal(libc::SIGTERM);
}

on_both_backends! {
    async fn mail_events_posted_to_the_agent_reach_mailops_once_even_while_it_is_away(backend) {
        let (mut app, admin, _dir, state) = enrolled(backend, "192.0.2.80").await;
        let port = testkit::servers::free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut agent = Agent::start(&state, &["--push-interval", "1s", "--no-system", "--events-listen", &listen]);
        let events_url = format!("http://{listen}/events");
        let client = reqwest::Client::new();
        let post = |body: Value| {
            let (client, url) = (client.clone(), events_url.clone());
            async move {
                let response = client.post(&url).json(&body).send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            }
        };
        let event = |i: usize, status: &str| json!({
            "messageId": format!("q{i}"), "status": status, "sendingIp": "192.0.2.80",
            "recipientDomain": "gmail.com", "zone": "default", "smtpCode": 250,
            "response": "250 2.0.0 OK", "ts": chrono::Utc::now().to_rfc3339(),
        });
        eventually("the events endpoint", Duration::from_secs(10), async || {
            client.post(&events_url).body("[]").send().await.ok().map(|_| ())
        })
        .await;
        // Refused whole, with the reason: nothing of it is kept.
        let (status, said) = post(json!([event(0, "DELIVERED"), { "messageId": "x", "status": "LOST" }])).await;
        assert_eq!(status, 400);
        assert!(said.contains("events[1]: status"), "{said}");
        assert_eq!(post(json!([event(1, "QUEUED"), event(1, "DELIVERED")])).await.0, 202);

        // mailops away for 5 s: events posted meanwhile are kept and sent when it returns.
        let during = async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let mut accepted = 0;
            for i in 2..12 {
                let (status, said) = post(json!([event(i, "QUEUED"), event(i, "DEFERRED")])).await;
                assert_eq!(status, 202, "{said}");
                accepted += 2;
            }
            accepted
        };
        let ((), accepted) = tokio::join!(app.stop_for(Duration::from_secs(5)), during);
        let expected = 2 + accepted;
        let count = "{ mailEvents(first: 1) { totalCount } }";
        eventually("every accepted event stored", Duration::from_secs(60), async || {
            let body = app.gql(Some(&admin), count, json!({})).await;
            (body["data"]["mailEvents"]["totalCount"] == expected).then_some(())
        })
        .await;
        // And only once: nothing more arrives.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let body = app.gql(Some(&admin), count, json!({})).await;
        assert_eq!(body["data"]["mailEvents"]["totalCount"], expected, "{body}");
        agent.signal(libc::SIGTERM);
    }
}

on_both_backends! {
    async fn zonemta_delivery_log_datagrams_become_mail_events(backend) {
        let (app, admin, _dir, state) = enrolled(backend, "192.0.2.90").await;
        let listen = {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        let mut agent = Agent::start(&state, &["--push-interval", "1s", "--no-system", "--zonemta-log-listen", &listen.to_string()]);
        // Entries as ZoneMTA sends them (@zone-eu/wild-plugins' remotelog: one msgpack map
        // per datagram), with the fields lib/sender.js and lib/mail-drop.js log.
        let common = |action: &str, seq: &str, response: &str| json!({
            "id": "18c2d5e0a2b0004f2a", "seq": seq, "action": action, "zone": "default",
            "from": "news@example.com", "returnPath": "news@example.com", "to": format!("user{seq}@outlook.com"),
            "mx": "example-com.mail.protection.outlook.com", "host": "52.101.1.1", "ip": "192.0.2.90",
            "response": response, "size": 2048, "timer": 350, "start": 1733565600000u64,
            "messageId": "<42@example.com>", "protocol": "smtp",
        });
        let entries = [
            json!({ "id": "18c2d5e0a2b0004f2a", "action": "QUEUED", "from": "news@example.com", "to": "user001@outlook.com,user002@outlook.com", "body": 2048 }),
            common("ACCEPTED", "001", "250 2.6.0 <42@example.com> Queued mail for delivery"),
            common("DEFERRED", "002", "451 4.7.650 The mail server [192.0.2.90] has been temporarily rate limited due to IP reputation."),
            common("REJECTED", "002", "550 5.7.1 Service unavailable, Client host [192.0.2.90] blocked using Spamhaus."),
            json!({ "id": "18c2d5e0a2b0004f2a", "action": "SPAMCHECK", "score": 1.2, "tests": "NONE" }),
        ];
        // The agent binds its socket before its first collection: once that arrived, it listens.
        let spool_metric = "{ metrics(names: [\"agent.spool.batches\"], range: H1) { series { name } } }";
        eventually("the agent's first batch", Duration::from_secs(20), async || {
            let body = app.gql(Some(&admin), spool_metric, json!({})).await;
            (!body["data"]["metrics"]["series"].as_array()?.is_empty()).then_some(())
        })
        .await;
        let sender = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for entry in &entries {
            sender.send_to(&rmp_serde::to_vec(entry).unwrap(), listen).await.unwrap();
        }
        let query = "{ mailEvents(first: 10) { totalCount edges { node { status sendingIp recipientDomain smtpCode } } } }";
        eventually("the log entries as mail events", Duration::from_secs(20), async || {
            let body = app.gql(Some(&admin), query, json!({})).await;
            (body["data"]["mailEvents"]["totalCount"].as_i64() >= Some(4)).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let events = app.gql(Some(&admin), query, json!({})).await["data"]["mailEvents"].clone();
        assert_eq!(events["totalCount"], 4, "{events}");
        let statuses: BTreeSet<String> = events["edges"].as_array().unwrap().iter()
            .map(|e| e["node"]["status"].as_str().unwrap().to_string()).collect();
        assert_eq!(statuses, ["BOUNCED", "DEFERRED", "DELIVERED", "QUEUED"].map(String::from).into());
        let bounced = events["edges"].as_array().unwrap().iter().find(|e| e["node"]["status"] == "BOUNCED").unwrap();
        assert_eq!(bounced["node"]["smtpCode"], 550);
        assert_eq!(bounced["node"]["sendingIp"], "192.0.2.90");
        assert_eq!(bounced["node"]["recipientDomain"], "outlook.com");
        agent.signal(libc::SIGTERM);
    }
}

/// The npm packages of tests/mta (Haraka, zonemta-delivery-counters): `npm ci --prefix tests/mta`.
fn mta_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/mta");
    assert!(
        dir.join("node_modules").is_dir(),
        "run `npm ci --prefix tests/mta` (.ci/run does)"
    );
    dir
}

/// The series of these names in mailops, as (name, zone) → last value.
async fn last_by_zone(
    app: &TestApp,
    token: &str,
    names: &[&str],
) -> std::collections::BTreeMap<(String, String), f64> {
    let query = "query($n: [String!]!) { metrics(names: $n, range: H1, aggregate: MAX) {
        series { name labels { key value } points { value } } } }";
    let body = app.gql(Some(token), query, json!({ "n": names })).await;
    let mut last = std::collections::BTreeMap::new();
    for series in body["data"]["metrics"]["series"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let zone = series["labels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["key"] == "zone")
            .map(|l| l["value"].as_str().unwrap().to_string())
            .unwrap_or_default();
        if let Some(value) = series["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["value"].as_f64())
            .next_back()
        {
            last.insert((series["name"].as_str().unwrap().to_string(), zone), value);
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reads_zonemta_queues_from_its_api_and_deliveries_from_its_redis_counters() {
    // ZoneMTA's API needs MongoDB, which cannot run here: this server answers its two routes
    // as lib/api-server.js does (`/counter/:type/:zone` names the type "all", as ZoneMTA does).
    let zones = axum::Router::new()
        .route(
            "/zones",
            axum::routing::get(|| async {
                axum::Json(json!([{ "name": "bulk" }, { "name": "default" }]))
            }),
        )
        .route(
            "/counter/zone/{zone}",
            axum::routing::get(
                |axum::extract::Path(zone): axum::extract::Path<String>| async move {
                    let (active, deferred) = if zone == "bulk" { (7, 2) } else { (3, 11) };
                    axum::Json(json!({ "zone": "all", "active": active, "deferred": deferred }))
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, zones).await });

    // The real plugin counts five released messages into the shared Redis, under a prefix
    // of this test's own.
    let prefix = format!("mailopstest{}", std::process::id());
    let counted = Command::new("node")
        .current_dir(mta_dir())
        .args(["zonemta-counters.js", "redis://127.0.0.1:6379", &prefix])
        .args([
            "default:delivered:gmail.com",
            "default:delivered:outlook.com",
            "default:delivered:gmail.com",
            "default:bounced:yahoo.com",
            "bulk:delivered:gmail.com",
        ])
        .output()
        .unwrap();
    assert!(counted.status.success(), "{counted:?}");

    let (app, admin, _dir, state) = enrolled(testkit::Backend::Postgres, "192.0.2.96").await;
    let mut agent = Agent::start(
        &state,
        &[
            "--push-interval",
            "1s",
            "--no-system",
            "--zonemta-api",
            &api,
            "--zonemta-counters-redis",
            "redis://127.0.0.1:6379",
            "--zonemta-counters-prefix",
            &prefix,
        ],
    );
    let names = [
        "zonemta.queue.active",
        "zonemta.queue.deferred",
        "zonemta.delivered",
        "zonemta.bounced",
    ];
    let got = eventually(
        "ZoneMTA's figures in mailops",
        Duration::from_secs(20),
        async || {
            let last = last_by_zone(&app, &admin, &names).await;
            (last.len() == 7).then_some(last)
        },
    )
    .await;
    let key = |name: &str, zone: &str| (name.to_string(), zone.to_string());
    assert_eq!(got[&key("zonemta.queue.active", "bulk")], 7.0);
    assert_eq!(got[&key("zonemta.queue.deferred", "default")], 11.0);
    assert_eq!(got[&key("zonemta.delivered", "default")], 2.0 + 1.0);
    assert_eq!(got[&key("zonemta.delivered", "bulk")], 1.0);
    assert_eq!(got[&key("zonemta.bounced", "default")], 1.0);
    // The plugin's totals without a zone and its per-day keys are not zones.
    assert!(
        got.keys()
            .all(|(_, zone)| zone == "bulk" || zone == "default"),
        "{got:?}"
    );
    agent.signal(libc::SIGTERM);
    server.abort();

    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}_*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut connection)
        .await
        .unwrap();
}

/// A receiving MX (aiosmtpd) that takes most recipients, refuses `unknown@…` for good and
/// `slow@…` for now, with the texts Gmail documents for those cases.
const RECEIVING_MX: &str = r#"
import sys
from aiosmtpd.controller import Controller

class Mx:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local == "unknown":
            return "550 5.1.1 The email account that you tried to reach does not exist."
        if local == "slow":
            return "421 4.7.28 Our system has detected an unusual rate of unsolicited mail."
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 OK queued"

controller = Controller(Mx(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
try:
    sys.stdin.read()
finally:
    controller.stop()
"#;

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harakas_delivery_results_reach_mailops_through_the_shipped_plugin_and_the_agent() {
    let (app, admin, dir, state) = enrolled(testkit::Backend::Postgres, "192.0.2.95").await;
    let events_port = testkit::servers::free_port();
    let mut agent = Agent::start(
        &state,
        &[
            "--push-interval",
            "1s",
            "--no-system",
            "--events-listen",
            &format!("127.0.0.1:{events_port}"),
        ],
    );

    let mx_port = testkit::servers::free_port();
    let mut mx = Command::new("python3")
        .args(["-c", RECEIVING_MX, &mx_port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 with aiosmtpd");
    let _mx_stdin = mx.stdin.take();
    let _mx = Running(mx);
    wait_for_port(mx_port, "the receiving MX");

    // A Haraka of its own: `haraka -i` lays out its default configuration, then the shipped
    // plugin and its settings go in as the README says, with a plugin of the test's that
    // lets loopback relay and sends every domain to the receiving MX.
    let mta = mta_dir();
    let haraka_bin = mta.join("node_modules/.bin/haraka");
    let haraka = dir.path().join("haraka");
    let installed = Command::new(&haraka_bin)
        .arg("-i")
        .arg(&haraka)
        .output()
        .unwrap();
    assert!(installed.status.success(), "{installed:?}");
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haraka");
    std::fs::copy(deploy.join("mailops.js"), haraka.join("plugins/mailops.js")).unwrap();
    let ini = std::fs::read_to_string(deploy.join("mailops.ini"))
        .unwrap()
        .replace("127.0.0.1:9725", &format!("127.0.0.1:{events_port}"))
        .replace(";sending_ip=192.0.2.10", "sending_ip=192.0.2.95")
        .replace(";zone=default", "zone=haraka");
    std::fs::write(haraka.join("config/mailops.ini"), ini).unwrap();
    std::fs::write(
        haraka.join("plugins/loopback_mx.js"),
        format!(
            "exports.hook_connect = (next, connection) => {{ connection.relaying = true; next() }}\n\
             exports.hook_rcpt = (next) => next(OK)\n\
             exports.hook_get_mx = (next, hmail, domain) => next(OK, {{ exchange: '127.0.0.1', port: {mx_port} }})\n"
        ),
    )
    .unwrap();
    std::fs::write(haraka.join("config/plugins"), "loopback_mx\nmailops\n").unwrap();
    let smtp_port = testkit::servers::free_port();
    std::fs::write(
        haraka.join("config/smtp.ini"),
        format!("[main]\nlisten=127.0.0.1:{smtp_port}\nnodes=0\n"),
    )
    .unwrap();
    let _haraka = Running(
        Command::new(&haraka_bin)
            .arg("-c")
            .arg(&haraka)
            .stdout(std::fs::File::create(dir.path().join("haraka.log")).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_for_port(smtp_port, "Haraka");

    let sent = Command::new("python3")
        .args([
            "-c",
            "import smtplib, sys\n\
             for to in sys.argv[2:]:\n\
             \x20   s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))\n\
             \x20   s.sendmail('news@bounces.example', [to], 'Subject: hello\\r\\n\\r\\nhello\\r\\n')\n\
             \x20   s.quit()\n",
            &smtp_port.to_string(),
            "good@example.net",
            "unknown@example.org",
            "slow@example.com",
        ])
        .output()
        .unwrap();
    assert!(sent.status.success(), "{sent:?}");

    // Three results, and Haraka's bounce message to the sender, which it delivers too.
    let query = "{ mailEvents(first: 10) { totalCount edges { node { status sendingIp recipientDomain zone smtpCode response } } } }";
    eventually(
        "Haraka's results as mail events",
        Duration::from_secs(30),
        async || {
            let body = app.gql(Some(&admin), query, json!({})).await;
            (body["data"]["mailEvents"]["totalCount"].as_i64() >= Some(4)).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = app.gql(Some(&admin), query, json!({})).await["data"]["mailEvents"].clone();
    assert_eq!(events["totalCount"], 4, "each once: {events}");
    let by_domain = |domain: &str| {
        events["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["node"])
            .find(|n| n["recipientDomain"] == domain)
            .unwrap_or_else(|| panic!("{domain}: {events}"))
            .clone()
    };
    let delivered = by_domain("example.net");
    assert_eq!(delivered["status"], "DELIVERED");
    assert_eq!(delivered["smtpCode"], 250);
    assert_eq!(delivered["sendingIp"], "192.0.2.95");
    assert_eq!(delivered["zone"], "haraka");
    let bounced = by_domain("example.org");
    assert_eq!(bounced["status"], "BOUNCED");
    assert_eq!(bounced["smtpCode"], 550);
    assert!(
        bounced["response"]
            .as_str()
            .unwrap()
            .starts_with("5.1.1 The email account"),
        "{bounced}"
    );
    let deferred = by_domain("example.com");
    assert_eq!(deferred["status"], "DEFERRED");
    assert_eq!(deferred["smtpCode"], 421);
    assert!(
        deferred["response"].as_str().unwrap().contains("4.7.28"),
        "{deferred}"
    );
    assert_eq!(by_domain("bounces.example")["status"], "DELIVERED");
    agent.signal(libc::SIGTERM);
}
