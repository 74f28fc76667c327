//! Enums stored as short SCREAMING_CASE strings, the same on both backends, so a new
//! variant is a code change rather than a migration. One mechanism for every such enum:
//! [`stored_enum!`](crate::stored_enum) gives it `ALL`, `as_str` and `parse`, and text that
//! no variant stores is an error (`INTERNAL`, logged), never quietly another value. Raw SQL
//! binds `as_str()` as a parameter rather than spelling the text.

use crate::error::AppError;

/// The error for stored text no variant of `what` stores.
pub fn unknown(what: &str, text: &str) -> AppError {
    AppError::internal(format!(
        "the database holds the {what} {text:?}, which this mailops does not know"
    ))
}

/// Gives a fieldless enum its stored text forms:
///
/// ```text
/// stored_enum!(NodeStatus, "node status" { Online => "ONLINE", Down => "DOWN" });
/// ```
#[macro_export]
macro_rules! stored_enum {
    ($ty:ty, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];

            /// The text stored for this value.
            pub const fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $text),+ }
            }

            /// The value `text` stores; unknown text is an error.
            pub fn parse(text: &str) -> $crate::error::AppResult<$ty> {
                match text {
                    $($text => Ok(<$ty>::$variant),)+
                    _ => Err($crate::db::stored::unknown($what, text)),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Light {
        Red,
        Green,
    }
    crate::stored_enum!(Light, "light" { Red => "RED", Green => "GREEN" });

    #[test]
    fn stored_text_round_trips_and_unknown_text_is_an_error() {
        for light in Light::ALL {
            assert_eq!(Light::parse(light.as_str()).ok(), Some(*light));
        }
        let Err(unknown) = Light::parse("red") else {
            panic!("lower case is not stored text");
        };
        assert_eq!(unknown.code(), "INTERNAL");
        assert!(Light::parse("BLUE").is_err());
    }
}
