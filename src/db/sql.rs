//! Bind placeholders for raw statements that run on both backends.

/// The `index`-th (from 1) bind parameter of a raw statement: `$index` on Postgres, `?` on
/// SQLite, which numbers its `?`s in the order they appear.
pub fn placeholder(backend: sea_orm::DbBackend, index: usize) -> String {
    match backend {
        sea_orm::DbBackend::Postgres => format!("${index}"),
        _ => "?".to_owned(),
    }
}

/// `count` bind parameters from `first` on, comma-separated, for an `IN (…)` list.
pub fn placeholders(backend: sea_orm::DbBackend, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|index| placeholder(backend, index))
        .collect::<Vec<_>>()
        .join(",")
}
