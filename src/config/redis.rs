//! Redis: where it is (one server, or a primary found through Sentinel),
//! and the TLS files for `rediss://`.

use std::path::PathBuf;

use super::ConfigError;
use super::env::Env;
use super::kafka::readable_file;
use super::secret::Secret;

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `REDIS_URL`, or one made of `REDIS_HOST` and `REDIS_PORT`. With
    /// Sentinel, its scheme (TLS or not), user, password and database are
    /// used for the primary the sentinels name; its host and port are not.
    pub url: String,
    /// CA certificate (PEM) that signed the server's certificate; without
    /// it, the system's roots are trusted.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), for servers that ask for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub sentinel: Option<SentinelConfig>,
}

/// The primary is asked of these sentinels, again after every failure.
#[derive(Debug, Clone)]
pub struct SentinelConfig {
    /// `host:port` of each sentinel.
    pub addresses: Vec<String>,
    /// The name the sentinels monitor the primary under.
    pub master: String,
    /// The sentinels' own password, if they have one.
    pub password: Option<Secret>,
}

impl RedisConfig {
    /// Where Redis is, for logs and errors: no user or password.
    pub fn shown(&self) -> String {
        let scheme_end = self.url.find("://").map_or(0, |i| i + 3);
        let rest = &self.url[scheme_end..];
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let server = format!("{}{host}", &self.url[..scheme_end]);
        match &self.sentinel {
            Some(s) => format!(
                "the primary {:?} of sentinels {} ({server} names its scheme and database)",
                s.master,
                s.addresses.join(",")
            ),
            None => server,
        }
    }

    pub fn uses_tls(&self) -> bool {
        self.url.starts_with("rediss://")
    }

    pub(super) fn read(env: &Env) -> Result<RedisConfig, ConfigError> {
        let url = if env.var("REDIS_URL").is_some() {
            env.url("REDIS_URL", "", &["redis://", "rediss://"])?
        } else {
            let host = env.var("REDIS_HOST").unwrap_or_else(|| "localhost".into());
            let port = env.port("REDIS_PORT", 6379)?;
            format!("redis://{host}:{port}")
        };
        let tls = url.starts_with("rediss://");
        let file = |variable: &str| -> Result<Option<PathBuf>, ConfigError> {
            let Some(path) = env.var(variable) else {
                return Ok(None);
            };
            if !tls {
                return Err(ConfigError(format!(
                    "{variable}: set, but REDIS_URL is not a rediss:// (TLS) address"
                )));
            }
            readable_file(variable, path.as_ref()).map(Some)
        };
        let ca_file = file("REDIS_CA_FILE")?;
        let client_cert = match (
            file("REDIS_CLIENT_CERT_FILE")?,
            file("REDIS_CLIENT_KEY_FILE")?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(ConfigError(
                    "REDIS_CLIENT_CERT_FILE: a client certificate needs its key \
                     (REDIS_CLIENT_KEY_FILE), and the key its certificate"
                        .into(),
                ));
            }
        };
        Ok(RedisConfig {
            url,
            ca_file,
            client_cert,
            sentinel: SentinelConfig::read(env)?,
        })
    }
}

impl SentinelConfig {
    fn read(env: &Env) -> Result<Option<SentinelConfig>, ConfigError> {
        let Some(list) = env.var("REDIS_SENTINELS") else {
            for name in ["REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD"] {
                if env.var(name).is_some() {
                    return Err(ConfigError(format!(
                        "{name}: set, but REDIS_SENTINELS (the sentinels' host:port list) is not"
                    )));
                }
            }
            return Ok(None);
        };
        let addresses: Vec<String> = list.split(',').map(|s| s.trim().to_owned()).collect();
        let valid = |a: &String| {
            a.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            })
        };
        if !addresses.iter().all(valid) {
            return Err(ConfigError(format!(
                "REDIS_SENTINELS: must be host:port[,host:port...], got {list:?}"
            )));
        }
        Ok(Some(SentinelConfig {
            addresses,
            master: env
                .var("REDIS_SENTINEL_MASTER")
                .unwrap_or_else(|| "mymaster".into()),
            password: env.var("REDIS_SENTINEL_PASSWORD").map(Secret::new),
        }))
    }
}
