//! The dashboard's first screen: one answer that says whether the cluster is healthy,
//! how mail is flowing and what needs attention. Computing it reads several tables, so
//! one computed answer is served to every caller for a short time.

mod cache;
mod model;
mod service;

pub use cache::OverviewCache;
pub use model::*;
