//! Configuration: environment variables (and a `.env` file, read by `main`)
//! plus an optional regions file, checked once at start.
//!
//! Variable names are the seed system's (`MONGO_URI`, `REDIS_HOST`,
//! `KAFKA_BOOTSTRAP_SERVER`, `FASTAPI_PORT`, ...) so its operators' `.env`
//! files keep working. Any bad value stops the process with one line naming
//! the variable.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::{NodeId, Region, RegionMap, ZipRange};

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub regions: RegionMap,
    pub mongo: MongoConfig,
    pub redis_url: String,
    pub kafka: KafkaConfig,
    pub replay: ReplayConfig,
    /// How often the whole `node_statuses` hash is re-read, as a safety net
    /// behind the change notifications.
    pub status_resync: Duration,
    pub log_format: LogFormat,
    pub http: HttpLimits,
    pub probe: ProbeConfig,
    /// Shortest time between two automatic repairs (run after a node's
    /// queue drains); `None`: never automatically.
    pub auto_repair: Option<Duration>,
    /// When set, switching nodes and repairs need it (see `http::auth`).
    pub admin_token: Option<AdminToken>,
}

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

/// The admin token. Never printed: `Debug` hides it.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
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
pub struct KafkaConfig {
    pub bootstrap: String,
    pub topic_prefix: String,
    /// How long a hint may wait for the broker's acknowledgement before the
    /// write is answered 503.
    pub timeout: Duration,
    pub partitions: i32,
    pub replication_factor: i32,
    /// `retention.ms` of the topics regiondb creates: -1 (keep every hint
    /// until it is replayed) unless set; a finite value is the longest
    /// outage a node can have without losing hints.
    pub retention_ms: i64,
    /// `min.insync.replicas` of the topics regiondb creates, set only when
    /// they are replicated.
    pub min_insync_replicas: Option<i32>,
    /// How often each replay looks for partitions added to its topic.
    pub partition_refresh: Duration,
    /// How long the handoff group waits for a silent member before moving
    /// its partitions to the others.
    pub session_timeout: Duration,
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

/// A configuration problem: one line, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `get`, so tests need not touch the process
    /// environment. Empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let regions = match var("REGIONS_FILE") {
            Some(path) => load_regions_file(Path::new(&path))
                .map_err(|e| ConfigError(format!("REGIONS_FILE ({path}): {e}")))?,
            None => RegionMap::default_regions(),
        };

        let port = match (var("PORT"), var("FASTAPI_PORT")) {
            (Some(p), _) => parse_port("PORT", &p)?,
            (None, Some(p)) => parse_port("FASTAPI_PORT", &p)?,
            (None, None) => 8000,
        };
        let address: IpAddr = var("BIND_ADDRESS")
            .unwrap_or_else(|| "127.0.0.1".into())
            .parse()
            .map_err(|_| {
                ConfigError("BIND_ADDRESS: must be an IP address such as 0.0.0.0".into())
            })?;

        let default_mongo = var("MONGO_URI").unwrap_or_else(|| "mongodb://localhost:27017".into());
        check_mongo_uri("MONGO_URI", &default_mongo)?;
        let mut uris = HashMap::new();
        for node in regions.nodes() {
            let name = format!("MONGO_URI_{}", node.env_suffix());
            let uri = match var(&name) {
                Some(uri) => {
                    check_mongo_uri(&name, &uri)?;
                    uri
                }
                None => default_mongo.clone(),
            };
            uris.insert(node.clone(), uri);
        }

        let redis_url = match var("REDIS_URL") {
            Some(url) => {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(ConfigError(
                        "REDIS_URL: must start with redis:// or rediss://".into(),
                    ));
                }
                url
            }
            None => {
                let host = var("REDIS_HOST").unwrap_or_else(|| "localhost".into());
                let port = match var("REDIS_PORT") {
                    Some(p) => parse_port("REDIS_PORT", &p)?,
                    None => 6379,
                };
                format!("redis://{host}:{port}")
            }
        };

        let bootstrap = var("KAFKA_BOOTSTRAP_SERVER").unwrap_or_else(|| "localhost:9092".into());
        if bootstrap.split(',').any(|s| !s.trim().contains(':')) {
            return Err(ConfigError(
                "KAFKA_BOOTSTRAP_SERVER: must be host:port[,host:port...]".into(),
            ));
        }
        let topic_prefix = var("KAFKA_TOPIC_PREFIX").unwrap_or_default();
        if !topic_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(ConfigError(
                "KAFKA_TOPIC_PREFIX: only letters, digits, '.', '_' and '-' are allowed".into(),
            ));
        }

        let number = |name: &str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(ConfigError(format!(
                        "{name}: must be a whole number from {min} to {max}, got {v:?}"
                    ))),
                },
            }
        };
        let millis = |name: &str, default: u64, min: u64| {
            number(name, default, min, 600_000).map(Duration::from_millis)
        };

        let session_timeout = millis("KAFKA_SESSION_TIMEOUT_MS", 6000, 1000)?;
        let stall_after = millis("REPLAY_STALL_MS", 15_000, 1000)?;
        if stall_after <= session_timeout {
            return Err(ConfigError(format!(
                "REPLAY_STALL_MS: must be longer than KAFKA_SESSION_TIMEOUT_MS ({} ms), got {}",
                session_timeout.as_millis(),
                stall_after.as_millis()
            )));
        }

        let log_format = match var("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError(format!(
                    "LOG_FORMAT: must be \"text\" or \"json\", got {other:?}"
                )));
            }
        };

        let replication_factor = number("KAFKA_REPLICATION_FACTOR", 1, 1, 16)? as i32;
        let min_insync_replicas = if replication_factor > 1 {
            let default = u64::from(replication_factor.min(2).unsigned_abs());
            let max = u64::from(replication_factor.unsigned_abs());
            Some(number("KAFKA_MIN_INSYNC_REPLICAS", default, 1, max)? as i32)
        } else {
            None
        };
        let retention_ms = match var("KAFKA_RETENTION_MS") {
            None => -1,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n == -1 || n >= 60_000 => n,
                _ => {
                    return Err(ConfigError(format!(
                        "KAFKA_RETENTION_MS: must be -1 (keep every hint) or at least 60000, got {v:?}"
                    )));
                }
            },
        };

        let admin_token = match var("ADMIN_TOKEN") {
            None => None,
            Some(t)
                if t.len() < MIN_ADMIN_TOKEN_LEN || !t.chars().all(|c| c.is_ascii_graphic()) =>
            {
                return Err(ConfigError(format!(
                    "ADMIN_TOKEN: must be at least {MIN_ADMIN_TOKEN_LEN} printable ASCII characters \
                     without spaces (e.g. from `openssl rand -hex 32`)"
                )));
            }
            Some(t) => Some(AdminToken(t)),
        };
        let probe_interval = millis("PROBE_INTERVAL_MS", 1000, 0)?;
        let auto_repair = millis("AUTO_REPAIR_MIN_INTERVAL_MS", 60_000, 0)?;

        Ok(Config {
            bind: SocketAddr::new(address, port),
            regions,
            mongo: MongoConfig {
                uris,
                timeout: millis("MONGO_TIMEOUT_MS", 2000, 50)?,
            },
            redis_url,
            kafka: KafkaConfig {
                bootstrap,
                topic_prefix,
                timeout: millis("KAFKA_TIMEOUT_MS", 5000, 100)?,
                partitions: number("KAFKA_PARTITIONS", 6, 1, 1000)? as i32,
                replication_factor,
                retention_ms,
                min_insync_replicas,
                partition_refresh: millis("KAFKA_PARTITION_REFRESH_MS", 30_000, 100)?,
                session_timeout,
            },
            replay: ReplayConfig {
                batch_size: number("REPLAY_BATCH_SIZE", 500, 1, 100_000)? as usize,
                throttle: millis("REPLAY_THROTTLE_MS", 0, 0)?,
                stall_after,
            },
            status_resync: millis("STATUS_RESYNC_MS", 5000, 100)?,
            log_format,
            http: HttpLimits {
                max_connections: number("HTTP_MAX_CONNECTIONS", 4096, 16, 1_000_000)? as usize,
                header_timeout: millis("HTTP_HEADER_TIMEOUT_MS", 10_000, 100)?,
                max_event_streams: number("HTTP_MAX_EVENT_STREAMS", 512, 1, 1_000_000)? as usize,
                max_requests_per_class: number("HTTP_MAX_REQUESTS_PER_CLASS", 256, 1, 100_000)?
                    as usize,
            },
            probe: ProbeConfig {
                interval: (!probe_interval.is_zero()).then_some(probe_interval),
                threshold: number("PROBE_FAILURES", 3, 1, 100)? as u32,
                timeout: millis("PROBE_TIMEOUT_MS", 800, 10)?,
            },
            auto_repair: (!auto_repair.is_zero()).then_some(auto_repair),
            admin_token,
        })
    }
}

