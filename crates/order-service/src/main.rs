//! `order-service`: see [`order_service::cli`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    order_service::cli::main().await
}
