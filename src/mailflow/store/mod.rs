//! The only code that reads and writes the mail-flow tables: `mail_events`,
//! `mail_event_batches` and the counters `mail_flow_1m` and `mail_flow_1h`.

pub mod counters;
pub mod events;
pub mod retention;

/// The table of mail event batch records, for [`crate::db::batch`].
pub const BATCHES: &str = "mail_event_batches";

/// The batch ids of these nodes that start with `prefix` (the seed's, say).
pub async fn batch_ids_with_prefix(
    conn: &impl sea_orm::ConnectionTrait,
    nodes: &[uuid::Uuid],
    prefix: &str,
) -> crate::error::AppResult<Vec<(uuid::Uuid, String)>> {
    crate::db::batch::ids_with_prefix(conn, BATCHES, nodes, prefix).await
}
