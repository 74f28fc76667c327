use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
};

use serde_json::Value;

use testkit::{Backend, TestApp};

fn mailops(data_dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailops"))
        .args(args)
        .env("MAILOPS_DATA_DIR", data_dir)
        .env("MAILOPS_LOG_FORMAT", "json")
        .env_remove("DATABASE_URL")
        .env_remove("MAILOPS_MODE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mailops");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("mailops-cli-{}", uuid::Uuid::now_v7()))
}

#[tokio::test]
async fn the_cli_manages_users_and_migrations() {
    let dir = temp_dir();
    let added = mailops(
        &dir,
        &["user", "add", "Nina", "--role", "operator"],
        Some("nina's long password\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let weak = mailops(&dir, &["user", "add", "weak"], Some("short\n"));
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12"));

    let changed = mailops(
        &dir,
        &["user", "passwd", "nina"],
        Some("nina's new long password\n"),
    );
    assert!(
        changed.status.success(),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    let listed = mailops(&dir, &["user", "list"], None);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("nina") && listed.contains("operator"),
        "{listed}"
    );

    let status = mailops(&dir, &["migrate", "status"], None);
    let status = String::from_utf8(status.stdout).unwrap();
    assert!(
        status.lines().count() >= 2 && status.lines().all(|l| l.starts_with("Applied")),
        "{status}"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_mailops"))
        .env("MAILOPS_BIND", "nowhere")
        .env("MAILOPS_DATA_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8(bad.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("MAILOPS_BIND"));

    // The server on the same data finds the user the CLI made, with its new password.
    let data_dir = dir.clone();
    let app = TestApp::builder(Backend::Sqlite)
        .with_config(move |c| c.server.data_dir = data_dir)
        .spawn()
        .await;
    let login = app.login("nina", "nina's new long password").await;
    assert_eq!(login["user"]["role"], "OPERATOR");
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_before_exiting() {
    let dir = temp_dir();
    let mut server = Command::new(env!("CARGO_BIN_EXE_mailops"))
        .env("MAILOPS_BIND", "127.0.0.1:0")
        .env("MAILOPS_DATA_DIR", &dir)
        .env("MAILOPS_ADMIN_PASSWORD", testkit::ADMIN_PASSWORD)
        .env("MAILOPS_LOG_FORMAT", "json")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log goes to stderr.
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("mailops logs that it listens").unwrap();
        let entry: Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(address) = entry["fields"]["address"].as_str() {
            break address.to_string();
        }
    };
    let pid = server.id().to_string();
    let response = testkit::login_in_two_halves(address.parse().unwrap(), async {
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
    })
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("accessToken"), "{response}");
    let exit = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let _ = std::fs::remove_dir_all(dir);
}
