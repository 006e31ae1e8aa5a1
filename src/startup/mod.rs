//! Wiring: connect the adapters, start the background tasks, serve HTTP, and
//! shut everything down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backlog::DrainedQueues;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::monitor::Monitor;
use crate::reads::ReadPath;
use crate::repair::{AutoPurge, AutoRepair};
use crate::writes::PlacedRecord;

mod services;
mod tasks;

pub use services::{ConnectError, Services, first_look};

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
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

pub struct Application {
    config: Config,
    listener: TcpListener,
    state: AppState,
    /// This instance's name in Redis leases and locks.
    instance: String,
    auto_repair: Option<(AutoRepair, DrainedQueues)>,
    /// Renewed while the instance runs, released when it stops.
    clock_lease: crate::clock_lease::ClockLease,
    /// The single writes' moves, for the settler (see `WritePath::settle`).
    moves: mpsc::UnboundedReceiver<PlacedRecord>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.bind,
                    source,
                })?;
        let instance = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        let services = Services::connect(&config, &instance, REDIS_STARTUP_WAIT).await?;
        let auto_repair = config.auto_repair.map(|every| {
            AutoRepair::new(
                config.regions.clone(),
                services.stores.clone(),
                services.statuses.clone(),
                services.hints.clone(),
                instance.clone(),
                every,
            )
        });
        if config.exposed_without_token() {
            tracing::warn!(
                bind = %config.bind,
                "listening beyond loopback and ADMIN_TOKEN is not set: anyone who can reach this port can switch nodes, run repairs and delete records; set ADMIN_TOKEN or BIND_ADDRESS=127.0.0.1"
            );
        } else if config.admin_token.is_none() {
            tracing::warn!(
                "ADMIN_TOKEN is not set: anyone who can reach this port can switch nodes, run repairs and delete records"
            );
        }
        let (state, moves) = app_state(&config, &services);
        Ok(Application {
            config,
            listener,
            state,
            instance,
            auto_repair,
            clock_lease: services.clock_lease,
            moves,
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
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let Application {
            config,
            listener,
            state,
            instance,
            auto_repair,
            clock_lease,
            moves,
        } = self;
        tasks.spawn(clock_lease.run(shutdown.clone()));
        tasks.spawn(state.writes.clone().settle(moves, shutdown.clone()));
        let background = Background {
            state: &state,
            config: &config,
            tasks: &tasks,
            shutdown: &shutdown,
        };
        background.start(&instance, auto_repair);
        tracing::info!(addr = %listener.local_addr()?, "regiondb listening");
        let stopping = state.stopping.clone();
        let stop = async move {
            stop.await;
            stopping.cancel();
        };
        let served =
            http::server::serve(listener, http::router(state.clone()), &config.http, stop).await;
        stop_in_order(&state, &tasks, &shutdown).await;
        served
    }
}

/// What the background tasks are started with.
struct Background<'a> {
    state: &'a AppState,
    config: &'a Config,
    tasks: &'a TaskTracker,
    shutdown: &'a CancellationToken,
}

impl Background<'_> {
    /// Every background task but the clock lease's renewal.
    fn start(&self, instance: &str, auto_repair: Option<(AutoRepair, DrainedQueues)>) {
        let (state, tasks, shutdown) = (self.state, self.tasks, self.shutdown);
        let resync = self.config.status_resync;
        tasks.spawn(state.statuses.clone().follow(resync, shutdown.clone()));
        tasks.spawn(state.monitor.clone().run(shutdown.clone()));
        tasks.spawn(tasks::metrics_upkeep(
            state.metrics.clone(),
            shutdown.clone(),
        ));
        for store in state.stores.iter() {
            let regions = state.regions.clone();
            tasks.spawn(tasks::prepare_indexes(
                store.clone(),
                regions,
                shutdown.clone(),
            ));
        }
        tasks::spawn_probers(state, self.config, instance, tasks, shutdown);
        if let Some(every) = self.config.purge.interval {
            let purge = AutoPurge {
                regions: state.regions.clone(),
                stores: state.stores.clone(),
                statuses: state.statuses.clone(),
                hints: state.hints.clone(),
                instance: instance.to_owned(),
                every,
                grace: self.config.purge.grace,
            };
            tasks.spawn(purge.run(shutdown.clone()));
        }
        let drained = auto_repair.map(|(auto, drained)| {
            tasks.spawn(auto.run(shutdown.clone()));
            drained
        });
        let replay = self.config.replay.clone();
        let (state, tasks_handle) = (state.clone(), tasks.clone());
        tasks.spawn(tasks::start_replays(
            state,
            replay,
            drained,
            tasks_handle,
            shutdown.clone(),
        ));
    }
}

/// The shared state of the HTTP handlers, and the receiving end of the
/// write path's move queue.
fn app_state(
    config: &Config,
    services: &Services,
) -> (AppState, mpsc::UnboundedReceiver<PlacedRecord>) {
    let max_writes = config.http.max_requests_per_class;
    let (queue, moves) = mpsc::unbounded_channel();
    let mut writes = services.write_path(config, max_writes);
    writes.moves = Some(queue);
    let reads = ReadPath::new(
        config.regions.clone(),
        services.statuses.clone(),
        services.stores.clone(),
        services.backlogs.clone(),
    );
    let monitor = Monitor::new(
        config.regions.clone(),
        services.statuses.clone(),
        services.hints.clone(),
    );
    let state = AppState {
        regions: config.regions.clone(),
        nodes: services.nodes.clone(),
        writes: Arc::new(writes),
        reads: Arc::new(reads),
        monitor: Arc::new(monitor),
        statuses: services.statuses.clone(),
        stores: services.stores.clone(),
        hints: services.hints.clone(),
        backlogs: services.backlogs.clone(),
        metrics: crate::metrics::install_for(&services.nodes),
        limits: config.http.clone(),
        event_streams: Arc::new(tokio::sync::Semaphore::new(config.http.max_event_streams)),
        stopping: CancellationToken::new(),
        guard: crate::http::auth::Guard {
            token: config.admin_token.clone(),
            access: crate::access::Access::new(services.statuses.redis(), config.web.sign_in),
            exposed: config.exposed_without_token(),
        },
        web: Arc::new(config.web.clone()),
        readiness: Arc::default(),
    };
    (state, moves)
}

/// After the server stopped: accepted writes finish (home and replica),
/// then the background tasks stop, then the producer delivers what it holds.
async fn stop_in_order(state: &AppState, tasks: &TaskTracker, shutdown: &CancellationToken) {
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
}
