//! Wiring: connect the adapters, start the background tasks, serve HTTP, and
//! shut everything down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backlog::Backlogs;
use crate::clock_lease::{ClockError, ClockLease};
use crate::config::Config;
use crate::domain::{CustomerCopy, NodeId};
use crate::hints::HintLog;
use crate::http::{self, AppState};
use crate::monitor::Monitor;
use crate::nodes::NodeStatuses;
use crate::prober::Prober;
use crate::reads::ReadPath;
use crate::recovery::Recovery;
use crate::repair::{AutoRepair, DrainedQueues};
use crate::replay::Replay;
use crate::retry;
use crate::store::{NodeStore, Stores};
use crate::writes::WritePath;

/// How long start-up waits for Redis before giving up: node statuses are
/// the one thing regiondb cannot guess.
const REDIS_STARTUP_WAIT: Duration = Duration::from_secs(30);
/// Shutdown, in order: requests in progress finish (`http::server::DRAIN`),
/// then writes whose clients hung up, then the background tasks (a replay
/// finishes and commits its batch), then the producer delivers what it
/// holds. Each phase has its bound; together they fit well within
/// docker compose's `stop_grace_period` (20 s, checked by a test).
pub const WRITES_GRACE: Duration = Duration::from_secs(3);
pub const TASKS_GRACE: Duration = Duration::from_secs(4);
pub const FLUSH_GRACE: Duration = Duration::from_secs(2);
/// The longest a shutdown takes.
pub const SHUTDOWN_BUDGET: Duration = http::server::DRAIN
    .saturating_add(WRITES_GRACE)
    .saturating_add(TASKS_GRACE)
    .saturating_add(FLUSH_GRACE);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot reach redis at {url} (waited {waited:?}): {source}")]
    Redis {
        url: String,
        waited: Duration,
        source: crate::nodes::StatusError,
    },
    #[error("version clock: {0}")]
    Clock(#[from] ClockError),
    #[error(transparent)]
    Mongo(#[from] crate::store::StoreError),
    #[error(transparent)]
    Kafka(#[from] crate::hints::HintError),
}

pub struct Application {
    config: Config,
    listener: TcpListener,
    state: AppState,
    /// This instance's name in Redis leases and locks.
    instance: String,
    auto_repair: Option<(AutoRepair, DrainedQueues)>,
    /// Renewed while the instance runs, released when it stops.
    clock_lease: ClockLease,
}

impl Application {
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        let nodes: Vec<NodeId> = config.regions.nodes().cloned().collect();
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.bind,
                    source,
                })?;

        let backlogs = Arc::new(Backlogs::new(&nodes));
        let connect = || NodeStatuses::connect(&config.redis_url, &nodes, backlogs.clone());
        let statuses = connect
            .retry(
                ExponentialBuilder::default()
                    .with_max_delay(Duration::from_secs(2))
                    .with_total_delay(Some(REDIS_STARTUP_WAIT))
                    .without_max_times(),
            )
            .notify(|e, _| tracing::warn!(error = %e, "waiting for redis"))
            .await
            .map_err(|source| StartupError::Redis {
                url: config.redis_url.clone(),
                waited: REDIS_STARTUP_WAIT,
                source,
            })?;
        let statuses = Arc::new(statuses);
        let instance = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        let clock_lease = ClockLease::start(statuses.clone(), &instance).await?;
        // After the slot: see `NodeStatuses::load`.
        statuses
            .load()
            .await
            .map_err(|source| StartupError::Redis {
                url: config.redis_url.clone(),
                waited: Duration::ZERO,
                source,
            })?;
        let clock = clock_lease.clock.clone();
        let stores = Arc::new(
            Stores::connect(&config.regions, &config.mongo.uris, config.mongo.timeout).await?,
        );
        let hints = Arc::new(HintLog::new(&config.kafka, &nodes)?);
        let auto_repair = config.auto_repair.map(|every| {
            AutoRepair::new(
                config.regions.clone(),
                stores.clone(),
                statuses.clone(),
                instance.clone(),
                every,
            )
        });
        if config.admin_token.is_none() {
            tracing::warn!(
                "ADMIN_TOKEN is not set: anyone who can reach this port can switch nodes and run repairs"
            );
        }

        let state = AppState {
            regions: config.regions.clone(),
            nodes,
            writes: Arc::new(WritePath {
                regions: config.regions.clone(),
                statuses: statuses.clone(),
                stores: stores.clone(),
                hints: hints.clone(),
                backlogs: backlogs.clone(),
                clock: clock.clone(),
                tasks: TaskTracker::new(),
                in_flight: Arc::new(tokio::sync::Semaphore::new(
                    config.http.max_requests_per_class,
                )),
            }),
            reads: Arc::new(ReadPath::new(
                config.regions.clone(),
                statuses.clone(),
                stores.clone(),
                backlogs.clone(),
            )),
            monitor: Arc::new(Monitor::new(
                config.regions.clone(),
                statuses.clone(),
                hints.clone(),
            )),
            statuses,
            stores,
            hints,
            backlogs,
            metrics: crate::metrics::install(),
            limits: config.http.clone(),
            event_streams: Arc::new(tokio::sync::Semaphore::new(config.http.max_event_streams)),
            stopping: CancellationToken::new(),
            admin_token: config.admin_token.clone(),
            readiness: Arc::default(),
        };
        Ok(Application {
            config,
            listener,
            state,
            instance,
            auto_repair,
            clock_lease,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` resolves, then: stops accepting, finishes
    /// in-flight requests, lets each replay finish and commit its batch, and
    /// flushes the producer.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            config,
            listener,
            state,
            instance,
            auto_repair,
            clock_lease,
        } = self;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();

        tasks.spawn(
            state
                .statuses
                .clone()
                .follow(config.status_resync, shutdown.clone()),
        );
        tasks.spawn(state.monitor.clone().run(shutdown.clone()));
        tasks.spawn(metrics_upkeep(state.metrics.clone(), shutdown.clone()));
        tasks.spawn(clock_lease.run(shutdown.clone()));
        for store in state.stores.iter() {
            tasks.spawn(prepare_indexes(
                store.clone(),
                state.regions.clone(),
                shutdown.clone(),
            ));
        }
        spawn_probers(&state, &config, &instance, &tasks, &shutdown);
        let drained = auto_repair.map(|(auto, drained)| {
            tasks.spawn(auto.run(shutdown.clone()));
            drained
        });
        tasks.spawn(start_replays(
            state.clone(),
            config.replay.clone(),
            drained,
            tasks.clone(),
            shutdown.clone(),
        ));

        tracing::info!(addr = %listener.local_addr()?, "regiondb listening");
        let stopping = state.stopping.clone();
        let stop = async move {
            stop.await;
            stopping.cancel();
        };
        let served =
            http::server::serve(listener, http::router(state.clone()), &config.http, stop).await;

        // Accepted writes finish (home and replica) before anything stops.
        state.writes.tasks.close();
        if tokio::time::timeout(WRITES_GRACE, state.writes.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("writes in flight did not finish in time");
        }
        tracing::info!("stopping background tasks");
        shutdown.cancel();
        tasks.close();
        if tokio::time::timeout(TASKS_GRACE, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop in time");
        }
        let hints = state.hints.clone();
        let flushed = tokio::task::spawn_blocking(move || hints.flush(FLUSH_GRACE)).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "producer flush failed");
        }
        tracing::info!("stopped");
        served
    }
}

/// One failure detector per node (with the check for nodes that lost their
/// data), unless detection is off.
fn spawn_probers(
    state: &AppState,
    config: &Config,
    instance: &str,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let Some(interval) = config.probe.interval else {
        tracing::warn!(
            "PROBE_INTERVAL_MS=0: failure detection is off, and so is the check for nodes that lost their data"
        );
        return;
    };
    let recovery = Arc::new(Recovery::new(
        state.regions.clone(),
        state.stores.clone(),
        state.statuses.clone(),
        tasks.clone(),
        shutdown.clone(),
    ));
    for store in state.stores.iter() {
        let prober = Prober {
            store: store.clone(),
            recovery: recovery.clone(),
            statuses: state.statuses.clone(),
            instance: instance.to_owned(),
            interval,
            config: config.probe.clone(),
        };
        tasks.spawn(prober.run(shutdown.clone()));
    }
}

/// Creates the zip indexes of `store`'s collections, retrying while the node
/// is down (an index is an optimisation; reads work without it).
async fn prepare_indexes(
    store: NodeStore,
    regions: crate::domain::RegionMap,
    shutdown: CancellationToken,
) {
    let mut collections = vec![CustomerCopy::PRIMARY_COLLECTION.to_owned()];
    collections.extend(
        regions
            .replicas_hosted_by(store.node())
            .map(|r| CustomerCopy::replica_collection(&r.id)),
    );
    let ready = retry::until_ok("index creation deferred", &shutdown, || {
        store.ensure_indexes(&collections)
    })
    .await;
    if ready.is_some() {
        tracing::info!(node = %store.node(), "indexes ready");
    }
}

/// Creates the node topics (retrying while Kafka is down), then starts one
/// replay task per node: a consumer can only follow a topic that exists.
async fn start_replays(
    state: AppState,
    config: crate::config::ReplayConfig,
    drained: Option<DrainedQueues>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    let created = retry::until_ok("cannot create node topics yet", &shutdown, || {
        state.hints.ensure_topics(&state.nodes)
    })
    .await;
    if created.is_none() {
        return;
    }
    for node in &state.nodes {
        let (Some(store), Some(status)) =
            (state.stores.get(node).cloned(), state.statuses.watch(node))
        else {
            continue;
        };
        let consumer = retry::until_ok("cannot start a replay consumer yet", &shutdown, || {
            state.hints.consumer(node)
        })
        .await;
        let Some(hints) = consumer else {
            return;
        };
        let replay = Replay {
            node: node.clone(),
            store,
            hints,
            log: state.hints.clone(),
            backlogs: state.backlogs.clone(),
            status,
            config: config.clone(),
            drained: drained.clone(),
        };
        tasks.spawn(replay.run(shutdown.clone()));
    }
}

/// The metrics recorder's periodic upkeep (it bounds its own memory).
async fn metrics_upkeep(
    handle: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(crate::metrics::UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => handle.run_upkeep(),
        }
    }
}
