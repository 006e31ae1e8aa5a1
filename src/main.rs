use clap::{Parser, Subcommand};
use regiondb::config::Config;
use regiondb::startup::Application;
use regiondb::{generate, import, repair, telemetry};

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
    /// Load customers from a CSV shaped like the Olist customers file,
    /// routed and replicated like the API. Exits 1 if any row was bad or
    /// could not be placed (each is reported with its line number).
    Import {
        /// The CSV file (header customer_id, customer_unique_id,
        /// customer_zip_code_prefix, customer_city, customer_state).
        file: std::path::PathBuf,
        /// Rows per batch (one bulk write per node per batch).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=10_000))]
        batch_size: u16,
    },
    /// Write realistic customer rows (Olist shape) to stdout.
    Gen {
        /// How many rows.
        #[arg(long)]
        count: u64,
        /// Same seed, same rows.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Gen { count, seed }) = cli.command {
        // Needs no configuration and no services.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        return match generate::write(&mut out, count, seed) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            // A closed pipe (`regiondb gen ... | head`) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("regiondb gen: {e}");
                std::process::ExitCode::from(1)
            }
        };
    }
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
        Command::Import { file, batch_size } => {
            import::run_command(&config, &file, usize::from(batch_size)).await
        }
        Command::Gen { .. } => std::process::ExitCode::SUCCESS,
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
