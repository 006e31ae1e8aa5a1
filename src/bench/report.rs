//! The bench's report: one row per (workload, connections, client), as a
//! table for people or JSON for tools.

use std::fmt::Write as _;

use serde::Serialize;

use super::load::Load;

/// One measured load.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub workload: String,
    pub connections: usize,
    /// `regiondb`, `naive` (the naive client), `broker` (raw produces) or
    /// `original` (the app regiondb replaces).
    pub client: String,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Answers other than 2xx, and requests not answered.
    pub errors: u64,
    /// Answers by HTTP status.
    pub statuses: std::collections::BTreeMap<u16, u64>,
    /// regiondb's rate over this row's (baseline rows only).
    pub regiondb_ratio: Option<f64>,
    /// The deployment's resident memory after the load, if it says.
    pub resident_mib: Option<f64>,
}

impl Row {
    pub fn new(workload: &str, client: &str, load: &Load) -> Row {
        Row {
            workload: workload.into(),
            connections: load.connections,
            client: client.into(),
            requests_per_second: load.rate(),
            p50_ms: load.quantile_ms(0.5),
            p99_ms: load.quantile_ms(0.99),
            max_ms: load.max_ms(),
            errors: load.errors(),
            statuses: load.statuses.clone(),
            regiondb_ratio: None,
            resident_mib: None,
        }
    }
}

/// What a replay of the backlog a queued workload left came to.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    pub nodes: Vec<String>,
    pub hints: u64,
    pub seconds: f64,
    pub hints_per_second: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub replays: Vec<Replay>,
    /// Records per region written before the read workloads, and how fast.
    pub seeded: Option<(u64, f64)>,
}

impl Report {
    /// Sets each baseline row's ratio from the regiondb row of the same
    /// workload and connections.
    pub fn ratios(&mut self) {
        let ours: Vec<(String, usize, f64)> = (self.rows.iter())
            .filter(|r| r.client == "regiondb")
            .map(|r| (r.workload.clone(), r.connections, r.requests_per_second))
            .collect();
        for row in self.rows.iter_mut().filter(|r| r.client != "regiondb") {
            let regiondb = ours
                .iter()
                .find(|(w, c, _)| *w == row.workload && *c == row.connections);
            if let Some((_, _, rate)) = regiondb
                && row.requests_per_second > 0.0
            {
                row.regiondb_ratio = Some(rate / row.requests_per_second);
            }
        }
    }

    /// The report as a Markdown table (and the replay and seeding lines).
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| workload | conns | client | req/s | p50 ms | p99 ms | max ms | errors | regiondb ÷ this | RSS MiB |\n\
             |---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            let ratio = r
                .regiondb_ratio
                .map_or(String::new(), |x| format!("{x:.2}×"));
            let rss = r.resident_mib.map_or(String::new(), |m| format!("{m:.0}"));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {ratio} | {rss} |",
                r.workload,
                r.connections,
                r.client,
                r.requests_per_second,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.errors
            );
        }
        match self.seeded {
            Some((records, rate)) if rate > 0.0 => {
                let _ = writeln!(
                    out,
                    "\nseeded {records} records per region first ({rate:.0} records/s)"
                );
            }
            Some((records, _)) => {
                let _ = writeln!(out, "\nread over {records} imported records per region");
            }
            None => {}
        }
        for r in &self.replays {
            let _ = writeln!(
                out,
                "\nreplay: {} hints for {} applied in {:.1} s ({:.0} hints/s)",
                r.hints,
                r.nodes.join(" and "),
                r.seconds,
                r.hints_per_second
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(client: &str, rate: f64) -> Row {
        let mut r = Row::new("create-all-up", client, &Load::default());
        r.requests_per_second = rate;
        r
    }

    #[test]
    fn baselines_get_regiondbs_ratio() {
        let mut report = Report {
            rows: vec![row("regiondb", 300.0), row("naive", 150.0)],
            ..Report::default()
        };
        report.ratios();
        assert_eq!(report.rows[0].regiondb_ratio, None);
        assert_eq!(report.rows[1].regiondb_ratio, Some(2.0));
        assert!(report.table().contains("| 2.00× |"));
    }
}
