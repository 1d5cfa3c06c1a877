//! Page cursors the service issues, sealed so that it accepts only its own.
//!
//! A cursor (`next`, passed back as `after`) carries where a page ended. A
//! client could otherwise forge one (a timestamp PostgreSQL cannot hold, a
//! position in another customer's listing); sealed with an HMAC-SHA256 tag
//! under a key derived from the service's secret, any cursor the service did
//! not issue is refused with a 400 before it is read.
//!
//! Form: `base64url(plain) "." base64url(tag[..16])`, plain being the
//! store's own cursor text.

use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the tag kept: 128 bits, as unforgeable as a cursor needs.
const TAG_LEN: usize = 16;

/// Longest cursor looked at; a longer `after` is refused unread.
pub const MAX_CURSOR_LEN: usize = 512;

#[derive(Clone)]
pub struct CursorSeal {
    key: [u8; 32],
}

impl std::fmt::Debug for CursorSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorSeal(..)")
    }
}

/// The cursor was not issued by this service (or was altered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor: pass back the `next` value of a previous page unchanged")]
pub struct ForeignCursor;

impl CursorSeal {
    /// A seal keyed by `secret` (the service's JWT secret), under a label of
    /// its own so that a cursor tag can never serve as a token signature.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: tag(secret, b"store-orders page cursor v1"),
        }
    }

    pub fn seal(&self, plain: &str) -> String {
        let tag = tag(&self.key, plain.as_bytes());
        format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(plain.as_bytes()),
            BASE64URL_NOPAD.encode(&tag[..TAG_LEN])
        )
    }

    /// The plain cursor, if `sealed` is one this service issued.
    pub fn open(&self, sealed: &str) -> Result<String, ForeignCursor> {
        if sealed.len() > MAX_CURSOR_LEN {
            return Err(ForeignCursor);
        }
        let (body, tag) = sealed.split_once('.').ok_or(ForeignCursor)?;
        let plain = BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| ForeignCursor)?;
        let tag = BASE64URL_NOPAD
            .decode(tag.as_bytes())
            .map_err(|_| ForeignCursor)?;
        if tag.len() != TAG_LEN {
            return Err(ForeignCursor);
        }
        let mut mac = HmacSha256::new_from_slice(&self.key).map_err(|_| ForeignCursor)?;
        mac.update(&plain);
        // Constant-time comparison of the tag with the MAC's first bytes.
        mac.verify_truncated_left(&tag).map_err(|_| ForeignCursor)?;
        String::from_utf8(plain).map_err(|_| ForeignCursor)
    }
}

fn tag(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return [0; 32],
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_opens_what_it_sealed_and_nothing_else() {
        let seal = CursorSeal::new(b"a secret of at least thirty-two bytes!!");
        let sealed = seal.seal("1700000000000000:abc");
        assert_eq!(seal.open(&sealed).as_deref(), Ok("1700000000000000:abc"));
        let other = CursorSeal::new(b"another secret of thirty-two bytes or more");
        assert_eq!(other.open(&sealed), Err(ForeignCursor));
        let (body, _) = sealed.split_once('.').unwrap();
        let forged = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(b"-6311347200000000000:abc"),
            &sealed[body.len() + 1..]
        );
        assert_eq!(seal.open(&forged), Err(ForeignCursor));
        for junk in [
            "",
            ".",
            "abc",
            "abc.def",
            &"a".repeat(600),
            &sealed[..sealed.len() - 1],
        ] {
            assert_eq!(seal.open(junk), Err(ForeignCursor), "{junk:?}");
        }
    }
}
