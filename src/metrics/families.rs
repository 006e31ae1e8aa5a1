//! Every family regiondb exports, with its type and `# HELP` text.

/// What a family is, for its `# TYPE`.
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every family regiondb exports, with its `# HELP` text.
pub(super) const FAMILIES: [(Kind, &str, &str); 31] = [
    (
        Kind::Gauge,
        "regiondb_build_info",
        "Always 1; the version label is this binary's",
    ),
    (
        Kind::Counter,
        "regiondb_writes_total",
        "Copies of accepted or refused writes, by copy and outcome",
    ),
    (
        Kind::Gauge,
        "regiondb_node_available",
        "1 while the node is available, 0 while not",
    ),
    (
        Kind::Gauge,
        "regiondb_hints_queued",
        "Hints waiting in the node's topic (all instances)",
    ),
    (
        Kind::Gauge,
        "regiondb_dead_letters_held",
        "Hints held in the node's dead-letter topic",
    ),
    (
        Kind::Gauge,
        "regiondb_hint_lag_seconds",
        "Seconds since the oldest hint waiting for the node was accepted (0: none waits)",
    ),
    (
        Kind::Gauge,
        "regiondb_replay_rate",
        "Hints applied to the node per second by every instance, smoothed over 10 s",
    ),
    (
        Kind::Gauge,
        "regiondb_drain_eta_seconds",
        "Seconds until the node's queue is empty at that rate (NaN: no estimate)",
    ),
    (
        Kind::Gauge,
        "regiondb_replay_paused",
        "1 while an operator has paused the node's replay",
    ),
    (
        Kind::Gauge,
        "regiondb_node_lost_data",
        "1 while the node is flagged as having lost its data and is not repaired yet",
    ),
    (
        Kind::Counter,
        "regiondb_repair_differences_total",
        "Records repairs found differing between copies (or moved away), by trigger",
    ),
    (
        Kind::Counter,
        "regiondb_hints_replayed_total",
        "Hints this instance applied to the node",
    ),
    (
        Kind::Counter,
        "regiondb_dead_letters_total",
        "Hints this instance moved to the dead-letter topic",
    ),
    (
        Kind::Counter,
        "regiondb_http_requests_total",
        "HTTP requests answered, by method, route and status",
    ),
    (
        Kind::Histogram,
        "regiondb_http_request_duration_seconds",
        "Time to answer an HTTP request",
    ),
    (
        Kind::Histogram,
        "regiondb_backend_call_duration_seconds",
        "Time of one call to MongoDB, Kafka or Redis",
    ),
    (
        Kind::Counter,
        "regiondb_probes_total",
        "Failure-detector pings, by node and outcome",
    ),
    (
        Kind::Counter,
        "regiondb_status_changes_total",
        "Node statuses the failure detector changed",
    ),
    (
        Kind::Counter,
        "regiondb_repairs_total",
        "Repairs run, by trigger and outcome",
    ),
    (
        Kind::Counter,
        "regiondb_redis_restores_total",
        "Times this instance restored statuses Redis had lost",
    ),
    (
        Kind::Counter,
        "regiondb_redis_primary_changes_total",
        "Times this instance followed a new Redis primary",
    ),
    (
        Kind::Counter,
        "regiondb_version_slot_moves_total",
        "Times this instance moved to a free version slot",
    ),
    (
        Kind::Counter,
        "regiondb_data_loss_detected_total",
        "Nodes found to have lost their data",
    ),
    (
        Kind::Counter,
        "regiondb_replay_stalls_total",
        "Stalled replays this instance recovered",
    ),
    (
        Kind::Counter,
        "regiondb_requests_refused_total",
        "Requests refused by the web guards, by reason",
    ),
    (
        Kind::Counter,
        "regiondb_admin_token_failures_total",
        "Wrong admin tokens, by where they were sent",
    ),
    (
        Kind::Counter,
        "regiondb_tombstones_purged_total",
        "Tombstones removed by purges",
    ),
    (
        Kind::Gauge,
        "regiondb_clock_offset_seconds",
        "How far this instance's version clock runs ahead of its host's, following the cluster's",
    ),
    (
        Kind::Counter,
        "regiondb_clock_follow_capped_total",
        "Renewals that found another clock ahead beyond the cap and did not follow it all",
    ),
    (
        Kind::Histogram,
        "regiondb_group_commit_batch_size",
        "Copies per direct write command of the group commit, by node",
    ),
    (
        Kind::Gauge,
        "regiondb_group_commit_waiting",
        "Copies waiting for their direct write command, all nodes",
    ),
];
