//! What Redis keeps for repair: the last report (shown on the home page)
//! and the locks that space automatic repairs and purges out across
//! instances.

use std::time::Duration;

use redis::AsyncCommands;

use super::{AUTO_REPAIR_LOCK, LAST_REPAIR, NodeStatuses, PURGE_LOCK, StatusError};

impl NodeStatuses {
    /// The last repair's report, as saved by [`NodeStatuses::save_last_repair`].
    pub async fn last_repair(&self) -> Result<Option<String>, StatusError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(LAST_REPAIR).await?)
    }

    pub async fn save_last_repair(&self, report: &str) -> Result<(), StatusError> {
        let mut conn = self.conn.clone();
        let () = conn.set(LAST_REPAIR, report).await?;
        Ok(())
    }

    /// Takes the automatic-repair lock for `hold` if no instance holds it;
    /// otherwise answers how long until it is free.
    pub async fn claim_auto_repair(
        &self,
        me: &str,
        hold: Duration,
    ) -> Result<Option<Duration>, StatusError> {
        self.claim(AUTO_REPAIR_LOCK, me, hold).await
    }

    /// Takes the automatic-purge lock (see `repair::purge`), the same way.
    pub async fn claim_purge(
        &self,
        me: &str,
        hold: Duration,
    ) -> Result<Option<Duration>, StatusError> {
        self.claim(PURGE_LOCK, me, hold).await
    }

    /// Takes the lock `key` for `hold` if no instance holds it; otherwise
    /// answers how long until it is free.
    pub(super) async fn claim(
        &self,
        key: &str,
        me: &str,
        hold: Duration,
    ) -> Result<Option<Duration>, StatusError> {
        let mut conn = self.conn.clone();
        let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        let taken: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(me)
            .arg("NX")
            .arg("PX")
            .arg(hold_ms)
            .query_async(&mut conn)
            .await?;
        if taken.is_some() {
            return Ok(None);
        }
        let left: i64 = conn.pttl(key).await?;
        Ok(Some(Duration::from_millis(
            u64::try_from(left).unwrap_or(0).max(10),
        )))
    }
}
