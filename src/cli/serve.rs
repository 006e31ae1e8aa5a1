//! `regiondb` / `regiondb serve`: builds the application and serves until
//! SIGTERM or Ctrl-C.

use std::process::ExitCode;

use super::CliError;
use crate::config::Config;
use crate::startup::Application;

pub async fn run(config: Config) -> Result<ExitCode, CliError> {
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal())
        .await
        .map_err(CliError::Serve)?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (docker stop, systemd) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
