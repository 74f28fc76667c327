//! A TCP proxy in front of the test Redis that can be cut, so a test sees mailops lose
//! Redis and get it back without touching the shared server.

fn upstream_addr() -> String {
    crate::redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string()
}

/// Forwards to the test Redis until [`RedisProxy::set_down`] cuts it.
pub struct RedisProxy {
    pub addr: std::net::SocketAddr,
    down: tokio::sync::watch::Sender<bool>,
}

impl RedisProxy {
    pub async fn start() -> RedisProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (down, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *watch.borrow() {
                    drop(client);
                    continue;
                }
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = tokio::net::TcpStream::connect(upstream_addr()).await else {
                        return;
                    };
                    let (mut client, mut upstream) = (client, upstream);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = watch.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        RedisProxy { addr, down }
    }

    /// Down: connections are cut and new ones refused, as when Redis stops.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}
