//! The only code that reads and writes the IP domain's tables: `ip_addresses`,
//! `dnsbl_results`, `dnsbl_transitions` and `dnsbl_check_jobs`.

pub mod addresses;
pub mod dnsbl;
pub mod jobs;
