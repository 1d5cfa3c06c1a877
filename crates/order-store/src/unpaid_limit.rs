//! The bounds on what one customer's unpaid orders may hold.
//!
//! An unpaid (`placed`) order holds its stock until it is paid, cancelled
//! or expires. Without a bound, one customer (or one stolen token) could
//! place orders for a tenant's whole stock and never pay. The store checks
//! every order a checkout places against its customer's open unpaid orders
//! and the units they hold (`store_unpaid_holds`, migration 15), under a
//! per-customer lock, so the bound holds across every replica. A replay of
//! an order already placed is never refused by it.

/// How many open unpaid orders one customer may have, and how many units
/// they may hold together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnpaidLimit {
    pub orders: u32,
    pub units: u32,
}

impl UnpaidLimit {
    /// The defaults (docs/SECURITY.md): ten open unpaid orders, and as many
    /// units as one full line may carry (10,000). A shopper rarely has more
    /// than one or two orders waiting for payment; a shop that sells in
    /// bulk raises the units.
    pub const DEFAULT: Self = Self {
        orders: 10,
        units: 10_000,
    };
}

impl Default for UnpaidLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which of the two bounds a checkout would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnpaidBound {
    /// Open unpaid orders.
    Orders,
    /// Units held by open unpaid orders.
    Units,
}

impl UnpaidBound {
    /// The name the store and the problem document use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Units => "units",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "orders" => Some(Self::Orders),
            "units" => Some(Self::Units),
            _ => None,
        }
    }
}

impl std::fmt::Display for UnpaidBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checkout refused by a bound: the bound, its value, and what the
/// customer's unpaid orders held when the checkout was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpaidRefusal {
    pub bound: UnpaidBound,
    pub most: i64,
    pub held: i64,
}
