//! The command line: `serve` (the default), `repair`, `import`, `gen`,
//! `bench`, `status`, `dead-letters` and `replay`, one file each. Every subcommand answers an exit code or a [`CliError`],
//! which is printed with the subcommand's name and mapped to its exit code
//! in one place.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::backlog::Backlogs;
use crate::config::{Config, ConfigError, read_env_file};
use crate::domain::NodeId;
use crate::hints::HintError;
use crate::import::FileError;
use crate::nodes::{NodeStatuses, StatusError};
use crate::startup::{ConnectError, StartupError};
use crate::store::StoreError;

mod bench;
mod dead_letters;
mod generate;
mod import;
mod repair;
mod replay;
mod serve;
mod status;

/// Customer records in their home region's MongoDB, with hinted handoff
/// through Kafka while a node is down. Configured by environment variables
/// (and a `.env` file); see docs/configuration.md.
#[derive(Parser)]
#[command(name = "regiondb", version, about)]
pub struct Cli {
    /// The variables file to read (default: `.env` in the working
    /// directory, if there is one). Variables set in the environment win; a
    /// line that cannot be parsed stops the start.
    #[arg(long, global = true, value_name = "PATH")]
    env_file: Option<PathBuf>,
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
        file: PathBuf,
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
    /// Load a running deployment through its API and measure it, with the
    /// baselines (a naive client, the broker's raw produce rate) on the
    /// same servers. Prints a table (or `--json`). See docs/BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Every node's status, queue, lag, replay rate, time to drain, dead
    /// letters and flags, from Redis and Kafka (no instance needed).
    Status {
        #[arg(long)]
        json: bool,
        /// Seconds between the two looks at the queues the rate is
        /// measured over.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
        window: u64,
    },
    /// The hints set aside because they could not be applied: list them,
    /// or re-apply them once the cause is fixed.
    #[command(subcommand)]
    DeadLetters(dead_letters::DeadLetterCommand),
    /// Pause or resume a node's replay on every instance.
    #[command(subcommand)]
    Replay(replay::ReplayCommand),
}

/// Why a subcommand could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("{flag}: unknown region {given:?} (known: {known})")]
    UnknownRegion {
        flag: &'static str,
        given: String,
        known: String,
    },
    #[error(transparent)]
    Stores(#[from] StoreError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    ImportServices(#[from] ConnectError),
    #[error("cannot prepare the node topics: {}", .0.short_reason())]
    Topics(HintError),
    #[error("{0}")]
    Output(std::io::Error),
    #[error("{0}: must be a positive number")]
    Argument(&'static str),
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
    #[error("{0}")]
    Kafka(HintError),
    #[error("redis: {0}")]
    Redis(StatusError),
    #[error("{0} is unavailable: switch it on first")]
    NodeUnavailable(NodeId),
}

impl CliError {
    /// 2: the configuration, the arguments, or (for an import) the file or
    /// the services could not be used at all; 1: anything else (for a bench,
    /// the deployment failing it).
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_)
            | CliError::UnknownRegion { .. }
            | CliError::File(_)
            | CliError::ImportServices(_)
            | CliError::Topics(_)
            | CliError::Argument(_) => ExitCode::from(2),
            CliError::Bench(e) if e.is_usage() => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

/// Parses the command line and runs the subcommand.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    let name = match &command {
        Command::Serve => "regiondb",
        Command::Repair { .. } => "regiondb repair",
        Command::Import { .. } => "regiondb import",
        Command::Gen { .. } => "regiondb gen",
        Command::Bench(_) => "regiondb bench",
        Command::Status { .. } => "regiondb status",
        Command::DeadLetters(_) => "regiondb dead-letters",
        Command::Replay(_) => "regiondb replay",
    };
    match dispatch(command, cli.env_file).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(command: Command, env_file: Option<PathBuf>) -> Result<ExitCode, CliError> {
    if let Command::Gen { count, seed } = command {
        // Needs no configuration and no services.
        return generate::run(count, seed);
    }
    // `.env` in the working directory may be missing; a file given
    // explicitly must be there. Either way, a bad line stops here.
    let file = match &env_file {
        Some(path) => read_env_file(path, true)?,
        None => read_env_file(std::path::Path::new(".env"), false)?,
    };
    let config = Config::from_env(file)?;
    crate::telemetry::init(config.log_format, &config.log_filter);
    match command {
        Command::Serve => serve::run(config).await,
        Command::Repair { region, dry_run } => {
            repair::run(&config, region.as_deref(), dry_run).await
        }
        Command::Import { file, batch_size } => {
            import::run(&config, &file, usize::from(batch_size)).await
        }
        Command::Bench(args) => bench::run(&config, args).await,
        Command::Status { json, window } => {
            status::run(&config, json, std::time::Duration::from_secs(window)).await
        }
        Command::DeadLetters(c) => dead_letters::run(&config, c).await,
        Command::Replay(c) => replay::run(&config, c).await,
        Command::Gen { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// The node `given` with the option `flag` (every node when `None`), or
/// the usage error naming the known ones.
fn chosen_nodes(
    config: &Config,
    flag: &'static str,
    given: Option<&str>,
) -> Result<Vec<NodeId>, CliError> {
    let all = || config.regions.nodes().cloned().collect();
    match given {
        None => Ok(all()),
        Some(name) => match config.regions.get(name) {
            Some(region) => Ok(vec![region.id.clone()]),
            None => Err(CliError::UnknownRegion {
                flag,
                given: name.to_owned(),
                known: all()
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        },
    }
}

/// The nodes' statuses and data-loss flags as Redis has them now. The
/// queues are asked of Kafka, so every node counts as caught up here.
async fn node_view(config: &Config, nodes: &[NodeId]) -> Result<NodeStatuses, StatusError> {
    let backlogs = std::sync::Arc::new(Backlogs::new(nodes));
    let statuses = NodeStatuses::connect(&config.redis, nodes, backlogs.clone()).await?;
    statuses.resync().await?;
    for node in nodes {
        backlogs.confirm(node, backlogs.epoch(node));
    }
    Ok(statuses)
}
