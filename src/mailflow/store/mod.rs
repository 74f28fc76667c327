//! The only code that reads and writes the mail-flow tables: `mail_events`,
//! `mail_event_batches` and the counters `mail_flow_1m` and `mail_flow_1h`.

pub mod counters;
pub mod events;
pub mod retention;

/// The table of mail event batch records, for [`crate::db::batch`].
pub const BATCHES: &str = "mail_event_batches";
