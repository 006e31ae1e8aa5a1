//! `regiondb status`: every node's status (and who set it), queue, lag,
//! replay rate, time to drain, dead letters and flags, read straight from
//! Redis and Kafka, so it answers from any machine that reaches them,
//! whether or not an instance runs. The rate needs two looks at the
//! queues, `--window` seconds apart.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::{CliError, node_view};
use crate::config::Config;
use crate::domain::{NodeId, NodeView, StatusSource, human_seconds};
use crate::hints::HintLog;
use crate::monitor::Monitor;

/// Exit code 1 when a queue could not be read (Kafka did not answer).
pub async fn run(config: &Config, json: bool, window: Duration) -> Result<ExitCode, CliError> {
    let nodes: Vec<NodeId> = config.regions.nodes().cloned().collect();
    let client_id = format!("regiondb-status-{}", std::process::id());
    let hints = HintLog::new(&config.kafka, &nodes, &client_id).map_err(CliError::Kafka)?;
    let statuses = node_view(config, &nodes).await.map_err(CliError::Redis)?;
    let monitor = Monitor::new(config.regions.clone(), Arc::new(statuses), Arc::new(hints));
    monitor.snapshot().await;
    tokio::time::sleep(window).await;
    let mut views = monitor.snapshot().await;
    for v in &mut views {
        // No instance's memory here: caught up is what Kafka says.
        v.caught_up = v.queued == Some(0);
    }
    let out = if json {
        serde_json::to_string_pretty(&views).unwrap_or_default()
    } else {
        render(&views)
    };
    println!("{out}");
    Ok(if views.iter().any(|v| v.queued.is_none()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The table, then one line per node with its queue in words.
pub fn render(views: &[NodeView]) -> String {
    let header = [
        "NODE", "STATUS", "SOURCE", "QUEUED", "LAG", "RATE/S", "ETA", "DEAD", "REPLAY", "FLAGS",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for v in views {
        let or_dash = |x: Option<String>| x.unwrap_or_else(|| "-".into());
        let mut flags = Vec::new();
        if v.lost_data {
            flags.push("lost-data");
        }
        if !v.caught_up {
            flags.push("catching-up");
        }
        rows.push(vec![
            v.node_id.to_string(),
            v.status.to_string(),
            source(v.source).to_owned(),
            or_dash(v.queued.map(|q| q.to_string())),
            or_dash(v.lag_seconds.map(human_seconds)),
            or_dash(v.replay_rate.map(|r| format!("{r:.0}"))),
            or_dash(v.drain_eta_seconds.map(human_seconds)),
            or_dash(v.dead_letters.map(|d| d.to_string())),
            (if v.replay_paused { "paused" } else { "running" }).to_owned(),
            if flags.is_empty() {
                "-".into()
            } else {
                flags.join(",")
            },
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = (r.iter().zip(&widths))
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect();
    out.push(String::new());
    out.extend(
        views
            .iter()
            .map(|v| format!("{}: {}", v.node_id, v.queue_summary())),
    );
    out.join("\n")
}

fn source(s: StatusSource) -> &'static str {
    match s {
        StatusSource::Manual => "manual",
        StatusSource::Probe => "probe",
    }
}
