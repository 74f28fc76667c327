//! The GraphiQL page in a real browser: headless Chromium driven by
//! `tests/browser/graphiql.mjs`, with the page's scripts served by mailops from a local
//! directory and every other host refused.
//!
//! Needs Node.js and npm (the assets and playwright-core come from the npm registry) and
//! Chromium at /usr/bin/chromium or `MAILOPS_TEST_CHROMIUM`; `.ci/run` installs them.

use std::{
    path::{Path, PathBuf},
    process::Output,
    time::{Duration, Instant},
};

use tokio::process::Command;

use mailops::config::GraphiqlAssets;
use testkit::{ADMIN_PASSWORD, Backend, TestApp};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command to its end (or kills it after `timeout`) and panics unless it succeeds.
async fn run(what: &str, command: &mut Command, timeout: Duration) -> Output {
    let child = command
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .output();
    let output = tokio::time::timeout(timeout, child)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {timeout:?}"))
        .unwrap_or_else(|e| panic!("{what} could not start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    output
}

/// Removes the asset directory however the test ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_works_offline_in_a_real_browser() {
    let chromium =
        std::env::var("MAILOPS_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is not at {chromium}: install it (apt-get install chromium) or set MAILOPS_TEST_CHROMIUM"
    );
    run(
        "node --version",
        Command::new("node").arg("--version"),
        Duration::from_secs(30),
    )
    .await;

    let browser_dir = repo_root().join("tests/browser");
    if !browser_dir.join("node_modules").exists() {
        run(
            "npm ci in tests/browser",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&browser_dir),
            Duration::from_secs(300),
        )
        .await;
    }

    let assets = TempDir(std::env::temp_dir().join(format!(
        "mailops-graphiql-assets-{}",
        uuid::Uuid::now_v7().simple()
    )));
    run(
        "scripts/fetch-graphiql-assets.sh",
        Command::new("bash")
            .arg(repo_root().join("scripts/fetch-graphiql-assets.sh"))
            .arg(&assets.0)
            .current_dir(repo_root()),
        Duration::from_secs(300),
    )
    .await;

    let directory = assets.0.clone();
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(move |c| c.server.graphiql_assets = GraphiqlAssets::Directory(directory))
        .spawn()
        .await;
    let started = Instant::now();
    let output = run(
        "tests/browser/graphiql.mjs",
        Command::new("node")
            .arg(browser_dir.join("graphiql.mjs"))
            .arg(app.url(""))
            .env("MAILOPS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("MAILOPS_TEST_CHROMIUM", &chromium),
        Duration::from_secs(180),
    )
    .await;
    println!(
        "{}\nthe browser run took {:?}",
        String::from_utf8_lossy(&output.stdout),
        started.elapsed()
    );
}
