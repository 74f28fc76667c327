//! The HTTP server loop: accepts at most `MAILOPS_MAX_CONNECTIONS` connections at a time,
//! gives each request its peer address, refuses clients that dawdle over their headers,
//! and on shutdown stops accepting and lets the requests under way finish.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt as _;

/// How the server treats connections.
pub struct ServeOptions {
    pub max_connections: u32,
    pub header_read_timeout: Duration,
    /// How long requests under way may run after the shutdown signal.
    pub grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains for at most
/// `options.grace`. Returns whether every connection finished within the grace period.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> bool {
    let slots = Arc::new(Semaphore::new(options.max_connections as usize));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // Waiting for a free slot before accepting leaves the rest in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: axum::extract::Request<_>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service.map_request(
                    |request: hyper::Request<hyper::body::Incoming>| {
                        request.map(axum::body::Body::new)
                    },
                )),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is not an error of the server.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    tokio::time::timeout(options.grace, graceful.shutdown())
        .await
        .is_ok()
}

/// The client's address: the peer, or, when the peer is one of `trusted` proxies, the
/// nearest address those proxies name in `X-Forwarded-For` (or `Forwarded: for=`) that is
/// not itself a trusted proxy. A request without a peer (served another way) is from
/// the unspecified address.
pub fn client_address(
    peer: Option<std::net::IpAddr>,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv4Addr};
    let Some(peer) = peer.map(canonical) else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut forwarded: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else { continue };
        forwarded.extend(text.split(',').filter_map(|entry| parse_node(entry.trim())));
    }
    if forwarded.is_empty() {
        for value in headers.get_all("forwarded") {
            let Ok(text) = value.to_str() else { continue };
            forwarded.extend(text.split(',').filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.eq_ignore_ascii_case("for")
                        .then(|| parse_node(value.trim().trim_matches('"')))
                        .flatten()
                })
            }));
        }
    }
    // Each proxy appends the address it received from; the last untrusted one is the
    // client as far as our own proxies can vouch.
    forwarded
        .into_iter()
        .map(canonical)
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// An address from a forwarding header: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or
/// `[2001:db8::1]:4711`.
fn parse_node(text: &str) -> Option<std::net::IpAddr> {
    text.parse()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.strip_prefix('[')
                .and_then(|rest| rest.split(']').next())
                .and_then(|inner| inner.parse().ok())
        })
}

/// IPv4 peers of a dual-stack socket arrive as `::ffff:a.b.c.d`.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let forged = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let stranger: std::net::IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(client_address(Some(stranger), &forged, &trusted), stranger);
        assert_eq!(
            client_address(Some(proxy), &forged, &trusted),
            "203.0.113.9".parse::<std::net::IpAddr>().unwrap()
        );
        // A client's own forged entry sits left of what our proxies appended.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.7")]);
        assert_eq!(
            client_address(Some(proxy), &chain, &trusted).to_string(),
            "203.0.113.9"
        );
        let rfc7239 = headers(&[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")]);
        assert_eq!(
            client_address(Some(proxy), &rfc7239, &trusted).to_string(),
            "2001:db8::1"
        );
        assert_eq!(
            client_address(Some(proxy), &HeaderMap::new(), &trusted),
            proxy
        );
    }
}
