//! `regiondb bench`: load on a running deployment, with the baselines
//! measured on the same servers (see `bench`).

use std::process::ExitCode;
use std::time::Duration;

use super::CliError;
use crate::bench::{Settings, TargetKind, Workload};
use crate::config::Config;

/// The command line of `regiondb bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Workloads to run, in order (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = ["create-all-up", "create-queued"])]
    workload: Vec<Workload>,
    /// Connections (concurrent clients), one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [8, 32])]
    connections: Vec<usize>,
    /// Measured seconds per run (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Unmeasured seconds before each run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Records per region written first, for filter, lookup and mixed.
    #[arg(long, default_value_t = 5000)]
    records: u64,
    /// The deployment (default: this configuration's port on 127.0.0.1).
    #[arg(long)]
    url: Option<String>,
    /// The admin token, to switch nodes (default: `ADMIN_TOKEN`).
    #[arg(long)]
    token: Option<String>,
    /// Skip the baselines.
    #[arg(long)]
    no_baselines: bool,
    /// What is under load: regiondb, or the app it replaces.
    #[arg(long, value_enum, default_value_t = TargetKind::Regiondb)]
    target: TargetKind,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Only write a seed CSV of `--records` records per region to PATH (for
    /// `regiondb import`) and exit.
    #[arg(long, value_name = "PATH")]
    seed_file: Option<std::path::PathBuf>,
    /// The read workloads look up the records of this seed CSV (imported
    /// already) instead of writing their own through the API.
    #[arg(long, value_name = "PATH")]
    ids_from: Option<std::path::PathBuf>,
}

pub async fn run(config: &Config, args: BenchArgs) -> Result<ExitCode, CliError> {
    let seconds = |s: f64, flag: &'static str| {
        (s.is_finite() && s >= 0.0)
            .then(|| Duration::from_secs_f64(s))
            .ok_or(CliError::Argument(flag))
    };
    if args.connections.contains(&0) {
        return Err(CliError::Argument("--connections"));
    }
    if let Some(path) = &args.seed_file {
        let rows = crate::bench::write_seed(path, config.regions.regions(), args.records)
            .map_err(CliError::Output)?;
        eprintln!("wrote {rows} rows to {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let settings = Settings {
        workloads: args.workload,
        connections: args.connections,
        duration: seconds(args.duration, "--duration")?,
        warmup: seconds(args.warmup, "--warmup")?,
        records: args.records,
        url: (args.url).unwrap_or_else(|| format!("http://127.0.0.1:{}", config.bind.port())),
        token: args
            .token
            .or_else(|| config.admin_token.as_ref().map(|t| t.expose().to_owned())),
        baselines: !args.no_baselines,
        target: args.target,
        ids_from: args.ids_from,
    };
    let report = crate::bench::run(config, &settings).await?;
    let out = if args.json {
        serde_json::to_string_pretty(&report).unwrap_or_default()
    } else {
        report.table()
    };
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}
