//! Checks on what callers send that every domain shares.
//!
//! Text is refused, the same on both backends, when it holds characters that mean nothing
//! where it goes: no control characters at all in names, reasons, labels and filters; only
//! line breaks and tabs in free text. Postgres cannot store NUL in text at all, so without
//! these checks the same input would be stored on SQLite and fail on Postgres.

use crate::error::{AppError, AppResult};

/// What a piece of caller text may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKind {
    /// Names, reasons, labels, filters: one line, no control characters.
    Line,
    /// Descriptions and notes: line breaks and tabs allowed, no other control characters.
    Free,
}

/// Refuses text holding control characters its kind does not allow.
pub fn check_text(field: &str, text: &str, kind: TextKind) -> AppResult<()> {
    let allowed = |c: char| kind == TextKind::Free && matches!(c, '\n' | '\r' | '\t');
    match text.chars().find(|c| c.is_control() && !allowed(*c)) {
        None => Ok(()),
        Some(c) => Err(AppError::bad_input(
            field,
            format!(
                "holds the control character U+{:04X}; {}",
                c as u32,
                match kind {
                    TextKind::Line => "use one line of printable text",
                    TextKind::Free => "only line breaks and tabs are allowed",
                }
            ),
        )),
    }
}

/// Optional one-line text, trimmed: `None` when left out or blank, refused when longer
/// than `max` characters or holding control characters.
pub fn bounded_text(field: &str, text: Option<&str>, max: usize) -> AppResult<Option<String>> {
    bounded(field, text, max, TextKind::Line)
}

/// Optional free text (line breaks and tabs allowed), trimmed like [`bounded_text`].
pub fn bounded_free_text(field: &str, text: Option<&str>, max: usize) -> AppResult<Option<String>> {
    bounded(field, text, max, TextKind::Free)
}

fn bounded(
    field: &str,
    text: Option<&str>,
    max: usize,
    kind: TextKind,
) -> AppResult<Option<String>> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() > max => Err(AppError::bad_input(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(t) => {
            check_text(field, t, kind)?;
            Ok(Some(t.to_string()))
        }
    }
}

/// Required one-line text, trimmed: 1 to `max` characters without control characters.
pub fn required_line(field: &str, text: &str, max: usize) -> AppResult<String> {
    bounded_text(field, Some(text), max)?
        .ok_or_else(|| AppError::bad_input(field, format!("must be 1 to {max} characters")))
}

/// A whole number a caller gave, refused outside `range` (named in the message).
pub fn in_range<T>(field: &str, value: T, range: std::ops::RangeInclusive<T>) -> AppResult<T>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(AppError::bad_input(
            field,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

/// Points (series × steps, groups × steps) one GraphQL operation may read, across all the
/// fields it asks for: a request of many aliases cannot add up to more than this.
pub const MAX_POINTS_PER_OPERATION: u64 = 200_000;

/// What is left of an operation's points. Each range field takes its points before it
/// reads anything, so an operation over the budget is refused before it costs anything.
#[derive(Debug)]
pub struct PointBudget(std::sync::atomic::AtomicU64);

impl Default for PointBudget {
    fn default() -> Self {
        PointBudget(std::sync::atomic::AtomicU64::new(MAX_POINTS_PER_OPERATION))
    }
}

impl PointBudget {
    /// Takes `points` from the budget, or refuses naming `field` when they are not left.
    pub fn take(&self, field: &str, points: u64) -> AppResult<()> {
        use std::sync::atomic::Ordering;
        let taken = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(points)
            });
        match taken {
            Ok(_) => Ok(()),
            Err(left) => Err(AppError::bad_input(
                field,
                format!(
                    "asks for {points} points (series or groups × steps) and this operation has {left} of its {MAX_POINTS_PER_OPERATION} left; narrow the names, nodes or range, or use a longer step"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_refuse_every_control_character_and_free_text_all_but_breaks_and_tabs() {
        assert!(check_text("f", "mta-01 disk", TextKind::Line).is_ok());
        for bad in [
            "a\u{0}b",
            "a\nb",
            "a\tb",
            "bell\u{7}",
            "\u{1b}[31m",
            "del\u{7f}",
        ] {
            assert!(check_text("f", bad, TextKind::Line).is_err(), "{bad:?}");
        }
        assert!(check_text("f", "line one\r\nline two\tend", TextKind::Free).is_ok());
        assert!(check_text("f", "nul\u{0}", TextKind::Free).is_err());
        assert_eq!(
            required_line("input.name", "  k\u{0}ey ", 10)
                .unwrap_err()
                .code(),
            "BAD_USER_INPUT"
        );
        assert_eq!(required_line("input.name", " key ", 10).unwrap(), "key");
    }
}
