//! Importing customers from a CSV shaped like the Olist customers file
//! (header `customer_id,customer_unique_id,customer_zip_code_prefix,
//! customer_city,customer_state`, in any column order; quoted or not; zip
//! prefixes with leading zeros; see `rows`). `regiondb import` (in `cli`)
//! connects the services and runs it.
//!
//! Every row is routed, versioned and placed exactly like a
//! `POST /create-customer` (home copy first, then the replica; a node that
//! is unavailable gets its copies queued in its topic), a batch at a time
//! through [`WritePath::place_homes`] and [`WritePath::place_replicas`], so
//! each node receives one bulk apply per batch: the same last-writer-wins
//! apply the replay uses. A batch's replicas are placed while the next
//! batch's home copies are; then, as for every write, a row whose id lives
//! in another region moves it there (its old copies become tombstones). Importing a file twice leaves the same records
//! (with newer versions).
//!
//! A bad row (unreadable, a field missing or invalid, a zip in no region)
//! never stops the load: it is reported with its line number and reason,
//! and counted in the [`Summary`].

use std::time::Duration;

use crate::domain::Customer;
use crate::writes::{HomesPlaced, Placement, WriteError, WritePath, WriteReceipt};

mod rows;

pub use rows::{BadRow, COLUMNS, FileError, Rows, count_rows};

/// Bad rows printed one by one; past this only counted.
const REPORTED_BAD_ROWS: u64 = 100;

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
    /// One line a count, the counts in one column, then the time taken.
    pub fn render(&self, elapsed: Duration) -> String {
        let rate = self.rows as f64 / elapsed.as_secs_f64().max(1e-9);
        let mut out = String::new();
        for (label, n) in [
            ("rows read", self.rows),
            ("stored", self.stored),
            ("queued", self.queued),
            ("bad", self.bad),
            ("failed", self.failed),
            ("replicas missing", self.replicas_missing),
        ] {
            out.push_str(&format!("{label:<16} {n}\n"));
        }
        out.push_str(&format!(
            "took {:.1}s ({rate:.0} rows/s)",
            elapsed.as_secs_f64()
        ));
        out
    }

    /// Counts a batch's answers, one per line in `lines`.
    fn count_answers(&mut self, answers: &[Result<WriteReceipt, WriteError>], lines: &[u64]) {
        for (answer, line) in answers.iter().zip(lines) {
            match answer {
                // A zip in no region: only routing can tell.
                Err(WriteError::Invalid(e)) => self.bad_row(&BadRow {
                    line: *line,
                    reason: e.message.clone(),
                }),
                Err(e) => {
                    self.failed += 1;
                    if self.failed <= REPORTED_BAD_ROWS {
                        eprintln!("line {line}: not imported: {e}");
                    }
                }
                Ok(receipt) => self.count(receipt),
            }
        }
    }

    fn bad_row(&mut self, bad: &BadRow) {
        self.bad += 1;
        if self.bad <= REPORTED_BAD_ROWS {
            eprintln!("line {}: bad row: {}", bad.line, bad.reason);
        } else if self.bad == REPORTED_BAD_ROWS + 1 {
            eprintln!("(more bad rows: only counted from here on)");
        }
    }

    fn count(&mut self, receipt: &WriteReceipt) {
        match receipt.status {
            Placement::Stored => self.stored += 1,
            _ => self.queued += 1,
        }
        if receipt.replica == Placement::Missing {
            self.replicas_missing += 1;
        }
    }
}

/// Imports every row of `rows`, `batch` rows at a time, calling
/// `progress` with the rows of each finished batch.
pub async fn import(
    writes: &WritePath,
    rows: &mut Rows,
    batch: usize,
    mut progress: impl FnMut(u64, &Summary),
) -> Summary {
    let mut summary = Summary::default();
    let mut reader = Batches {
        rows,
        record: csv::StringRecord::new(),
        size: batch,
        done: false,
    };
    // The previous batch, home copies placed: its replicas are placed while
    // this batch's home copies are (home first holds per record).
    let mut previous: Option<(HomesPlaced, Vec<u64>, u64)> = None;
    while !reader.done || previous.is_some() {
        let (customers, lines, taken) = reader.next(&mut summary);
        let homes = writes.place_homes(customers);
        let (homes, finished) = match previous.take() {
            Some((placed, lines, rows)) => {
                let records = placed.placed();
                let replicas = async {
                    let answers = writes.place_replicas(placed).await;
                    // A row whose id lives in another region moves it.
                    // (A region that cannot be read now: the records stay
                    // unsettled in Redis, for a serving instance's sweep.)
                    writes.note_unsettled(&records).await;
                    let _ = writes.settle_recorded(&records).await;
                    answers
                };
                let (homes, answers) = tokio::join!(homes, replicas);
                (homes, Some((answers, lines, rows)))
            }
            None => (homes.await, None),
        };
        if taken > 0 {
            previous = Some((homes, lines, taken));
        }
        if let Some((answers, lines, rows)) = finished {
            summary.count_answers(&answers, &lines);
            progress(rows, &summary);
        }
    }
    summary
}

/// The rows of a file, a batch at a time.
struct Batches<'a> {
    rows: &'a mut Rows,
    record: csv::StringRecord,
    size: usize,
    done: bool,
}

impl Batches<'_> {
    /// The next batch's valid customers with their line numbers, and how
    /// many rows it took (bad ones are counted into `summary`).
    fn next(&mut self, summary: &mut Summary) -> (Vec<Customer>, Vec<u64>, u64) {
        let mut customers = Vec::with_capacity(self.size);
        let mut lines = Vec::with_capacity(self.size);
        let mut taken = 0;
        while !self.done && customers.len() < self.size {
            let Some(row) = self.rows.next_row(&mut self.record) else {
                self.done = true;
                break;
            };
            summary.rows += 1;
            taken += 1;
            match row {
                Ok(customer) => {
                    lines.push(self.record.position().map_or(0, csv::Position::line));
                    customers.push(customer);
                }
                Err(bad) => summary.bad_row(&bad),
            }
        }
        (customers, lines, taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_one_aligned_column() {
        let summary = Summary {
            rows: 601,
            stored: 600,
            replicas_missing: 3,
            ..Summary::default()
        };
        let text = summary.render(Duration::from_millis(1500));
        assert!(
            text.starts_with("rows read        601\nstored           600\n"),
            "{text}"
        );
        assert!(text.contains("\nreplicas missing 3\n"), "{text}");
        assert!(text.ends_with("took 1.5s (401 rows/s)"), "{text}");
    }
}
