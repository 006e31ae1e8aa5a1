//! The background tasks a serving instance runs beside HTTP: failure
//! detectors, index creation, one replay per node, metrics upkeep.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backlog::DrainedQueues;
use crate::config::Config;
use crate::domain::CustomerCopy;
use crate::http::AppState;
use crate::prober::Prober;
use crate::recovery::Recovery;
use crate::replay::Replay;
use crate::retry;
use crate::store::NodeStore;

/// One failure detector per node (with the check for nodes that lost their
/// data), unless detection is off.
pub(super) fn spawn_probers(
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
        state.hints.clone(),
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
pub(super) async fn prepare_indexes(
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
pub(super) async fn start_replays(
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
    super::services::first_look(&state.nodes, &state.statuses, &state.hints, &state.backlogs).await;
    for node in &state.nodes {
        let (Some(store), Some(gate)) = (
            state.stores.get(node).cloned(),
            state.statuses.replay_gate(node),
        ) else {
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
            gate,
            config: config.clone(),
            drained: drained.clone(),
            clock: state.writes.clock.clone(),
        };
        tasks.spawn(replay.run(shutdown.clone()));
    }
}

/// The metrics recorder's periodic upkeep (it bounds its own memory).
pub(super) async fn metrics_upkeep(
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
