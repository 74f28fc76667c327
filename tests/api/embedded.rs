use std::collections::HashMap;

use mailops::{Application, Config};
use serde_json::json;

/// Starts and stops a server on `data_dir` with no other configuration than the port.
async fn start(
    data_dir: &std::path::Path,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let vars = HashMap::from([
        ("MAILOPS_BIND", "127.0.0.1:0".to_string()),
        ("MAILOPS_DATA_DIR", data_dir.display().to_string()),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let app = Application::build(config)
        .await
        .expect("starts with no configuration");
    let addr = app.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

#[tokio::test]
async fn embedded_mode_keeps_its_generated_secret_and_first_admin_across_restarts() {
    let dir = std::env::temp_dir().join(format!("mailops-embedded-{}", uuid::Uuid::now_v7()));
    let (addr, stop) = start(&dir).await;
    let secret_file = dir.join("jwt-secret");
    let secret = std::fs::read_to_string(&secret_file).expect("secret written");
    assert!(secret.len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(dir.join("mailops.db").exists());

    // The first admin exists, with a random password nobody here knows.
    let client = reqwest::Client::new();
    let body: serde_json::Value = client
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": "mutation { login(username: \"admin\", password: \"admin-password-for-tests\") { accessToken } }" }))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let _ = stop.send(());

    let (_, stop) = start(&dir).await;
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(dir);
}
