//! Database and Redis servers of a test's own, for tests that stop and restart them: the
//! shared ones on the standard ports are never touched.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free TCP port on loopback (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(port: u16, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let open = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if open == up {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "port {port} did not become {}",
        if up { "open" } else { "closed" }
    );
}

/// A `redis-server` of the test's own, keeping nothing on disk (as docker-compose runs it).
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        server.launch();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
        wait_for_port(self.port, true);
    }

    /// Kills it (SIGKILL) and waits until its port is closed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_for_port(self.port, false);
    }

    /// Kills it and starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A PostgreSQL cluster of the test's own (Debian's `pg_createcluster`), trusting
/// loopback connections, dropped with it.
pub struct PgCluster {
    pub port: u16,
    name: String,
    version: String,
}

fn pg(tool: &str, args: &[&str]) {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
    assert!(
        output.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PgCluster {
    pub fn create() -> PgCluster {
        let version = std::fs::read_dir("/etc/postgresql")
            .expect("Debian's PostgreSQL packages")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max()
            .expect("a PostgreSQL version");
        let port = free_port();
        let cluster = PgCluster {
            port,
            name: format!("mailops_test_{port}"),
            version,
        };
        // A cluster left by a test that was killed goes first.
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &cluster.version, &cluster.name])
            .output();
        pg(
            "pg_createcluster",
            &[
                &cluster.version,
                &cluster.name,
                "-p",
                &port.to_string(),
                "--",
                "--auth-host=trust",
                "--auth-local=trust",
            ],
        );
        cluster.ctl("start");
        wait_for_port(port, true);
        cluster
    }

    fn ctl(&self, action: &str) {
        let mut args = vec![
            "--skip-systemctl-redirect",
            &self.version,
            &self.name,
            action,
        ];
        if action != "start" {
            args.extend(["-m", "immediate"]);
        }
        pg("pg_ctlcluster", &args);
    }

    /// The URL of database `name` on it (created by [`PgCluster::create_database`]).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn create_database(&self, name: &str) {
        pg(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-c",
                &format!("CREATE DATABASE {name}"),
            ],
        );
    }

    /// Stops it at once, as a crash would.
    pub fn stop(&self) {
        self.ctl("stop");
        wait_for_port(self.port, false);
    }

    pub fn start(&self) {
        self.ctl("start");
        wait_for_port(self.port, true);
    }

    /// Restarts it at once (`-m immediate`): every connection is cut.
    pub fn restart(&self) {
        self.ctl("restart");
        wait_for_port(self.port, true);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .output();
    }
}

/// One `mailops` process on a fixed loopback port, started with the given variables (and
/// a data directory of its own), killed with SIGKILL and launched again at will.
pub struct MailopsProcess {
    pub port: u16,
    binary: std::path::PathBuf,
    vars: Vec<(String, String)>,
    pub data_dir: std::path::PathBuf,
    child: Option<Child>,
}

impl MailopsProcess {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_mailops")`) and waits until it
    /// listens.
    pub fn start(binary: &str, vars: &[(&str, String)]) -> MailopsProcess {
        let port = free_port();
        let mut process = MailopsProcess {
            port,
            binary: binary.into(),
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect(),
            data_dir: std::env::temp_dir().join(format!("mailops-process-{port}")),
            child: None,
        };
        process.launch();
        process
    }

    /// Starts it again (after [`kill`](Self::kill)) on the same port and data directory.
    pub fn launch(&mut self) {
        let child = Command::new(&self.binary)
            .envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("MAILOPS_BIND", format!("127.0.0.1:{}", self.port))
            .env("MAILOPS_DATA_DIR", &self.data_dir)
            .env("MAILOPS_ADMIN_PASSWORD", crate::ADMIN_PASSWORD)
            .env("MAILOPS_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mailops runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mailops did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/graphql", self.port)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for MailopsProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
