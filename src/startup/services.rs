//! The backing services connected in the one order that is safe, shared by
//! `regiondb serve` and `regiondb import`: Redis first (node statuses are
//! the one thing regiondb cannot guess), then this instance's version slot,
//! then the statuses (after the slot: see `NodeStatuses::load`), then every
//! node's MongoDB client and the Kafka clients. A service that is down is
//! waited for (Redis) or tolerated (MongoDB, Kafka); one that refuses this
//! client's certificate or credentials stops the start naming the setting.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio_util::task::TaskTracker;

use crate::backlog::Backlogs;
use crate::clock_lease::{ClockError, ClockLease};
use crate::config::Config;
use crate::domain::NodeId;
use crate::hints::{HintError, HintLog};
use crate::nodes::{NodeStatuses, StatusError};
use crate::store::{StoreError, Stores};
use crate::writes::{Committers, WritePath};

/// Why the services could not be connected.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach redis at {url} (waited {waited:?}): {source}")]
    Redis {
        url: String,
        waited: Duration,
        source: StatusError,
    },
    /// A setting Redis refuses: waiting would not help.
    #[error("{variable}: redis refused the connection: {source}")]
    RedisSetting {
        variable: &'static str,
        source: StatusError,
    },
    /// A node's MongoDB refuses this client (certificate, credentials).
    #[error("{variable}: mongodb refused the connection: {reason}")]
    MongoSetting { variable: String, reason: String },
    #[error("version clock: {0}")]
    Clock(#[from] ClockError),
    #[error(transparent)]
    Mongo(#[from] StoreError),
    #[error(transparent)]
    Kafka(#[from] HintError),
}

/// Every adapter, connected; the clock lease is held (and must be run by
/// the caller: see [`ClockLease::run`]).
pub struct Services {
    pub nodes: Vec<NodeId>,
    pub backlogs: Arc<Backlogs>,
    pub statuses: Arc<NodeStatuses>,
    pub clock_lease: ClockLease,
    pub stores: Arc<Stores>,
    pub hints: Arc<HintLog>,
}

impl Services {
    /// Connects as `instance` (its name in Redis leases and locks), waiting
    /// up to `redis_wait` for Redis to answer (zero: one try).
    pub async fn connect(
        config: &Config,
        instance: &str,
        redis_wait: Duration,
    ) -> Result<Services, ConnectError> {
        let nodes: Vec<NodeId> = config.regions.nodes().cloned().collect();
        let backlogs = Arc::new(Backlogs::new(&nodes));
        let redis_error = |waited| {
            move |source| ConnectError::Redis {
                url: config.redis.shown(),
                waited,
                source,
            }
        };
        let connect = || NodeStatuses::connect(&config.redis, &nodes, backlogs.clone());
        let statuses = if redis_wait.is_zero() {
            connect().await
        } else {
            let backoff = ExponentialBuilder::default()
                .with_max_delay(Duration::from_secs(2))
                .with_total_delay(Some(redis_wait))
                .without_max_times();
            (connect.retry(backoff))
                .when(|e| e.refused_setting(&config.redis).is_none())
                .notify(|e, _| tracing::warn!(error = %e, "waiting for redis"))
                .await
        };
        let statuses = statuses.map_err(|source| match source.refused_setting(&config.redis) {
            Some(variable) => ConnectError::RedisSetting { variable, source },
            None => redis_error(redis_wait)(source),
        });
        let statuses = Arc::new(statuses?);
        let clock_lease = ClockLease::start(statuses.clone(), instance).await?;
        statuses.load().await.map_err(redis_error(Duration::ZERO))?;
        let stores = Stores::connect(&config.regions, &config.mongo.uris, config.mongo.timeout);
        let stores = Arc::new(stores.await?);
        let hints = match Self::check(config, &nodes, instance, &stores).await {
            Ok(hints) => Arc::new(hints),
            Err(e) => {
                stores.shutdown().await;
                return Err(e);
            }
        };
        Ok(Services {
            nodes,
            backlogs,
            statuses,
            clock_lease,
            stores,
            hints,
        })
    }

    /// Every node's MongoDB and the brokers take this client (see
    /// `Stores::refusals`, `HintLog::check_security`); the Kafka clients.
    async fn check(
        config: &Config,
        nodes: &[NodeId],
        instance: &str,
        stores: &Stores,
    ) -> Result<HintLog, ConnectError> {
        if let Some((node, reason)) = stores.refusals().await.into_iter().next() {
            let own = format!("MONGO_URI_{}", node.env_suffix());
            return Err(ConnectError::MongoSetting {
                variable: format!("{own} (or MONGO_URI, which it falls back to)"),
                reason,
            });
        }
        let hints = HintLog::new(&config.kafka, nodes, &format!("regiondb-{instance}"))?;
        hints.check_security().await?;
        Ok(hints)
    }

    /// The write path over these services, with at most `in_flight` single
    /// writes at once.
    pub fn write_path(&self, config: &Config, in_flight: usize) -> WritePath {
        WritePath {
            regions: config.regions.clone(),
            statuses: self.statuses.clone(),
            stores: self.stores.clone(),
            committers: Arc::new(Committers::new(self.stores.clone(), self.statuses.clone())),
            hints: self.hints.clone(),
            backlogs: self.backlogs.clone(),
            clock: self.clock_lease.clock.clone(),
            tasks: TaskTracker::new(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(in_flight)),
            moves: None,
        }
    }
}

/// Once the topics exist: every available node whose topic holds nothing
/// uncommitted is caught up (a serving instance's replay would confirm it
/// a moment later; until then deletes and moves count its region as
/// unreadable, and `regiondb import` runs no replay at all). Readiness
/// waits for this look (see `Backlogs::looked`). Nodes Kafka cannot tell
/// about stay behind until a replay looks.
pub async fn first_look(
    nodes: &[NodeId],
    statuses: &NodeStatuses,
    hints: &HintLog,
    backlogs: &Backlogs,
) {
    let looks = (nodes.iter())
        .filter(|node| statuses.status(node).is_available())
        .map(|node| async move {
            let epoch = backlogs.epoch(node);
            match hints.queued(node).await {
                Ok(0) => backlogs.confirm(node, epoch),
                queued => tracing::debug!(%node, ?queued, "not caught up at start"),
            }
        });
    futures::future::join_all(looks).await;
    backlogs.set_looked();
}
