//! `rebuild-projections`: see [`rebuild_projections::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    rebuild_projections::cli::main().await
}
