//! `regiondb import FILE.csv`: loads customers from a CSV shaped like the
//! Olist customers file (header `customer_id,customer_unique_id,
//! customer_zip_code_prefix,customer_city,customer_state`, in any column
//! order; quoted or not; zip prefixes with leading zeros).
//!
//! Every row is routed, versioned and placed exactly like a
//! `POST /create-customer` (home copy first, then the replica; a node that
//! is unavailable gets its copies queued in its topic), a batch at a time
//! through [`WritePath::create_customers`], so each node receives one bulk
//! apply per batch: the same last-writer-wins apply the replay uses.
//! Importing a file twice leaves the same records (with newer versions).
//!
//! A bad row (unreadable, a field missing or invalid, a zip in no region)
//! never stops the load: it is reported with its line number and reason.
//! The exit code says whether any row was bad or could not be placed.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backlog::Backlogs;
use crate::clock_lease::{ClockError, ClockLease};
use crate::config::Config;
use crate::domain::{Customer, NodeId};
use crate::hints::HintLog;
use crate::nodes::NodeStatuses;
use crate::store::Stores;
use crate::writes::{HomesPlaced, Placement, WriteError, WritePath};

/// The columns a row must have.
pub const COLUMNS: [&str; 5] = [
    "customer_id",
    "customer_unique_id",
    "customer_zip_code_prefix",
    "customer_city",
    "customer_state",
];
/// Bad rows printed one by one; past this only counted.
const REPORTED_BAD_ROWS: u64 = 100;
/// How often progress is printed when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
    /// Home copy written to its node.
    pub stored: u64,
    /// Home copy queued for its unavailable node.
    pub queued: u64,
    /// Rows not imported: unreadable or invalid.
    pub bad: u64,
    /// Valid rows whose home copy could be neither written nor queued, or
    /// that their home node refused for good.
    pub failed: u64,
    /// Replica copies neither written nor queued (repair restores them).
    pub replicas_missing: u64,
}

impl Summary {
    pub fn render(&self, elapsed: Duration) -> String {
        let rate = self.rows as f64 / elapsed.as_secs_f64().max(1e-9);
        format!(
            "rows read {}\nstored    {}\nqueued    {}\nbad       {}\nfailed    {}\nreplicas missing {}\ntook {:.1}s ({:.0} rows/s)",
            self.rows,
            self.stored,
            self.queued,
            self.bad,
            self.failed,
            self.replicas_missing,
            elapsed.as_secs_f64(),
            rate
        )
    }

    fn count(&mut self, receipt: &crate::writes::WriteReceipt) {
        match receipt.status {
            Placement::Stored => self.stored += 1,
            _ => self.queued += 1,
        }
        if receipt.replica == Placement::Missing {
            self.replicas_missing += 1;
        }
    }
}

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// Reads `path` as the Olist customers CSV: every row as a customer or as a
/// bad row, each with its line number. Fails only if the file cannot be
/// opened or its header lacks a column.
pub struct Rows {
    reader: csv::Reader<std::fs::File>,
    /// Column index of each of [`COLUMNS`].
    index: [usize; 5],
}

impl Rows {
    pub fn open(path: &Path) -> Result<Rows, String> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let header = reader
            .headers()
            .map_err(|e| format!("{}: unreadable header: {e}", path.display()))?
            .clone();
        let mut index = [0; 5];
        for (slot, name) in index.iter_mut().zip(COLUMNS) {
            *slot = header.iter().position(|h| h == name).ok_or_else(|| {
                format!(
                    "{}: the header has no {name} column (expected {})",
                    path.display(),
                    COLUMNS.join(",")
                )
            })?;
        }
        Ok(Rows { reader, index })
    }

    /// The next row (`None` at the end).
    pub fn next_row(&mut self, record: &mut csv::StringRecord) -> Option<Result<Customer, BadRow>> {
        let read = self.reader.read_record(record);
        let line = record.position().map_or(0, csv::Position::line);
        match read {
            Ok(false) => None,
            Err(e) => {
                let line = e.position().map_or(line, csv::Position::line);
                Some(Err(BadRow {
                    line,
                    reason: format!("unreadable: {e}"),
                }))
            }
            Ok(true) => Some(self.parse(record).map_err(|reason| BadRow { line, reason })),
        }
    }

    fn parse(&self, record: &csv::StringRecord) -> Result<Customer, String> {
        let mut body = Map::new();
        for (name, i) in COLUMNS.iter().zip(self.index) {
            match record.get(i) {
                Some(v) => body.insert((*name).to_owned(), Value::String(v.to_owned())),
                None => {
                    return Err(format!(
                        "{name} is missing (the row has {} fields)",
                        record.len()
                    ));
                }
            };
        }
        Customer::parse(&body).map_err(|e| e.message)
    }
}

