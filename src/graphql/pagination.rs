//! Relay connections over the keyset pages of [`crate::db::page`].

use async_graphql::SimpleObject;

pub use crate::db::{Listed, Page};
use crate::{
    db::page::{DEFAULT_PAGE, MAX_PAGE, encode_cursor},
    error::{AppError, AppResult},
};

/// Extra fields of every connection.
#[derive(SimpleObject, Debug, Clone, Copy)]
pub struct ConnectionTotal {
    /// How many items match, across all pages. Time-ordered logs (mail events, the audit
    /// log, alerts, enrollment keys, blacklist history) stop counting at 10,000: that
    /// number means at least as many.
    pub total_count: u64,
}

/// A Relay connection with `totalCount`: what every list field answers.
pub type ListConnection<N> = async_graphql::connection::Connection<String, N, ConnectionTotal>;

/// A connection over one page of rows: `cursor` gives each row's sort key.
pub fn connection<R, N>(
    page: &Page,
    listed: Listed<R>,
    cursor: impl Fn(&R) -> String,
) -> AppResult<ListConnection<N>>
where
    N: TryFrom<R> + async_graphql::OutputType,
    AppError: From<N::Error>,
{
    let mut connection = async_graphql::connection::Connection::with_additional_fields(
        page.after.is_some(),
        listed.has_next,
        ConnectionTotal {
            total_count: listed.total,
        },
    );
    for row in listed.rows {
        let key = encode_cursor(&cursor(&row));
        connection
            .edges
            .push(async_graphql::connection::Edge::new(key, N::try_from(row)?));
    }
    Ok(connection)
}

/// A row found (or not) as its GraphQL object; a row whose stored text this build does not
/// know is an error.
pub fn found<R, N>(row: Option<R>) -> AppResult<Option<N>>
where
    N: TryFrom<R>,
    AppError: From<N::Error>,
{
    row.map(|row| N::try_from(row).map_err(AppError::from))
        .transpose()
}

/// Rows as GraphQL objects; a row whose stored text this build does not know is an error.
pub fn convert_all<R, N>(rows: Vec<R>) -> AppResult<Vec<N>>
where
    N: TryFrom<R>,
    AppError: From<N::Error>,
{
    rows.into_iter()
        .map(|row| N::try_from(row).map_err(AppError::from))
        .collect()
}

/// The complexity of a list field: the page it may return (`first`, or the default page
/// when left out, at most `MAX_PAGE`) times what each item selects.
pub fn list_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    first.map_or(DEFAULT_PAGE, |n| n.clamp(0, MAX_PAGE as i32) as usize) * child_complexity
}

/// Whether the selection asks for `totalCount`; counting costs a query, so it is done
/// only when asked.
pub fn wants_total(ctx: &async_graphql::Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}

/// Parses a GraphQL `ID` that names a row.
pub fn parse_id(field: &str, id: &async_graphql::ID) -> AppResult<uuid::Uuid> {
    crate::db::parse_id(field, id.as_str())
}

/// Parses a list of `ID`s that name rows; the first bad one is named by `field`.
pub fn parse_ids(field: &str, ids: &[async_graphql::ID]) -> AppResult<Vec<uuid::Uuid>> {
    ids.iter().map(|id| parse_id(field, id)).collect()
}

/// The text of each `ID`, for a domain that parses (and audits) them itself.
pub fn id_texts(ids: Vec<async_graphql::ID>) -> Vec<String> {
    ids.into_iter().map(|id| id.0).collect()
}
