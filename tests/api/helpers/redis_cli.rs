//! Redis as an operator sees it: `redis-cli`-style reads and writes.

use super::*;

impl TestApp {
    /// Sets a status directly in Redis, as `redis-cli HSET` would.
    pub async fn redis_set_status(&self, node: &str, status: &str) {
        let client = redis::Client::open(self.redis_url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let _: i64 = redis::cmd("HSET")
            .arg(&["node_statuses", node, status][..])
            .query_async(&mut conn)
            .await
            .expect("hset");
    }

    /// Runs one Redis command, as `redis-cli` would.
    pub async fn redis<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let client = redis::Client::open(self.redis_url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        redis::cmd(args[0])
            .arg(&args[1..])
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Sets a plain Redis key.
    pub async fn redis_set(&self, key: &str, value: &str) {
        let client = redis::Client::open(self.redis_url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let _: () = redis::cmd("SET")
            .arg(&[key, value][..])
            .query_async(&mut conn)
            .await
            .expect("set");
    }
}
