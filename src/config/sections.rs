//! One section of the configuration a type, each read from the variables
//! that set it (see `env` for the rules every variable follows).

use std::collections::HashMap;
use std::time::Duration;

use super::ConfigError;
use super::env::Env;
use super::secret::Secret;
use crate::domain::{NodeId, RegionMap};

/// The failure detector's settings.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Time between two pings of a node; `None`: no failure detection.
    pub interval: Option<Duration>,
    /// Consecutive failures (and, to come back, successes) before a change.
    pub threshold: u32,
    /// How long one ping may take before it counts as failed.
    pub timeout: Duration,
}

/// The admin token. Never printed: a [`Secret`].
#[derive(Debug, Clone)]
pub struct AdminToken(Secret);

impl AdminToken {
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// Shorter tokens are too easy to guess.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Bounds that keep the server answering under connection floods.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Open connections; past it a new connection gets a 503 and is closed.
    pub max_connections: usize,
    /// A client must send a request's headers within this (also the idle
    /// limit between requests on a kept-alive connection).
    pub header_timeout: Duration,
    /// Open `GET /events` streams; past it, 503.
    pub max_event_streams: usize,
    /// Requests in progress per route class (writes, reads); past it, 503.
    pub max_requests_per_class: usize,
}

#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// The MongoDB URI of every node (its own `MONGO_URI_<NODE>` or `MONGO_URI`).
    pub uris: HashMap<NodeId, String>,
    /// Bound on one MongoDB operation (server selection, connect, the command
    /// itself): a frozen node must turn into a queued write, not a hung request.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Hints applied per MongoDB command and per offset commit.
    pub batch_size: usize,
    /// Pause between batches, so a node that just came back is not flooded
    /// (Cassandra's hinted-handoff throttle). Zero by default.
    pub throttle: Duration,
    /// How long a node's queue may stand still (available, not empty,
    /// nothing committed by any instance) before a replay re-joins its
    /// consumer group: longer than a session timeout plus a rebalance.
    pub stall_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl MongoConfig {
    /// `MONGO_URI` for every node, unless it has its own
    /// `MONGO_URI_<NODE>`; `MONGO_TIMEOUT_MS`.
    pub(super) fn read(env: &Env, regions: &RegionMap) -> Result<MongoConfig, ConfigError> {
        const SCHEMES: [&str; 2] = ["mongodb://", "mongodb+srv://"];
        let default = env.url("MONGO_URI", "mongodb://localhost:27017", &SCHEMES)?;
        let mut uris = HashMap::new();
        for node in regions.nodes() {
            let name = format!("MONGO_URI_{}", node.env_suffix());
            let uri = match env.var(&name) {
                Some(_) => env.url(&name, "", &SCHEMES)?,
                None => default.clone(),
            };
            uris.insert(node.clone(), uri);
        }
        Ok(MongoConfig {
            uris,
            timeout: env.millis("MONGO_TIMEOUT_MS", 2000, 50)?,
        })
    }
}

impl ReplayConfig {
    /// The stall limit must exceed the group's `session_timeout`.
    pub(super) fn read(env: &Env, session_timeout: Duration) -> Result<ReplayConfig, ConfigError> {
        let stall_after = env.millis("REPLAY_STALL_MS", 15_000, 1000)?;
        if stall_after <= session_timeout {
            return Err(ConfigError(format!(
                "REPLAY_STALL_MS: must be longer than KAFKA_SESSION_TIMEOUT_MS ({} ms), got {}",
                session_timeout.as_millis(),
                stall_after.as_millis()
            )));
        }
        Ok(ReplayConfig {
            batch_size: env.number("REPLAY_BATCH_SIZE", 500, 1, 100_000)? as usize,
            throttle: env.millis("REPLAY_THROTTLE_MS", 0, 0)?,
            stall_after,
        })
    }
}

impl LogFormat {
    pub(super) fn read(env: &Env) -> Result<LogFormat, ConfigError> {
        match env.var("LOG_FORMAT").as_deref() {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(ConfigError(format!(
                "LOG_FORMAT: must be \"text\" or \"json\", got {other:?}"
            ))),
        }
    }
}

impl AdminToken {
    /// `ADMIN_TOKEN`, if set: long enough and printable.
    pub(super) fn read(env: &Env) -> Result<Option<AdminToken>, ConfigError> {
        match env.var("ADMIN_TOKEN") {
            None => Ok(None),
            Some(t)
                if t.len() < MIN_ADMIN_TOKEN_LEN || !t.chars().all(|c| c.is_ascii_graphic()) =>
            {
                Err(ConfigError(format!(
                    "ADMIN_TOKEN: must be at least {MIN_ADMIN_TOKEN_LEN} printable ASCII characters \
                     without spaces (e.g. from `openssl rand -hex 32`)"
                )))
            }
            Some(t) => Ok(Some(AdminToken(Secret::new(t)))),
        }
    }
}

impl HttpLimits {
    pub(super) fn read(env: &Env) -> Result<HttpLimits, ConfigError> {
        Ok(HttpLimits {
            max_connections: env.number("HTTP_MAX_CONNECTIONS", 4096, 16, 1_000_000)? as usize,
            header_timeout: env.millis("HTTP_HEADER_TIMEOUT_MS", 10_000, 100)?,
            max_event_streams: env.number("HTTP_MAX_EVENT_STREAMS", 512, 1, 1_000_000)? as usize,
            max_requests_per_class: env.number("HTTP_MAX_REQUESTS_PER_CLASS", 256, 1, 100_000)?
                as usize,
        })
    }
}

impl ProbeConfig {
    pub(super) fn read(env: &Env) -> Result<ProbeConfig, ConfigError> {
        Ok(ProbeConfig {
            interval: env.millis_or_off("PROBE_INTERVAL_MS", 1000)?,
            threshold: env.number("PROBE_FAILURES", 3, 1, 100)? as u32,
            timeout: env.millis("PROBE_TIMEOUT_MS", 800, 10)?,
        })
    }
}

/// Purging tombstones (see `repair::purge`).
#[derive(Debug, Clone)]
pub struct PurgeConfig {
    /// Shortest time between two automatic purges across instances;
    /// `None`: only `regiondb repair` purges.
    pub interval: Option<Duration>,
    /// How old a tombstone must be before it may go: more than the longest
    /// a hint takes from acceptance to the broker.
    pub grace: Duration,
}

impl PurgeConfig {
    /// The grace must exceed how long a hint may take to be produced (the
    /// producer's own bound: twice `KAFKA_TIMEOUT_MS` plus 5 s).
    pub(super) fn read(env: &Env, kafka_timeout: Duration) -> Result<PurgeConfig, ConfigError> {
        let grace =
            Duration::from_millis(env.number("PURGE_GRACE_MS", 600_000, 1000, 86_400_000)?);
        let produce = kafka_timeout * 2 + Duration::from_secs(5);
        if grace <= produce {
            return Err(ConfigError(format!(
                "PURGE_GRACE_MS: must be longer than twice KAFKA_TIMEOUT_MS plus 5000 ({} ms), got {}",
                produce.as_millis(),
                grace.as_millis()
            )));
        }
        Ok(PurgeConfig {
            interval: env.millis_or_off("PURGE_INTERVAL_MS", 60_000)?,
            grace,
        })
    }
}
