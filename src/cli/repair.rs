//! `regiondb repair`: connects to every node's MongoDB, repairs, then purges
//! the tombstones no copy or hint can need any more (asking Kafka whether
//! the nodes' queues are empty; without Kafka, nothing is purged, and a copy
//! superseded only by a tombstone in another region is left alone), and
//! prints one line per region.

use std::process::ExitCode;

use super::{CliError, node_view};
use crate::config::Config;
use crate::domain::NodeId;
use crate::hints::HintLog;
use crate::repair::{RegionRepair, blocked_by, purge, purge_rule, render_table, repair};
use crate::store::Stores;

/// Exit code 1 if a region could not be fully compared, 2 for a bad
/// `--region`.
pub async fn run(
    config: &Config,
    region: Option<&str>,
    dry_run: bool,
) -> Result<ExitCode, CliError> {
    let only = match region {
        None => None,
        Some(_) => super::chosen_nodes(config, "--region", region)?.pop(),
    };
    let stores = Stores::connect(&config.regions, &config.mongo.uris, config.mongo.timeout).await?;
    let nodes: Vec<NodeId> = config.regions.nodes().cloned().collect();
    let client_id = format!("regiondb-repair-{}", std::process::id());
    let hints = HintLog::new(&config.kafka, &nodes, &client_id)
        .inspect_err(|e| tracing::warn!(error = %e, "no purge, and no queue checks: kafka"))
        .ok();
    let mut reports = repair(
        &config.regions,
        &stores,
        hints.as_ref(),
        only.as_ref(),
        dry_run,
    )
    .await;
    if !dry_run && let Some(hints) = &hints {
        purge_too(config, &stores, hints, only.as_ref(), &mut reports).await;
    }
    println!("{}", render_table(&reports, dry_run));
    Ok(if reports.iter().any(|r| r.unreachable.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Purges what the rule allows and adds the counts to `reports` (a purge's
/// own problems are logged; they do not make the repair fail).
async fn purge_too(
    config: &Config,
    stores: &Stores,
    hints: &HintLog,
    only: Option<&NodeId>,
    reports: &mut [RegionRepair],
) {
    let nodes: Vec<NodeId> = config.regions.nodes().cloned().collect();
    let blocked = match node_view(config, &nodes).await {
        Ok(statuses) => blocked_by(&statuses, &nodes),
        Err(e) => Some(format!("the node statuses cannot be read from redis ({e})")),
    };
    let rule = purge_rule(hints, &nodes, config.purge.grace, blocked).await;
    for purged in purge(&config.regions, stores, only, &rule).await {
        if let Some(reason) = &purged.unreachable {
            tracing::info!(region = %purged.region, %reason, "not purged");
        }
        if let Some(report) = reports.iter_mut().find(|r| r.region == purged.region) {
            report.purged += purged.purged;
        }
    }
}