/// Counts the data lines of `path` (for the progress bar).
fn count_rows(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    if last != b'\n' {
        lines += 1;
    }
    Ok(lines.saturating_sub(1))
}

/// Progress: a bar on a terminal, plain lines every few seconds otherwise.
struct Progress {
    bar: ProgressBar,
    plain: bool,
    last_line: Instant,
    started: Instant,
    total: u64,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let plain = !std::io::stderr().is_terminal();
        let bar = if plain {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
        } else {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {human_pos}/{human_len} rows  {per_sec:.bold}  ETA {eta}  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        };
        Progress {
            bar,
            plain,
            last_line: Instant::now(),
            started: Instant::now(),
            total,
        }
    }

    fn advance(&mut self, rows: u64, summary: &Summary) {
        self.bar.inc(rows);
        self.bar.set_message(format!("bad {}", summary.bad));
        if self.plain && self.last_line.elapsed() >= PLAIN_PROGRESS_EVERY {
            self.last_line = Instant::now();
            let done = self.bar.position();
            let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "import: {done}/{} rows, {rate:.0} rows/s, {} bad",
                self.total, summary.bad
            );
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `regiondb import FILE`: exit code 0 when every row was imported, 1 when
/// some row was bad or could not be placed, 2 when the file or the
/// services could not be used at all.
pub async fn run_command(config: &Config, path: &Path, batch: usize) -> std::process::ExitCode {
    match import(config, path, batch).await {
        Ok(summary) if summary.bad == 0 && summary.failed == 0 => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("regiondb import: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn import(config: &Config, path: &Path, batch: usize) -> Result<Summary, String> {
    let mut rows = Rows::open(path)?;
    let total = count_rows(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (writes, clock_lease) = connect(config).await?;
    let shutdown = CancellationToken::new();
    let background = TaskTracker::new();
    background.spawn(
        writes
            .statuses
            .clone()
            .follow(config.status_resync, shutdown.clone()),
    );
    background.spawn(clock_lease.run(shutdown.clone()));

    let started = Instant::now();
    let mut summary = Summary::default();
    let mut progress = Progress::new(total);
    let mut record = csv::StringRecord::new();
    let mut customers = Vec::with_capacity(batch);
    let mut done = false;
    // The previous batch, home copies placed: its replicas are placed while
    // this batch's home copies are (home first holds per record).
    let mut previous: Option<(HomesPlaced, Vec<u64>, u64)> = None;
    while !done || previous.is_some() {
        let mut batch_lines = Vec::with_capacity(batch);
        let mut taken = 0;
        while !done && customers.len() < batch {
            let Some(row) = rows.next_row(&mut record) else {
                done = true;
                break;
            };
            summary.rows += 1;
            taken += 1;
            match row {
                Ok(customer) => {
                    batch_lines.push(record.position().map_or(0, csv::Position::line));
                    customers.push(customer);
                }
                Err(bad) => report_bad(&mut summary, &bad),
            }
        }
        let homes = writes.place_homes(std::mem::take(&mut customers));
        let (homes, finished) = match previous.take() {
            Some((placed, lines, rows)) => {
                let (homes, answers) = tokio::join!(homes, writes.place_replicas(placed));
                (homes, Some((answers, lines, rows)))
            }
            None => (homes.await, None),
        };
        if taken > 0 {
            previous = Some((homes, batch_lines, taken));
        }
        if let Some((answers, lines, rows)) = finished {
            for (answer, line) in answers.iter().zip(&lines) {
                match answer {
                    // A zip in no region: only routing can tell.
                    Err(WriteError::Invalid(e)) => report_bad(
                        &mut summary,
                        &BadRow {
                            line: *line,
                            reason: e.message.clone(),
                        },
                    ),
                    Err(e) => {
                        summary.failed += 1;
                        if summary.failed <= REPORTED_BAD_ROWS {
                            eprintln!("line {line}: not imported: {e}");
                        }
                    }
                    Ok(receipt) => summary.count(receipt),
                }
            }
            progress.advance(rows, &summary);
        }
    }
    progress.finish();
    shutdown.cancel();
    background.close();
    background.wait().await;
    let hints = writes.hints.clone();
    if let Ok(Err(e)) =
        tokio::task::spawn_blocking(move || hints.flush(Duration::from_secs(10))).await
    {
        tracing::warn!(error = %e, "producer flush failed");
    }
    println!("{}", summary.render(started.elapsed()));
    Ok(summary)
}

fn report_bad(summary: &mut Summary, bad: &BadRow) {
    summary.bad += 1;
    if summary.bad <= REPORTED_BAD_ROWS {
        eprintln!("line {}: bad row: {}", bad.line, bad.reason);
    } else if summary.bad == REPORTED_BAD_ROWS + 1 {
        eprintln!("(more bad rows: only counted from here on)");
    }
}

/// The write path without the HTTP server: Redis (statuses, versions),
/// every node's MongoDB, Kafka (with the node topics created).
async fn connect(config: &Config) -> Result<(Arc<WritePath>, ClockLease), String> {
    let nodes: Vec<NodeId> = config.regions.nodes().cloned().collect();
    let backlogs = Arc::new(Backlogs::new(&nodes));
    let statuses = NodeStatuses::connect(&config.redis_url, &nodes, backlogs.clone())
        .await
        .map_err(|e| format!("cannot reach redis: {}", e.short_reason()))?;
    let statuses = Arc::new(statuses);
    let instance = format!(
        "import-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let clock_lease = ClockLease::start(statuses.clone(), &instance)
        .await
        .map_err(|e| match e {
            ClockError::Redis(e) => format!("cannot reach redis: {}", e.short_reason()),
            other => other.to_string(),
        })?;
    statuses
        .load()
        .await
        .map_err(|e| format!("cannot reach redis: {}", e.short_reason()))?;
    let stores = Stores::connect(&config.regions, &config.mongo.uris, config.mongo.timeout)
        .await
        .map_err(|e| e.short_reason())?;
    let hints = HintLog::new(&config.kafka, &nodes).map_err(|e| e.short_reason())?;
    hints
        .ensure_topics(&nodes)
        .await
        .map_err(|e| format!("cannot prepare the node topics: {}", e.short_reason()))?;
    let writes = Arc::new(WritePath {
        regions: config.regions.clone(),
        statuses,
        stores: Arc::new(stores),
        hints: Arc::new(hints),
        backlogs,
        clock: clock_lease.clock.clone(),
        tasks: TaskTracker::new(),
        // The import places batches itself, never through single writes.
        in_flight: Arc::new(tokio::sync::Semaphore::new(1)),
    });
    Ok((writes, clock_lease))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn rows_are_read_by_header_name_with_line_numbers_for_bad_ones() {
        let f = file(
            "customer_state,customer_id,customer_unique_id,customer_zip_code_prefix,customer_city\n\
             \"SP\",\"a\",\"ua\",\"01310\",\"sao paulo\"\n\
             SP,b,ub,not-a-zip,franca\n\
             SP,c\n\
             \"RS\",\"d\",\"ud\",\"90010\",\"porto alegre\"\n",
        );
        let mut rows = Rows::open(f.path()).unwrap();
        let mut record = csv::StringRecord::new();
        let mut got = Vec::new();
        while let Some(row) = rows.next_row(&mut record) {
            got.push(row);
        }
        assert_eq!(got.len(), 4);
        let a = got[0].as_ref().unwrap();
        assert_eq!(a.customer_id.as_str(), "a");
        assert_eq!(a.customer_zip_code_prefix.get(), 1310);
        let bad = got[1].as_ref().unwrap_err();
        assert_eq!(bad.line, 3);
        assert!(
            bad.reason.contains("customer_zip_code_prefix"),
            "{}",
            bad.reason
        );
        let short = got[2].as_ref().unwrap_err();
        assert_eq!(short.line, 4);
        assert!(short.reason.contains("missing"), "{}", short.reason);
        assert!(got[3].is_ok());
        assert_eq!(count_rows(f.path()).unwrap(), 4);
    }

    #[test]
    fn a_header_without_a_column_is_refused_naming_it() {
        let f = file("customer_id,customer_city\nx,y\n");
        let e = Rows::open(f.path()).err().unwrap();
        assert!(e.contains("customer_unique_id"), "{e}");
    }
}
