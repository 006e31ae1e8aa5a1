//! What the chaos run prints when something is wrong, so that a failure
//! seen only far away (in CI, where the logs are gone) can be read from its
//! output: for a queue that does not drain, the node's partitions, what
//! each instance says of the node, and the last log lines about its replay
//! and the group; for a record found wrong, every attempt on it and every
//! copy of it.

use std::time::Duration;

use crate::helpers::{RegionSpec, TestApp};
use crate::verdict::Copy;
use crate::writers::Attempt;

/// Log lines worth showing: the replay's and the group's story.
const TOLD: [&str; 9] = [
    "stalled",
    "partitions",
    "replayed hints",
    "commit",
    "status changed",
    "replay stopped",
    "rebalance",
    "caught up",
    "paused",
];
/// Lines shown per log file.
const TAIL: usize = 15;

/// Prints what is known of `node`'s undrained queue.
pub async fn stuck_queue(app: &TestApp, node: &str, addresses: &[String]) {
    println!("\n!! {node} did not drain. Its partitions:");
    for p in app.partition_offsets(node).await {
        println!(
            "   partition {}: log {}..{}, committed {:?}",
            p.partition, p.low, p.high, p.committed
        );
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    for address in addresses {
        let said = match http.get(format!("{address}/nodes")).send().await {
            Ok(r) => r.text().await.unwrap_or_else(|e| e.to_string()),
            Err(e) => e.to_string(),
        };
        let of_node = serde_json::from_str::<serde_json::Value>(&said)
            .ok()
            .and_then(|v| v.as_array()?.iter().find(|n| n["node_id"] == node).cloned())
            .map_or(said, |n| n.to_string());
        println!("   {address} says: {of_node}");
    }
    let Ok(entries) = std::fs::read_dir(&app.dir) else {
        return;
    };
    let mut logs: Vec<_> = (entries.flatten())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name.starts_with("regiondb") || name.starts_with("tansu")) && name.ends_with(".log")
        })
        .collect();
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let broker = log_is_broker(&log);
        let lines: Vec<String> = (text.lines())
            .map(plain)
            .filter(|l| match broker {
                true => !l.contains("TopicAlreadyExists"),
                false => told_of(l, node),
            })
            .collect();
        println!(
            "   -- {} (last {TAIL} of {} lines told):",
            log.display(),
            lines.len()
        );
        for l in &lines[lines.len().saturating_sub(TAIL)..] {
            println!("   {}", l.chars().take(240).collect::<String>());
        }
    }
}

/// Whether an app's log line tells of `node`'s replay or its group: it
/// names the node (or no node and no topic), and says one of [`TOLD`].
fn told_of(line: &str, node: &str) -> bool {
    let about = line.contains(node) || !(line.contains("node=") || line.contains("topic="));
    about && TOLD.iter().any(|t| line.contains(t))
}

/// A log line without its terminal colours (the broker writes them).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        for c in chars.by_ref() {
            if c.is_ascii_alphabetic() {
                break;
            }
        }
    }
    out
}

fn log_is_broker(log: &std::path::Path) -> bool {
    log.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("tansu"))
}

/// Every attempt on `id` (in the order sent, seconds since the run's first
/// write) and every copy of it.
pub fn story(
    id: &str,
    tries: &[&Attempt],
    regions: &[RegionSpec],
    all: &[(&str, &str, &Copy)],
    first: std::time::Instant,
) -> String {
    let mut tries = tries.to_vec();
    tries.sort_by_key(|a| a.sent);
    let mut out = format!("{id}:");
    for a in tries {
        let at = |t: std::time::Instant| t.saturating_duration_since(first).as_secs_f64();
        let region = crate::verdict::home_of(regions, a.zip).map_or("?", |(home, _)| home);
        out.push_str(&format!(
            "\n    {:7.3}-{:7.3}s {:?} {} ({region}) {} -> {:?}{}",
            at(a.sent),
            at(a.answered),
            a.op,
            a.zip,
            a.city,
            a.outcome,
            a.careful
                .map_or(String::new(), |c| format!(" careful w{c}")),
        ));
    }
    for (region, role, copy) in all {
        out.push_str(&format!("\n    {region} {role}: {copy:?}"));
    }
    out
}
