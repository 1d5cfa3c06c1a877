//! The `rebuild-projections` command line, built inside the tests package so
//! that tests can run it as a process.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    rebuild_projections::cli::main().await
}
