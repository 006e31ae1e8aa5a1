//! `regiondb dead-letters list|replay`: the hints set aside because they
//! could not be applied, each with its reason, and re-applying them once
//! the cause is fixed (see `replay::dead_letters` for what is never
//! applied, and why).

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::{CliError, node_view};
use crate::config::Config;
use crate::domain::{NodeId, rfc3339};
use crate::hints::{HintLog, ParkedHint};
use crate::replay::dead_letters::{Redelivered, Verdict, redeliver};
use crate::store::Stores;

/// The most letters one command reads per node.
const MAX_LETTERS: usize = 10_000;

#[derive(Subcommand)]
pub enum DeadLetterCommand {
    /// Every dead letter not dealt with yet: node, position, time,
    /// customer, version and reason.
    List {
        /// Only this node (e.g. region_2).
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Re-applies them (last-writer-wins) once the cause is fixed; never
    /// one older than the purge horizon (it could bring a deleted record
    /// back). Exits 1 if one is still refused.
    Replay {
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
        /// Only this customer's letters.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, command: DeadLetterCommand) -> Result<ExitCode, CliError> {
    let (node, json) = match &command {
        DeadLetterCommand::List { node, json } | DeadLetterCommand::Replay { node, json, .. } => {
            (node.as_deref(), *json)
        }
    };
    let nodes = super::chosen_nodes(config, "--node", node)?;
    let all: Vec<NodeId> = config.regions.nodes().cloned().collect();
    let client_id = format!("regiondb-dead-letters-{}", std::process::id());
    let log = HintLog::new(&config.kafka, &all, &client_id).map_err(CliError::Kafka)?;
    let (lines, code) = match command {
        DeadLetterCommand::List { .. } => (list(&log, &nodes).await?, ExitCode::SUCCESS),
        DeadLetterCommand::Replay { id, .. } => replay(config, &log, &nodes, id.as_deref()).await?,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&lines).unwrap_or_default()
        );
    } else if lines.is_empty() {
        println!("no dead letters");
    } else {
        lines.iter().for_each(|l| println!("{}", line(l)));
    }
    Ok(code)
}

async fn list(log: &HintLog, nodes: &[NodeId]) -> Result<Vec<Value>, CliError> {
    let mut out = Vec::new();
    for node in nodes {
        let letters =
            (log.outstanding_dead_letters(node, MAX_LETTERS).await).map_err(CliError::Kafka)?;
        out.extend(letters.iter().map(|h| describe(node, h)));
    }
    Ok(out)
}

async fn replay(
    config: &Config,
    log: &HintLog,
    nodes: &[NodeId],
    id: Option<&str>,
) -> Result<(Vec<Value>, ExitCode), CliError> {
    let all: Vec<NodeId> = config.regions.nodes().cloned().collect();
    let statuses = node_view(config, &all).await.map_err(CliError::Redis)?;
    let stores = Stores::connect(&config.regions, &config.mongo.uris, config.mongo.timeout).await?;
    let mut out = Vec::new();
    let mut refused = false;
    for node in nodes {
        if !statuses.status(node).is_available() {
            return Err(CliError::NodeUnavailable(node.clone()));
        }
        let Some(store) = stores.get(node) else {
            continue;
        };
        let grace = config.purge.grace;
        let done =
            (redeliver(log, store, node, id, grace, MAX_LETTERS).await).map_err(CliError::Kafka)?;
        refused |= done
            .iter()
            .any(|d| matches!(d.verdict, Verdict::Refused(_)));
        out.extend(
            done.iter()
                .filter(|d| d.verdict != Verdict::Skipped)
                .map(|d| verdict(node, d)),
        );
    }
    stores.shutdown().await;
    Ok((
        out,
        if refused {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    ))
}

/// One letter as JSON.
fn describe(node: &NodeId, h: &ParkedHint) -> Value {
    let copy = h.copy.as_ref().ok();
    json!({
        "node": node,
        "partition": h.partition,
        "offset": h.offset,
        "at": h.at_ms.and_then(rfc3339),
        "customer_id": h.key.as_deref().map(String::from_utf8_lossy),
        "version": copy.map(|c| c.version.get()),
        "deleted": copy.map(|c| c.is_tombstone()),
        "reason": h.reason,
    })
}

fn verdict(node: &NodeId, d: &Redelivered) -> Value {
    let mut v = describe(node, &d.hint);
    let (word, why) = match &d.verdict {
        Verdict::Applied => ("applied", None),
        Verdict::Dropped(why) => ("dropped", Some(why)),
        Verdict::Refused(why) => ("refused", Some(why)),
        Verdict::Skipped => ("skipped", None),
    };
    v["outcome"] = json!(word);
    v["why"] = json!(why);
    v
}

/// One letter in words.
fn line(v: &Value) -> String {
    let s = |k: &str| match &v[k] {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let head = format!(
        "{} {}@{} {} customer {} version {}",
        s("node"),
        s("partition"),
        s("offset"),
        s("at"),
        s("customer_id"),
        s("version")
    );
    match v.get("outcome") {
        Some(_) if v["why"].is_null() => format!("{}: {head}", s("outcome")),
        Some(_) => format!("{}: {head}: {}", s("outcome"), s("why")),
        None => format!("{head}: {}", s("reason")),
    }
}
