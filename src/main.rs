//! The `regiondb` binary: everything it does is in [`regiondb::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    regiondb::cli::run().await
}
