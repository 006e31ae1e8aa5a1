//! `regiondb replay pause|resume --node N`: pauses or resumes a node's
//! replay on every instance (the same as `POST /node-replay`), through
//! Redis.

use std::process::ExitCode;

use clap::Subcommand;

use super::{CliError, node_view};
use crate::config::Config;
use crate::domain::NodeId;

#[derive(Subcommand)]
pub enum ReplayCommand {
    /// Hints for the node wait in Kafka until `resume` (a maintenance
    /// window); a batch being applied is finished first.
    Pause {
        #[arg(long)]
        node: String,
    },
    Resume {
        #[arg(long)]
        node: String,
    },
}

pub async fn run(config: &Config, command: ReplayCommand) -> Result<ExitCode, CliError> {
    let (node, paused) = match &command {
        ReplayCommand::Pause { node } => (node, true),
        ReplayCommand::Resume { node } => (node, false),
    };
    let node = super::chosen_nodes(config, "--node", Some(node))?.remove(0);
    let all: Vec<NodeId> = config.regions.nodes().cloned().collect();
    let statuses = node_view(config, &all).await.map_err(CliError::Redis)?;
    (statuses.set_paused(&node, paused).await).map_err(CliError::Redis)?;
    println!(
        "{node}: replay {}",
        if paused { "paused" } else { "resumed" }
    );
    Ok(ExitCode::SUCCESS)
}
