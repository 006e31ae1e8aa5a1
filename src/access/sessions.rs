//! Open page sessions: a sorted set of session ids scored by their expiry,
//! so that ending one session, or all of them, takes effect on every
//! instance at once.

use super::{Access, AccessError, SESSIONS_KEY};
use crate::domain::now_secs;

impl Access {
    /// Records a new session until `expiry` (Unix seconds), and forgets
    /// the expired ones.
    pub async fn open_session(&self, id: &str, expiry: u64) -> Result<(), AccessError> {
        let mut conn = self.conn.clone();
        let () = redis::pipe()
            .atomic()
            .cmd("ZREMRANGEBYSCORE")
            .arg(SESSIONS_KEY)
            .arg("-inf")
            .arg(now_secs())
            .ignore()
            .cmd("ZADD")
            .arg(SESSIONS_KEY)
            .arg(expiry)
            .arg(id)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Whether session `id` is open (signed out, ended or expired: not).
    pub async fn session_open(&self, id: &str) -> Result<bool, AccessError> {
        let mut conn = self.conn.clone();
        let expiry: Option<u64> = redis::cmd("ZSCORE")
            .arg(SESSIONS_KEY)
            .arg(id)
            .query_async(&mut conn)
            .await?;
        Ok(expiry.is_some_and(|e| e > now_secs()))
    }

    /// Ends one session everywhere.
    pub async fn end_session(&self, id: &str) -> Result<(), AccessError> {
        let mut conn = self.conn.clone();
        let _: u64 = redis::cmd("ZREM")
            .arg(SESSIONS_KEY)
            .arg(id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Ends every session at once; answers how many were open.
    pub async fn end_all_sessions(&self) -> Result<u64, AccessError> {
        let mut conn = self.conn.clone();
        let (open, _): (u64, u64) = redis::pipe()
            .atomic()
            .cmd("ZCOUNT")
            .arg(SESSIONS_KEY)
            .arg(format!("({}", now_secs()))
            .arg("+inf")
            .cmd("DEL")
            .arg(SESSIONS_KEY)
            .query_async(&mut conn)
            .await?;
        Ok(open)
    }
}
