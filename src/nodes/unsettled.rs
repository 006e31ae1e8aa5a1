//! Writes whose moves are not settled yet, kept in Redis so that no crash
//! loses them (see `writes::moves`): a sorted set `regiondb:unsettled`,
//! member `id␟region␟version`, score the Unix milliseconds it was added.
//! A write adds its record before it is answered; the settler removes it
//! once every other region's old copies are tombstones; whatever stays
//! longer (its instance crashed, a region could not be read) is settled by
//! the sweep of whichever instance holds `regiondb:move_sweep`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::AsyncCommands;

use super::{NodeStatuses, StatusError};
use crate::domain::now_millis;

/// The sorted set of unsettled writes.
pub const UNSETTLED: &str = "regiondb:unsettled";
/// Held by the instance sweeping old unsettled writes.
pub const MOVE_SWEEP_LOCK: &str = "regiondb:move_sweep";
/// Set when Redis lost its data (by the instance that writes the statuses
/// back, or seeds them): the record of unsettled writes went with it, so
/// the sweep settles the recent writes again, read from the nodes, and
/// then deletes it.
pub const RESETTLE: &str = "regiondb:resettle";
/// Separates the parts of a member: a control character, which no id holds.
const SEP: char = '\u{1f}';

/// One unsettled write: the record, the region it was written to, and its
/// version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsettled {
    pub id: String,
    pub region: String,
    pub version: i64,
}

impl Unsettled {
    fn member(&self) -> String {
        format!("{}{SEP}{}{SEP}{}", self.id, self.region, self.version)
    }

    fn parse(member: &str) -> Option<Unsettled> {
        let mut parts = member.split(SEP);
        let (id, region, version) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Unsettled {
            id: id.to_owned(),
            region: region.to_owned(),
            version: version.parse().ok()?,
        })
    }
}

/// Unsettled writes on their way to Redis, group-committed: at most one
/// `ZADD` is in flight, and the writes noted meanwhile share the next one
/// (under load, one command serves many writes instead of one each).
#[derive(Default)]
pub(super) struct UnsettledNotes {
    /// The next command's members, and whether it went through once sent.
    pending: std::sync::Mutex<Batch>,
    /// Held while a command is in flight.
    sending: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Batch {
    items: Vec<(i64, String)>,
    sent: Arc<OnceLock<bool>>,
}

/// Marks a taken batch as failed unless its outcome was set first.
struct Unanswered(Arc<OnceLock<bool>>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        let _ = self.0.set(false);
    }
}

impl NodeStatuses {
    /// Records writes whose moves are to be settled (before they are
    /// answered; again, as now, each time their settler looks at them
    /// anew, so that only the writes of an instance that stopped grow old).
    /// Returns once the command that carried them has answered.
    pub async fn note_unsettled(&self, writes: &[Unsettled]) -> Result<(), StatusError> {
        if writes.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        let notes = &self.unsettled;
        let mine = {
            let mut batch = notes.pending.lock().unwrap_or_else(|e| e.into_inner());
            (batch.items).extend(writes.iter().map(|w| (now, w.member())));
            batch.sent.clone()
        };
        let _sending = notes.sending.lock().await;
        // Only the holder of `sending` takes the pending batch: either
        // someone already sent ours, or it is the pending one.
        if let Some(went) = mine.get() {
            return match went {
                true => Ok(()),
                false => Err(StatusError::from(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "the shared ZADD of unsettled writes failed",
                )))),
            };
        }
        let batch = std::mem::take(&mut *notes.pending.lock().unwrap_or_else(|e| e.into_inner()));
        // Should this call be dropped before the answer, the writes that
        // shared the command hear that it failed, not nothing (declared
        // after `_sending`, so dropped before the next sender gets in).
        let _unanswered = Unanswered(batch.sent.clone());
        let mut conn = self.conn.clone();
        let note = async {
            let _: i64 = conn.zadd_multiple(UNSETTLED, &batch.items).await?;
            Ok(())
        };
        let noted = crate::metrics::timed("redis", "note_unsettled", note).await;
        let _ = batch.sent.set(noted.is_ok());
        noted
    }

    /// Forgets writes whose moves are settled.
    pub async fn settled(&self, writes: &[Unsettled]) -> Result<(), StatusError> {
        if writes.is_empty() {
            return Ok(());
        }
        let members: Vec<String> = writes.iter().map(Unsettled::member).collect();
        let _: i64 = self.conn.clone().zrem(UNSETTLED, members).await?;
        Ok(())
    }

    /// Up to `max` writes unsettled for longer than `age`, oldest first.
    pub async fn unsettled_older_than(
        &self,
        age: Duration,
        max: usize,
    ) -> Result<Vec<Unsettled>, StatusError> {
        let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let before = now_millis().saturating_sub(age);
        let max = isize::try_from(max).unwrap_or(isize::MAX);
        let members: Vec<String> = (self.conn.clone())
            .zrangebyscore_limit(UNSETTLED, "-inf", before, 0, max)
            .await?;
        Ok(members.iter().filter_map(|m| Unsettled::parse(m)).collect())
    }

    /// Every unsettled write (the candidates for a ghost copy: see `reads`).
    pub async fn unsettled(&self, max: usize) -> Result<Vec<Unsettled>, StatusError> {
        let stop = isize::try_from(max).unwrap_or(isize::MAX).saturating_sub(1);
        let members: Vec<String> = self.conn.clone().zrange(UNSETTLED, 0, stop).await?;
        Ok(members.iter().filter_map(|m| Unsettled::parse(m)).collect())
    }

    /// Whether Redis lost its record of unsettled writes (see [`RESETTLE`]).
    pub async fn resettle_wanted(&self) -> Result<bool, StatusError> {
        let marker: Option<String> = self.conn.clone().get(RESETTLE).await?;
        Ok(marker.is_some())
    }

    /// The recent writes were settled again.
    pub async fn resettled(&self) -> Result<(), StatusError> {
        let _: i64 = self.conn.clone().del(RESETTLE).await?;
        Ok(())
    }

    /// Takes the move-sweep lock for `hold` if no instance holds it.
    pub async fn claim_move_sweep(&self, me: &str, hold: Duration) -> Result<bool, StatusError> {
        Ok(self.claim(MOVE_SWEEP_LOCK, me, hold).await?.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_reads_back_as_written() {
        let w = Unsettled {
            id: "c 1:x".into(),
            region: "region_2".into(),
            version: 1_764_340_000_000_001,
        };
        assert_eq!(Unsettled::parse(&w.member()), Some(w));
        assert_eq!(Unsettled::parse("no separators"), None);
    }
}
