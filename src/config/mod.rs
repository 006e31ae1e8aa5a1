//! Configuration: environment variables (and a `.env` file, read by `cli`)
//! plus an optional regions file, checked once at start.
//!
//! Variable names are the seed system's (`MONGO_URI`, `REDIS_HOST`,
//! `KAFKA_BOOTSTRAP_SERVER`, `FASTAPI_PORT`, ...) so its operators' `.env`
//! files keep working. Any bad value stops the process with one line naming
//! the variable.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::domain::RegionMap;

mod env;
mod regions_file;
mod sections;
mod web;

use env::{Env, parse_port};
use regions_file::load_regions_file;
pub use sections::{
    AdminToken, HttpLimits, KafkaConfig, LogFormat, MIN_ADMIN_TOKEN_LEN, MongoConfig, ProbeConfig,
    PurgeConfig, ReplayConfig,
};
pub use web::{AllowedHosts, MAX_DELAY, SignInLimits, WebConfig};

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

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `get`, so tests need not touch the process
    /// environment. Empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(&get);
        let regions = match env.var("REGIONS_FILE") {
            Some(path) => load_regions_file(Path::new(&path))
                .map_err(|e| ConfigError(format!("REGIONS_FILE ({path}): {e}")))?,
            None => RegionMap::default_regions(),
        };
        let kafka = KafkaConfig::read(&env)?;
        let bind = bind_address(&env)?;
        Ok(Config {
            bind,
            mongo: MongoConfig::read(&env, &regions)?,
            regions,
            redis_url: sections::redis_url(&env)?,
            replay: ReplayConfig::read(&env, kafka.session_timeout)?,
            status_resync: env.millis("STATUS_RESYNC_MS", 5000, 100)?,
            log_format: LogFormat::read(&env)?,
            http: HttpLimits::read(&env)?,
            probe: ProbeConfig::read(&env)?,
            auto_repair: env.millis_or_off("AUTO_REPAIR_MIN_INTERVAL_MS", 60_000)?,
            purge: PurgeConfig::read(&env, kafka.timeout)?,
            kafka,
            admin_token: AdminToken::read(&env)?,
            web: WebConfig::read(&env, bind.ip())?,
        })
    }
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
