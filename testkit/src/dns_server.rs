//! A small authoritative DNS server on loopback UDP, serving DNSBL-style test zones.
//! Shared by the integration tests and the DNSBL benchmark.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, RwLock},
    time::Duration,
};

use hickory_resolver::proto::{
    op::{Message, MessageType, ResponseCode},
    rr::{
        RData, Record, RecordType,
        rdata::{A, TXT},
    },
};
use tokio::net::UdpSocket;

#[derive(Clone, Default)]
struct Entry {
    a: Vec<Ipv4Addr>,
    txt: Option<String>,
}

#[derive(Default)]
struct Zones {
    names: HashMap<String, Entry>,
    /// Zones that answer only after this long.
    slow: HashMap<String, Duration>,
}

pub struct DnsServer {
    pub addr: SocketAddr,
    zones: Arc<RwLock<Zones>>,
    task: tokio::task::JoinHandle<()>,
}

/// The query name of `ip` on `zone`, without the final dot.
pub fn name_of(ip: IpAddr, zone: &str) -> String {
    let mut name = String::new();
    match ip {
        IpAddr::V4(v4) => {
            for octet in v4.octets().iter().rev() {
                name.push_str(&format!("{octet}."));
            }
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
        }
    }
    name.push_str(zone);
    name
}

impl DnsServer {
    pub async fn start() -> DnsServer {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP"));
        let addr = socket.local_addr().expect("local addr");
        let zones: Arc<RwLock<Zones>> = Arc::default();
        let task = {
            let zones = zones.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                loop {
                    let Ok((len, peer)) = socket.recv_from(&mut buffer).await else {
                        continue;
                    };
                    let Ok(request) = Message::from_vec(&buffer[..len]) else {
                        continue;
                    };
                    let (response, delay) = answer(&zones, &request);
                    let socket = socket.clone();
                    tokio::spawn(async move {
                        if let Some(delay) = delay {
                            tokio::time::sleep(delay).await;
                        }
                        if let Ok(bytes) = response.to_vec() {
                            let _ = socket.send_to(&bytes, peer).await;
                        }
                    });
                }
            })
        };
        DnsServer { addr, zones, task }
    }

    /// A zone whose RFC 5782 test entries answer correctly.
    pub fn healthy_zone(&self, zone: &str) {
        self.list(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            zone,
            &[2],
            Some("test entry"),
        );
    }

    /// A zone whose test entries fail: 127.0.0.2 is not listed and 127.0.0.1 is.
    pub fn broken_zone(&self, zone: &str) {
        self.list(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), zone, &[2], None);
    }

    /// A zone that answers only after `delay`.
    pub fn slow_zone(&self, zone: &str, delay: Duration) {
        self.healthy_zone(zone);
        self.zones
            .write()
            .unwrap()
            .slow
            .insert(zone.to_string(), delay);
    }

    /// Lists `ip` on `zone` with answers 127.0.0.`codes[i]` (or full addresses when a code
    /// is above 255, see `list_answers`) and a TXT reason.
    pub fn list(&self, ip: IpAddr, zone: &str, codes: &[u8], txt: Option<&str>) {
        let answers: Vec<Ipv4Addr> = codes.iter().map(|c| Ipv4Addr::new(127, 0, 0, *c)).collect();
        self.list_answers(ip, zone, &answers, txt);
    }

    pub fn list_answers(&self, ip: IpAddr, zone: &str, answers: &[Ipv4Addr], txt: Option<&str>) {
        self.zones.write().unwrap().names.insert(
            name_of(ip, zone),
            Entry {
                a: answers.to_vec(),
                txt: txt.map(str::to_string),
            },
        );
    }

    pub fn delist(&self, ip: IpAddr, zone: &str) {
        self.zones.write().unwrap().names.remove(&name_of(ip, zone));
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(zones: &RwLock<Zones>, request: &Message) -> (Message, Option<Duration>) {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.message_type = MessageType::Response;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    let Some(query) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return (response, None);
    };
    response.add_query(query.clone());
    let name = query
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let zones = zones.read().unwrap();
    let delay = zones
        .slow
        .iter()
        .find(|(zone, _)| name.ends_with(&format!(".{zone}")))
        .map(|(_, delay)| *delay);
    match zones.names.get(&name) {
        None => response.metadata.response_code = ResponseCode::NXDomain,
        Some(entry) => match query.query_type() {
            RecordType::A => {
                for a in &entry.a {
                    response.add_answer(Record::from_rdata(
                        query.name().clone(),
                        60,
                        RData::A(A(*a)),
                    ));
                }
            }
            RecordType::TXT => {
                if let Some(txt) = &entry.txt {
                    response.add_answer(Record::from_rdata(
                        query.name().clone(),
                        60,
                        RData::TXT(TXT::new(vec![txt.clone()])),
                    ));
                }
            }
            _ => {}
        },
    }
    (response, delay)
}
