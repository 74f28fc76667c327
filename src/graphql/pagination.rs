//! Relay connections over keyset cursors. A cursor is the opaque, URL-safe encoding of the
//! sort key of the last row seen, never an offset.

use async_graphql::SimpleObject;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    error::{AppError, AppResult},
    graphql::limits::MAX_PAGE,
};

pub const DEFAULT_PAGE: usize = 50;
const MAX_CURSOR_BYTES: usize = 512;

/// Extra fields of every connection.
#[derive(SimpleObject, Debug, Clone, Copy)]
pub struct ConnectionTotal {
    /// How many items match, across all pages.
    pub total_count: u64,
}

/// Validated `first` / `after` arguments.
#[derive(Debug, Clone)]
pub struct Page {
    pub first: usize,
    /// The decoded sort key after which the page starts.
    pub after: Option<String>,
}

impl Page {
    pub fn new(first: Option<i32>, after: Option<String>) -> AppResult<Page> {
        let first = match first {
            None => DEFAULT_PAGE,
            Some(n) if n < 0 => return Err(AppError::bad_input("first", "must not be negative")),
            Some(n) if n as usize > MAX_PAGE => {
                return Err(AppError::bad_input(
                    "first",
                    format!("must be at most {MAX_PAGE}"),
                ));
            }
            Some(n) => n as usize,
        };
        let after = after.map(|cursor| decode_cursor(&cursor)).transpose()?;
        Ok(Page { first, after })
    }
}

pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

fn decode_cursor(cursor: &str) -> AppResult<String> {
    let invalid = || AppError::bad_input("after", "is not a cursor returned by this list");
    if cursor.len() > MAX_CURSOR_BYTES {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// A connection over one page of rows: `cursor` gives each row's sort key.
pub fn connection<R, N: From<R> + async_graphql::OutputType>(
    page: &Page,
    rows: Vec<R>,
    has_next: bool,
    total: u64,
    cursor: impl Fn(&R) -> String,
) -> async_graphql::connection::Connection<String, N, ConnectionTotal> {
    let mut connection = async_graphql::connection::Connection::with_additional_fields(
        page.after.is_some(),
        has_next,
        ConnectionTotal { total_count: total },
    );
    connection.edges.extend(rows.into_iter().map(|row| {
        async_graphql::connection::Edge::new(encode_cursor(&cursor(&row)), N::from(row))
    }));
    connection
}

/// Fetches `page.first` rows of `query` (already filtered, ordered and positioned after
/// the cursor) and says whether more follow.
pub async fn fetch_page<E: sea_orm::EntityTrait>(
    db: &impl sea_orm::ConnectionTrait,
    query: sea_orm::Select<E>,
    page: &Page,
) -> AppResult<(Vec<E::Model>, bool)> {
    use sea_orm::QuerySelect as _;
    let mut rows = query.limit(page.first as u64 + 1).all(db).await?;
    let has_next = rows.len() > page.first;
    rows.truncate(page.first);
    Ok((rows, has_next))
}

/// One page of `query` newest first by its UUID v7 `id` column, after the page's cursor
/// (an id), with the total of `query` when `count_total`.
pub async fn newest_first<E>(
    db: &impl sea_orm::ConnectionTrait,
    query: sea_orm::Select<E>,
    id: E::Column,
    page: &Page,
    count_total: bool,
) -> AppResult<(Vec<E::Model>, bool, u64)>
where
    E: sea_orm::EntityTrait,
    E::Model: Sync,
{
    use sea_orm::{ColumnTrait as _, PaginatorTrait as _, QueryFilter as _, QueryOrder as _};
    let total = if count_total {
        query.clone().count(db).await?
    } else {
        0
    };
    let query = match &page.after {
        Some(after) => {
            let after = uuid::Uuid::parse_str(after).map_err(|_| {
                AppError::bad_input("after", "is not a cursor returned by this list")
            })?;
            query.filter(id.lt(after))
        }
        None => query,
    };
    let (rows, has_next) = fetch_page(db, query.order_by_desc(id), page).await?;
    Ok((rows, has_next, total))
}

/// Whether the selection asks for `totalCount`; counting costs a query, so it is done
/// only when asked.
/// The complexity of a list field: the page it may return (`first`, or the default page
/// when left out, at most `MAX_PAGE`) times what each item selects.
pub fn list_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    first.map_or(DEFAULT_PAGE, |n| n.clamp(0, MAX_PAGE as i32) as usize) * child_complexity
}

pub fn wants_total(ctx: &async_graphql::Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}

/// Parses a GraphQL `ID` that names a row.
pub fn parse_id(field: &str, id: &async_graphql::ID) -> AppResult<uuid::Uuid> {
    uuid::Uuid::parse_str(id.as_str()).map_err(|_| AppError::bad_input(field, "is not a valid id"))
}

/// Parses a list of `ID`s that name rows; the first bad one is named by `field`.
pub fn parse_ids(field: &str, ids: &[async_graphql::ID]) -> AppResult<Vec<uuid::Uuid>> {
    ids.iter().map(|id| parse_id(field, id)).collect()
}
