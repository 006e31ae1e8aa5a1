use clap::{Parser, Subcommand};
use regiondb::config::Config;
use regiondb::startup::Application;
use regiondb::{repair, telemetry};

/// Customer records in their home region's MongoDB, with hinted handoff
/// through Kafka while a node is down. Configured by environment variables
/// (and a `.env` file); see the README.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and the pages (what `regiondb` alone does).
    Serve,
    /// Make every region's home and replica copies agree: the newer version
    /// of each record is copied over the older or missing one. Exits
    /// non-zero only if a node could not be reached.
    Repair {
        /// Only this region (e.g. region_2).
        #[arg(long)]
        region: Option<String>,
        /// Compare and report, but write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // A missing .env is normal; a malformed one is reported by the variables.
    let _ = dotenvy::dotenv();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("regiondb: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Repair { region, dry_run } => {
            repair::run_command(&config, region.as_deref(), dry_run).await
        }
    }
}

async fn serve(config: Config) -> std::process::ExitCode {
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("regiondb: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regiondb: server error: {e}");
            std::process::ExitCode::from(1)
        }
    }
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
