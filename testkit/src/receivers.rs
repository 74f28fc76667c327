//! Real receivers of notifications on loopback: an HTTP server that records what is
//! posted to it (and can answer an error for a while), and an SMTP server (Python's
//! aiosmtpd) that records the mail it takes.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use tokio::sync::Notify;

/// One request an [`HttpReceiver`] took.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
    /// When it arrived.
    pub received_at: std::time::SystemTime,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    arrived: Arc<Notify>,
}

/// An HTTP server on 127.0.0.1 that records every POST and answers `status()` (200 until
/// told otherwise).
pub struct HttpReceiver {
    pub addr: SocketAddr,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

async fn take(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (axum::http::StatusCode, &'static str) {
    let status = shared.status.load(Ordering::SeqCst);
    shared
        .received
        .lock()
        .expect("receiver lock")
        .push(Received {
            path: uri.path().to_string(),
            headers,
            body: body.to_vec(),
            status,
            received_at: std::time::SystemTime::now(),
        });
    shared.arrived.notify_waiters();
    let code = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    (code, if status < 300 { "ok" } else { "not now" })
}

impl HttpReceiver {
    pub async fn start() -> HttpReceiver {
        let shared = Shared {
            received: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            arrived: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/{*path}", post(take))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a receiver");
        let addr = listener.local_addr().expect("receiver address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpReceiver {
            addr,
            shared,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Everything taken so far, whatever was answered.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("receiver lock").clone()
    }

    /// What was taken with a 2xx answer: what counts as delivered.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits until `count` requests were delivered; panics after `within`.
    pub async fn wait_for_delivered(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.shared.arrived.notified();
            let delivered = self.delivered();
            if delivered.len() >= count {
                return delivered;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "waited {within:?} for {count} deliveries; got {}: {:?}",
                    delivered.len(),
                    delivered
                        .iter()
                        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The SMTP server: prints one JSON line per message it takes.
const SMTP_SERVER: &str = r#"
import asyncio, json, sys
from aiosmtpd.controller import Controller

class Record:
    async def handle_DATA(self, server, session, envelope):
        print(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                          "data": envelope.content.decode("utf8", "replace")}), flush=True)
        return "250 Message accepted for delivery"

controller = Controller(Record(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print(json.dumps({"ready": True}), flush=True)
try:
    sys.stdin.read()
finally:
    controller.stop()
"#;

/// One mail the [`SmtpReceiver`] took.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message: headers and body.
    pub data: String,
}

/// A real SMTP server (aiosmtpd) on 127.0.0.1.
pub struct SmtpReceiver {
    pub port: u16,
    child: Child,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpReceiver {
    pub fn start() -> SmtpReceiver {
        let port = crate::servers::free_port();
        let mut child = Command::new("python3")
            .args(["-c", SMTP_SERVER, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        let stdout = child.stdout.take().expect("the SMTP server's output");
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(
            ready.contains("ready"),
            "the SMTP server did not start: {ready}"
        );
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let sink = mails.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                sink.lock().expect("mail lock").push(Mail {
                    from: value["from"].as_str().unwrap_or_default().to_string(),
                    to: value["to"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                    data: value["data"].as_str().unwrap_or_default().to_string(),
                });
            }
        });
        SmtpReceiver { port, child, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("mail lock").clone()
    }

    /// Waits until `count` mails arrived; panics after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {within:?} for {count} mails; got {}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
