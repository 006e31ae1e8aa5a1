//! `regiondb repair`: connects to every node's MongoDB (nothing else),
//! repairs, prints one line per region.

use std::process::ExitCode;

use super::CliError;
use crate::config::Config;
use crate::domain::NodeId;
use crate::repair::{render_table, repair};
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
        Some(r) => match config.regions.get(r) {
            Some(region) => Some(region.id.clone()),
            None => {
                let known: Vec<&str> = config.regions.nodes().map(NodeId::as_str).collect();
                return Err(CliError::UnknownRegion {
                    given: r.to_owned(),
                    known: known.join(", "),
                });
            }
        },
    };
    let stores = Stores::connect(&config.regions, &config.mongo.uris, config.mongo.timeout).await?;
    let reports = repair(&config.regions, &stores, only.as_ref(), dry_run).await;
    println!("{}", render_table(&reports, dry_run));
    Ok(if reports.iter().any(|r| r.unreachable.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
