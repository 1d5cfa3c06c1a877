//! `order-service`: see [`order_service::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    order_service::cli::main_with_exit_code().await
}
