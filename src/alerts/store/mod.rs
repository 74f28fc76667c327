//! The only code that reads and writes the alerting tables: `alert_rules`, `alerts`,
//! `alert_silences` and `alert_notices`.

pub mod alerts;
pub mod notices;
pub mod rules;
pub mod silences;