fn parse_port(name: &str, value: &str) -> Result<u16, ConfigError> {
    match value.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ConfigError(format!(
            "{name}: must be a port number from 1 to 65535, got {value:?}"
        ))),
    }
}

fn check_mongo_uri(name: &str, uri: &str) -> Result<(), ConfigError> {
    if uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://") {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "{name}: must start with mongodb:// or mongodb+srv://"
        )))
    }
}

/// The regions file: one `[[region]]` table per region.
///
/// ```toml
/// [[region]]
/// id = "region_1"
/// zip_min = 1000
/// zip_max = 39999
/// replica = "region_3"
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionsFile {
    region: Vec<RegionEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionEntry {
    id: String,
    zip_min: u32,
    zip_max: u32,
    replica: String,
}

fn load_regions_file(path: &Path) -> Result<RegionMap, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse_regions(&text)
}

fn parse_regions(text: &str) -> Result<RegionMap, String> {
    let file: RegionsFile = toml::from_str(text).map_err(|e| {
        // toml's messages span several lines (with a source excerpt); the
        // contract is one line.
        e.to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    })?;
    let regions = file
        .region
        .into_iter()
        .map(|r| {
            Ok(Region {
                id: NodeId::parse(&r.id)?,
                zips: ZipRange {
                    min: r.zip_min,
                    max: r.zip_max,
                },
                replica: NodeId::parse(&r.replica)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    RegionMap::new(regions).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(c.redis_url, "redis://localhost:6379");
        assert_eq!(c.kafka.bootstrap, "localhost:9092");
        assert_eq!(c.regions, RegionMap::default_regions());
        assert!(
            c.mongo
                .uris
                .values()
                .all(|u| u == "mongodb://localhost:27017")
        );
        assert_eq!(c.probe.interval, Some(Duration::from_secs(1)));
        assert_eq!(c.probe.threshold, 3);
        assert_eq!(c.auto_repair, Some(Duration::from_secs(60)));
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn zero_turns_detection_and_auto_repair_off_and_the_token_is_never_printed() {
        let c = config(&[
            ("PROBE_INTERVAL_MS", "0"),
            ("AUTO_REPAIR_MIN_INTERVAL_MS", "0"),
            ("ADMIN_TOKEN", "0123456789abcdef-secret"),
        ])
        .unwrap();
        assert_eq!(c.probe.interval, None);
        assert_eq!(c.auto_repair, None);
        assert_eq!(
            c.admin_token.as_ref().map(AdminToken::expose),
            Some("0123456789abcdef-secret")
        );
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn seed_names_and_per_node_uris() {
        let c = config(&[
            ("FASTAPI_PORT", "9000"),
            ("REDIS_HOST", "redis"),
            ("REDIS_PORT", "6380"),
            ("MONGO_URI", "mongodb://all:27017"),
            ("MONGO_URI_REGION_2", "mongodb://two:27017"),
        ])
        .unwrap();
        assert_eq!(c.bind.port(), 9000);
        assert_eq!(c.redis_url, "redis://redis:6380");
        let uri = |n: &str| c.mongo.uris[&NodeId::parse(n).unwrap()].clone();
        assert_eq!(uri("region_1"), "mongodb://all:27017");
        assert_eq!(uri("region_2"), "mongodb://two:27017");
        // PORT wins over the seed's alias; REDIS_URL wins over host/port.
        let c = config(&[
            ("PORT", "1"),
            ("FASTAPI_PORT", "2"),
            ("REDIS_URL", "redis://x:1/3"),
        ])
        .unwrap();
        assert_eq!(c.bind.port(), 1);
        assert_eq!(c.redis_url, "redis://x:1/3");
    }

    #[test]
    fn bad_values_name_the_variable_in_one_line() {
        for (pairs, name) in [
            (vec![("PORT", "http")], "PORT"),
            (vec![("FASTAPI_PORT", "70000")], "FASTAPI_PORT"),
            (vec![("REDIS_PORT", "0")], "REDIS_PORT"),
            (vec![("MONGO_URI", "localhost")], "MONGO_URI"),
            (vec![("MONGO_URI_REGION_3", "x")], "MONGO_URI_REGION_3"),
            (
                vec![("KAFKA_BOOTSTRAP_SERVER", "kafka")],
                "KAFKA_BOOTSTRAP_SERVER",
            ),
            (vec![("BIND_ADDRESS", "everywhere")], "BIND_ADDRESS"),
            (vec![("MONGO_TIMEOUT_MS", "fast")], "MONGO_TIMEOUT_MS"),
            (vec![("ADMIN_TOKEN", "short")], "ADMIN_TOKEN"),
            (
                vec![("ADMIN_TOKEN", "with a space in it ok")],
                "ADMIN_TOKEN",
            ),
            (vec![("PROBE_FAILURES", "0")], "PROBE_FAILURES"),
            (vec![("REPLAY_STALL_MS", "5000")], "REPLAY_STALL_MS"),
            (vec![("KAFKA_RETENTION_MS", "1000")], "KAFKA_RETENTION_MS"),
            (
                vec![
                    ("KAFKA_REPLICATION_FACTOR", "3"),
                    ("KAFKA_MIN_INSYNC_REPLICAS", "4"),
                ],
                "KAFKA_MIN_INSYNC_REPLICAS",
            ),
            (
                vec![("REGIONS_FILE", "/nonexistent/regions.toml")],
                "REGIONS_FILE",
            ),
        ] {
            let err = config(&pairs).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn hint_topics_keep_everything_unless_told_otherwise() {
        let c = config(&[]).unwrap();
        assert_eq!(c.kafka.retention_ms, -1);
        assert_eq!(c.kafka.min_insync_replicas, None);
        let c = config(&[("KAFKA_REPLICATION_FACTOR", "3")]).unwrap();
        assert_eq!(c.kafka.min_insync_replicas, Some(2));
    }

    #[test]
    fn regions_file_defines_n_regions() {
        let map = parse_regions(
            r#"
            [[region]]
            id = "north"
            zip_min = 0
            zip_max = 499
            replica = "south"
            [[region]]
            id = "south"
            zip_min = 500
            zip_max = 999
            replica = "west"
            [[region]]
            id = "west"
            zip_min = 1000
            zip_max = 1999
            replica = "north"
            [[region]]
            id = "east"
            zip_min = 2000
            zip_max = 2999
            replica = "north"
            "#,
        )
        .unwrap();
        assert_eq!(map.regions().len(), 4);
        let overlap = "[[region]]\nid=\"a\"\nzip_min=0\nzip_max=10\nreplica=\"b\"\n\
                       [[region]]\nid=\"b\"\nzip_min=5\nzip_max=20\nreplica=\"a\"\n";
        assert!(parse_regions(overlap).unwrap_err().contains("overlapping"));
        let typo = "[[region]]\nid=\"a\"\nzip_min=0\nzip_max=10\nreplika=\"b\"\n";
        let err = parse_regions(typo).unwrap_err();
        assert!(!err.contains('\n') && err.contains("replika"), "{err}");
    }
}
