//! The `order-service` command line, built inside the tests package so that
//! tests can start it as a process (`CARGO_BIN_EXE_order-service-under-test`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    order_service::cli::main().await
}
