//! Checks on what callers send that every domain shares.

use crate::error::{AppError, AppResult};

/// Optional free text, trimmed: `None` when left out or blank, refused when longer than
/// `max` characters.
pub fn bounded_text(field: &str, text: Option<&str>, max: usize) -> AppResult<Option<String>> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() > max => Err(AppError::bad_input(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(t) => Ok(Some(t.to_string())),
    }
}
