//! Wrong admin tokens per client address, counted across instances.
//!
//! Every attempt is counted *before* its token is checked (one Lua script,
//! so parallel attempts cannot slip past the count), and a right token
//! resets the count. After `n` wrong tokens in a row the next check waits
//! `SignInLimits::delay_after(n)`; after `max_failures` the address is
//! refused until `lockout` has passed since its last wrong token.

use std::sync::LazyLock;
use std::time::Duration;

use super::{Access, AccessError, FAILURES_PREFIX};

/// KEYS[1]: the counter; ARGV[1]: max failures; ARGV[2]: lockout (ms).
/// Answers {failures before this attempt, ms left of the lockout or -1}.
static BEGIN: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local n = tonumber(redis.call('GET', KEYS[1]) or '0')
        if n >= tonumber(ARGV[1]) then
          local left = redis.call('PTTL', KEYS[1])
          if left < 0 then left = tonumber(ARGV[2]) end
          return {n, left}
        end
        redis.call('SET', KEYS[1], n + 1, 'PX', ARGV[2])
        return {n, -1}
        ",
    )
});

/// What may happen to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Check the token after waiting `wait` (it follows `failures` wrong
    /// ones).
    Check { failures: u32, wait: Duration },
    /// Too many wrong tokens: refused without a check for `retry_after`.
    Refused { retry_after: Duration },
}

impl Access {
    /// Counts an attempt from `client` (see [`crate::access::client_key`])
    /// and says whether and when to check its token.
    pub async fn begin_attempt(&self, client: &str) -> Result<Attempt, AccessError> {
        let mut conn = self.conn.clone();
        let lockout_ms = u64::try_from(self.limits.lockout.as_millis()).unwrap_or(u64::MAX);
        let (failures, left_ms): (u32, i64) = BEGIN
            .key(format!("{FAILURES_PREFIX}{client}"))
            .arg(self.limits.max_failures)
            .arg(lockout_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(match u64::try_from(left_ms) {
            Ok(left) => Attempt::Refused {
                retry_after: Duration::from_millis(left),
            },
            Err(_) => Attempt::Check {
                failures,
                wait: self.limits.delay_after(failures),
            },
        })
    }

    /// A right token from `client`: its count starts again from zero.
    pub async fn attempt_succeeded(&self, client: &str) -> Result<(), AccessError> {
        let mut conn = self.conn.clone();
        let _: u64 = redis::cmd("DEL")
            .arg(format!("{FAILURES_PREFIX}{client}"))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}
