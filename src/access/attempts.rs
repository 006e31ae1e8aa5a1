//! Wrong admin tokens per client address, counted across instances.
//!
//! Failures are counted, not attempts: a token is compared first (in
//! constant time), and only a wrong one is counted, in one Lua script that
//! also refuses it once the address has sent `max_failures` (so parallel
//! guesses cannot slip past the count: the script orders them, and each
//! wrong one is counted before it is answered). A right token is never
//! counted and never waits, however many calls are in flight; it is
//! refused only while its address is locked out, and then resets the
//! count. A wrong token's answer waits `SignInLimits::delay_after(n)` after
//! `n` wrong ones before it; after `max_failures` the address is refused
//! until `lockout` has passed since its last wrong token.

use std::sync::LazyLock;
use std::time::Duration;

use super::{Access, AccessError, FAILURES_PREFIX};

/// KEYS[1]: the counter; ARGV[1]: max failures; ARGV[2]: lockout (ms);
/// ARGV[3]: '1' for a right token. Unless the address is locked out, counts
/// a wrong token or deletes the count for a right one. Answers {failures
/// before this token, ms left of the lockout or -1}.
static COUNT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local n = tonumber(redis.call('GET', KEYS[1]) or '0')
        if n >= tonumber(ARGV[1]) then
          local left = redis.call('PTTL', KEYS[1])
          if left < 0 then left = tonumber(ARGV[2]) end
          return {n, left}
        end
        if ARGV[3] == '1' then
          redis.call('DEL', KEYS[1])
        else
          redis.call('SET', KEYS[1], n + 1, 'PX', ARGV[2])
        end
        return {n, -1}
        ",
    )
});

/// What happens to one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// A wrong token, the `failures`th and one from this address: answer
    /// it after `wait`. (A right token: `failures` 0, no wait.)
    Answer { failures: u32, wait: Duration },
    /// Too many wrong tokens: refused for `retry_after`.
    Refused { retry_after: Duration },
}

impl Access {
    /// Counts a wrong token from `client` (see [`crate::access::client_key`]).
    pub async fn token_failed(&self, client: &str) -> Result<Attempt, AccessError> {
        self.count(client, false).await
    }

    /// A right token from `client`: refused while its address is locked
    /// out; otherwise its count starts again from zero.
    pub async fn token_succeeded(&self, client: &str) -> Result<Attempt, AccessError> {
        self.count(client, true).await
    }

    async fn count(&self, client: &str, right: bool) -> Result<Attempt, AccessError> {
        let lockout_ms = u64::try_from(self.limits.lockout.as_millis()).unwrap_or(u64::MAX);
        let (failures, left_ms): (u32, i64) = COUNT
            .key(format!("{FAILURES_PREFIX}{client}"))
            .arg(self.limits.max_failures)
            .arg(lockout_ms)
            .arg(if right { "1" } else { "" })
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match u64::try_from(left_ms) {
            Ok(left) => Attempt::Refused {
                retry_after: Duration::from_millis(left),
            },
            Err(_) if right => Attempt::Answer {
                failures: 0,
                wait: Duration::ZERO,
            },
            Err(_) => Attempt::Answer {
                failures,
                wait: self.limits.delay_after(failures),
            },
        })
    }
}
