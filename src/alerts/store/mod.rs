//! The only code that reads and writes the alerting tables: `alert_rules`, `alerts` and
//! `alert_silences`.

pub mod alerts;
pub mod rules;
pub mod silences;
