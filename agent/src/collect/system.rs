//! System metrics with `sysinfo`: CPU, memory, swap, load, disks per mount, network per
//! interface, and open TCP connections from /proc.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind};

use super::Sample;

/// File systems that hold no data of their own.
const PSEUDO_FILESYSTEMS: [&str; 12] = [
    "tmpfs", "devtmpfs", "overlay", "squashfs", "proc", "sysfs", "cgroup", "cgroup2", "devpts",
    "mqueue", "nsfs", "autofs",
];

pub struct System {
    system: sysinfo::System,
    disks: Disks,
    networks: Networks,
}

impl Default for System {
    fn default() -> Self {
        Self::new()
    }
}

impl System {
    pub fn new() -> System {
        let system = sysinfo::System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
                .with_memory(MemoryRefreshKind::everything()),
        );
        System {
            system,
            disks: Disks::new_with_refreshed_list(),
            networks: Networks::new_with_refreshed_list(),
        }
    }

    /// CPU use is measured between two calls: the first call after `new` measures since
    /// `new`, so make it at least `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` later.
    pub fn collect(&mut self, now: DateTime<Utc>) -> Vec<Sample> {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.disks.refresh(true);
        self.networks.refresh(true);
        let mut samples = Vec::with_capacity(32);
        samples.push(Sample::new(
            "system.cpu.used_percent",
            now,
            f64::from(self.system.global_cpu_usage()).clamp(0.0, 100.0),
        ));
        let load = sysinfo::System::load_average();
        samples.push(Sample::new("system.load1", now, load.one));
        samples.push(Sample::new("system.load5", now, load.five));
        samples.push(Sample::new("system.load15", now, load.fifteen));

        let total = self.system.total_memory();
        let used = total.saturating_sub(self.system.available_memory());
        samples.push(Sample::new("system.memory.used_bytes", now, used as f64));
        samples.push(Sample::new(
            "system.memory.used_percent",
            now,
            percent(used, total),
        ));
        samples.push(Sample::new(
            "system.swap.used_percent",
            now,
            percent(self.system.used_swap(), self.system.total_swap()),
        ));

        let mut mounts = BTreeSet::new();
        for disk in self.disks.list() {
            let fs = disk.file_system().to_string_lossy();
            let mount = disk.mount_point().to_string_lossy().into_owned();
            if PSEUDO_FILESYSTEMS.contains(&fs.as_ref())
                || disk.total_space() == 0
                || mount.len() > 128
                || !mounts.insert(mount.clone())
            {
                continue;
            }
            let used = disk.total_space().saturating_sub(disk.available_space());
            let label = ("mount", mount.as_str());
            samples.push(Sample::labelled(
                "system.disk.used_bytes",
                label,
                now,
                used as f64,
            ));
            samples.push(Sample::labelled(
                "system.disk.used_percent",
                label,
                now,
                percent(used, disk.total_space()),
            ));
        }

        for (name, data) in self.networks.list() {
            if name == "lo" || name.len() > 128 {
                continue;
            }
            let label = ("interface", name.as_str());
            samples.push(Sample::labelled(
                "system.network.rx_bytes",
                label,
                now,
                data.total_received() as f64,
            ));
            samples.push(Sample::labelled(
                "system.network.tx_bytes",
                label,
                now,
                data.total_transmitted() as f64,
            ));
        }

        if let Some(open) = open_tcp_connections() {
            samples.push(Sample::new("system.connections.open", now, open as f64));
        }
        samples
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 100.0 / whole as f64).clamp(0.0, 100.0)
    }
}

/// ESTABLISHED TCP connections, IPv4 and IPv6, from /proc/net (`None` where there is none).
fn open_tcp_connections() -> Option<u64> {
    let mut open = 0;
    let mut found = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        found = true;
        open += count_established(&text);
    }
    found.then_some(open)
}

/// Rows of a /proc/net/tcp table whose state (the fourth column) is 01, ESTABLISHED.
fn count_established(table: &str) -> u64 {
    table
        .lines()
        .skip(1)
        .filter(|line| line.split_whitespace().nth(3) == Some("01"))
        .count() as u64
}

/// The machine's addresses that are not loopback, link-local or unspecified: what a node
/// sends mail from unless told otherwise.
pub fn sending_addresses() -> Vec<std::net::IpAddr> {
    let networks = Networks::new_with_refreshed_list();
    let mut addresses: BTreeSet<std::net::IpAddr> = BTreeSet::new();
    for data in networks.list().values() {
        for network in data.ip_networks() {
            let address = network.addr;
            let link_local = match address {
                std::net::IpAddr::V4(v4) => v4.is_link_local(),
                std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
            };
            if !address.is_loopback() && !address.is_unspecified() && !link_local {
                addresses.insert(address);
            }
        }
    }
    addresses.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn established_connections_are_counted_from_the_proc_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0
   1: 0100007F:A1B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:A1B3 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0";
        assert_eq!(count_established(table), 2);
    }

    #[test]
    fn a_collection_names_every_sample_as_the_catalog_does() {
        let mut system = System::new();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let samples = system.collect(Utc::now());
        let names: BTreeSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        for name in [
            "system.cpu.used_percent",
            "system.load1",
            "system.load5",
            "system.load15",
            "system.memory.used_bytes",
            "system.memory.used_percent",
            "system.swap.used_percent",
            "system.disk.used_percent",
            "system.connections.open",
        ] {
            assert!(names.contains(name), "{name} missing from {names:?}");
        }
        for sample in &samples {
            assert!(sample.value.is_finite(), "{sample:?}");
            let expected: &[&str] = match sample.name.as_str() {
                "system.disk.used_percent" | "system.disk.used_bytes" => &["mount"],
                "system.network.rx_bytes" | "system.network.tx_bytes" => &["interface"],
                _ => &[],
            };
            let keys: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
            assert_eq!(keys, expected, "{sample:?}");
        }
        let memory = samples
            .iter()
            .find(|s| s.name == "system.memory.used_percent")
            .unwrap();
        assert!(memory.value > 0.0 && memory.value <= 100.0);
    }
}
