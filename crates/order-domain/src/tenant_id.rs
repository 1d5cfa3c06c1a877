use serde::{Deserialize, Serialize};

use crate::invalid_value::{excerpt, string_value};
use crate::InvalidValue;

/// A shop on the platform, by its slug: `[a-z0-9][a-z0-9-]{0,62}`.
///
/// Every row, event and order belongs to exactly one tenant, and the tenant of a
/// request comes from its token only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 63;

    fn parse(value: String) -> Result<Self, InvalidValue> {
        let bytes = value.as_bytes();
        let well_formed = !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if well_formed {
            Ok(Self(value))
        } else {
            Err(InvalidValue::new(
                "tenant",
                format_args!(
                    "expected 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit; got \"{}\"",
                    excerpt(&value)
                ),
            ))
        }
    }
}

string_value!(TenantId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_accepts_slugs_of_lowercase_letters_digits_and_hyphens() {
        for ok in ["a", "0", "acme", "pet-shop-42", "9-lives", &"a".repeat(63)] {
            assert_eq!(TenantId::try_from(ok).map(String::from), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn it_refuses_anything_else() {
        for bad in [
            "",
            "-acme",
            "Acme",
            "acme_shop",
            "acme shop",
            "a:b",
            "acme/../x",
            "ácme",
            &"a".repeat(64),
        ] {
            let err = TenantId::try_from(bad).unwrap_err();
            assert_eq!(err.field, "tenant", "{bad:?}");
        }
    }

    #[test]
    fn it_refuses_bad_slugs_when_deserialized() {
        assert!(serde_json::from_str::<TenantId>("\"Bad Tenant\"").is_err());
        assert_eq!(
            serde_json::from_str::<TenantId>("\"good\"")
                .unwrap()
                .as_str(),
            "good"
        );
    }
}
