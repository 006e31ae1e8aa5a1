//! Retrying background work against services that may be down.

use std::fmt::Display;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

/// Delays for retrying against a service that may be down for long:
/// 200 ms doubling to 5 s, jittered, never giving up.
pub fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Runs `attempt` until it succeeds (its value) or `shutdown` fires
/// (`None`), logging each failure with `what`.
pub async fn until_ok<T, F, Fut, E>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let mut delays = backoff();
    loop {
        match shutdown.run_until_cancelled(attempt()).await {
            None => return None,
            Some(Ok(value)) => return Some(value),
            Some(Err(e)) => tracing::warn!(error = %e, "{what}; retrying"),
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        shutdown
            .run_until_cancelled(tokio::time::sleep(delay))
            .await?;
    }
}
