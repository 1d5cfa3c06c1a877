//! Where a checkout came from: the shop's own checkout page, or any other
//! API client. Recorded in `OrderPlaced` (version 2) for reporting; orders
//! placed before it was recorded read as [`OrderChannel::Unrecorded`] (the
//! upcaster of version 1, `order_store`'s `event_upcasters.rs`).

use serde::{Deserialize, Serialize};

use crate::InvalidValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderChannel {
    /// Any API client (the typed client, a shop's own backend, curl): what
    /// a checkout without an `Order-Channel` header is.
    #[default]
    Api,
    /// The checkout page served at `/shop`.
    Shop,
    /// Placed before the channel was recorded (an `OrderPlaced` of
    /// version 1). Never accepted from a request.
    Unrecorded,
}

impl OrderChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Shop => "shop",
            Self::Unrecorded => "unrecorded",
        }
    }

    /// The channel a request names (`api` or `shop`).
    pub fn from_request(value: &str) -> Result<Self, InvalidValue> {
        match value {
            "api" => Ok(Self::Api),
            "shop" => Ok(Self::Shop),
            _ => Err(InvalidValue::new(
                "Order-Channel",
                "must be `api` or `shop`",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_api_and_shop_from_a_request_and_nothing_else() {
        assert_eq!(OrderChannel::from_request("api"), Ok(OrderChannel::Api));
        assert_eq!(OrderChannel::from_request("shop"), Ok(OrderChannel::Shop));
        for refused in ["", "unrecorded", "Shop", "pos"] {
            assert!(OrderChannel::from_request(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn it_is_stored_in_snake_case() {
        for channel in [
            OrderChannel::Api,
            OrderChannel::Shop,
            OrderChannel::Unrecorded,
        ] {
            let json = serde_json::to_value(channel).unwrap();
            assert_eq!(json, channel.as_str());
        }
    }
}
