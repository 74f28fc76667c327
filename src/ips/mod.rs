//! IP addresses of the cluster.

pub mod address;
