//! The `order-service` command line, built inside the tests package so that
//! tests can start it as a process (`CARGO_BIN_EXE_order-service-under-test`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    order_service::cli::main_with_exit_code().await
}
