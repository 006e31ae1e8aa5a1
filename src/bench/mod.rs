//! `regiondb bench`: a load tool that drives a running deployment over its
//! API and, in the same run, the baselines on the same servers (see
//! `baseline`), and reports throughput, latency and errors of each, with
//! regiondb's ratio to each baseline.
//!
//! Workloads (`workloads`): `create-all-up` (every node available; the
//! naive client's rate beside it), `create-queued` (every node switched
//! off for the run and back on after it, with the replay of the backlog
//! timed; the broker's raw produce rate beside it), `filter`, `lookup` and
//! `mixed` (over records written first).
//!
//! With `--target original` the same create workloads drive the app
//! regiondb replaces (`POST /create-customer`, statuses read from the same
//! Redis hash), its nodes switched by writing that hash; only those: the
//! read workloads send regiondb's requests (`GET /filter-records`, which
//! the original takes as a POST with a body, and lookups, which it has
//! not).
//!
//! One job a file: `load` (the workers), `http` (the deployment's API),
//! `calls` (what the workers send), `baseline`, `records`, `report`,
//! `workloads`.

mod baseline;
mod calls;
mod http;
mod load;
mod records;
mod report;
mod workloads;

use std::time::Duration;

pub use records::write_seed;
pub use report::Report;

use crate::config::Config;

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Deployment(String),
    #[error("--url {0:?}: give http://host:port")]
    Url(String),
    #[error("{0} needs the admin token (--token or ADMIN_TOKEN) to switch nodes")]
    NoToken(&'static str),
    #[error(
        "--workload {0}: the original app is measured on the create workloads only \
         (create-all-up, create-queued)"
    )]
    OriginalCreatesOnly(&'static str),
}

impl BenchError {
    /// The command line asked for something that cannot run.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            BenchError::Url(_) | BenchError::NoToken(_) | BenchError::OriginalCreatesOnly(_)
        )
    }
}

/// A workload (see the module's comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    CreateAllUp,
    CreateQueued,
    Filter,
    Lookup,
    Mixed,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::CreateAllUp => "create-all-up",
            Workload::CreateQueued => "create-queued",
            Workload::Filter => "filter",
            Workload::Lookup => "lookup",
            Workload::Mixed => "mixed",
        }
    }

    /// Reads need records to read.
    fn reads(self) -> bool {
        matches!(self, Workload::Filter | Workload::Lookup | Workload::Mixed)
    }
}

/// What the deployment under load is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    Regiondb,
    /// The app regiondb replaces (create workloads only, no baselines).
    Original,
}

/// A run's settings.
pub struct Settings {
    pub workloads: Vec<Workload>,
    pub connections: Vec<usize>,
    pub duration: Duration,
    pub warmup: Duration,
    /// Records per region written before the read workloads.
    pub records: u64,
    /// `http://host:port` of the deployment.
    pub url: String,
    pub token: Option<String>,
    pub baselines: bool,
    pub target: TargetKind,
    /// Records imported already (a seed CSV): the read workloads look
    /// these up instead of writing their own.
    pub ids_from: Option<std::path::PathBuf>,
}

/// Runs every workload at every connection count, baselines included.
pub async fn run(config: &Config, settings: &Settings) -> Result<Report, BenchError> {
    if settings.target == TargetKind::Original
        && let Some(read) = settings.workloads.iter().find(|w| w.reads())
    {
        return Err(BenchError::OriginalCreatesOnly(read.name()));
    }
    let authority = settings
        .url
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/').to_owned())
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| BenchError::Url(settings.url.clone()))?;
    let target = http::Target {
        authority,
        token: settings.token.clone(),
    };
    let mut bench = workloads::Bench::new(config, settings, target);
    // Writes first: the records the reads need would slow them down.
    let (reads, writes): (Vec<Workload>, Vec<Workload>) =
        settings.workloads.iter().partition(|w| w.reads());
    for workload in &writes {
        for connections in &settings.connections {
            bench.workload(*workload, *connections).await?;
        }
    }
    if !reads.is_empty() {
        match &settings.ids_from {
            Some(path) => bench.use_seed(path)?,
            None => bench.seed().await?,
        }
    }
    for workload in &reads {
        for connections in &settings.connections {
            bench.workload(*workload, *connections).await?;
        }
    }
    let mut report = bench.finish().await;
    report.ratios();
    Ok(report)
}
