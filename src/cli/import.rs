//! `regiondb import FILE`: connects the services the write path needs (the
//! same way `serve` does), imports, shows progress and prints the summary.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::CliError;
use crate::config::Config;
use crate::import::{Rows, Summary, count_rows, import};
use crate::startup::Services;

/// How often progress is printed when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(2);

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
                    "{bar:40.cyan/blue} {human_pos}/{human_len} rows  {rate:.bold}  ETA {eta}  {msg}",
                )
                .map(|style| style.with_key("rate", rows_per_second))
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

/// The bar's rate, in whole rows a second with thousands separators, like
/// its row counts (indicatif's own `per_sec` prints four decimals).
fn rows_per_second(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let rate = state.per_sec().round() as u64;
    let _ = write!(w, "{} rows/s", HumanCount(rate));
}

/// `regiondb import FILE`: exit code 0 when every row was imported, 1 when
/// some row was bad or could not be placed, 2 when the file or the
/// services could not be used at all.
pub async fn run(config: &Config, path: &Path, batch: usize) -> Result<ExitCode, CliError> {
    let mut rows = Rows::open(path)?;
    let total = count_rows(path)?;
    let instance = format!(
        "import-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let services = Services::connect(config, &instance, Duration::ZERO).await?;
    (services.hints.ensure_topics(&services.nodes).await).map_err(CliError::Topics)?;
    let s = &services;
    crate::startup::first_look(&s.nodes, &s.statuses, &s.hints, &s.backlogs).await;
    // The import places batches itself, never through single writes.
    let writes = services.write_path(config, 1);
    let shutdown = CancellationToken::new();
    let background = TaskTracker::new();
    let follow = services
        .statuses
        .clone()
        .follow(config.status_resync, shutdown.clone());
    background.spawn(follow);
    background.spawn(services.clock_lease.run(shutdown.clone()));

    let started = Instant::now();
    let mut progress = Progress::new(total);
    let summary = import(&writes, &mut rows, batch, |n, s| progress.advance(n, s)).await;
    progress.finish();
    shutdown.cancel();
    background.close();
    background.wait().await;
    let hints = services.hints.clone();
    if let Ok(Err(e)) =
        tokio::task::spawn_blocking(move || hints.flush(Duration::from_secs(10))).await
    {
        tracing::warn!(error = %e, "producer flush failed");
    }
    println!("{}", summary.render(started.elapsed()));
    Ok(if summary.bad == 0 && summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
