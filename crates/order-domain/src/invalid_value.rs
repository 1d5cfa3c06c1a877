use std::fmt;

/// Why a piece of input could not become one of the domain's value types.
///
/// It names the field so an HTTP layer can point at it, and it never echoes
/// the whole input back: a 1 MiB "key" must not come back in an error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidValue {
    /// The name of the value in the shop's language (`sku`, `quantity`, ...).
    pub field: &'static str,
    /// What is wrong, phrased so that the sender can fix it.
    pub reason: String,
}

impl InvalidValue {
    pub(crate) fn new(field: &'static str, reason: impl fmt::Display) -> Self {
        Self {
            field,
            reason: reason.to_string(),
        }
    }
}

/// A short, printable excerpt of rejected input for error messages.
pub(crate) fn excerpt(input: &str) -> String {
    const MAX: usize = 40;
    let mut out: String = input
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if input.chars().count() > MAX {
        out.push_str("...");
    }
    out
}

/// Declares the `TryFrom<String>`/`TryFrom<&str>`/`FromStr`/`Display`/`AsRef<str>`
/// boilerplate shared by every string newtype that is parsed by a `parse` fn.
macro_rules! string_value {
    ($ty:ident) => {
        impl TryFrom<String> for $ty {
            type Error = $crate::InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }
        impl TryFrom<&str> for $ty {
            type Error = $crate::InvalidValue;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::parse(value.to_owned())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = $crate::InvalidValue;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse(value.to_owned())
            }
        }
        impl From<$ty> for String {
            fn from(value: $ty) -> Self {
                value.0
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl $ty {
            /// The value as text, exactly as it was accepted.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use string_value;
