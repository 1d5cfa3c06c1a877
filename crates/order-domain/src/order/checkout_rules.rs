//! The rules a checkout's lines obey, in one place: the HTTP layer checks a
//! request with them (to name the offending field), the store before it
//! prices anything, and the aggregate before it decides. A rule changed
//! here changes for all three.

use std::collections::HashSet;

use super::{Order, OrderError};
use crate::Sku;

/// A line that breaks a rule, by its place in the request (from 0) where
/// the rule is about one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRuleBroken {
    pub line: Option<usize>,
    pub error: OrderError,
}

/// 1 to [`Order::MAX_LINES`] lines, each SKU on at most one of them.
pub fn check_lines<'a>(skus: impl ExactSizeIterator<Item = &'a Sku>) -> Result<(), LineRuleBroken> {
    let count = skus.len();
    if count == 0 {
        return Err(LineRuleBroken {
            line: None,
            error: OrderError::NoLines,
        });
    }
    if count > Order::MAX_LINES {
        return Err(LineRuleBroken {
            line: None,
            error: OrderError::TooManyLines {
                count,
                max: Order::MAX_LINES,
            },
        });
    }
    let mut seen = HashSet::with_capacity(count);
    for (line, sku) in skus.enumerate() {
        if !seen.insert(sku) {
            return Err(LineRuleBroken {
                line: Some(line),
                error: OrderError::DuplicateSku { sku: sku.clone() },
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skus(codes: &[&str]) -> Vec<Sku> {
        codes.iter().map(|c| Sku::try_from(*c).unwrap()).collect()
    }

    #[test]
    fn it_takes_one_to_a_hundred_lines_of_distinct_skus() {
        assert!(check_lines(skus(&["A"]).iter()).is_ok());
        let hundred: Vec<String> = (0..100).map(|i| format!("S{i}")).collect();
        let hundred: Vec<&str> = hundred.iter().map(String::as_str).collect();
        assert!(check_lines(skus(&hundred).iter()).is_ok());
    }

    #[test]
    fn it_rejects_no_lines_too_many_lines_and_a_repeated_sku_naming_its_line() {
        assert_eq!(
            check_lines(skus(&[]).iter()).unwrap_err().error,
            OrderError::NoLines
        );
        let many: Vec<String> = (0..101).map(|i| format!("S{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            check_lines(skus(&many).iter()).unwrap_err().error,
            OrderError::TooManyLines {
                count: 101,
                max: 100
            }
        );
        let repeated = check_lines(skus(&["A", "B", "A"]).iter()).unwrap_err();
        assert_eq!(repeated.line, Some(2));
        assert_eq!(
            repeated.error,
            OrderError::DuplicateSku {
                sku: Sku::try_from("A").unwrap()
            }
        );
    }
}
