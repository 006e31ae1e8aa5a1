//! Configuration: environment variables (and a `.env` file, read by `cli`)
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

use crate::domain::RegionMap;

mod env;
mod env_file;
mod kafka;
mod redis;
mod regions_file;
mod secret;
mod sections;
mod web;

use env::{Env, parse_port};
pub use env_file::read_env_file;
pub use kafka::{ClientProperty, KafkaConfig, KafkaSecurity};
pub use redis::{RedisConfig, SentinelConfig};
use regions_file::load_regions_file;
pub use secret::Secret;
pub use sections::{
    AdminToken, HttpLimits, LogFormat, MIN_ADMIN_TOKEN_LEN, MongoConfig, ProbeConfig, PurgeConfig,
    ReplayConfig,
};
pub use web::{AllowedHosts, MAX_DELAY, SignInLimits, WebConfig};

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub regions: RegionMap,
    pub mongo: MongoConfig,
    pub redis: RedisConfig,
    pub kafka: KafkaConfig,
    pub replay: ReplayConfig,
    /// How often the whole `node_statuses` hash is re-read, as a safety net
    /// behind the change notifications.
    pub status_resync: Duration,
    pub log_format: LogFormat,
    /// `RUST_LOG`, checked; the default filter when unset.
    pub log_filter: String,
    pub http: HttpLimits,
    pub probe: ProbeConfig,
    /// Shortest time between two automatic repairs (run after a node's
    /// queue drains); `None`: never automatically.
    pub auto_repair: Option<Duration>,
    pub purge: PurgeConfig,
    /// When set, switching nodes, repairs and deletes need it (see
    /// `http::auth`).
    pub admin_token: Option<AdminToken>,
    /// Hosts, origins and sign-in limits (see `http::security`).
    pub web: WebConfig,
}

/// A configuration problem: one line, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

/// The log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,rdkafka=warn,mongodb=warn";

impl Config {
    /// Reads the process environment, then `file` (the `.env` file's
    /// variables) for what the environment does not set.
    pub fn from_env(file: HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut vars = file;
        vars.extend(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        );
        Self::from_vars(&vars)
    }

    /// Reads these variables (the settings named by a prefix included).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let names = vars.keys().cloned().collect();
        Self::read(&Env::new(&|name| vars.get(name).cloned(), names))
    }

    /// Reads variables through `get`, so tests need not touch the process
    /// environment. Empty values count as unset. Settings named by a prefix
    /// (`KAFKA_PROPERTY_*`) are not seen: use [`Config::from_vars`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Self::read(&Env::new(&get, Vec::new()))
    }

    /// Bound beyond loopback with no admin token: anyone who can reach the
    /// port can switch nodes off, repair and delete.
    pub fn exposed_without_token(&self) -> bool {
        self.admin_token.is_none() && !self.bind.ip().is_loopback()
    }

    fn read(env: &Env) -> Result<Config, ConfigError> {
        let regions = match env.var("REGIONS_FILE") {
            Some(path) => load_regions_file(Path::new(&path))
                .map_err(|e| ConfigError(format!("REGIONS_FILE ({path}): {e}")))?,
            None => RegionMap::default_regions(),
        };
        let kafka = KafkaConfig::read(env)?;
        let bind = bind_address(env)?;
        Ok(Config {
            bind,
            mongo: MongoConfig::read(env, &regions)?,
            regions,
            redis: RedisConfig::read(env)?,
            replay: ReplayConfig::read(env, kafka.session_timeout)?,
            status_resync: env.millis("STATUS_RESYNC_MS", 5000, 100)?,
            log_format: LogFormat::read(env)?,
            log_filter: log_filter(env)?,
            http: HttpLimits::read(env)?,
            probe: ProbeConfig::read(env)?,
            auto_repair: env.millis_or_off("AUTO_REPAIR_MIN_INTERVAL_MS", 60_000)?,
            purge: PurgeConfig::read(env, kafka.timeout)?,
            kafka,
            admin_token: AdminToken::read(env)?,
            web: WebConfig::read(env, bind.ip())?,
        })
    }
}

/// `RUST_LOG`: a filter `tracing-subscriber` accepts.
fn log_filter(env: &Env) -> Result<String, ConfigError> {
    let filter = env
        .var("RUST_LOG")
        .unwrap_or_else(|| DEFAULT_LOG_FILTER.into());
    tracing_subscriber::EnvFilter::try_new(&filter)
        .map(|_| filter.clone())
        .map_err(|e| ConfigError(format!("RUST_LOG: not a log filter ({e}), got {filter:?}")))
}

/// `BIND_ADDRESS` and `PORT` (or the seed's `FASTAPI_PORT`).
fn bind_address(env: &Env) -> Result<SocketAddr, ConfigError> {
    let port = match (env.var("PORT"), env.var("FASTAPI_PORT")) {
        (Some(p), _) => parse_port("PORT", &p)?,
        (None, Some(p)) => parse_port("FASTAPI_PORT", &p)?,
        (None, None) => 8000,
    };
    let address: IpAddr = env
        .var("BIND_ADDRESS")
        .unwrap_or_else(|| "127.0.0.1".into())
        .parse()
        .map_err(|_| ConfigError("BIND_ADDRESS: must be an IP address such as 0.0.0.0".into()))?;
    Ok(SocketAddr::new(address, port))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::domain::NodeId;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::from_vars(&map)
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = config(&[]).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(c.redis.url, "redis://localhost:6379");
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
        assert_eq!(c.redis.url, "redis://redis:6380");
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
        assert_eq!(c.redis.url, "redis://x:1/3");
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
            (vec![("PURGE_GRACE_MS", "10000")], "PURGE_GRACE_MS"),
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
}
