//! Keyset pages: `first` rows after a cursor, never an offset. A cursor is the opaque,
//! URL-safe encoding of the sort key of the last row seen.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, EntityTrait, PaginatorTrait as _, QueryFilter as _,
    QueryOrder as _, QuerySelect as _, Select,
};

use crate::error::{AppError, AppResult};

/// The page a list returns when `first` is left out.
pub const DEFAULT_PAGE: usize = 50;
/// The largest `first` a list accepts.
pub const MAX_PAGE: usize = 500;
const MAX_CURSOR_BYTES: usize = 512;

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

/// One page of a list: its rows, whether more follow, and how many match in all (0 when
/// the caller did not ask).
#[derive(Debug)]
pub struct Listed<R> {
    pub rows: Vec<R>,
    pub has_next: bool,
    pub total: u64,
}

impl<R> Listed<R> {
    /// The same page with each row converted.
    pub fn try_map<N, Err>(
        self,
        convert: impl FnMut(R) -> Result<N, Err>,
    ) -> Result<Listed<N>, Err> {
        Ok(Listed {
            rows: self
                .rows
                .into_iter()
                .map(convert)
                .collect::<Result<_, _>>()?,
            has_next: self.has_next,
            total: self.total,
        })
    }
}

/// Fetches `page.first` rows of `query` (already filtered, ordered and positioned after
/// the cursor) and says whether more follow; `total` is what the caller counted.
pub async fn fetch_page<E: EntityTrait>(
    db: &impl ConnectionTrait,
    query: Select<E>,
    page: &Page,
    total: u64,
) -> AppResult<Listed<E::Model>> {
    let mut rows = query.limit(page.first as u64 + 1).all(db).await?;
    let has_next = rows.len() > page.first;
    rows.truncate(page.first);
    Ok(Listed {
        rows,
        has_next,
        total,
    })
}

/// The most rows a time-ordered log (events, audit entries, alerts) counts for
/// `totalCount`: counting millions of rows for a number nobody reads exactly would cost
/// more than the page itself.
pub const MAX_COUNTED: u64 = 10_000;

/// One page of `query` newest first by its UUID v7 `id` column, after the page's cursor
/// (an id), with the total of `query` (at most [`MAX_COUNTED`]) when `count_total`.
pub async fn newest_first<E>(
    db: &impl ConnectionTrait,
    query: Select<E>,
    id: E::Column,
    page: &Page,
    count_total: bool,
) -> AppResult<crate::db::Listed<E::Model>>
where
    E: EntityTrait,
    E::Model: Sync,
{
    let total = if count_total {
        query.clone().limit(MAX_COUNTED).count(db).await?
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
    fetch_page(db, query.order_by_desc(id), page, total).await
}
