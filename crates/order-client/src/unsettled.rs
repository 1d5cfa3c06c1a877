//! Checkouts whose outcome is unknown, kept on disk until they are settled.
//!
//! Why: when neither a checkout nor settling its key got an answer, the key
//! is the only way to learn the outcome later, and a key printed once in a
//! terminal is easily lost. `orders` saves it here and forgets it when a
//! later command learns the outcome (`checkout-status`, `abandon`, or the
//! same checkout sent again with `--key`).
//!
//! Where: `$ORDERS_STATE_DIR`, else `$XDG_STATE_HOME/store-orders`, else
//! `~/.local/state/store-orders`; one JSON file per key under
//! `unsettled-checkouts/`.

use std::path::PathBuf;

use order_api::CheckoutLine;
use serde::{Deserialize, Serialize};

/// What is kept of a checkout whose outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsettledCheckout {
    pub idempotency_key: String,
    /// The service it was sent to.
    pub url: String,
    pub lines: Vec<CheckoutLine>,
    pub note: Option<String>,
}

/// The folder the keys are kept in.
pub fn folder() -> std::io::Result<PathBuf> {
    let base = match (
        std::env::var_os("ORDERS_STATE_DIR"),
        std::env::var_os("XDG_STATE_HOME"),
        std::env::var_os("HOME"),
    ) {
        (Some(dir), _, _) => PathBuf::from(dir),
        (None, Some(state), _) => PathBuf::from(state).join("store-orders"),
        (None, None, Some(home)) => PathBuf::from(home).join(".local/state/store-orders"),
        (None, None, None) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no ORDERS_STATE_DIR, XDG_STATE_HOME or HOME to keep the key in",
            ))
        }
    };
    Ok(base.join("unsettled-checkouts"))
}

/// The file of one key: its bytes, with anything but letters, digits and
/// `-` written `_XX` (hex), so any key is one safe file name.
fn file_of(key: &str) -> std::io::Result<PathBuf> {
    let name: String = key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            other => format!("_{other:02X}"),
        })
        .collect();
    Ok(folder()?.join(format!("{name}.json")))
}

/// Keeps a checkout whose outcome is unknown; the file it is in.
pub fn save(
    url: &str,
    key: &str,
    lines: &[CheckoutLine],
    note: Option<&str>,
) -> std::io::Result<PathBuf> {
    let path = file_of(key)?;
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let checkout = UnsettledCheckout {
        idempotency_key: key.to_owned(),
        url: url.to_owned(),
        lines: lines.to_vec(),
        note: note.map(str::to_owned),
    };
    let json = serde_json::to_vec_pretty(&checkout).map_err(std::io::Error::other)?;
    std::fs::write(&path, json)?;
    Ok(path)
}

/// Forgets a key whose outcome is now known (nothing to do if it was not
/// kept).
pub fn forget(key: &str) -> std::io::Result<()> {
    match std::fs::remove_file(file_of(key)?) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every checkout kept, oldest file name first.
pub fn list() -> std::io::Result<Vec<UnsettledCheckout>> {
    let folder = folder()?;
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&folder) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    files.sort();
    files
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path)?;
            serde_json::from_slice(&bytes).map_err(std::io::Error::other)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_key_is_one_safe_file_name() {
        for (key, name) in [
            ("7f2b9a3e-5c1d", "7f2b9a3e-5c1d.json"),
            ("..", "_2E_2E.json"),
            ("a/b", "a_2Fb.json"),
            ("a_b", "a_5Fb.json"),
        ] {
            let path = file_of(key).unwrap();
            assert_eq!(path.file_name().unwrap().to_str().unwrap(), name, "{key}");
        }
    }
}
