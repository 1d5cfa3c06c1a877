//! `orders`: the store-orders command line (`order_client::cli`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    order_client::cli::main().await
}
