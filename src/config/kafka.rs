//! Kafka: the brokers, the topics regiondb creates, and how the clients
//! reach a secured cluster (`security.protocol`, SASL, TLS files, and any
//! other librdkafka property through `KAFKA_PROPERTY_<NAME>`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;
use super::env::Env;
use super::secret::Secret;

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
    /// How the clients reach the brokers: TLS, SASL, and any other client
    /// property (`KAFKA_PROPERTY_*`).
    pub security: KafkaSecurity,
    /// `client.id`: `regiondb` until the clients are built, which give each
    /// instance its own.
    pub client_id: String,
}

impl KafkaConfig {
    pub(super) fn read(env: &Env) -> Result<KafkaConfig, ConfigError> {
        let bootstrap = env
            .var("KAFKA_BOOTSTRAP_SERVER")
            .unwrap_or_else(|| "localhost:9092".into());
        if bootstrap.split(',').any(|s| !s.trim().contains(':')) {
            return Err(ConfigError(
                "KAFKA_BOOTSTRAP_SERVER: must be host:port[,host:port...]".into(),
            ));
        }
        let topic_prefix = env.var("KAFKA_TOPIC_PREFIX").unwrap_or_default();
        if !topic_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(ConfigError(
                "KAFKA_TOPIC_PREFIX: only letters, digits, '.', '_' and '-' are allowed".into(),
            ));
        }
        let replication_factor = env.number("KAFKA_REPLICATION_FACTOR", 1, 1, 16)? as i32;
        Ok(KafkaConfig {
            bootstrap,
            topic_prefix,
            timeout: env.millis("KAFKA_TIMEOUT_MS", 5000, 100)?,
            partitions: env.number("KAFKA_PARTITIONS", 6, 1, 1000)? as i32,
            replication_factor,
            retention_ms: retention_ms(env)?,
            min_insync_replicas: min_insync_replicas(env, replication_factor)?,
            partition_refresh: env.millis("KAFKA_PARTITION_REFRESH_MS", 30_000, 100)?,
            session_timeout: env.millis("KAFKA_SESSION_TIMEOUT_MS", 6000, 1000)?,
            security: KafkaSecurity::read(env)?,
            client_id: "regiondb".into(),
        })
    }
}

/// `KAFKA_MIN_INSYNC_REPLICAS`, only for replicated topics (default: 2, or
/// the replication factor if smaller).
fn min_insync_replicas(env: &Env, replication_factor: i32) -> Result<Option<i32>, ConfigError> {
    if replication_factor <= 1 {
        return Ok(None);
    }
    let default = u64::from(replication_factor.min(2).unsigned_abs());
    let max = u64::from(replication_factor.unsigned_abs());
    Ok(Some(
        env.number("KAFKA_MIN_INSYNC_REPLICAS", default, 1, max)? as i32,
    ))
}

/// `KAFKA_RETENTION_MS`: -1 (keep every hint) unless set.
fn retention_ms(env: &Env) -> Result<i64, ConfigError> {
    let Some(v) = env.var("KAFKA_RETENTION_MS") else {
        return Ok(-1);
    };
    match v.parse::<i64>() {
        Ok(n) if n == -1 || n >= 60_000 => Ok(n),
        _ => Err(ConfigError(format!(
            "KAFKA_RETENTION_MS: must be -1 (keep every hint) or at least 60000, got {v:?}"
        ))),
    }
}

/// `security.protocol`, as librdkafka spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One client property and the variable that set it, so a value librdkafka
/// refuses is reported under the variable's name.
#[derive(Debug, Clone)]
pub struct ClientProperty {
    pub variable: String,
    pub name: String,
    pub value: Secret,
}

/// Everything about how the clients reach the brokers.
#[derive(Debug, Clone)]
pub struct KafkaSecurity {
    /// The client properties beyond `bootstrap.servers` and `client.id`,
    /// in the order they are set: the named settings, then
    /// `KAFKA_PROPERTY_*` sorted by name.
    pub properties: Vec<ClientProperty>,
}

/// The prefix of the variables that pass any other librdkafka property:
/// `KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE=true` sets
/// `socket.keepalive.enable`.
pub const PROPERTY_PREFIX: &str = "KAFKA_PROPERTY_";

/// Properties regiondb sets itself (its guarantees depend on them) or that
/// have a variable of their own.
const OWN_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "KAFKA_BOOTSTRAP_SERVER"),
    ("client.id", "(set per instance by regiondb)"),
    ("group.id", "(set per node by regiondb)"),
    (
        "enable.auto.commit",
        "(regiondb commits after MongoDB took a batch)",
    ),
    (
        "enable.auto.offset.store",
        "(regiondb commits after MongoDB took a batch)",
    ),
    ("acks", "(regiondb needs acks=all)"),
    (
        "enable.idempotence",
        "(regiondb needs the idempotent producer)",
    ),
    ("security.protocol", "KAFKA_SECURITY_PROTOCOL"),
    ("sasl.mechanism", "KAFKA_SASL_MECHANISM"),
    ("sasl.mechanisms", "KAFKA_SASL_MECHANISM"),
    ("sasl.username", "KAFKA_SASL_USERNAME"),
    ("sasl.password", "KAFKA_SASL_PASSWORD"),
    ("ssl.ca.location", "KAFKA_SSL_CA_FILE"),
    ("ssl.certificate.location", "KAFKA_SSL_CERT_FILE"),
    ("ssl.key.location", "KAFKA_SSL_KEY_FILE"),
    ("ssl.key.password", "KAFKA_SSL_KEY_PASSWORD"),
];

/// The TLS file settings: (variable, property).
const TLS_FILES: [(&str, &str); 3] = [
    ("KAFKA_SSL_CA_FILE", "ssl.ca.location"),
    ("KAFKA_SSL_CERT_FILE", "ssl.certificate.location"),
    ("KAFKA_SSL_KEY_FILE", "ssl.key.location"),
];

impl KafkaSecurity {
    fn read(env: &Env) -> Result<KafkaSecurity, ConfigError> {
        let protocol = match env
            .var("KAFKA_SECURITY_PROTOCOL")
            .map(|v| v.to_ascii_lowercase())
        {
            None => SecurityProtocol::Plaintext,
            Some(v) => match v.as_str() {
                "plaintext" => SecurityProtocol::Plaintext,
                "ssl" => SecurityProtocol::Ssl,
                "sasl_plaintext" => SecurityProtocol::SaslPlaintext,
                "sasl_ssl" => SecurityProtocol::SaslSsl,
                _ => {
                    return Err(ConfigError(format!(
                        "KAFKA_SECURITY_PROTOCOL: must be PLAINTEXT, SSL, SASL_PLAINTEXT or \
                         SASL_SSL, got {v:?}"
                    )));
                }
            },
        };
        let mut properties = vec![property(
            "KAFKA_SECURITY_PROTOCOL",
            "security.protocol",
            protocol.as_str(),
        )];
        properties.extend(read_sasl(env, protocol)?);
        properties.extend(read_tls_files(env, protocol)?);
        properties.extend(read_passed_properties(env)?);
        Ok(KafkaSecurity { properties })
    }

    /// The variable that set client property `name`, for error messages.
    pub fn variable_of(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.variable.as_str())
    }
}

fn property(variable: &str, name: &str, value: &str) -> ClientProperty {
    ClientProperty {
        variable: variable.to_owned(),
        name: name.to_owned(),
        value: Secret::new(value),
    }
}

/// The SASL mechanism and credentials (`sasl.mechanism`, `sasl.username`,
/// `sasl.password`): required with a SASL protocol, refused without one.
fn read_sasl(env: &Env, protocol: SecurityProtocol) -> Result<Vec<ClientProperty>, ConfigError> {
    const NAMES: [&str; 3] = [
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
    ];
    if !protocol.uses_sasl() {
        if let Some(name) = NAMES.iter().find(|n| env.var(n).is_some()) {
            return Err(ConfigError(format!(
                "{name}: set, but KAFKA_SECURITY_PROTOCOL ({}) uses no SASL: use SASL_SSL or \
                 SASL_PLAINTEXT",
                protocol.as_str().to_ascii_uppercase()
            )));
        }
        return Ok(Vec::new());
    }
    let mechanism = match env.var(NAMES[0]).map(|m| m.to_ascii_uppercase()).as_deref() {
        None | Some("PLAIN") => "PLAIN",
        Some("SCRAM-SHA-256") => "SCRAM-SHA-256",
        Some("SCRAM-SHA-512") => "SCRAM-SHA-512",
        Some(other) => {
            return Err(ConfigError(format!(
                "KAFKA_SASL_MECHANISM: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got {other:?}"
            )));
        }
    };
    let required = |name: &str| {
        env.var(name).ok_or_else(|| {
            ConfigError(format!(
                "{name}: required when KAFKA_SECURITY_PROTOCOL is {}",
                protocol.as_str().to_ascii_uppercase()
            ))
        })
    };
    Ok(vec![
        property(NAMES[0], "sasl.mechanism", mechanism),
        property(NAMES[1], "sasl.username", &required(NAMES[1])?),
        property(NAMES[2], "sasl.password", &required(NAMES[2])?),
    ])
}

/// The CA, certificate and key files (and the key's password): only with a
/// TLS protocol, each readable, certificate and key together.
fn read_tls_files(
    env: &Env,
    protocol: SecurityProtocol,
) -> Result<Vec<ClientProperty>, ConfigError> {
    let mut set = Vec::new();
    for (variable, name) in TLS_FILES {
        let Some(path) = env.var(variable) else {
            continue;
        };
        if !protocol.uses_tls() {
            return Err(ConfigError(format!(
                "{variable}: set, but KAFKA_SECURITY_PROTOCOL ({}) uses no TLS: use SSL or SASL_SSL",
                protocol.as_str().to_ascii_uppercase()
            )));
        }
        readable_file(variable, Path::new(&path))?;
        set.push(property(variable, name, &path));
    }
    let has = |v: &str| set.iter().any(|p: &ClientProperty| p.variable == v);
    if has("KAFKA_SSL_CERT_FILE") != has("KAFKA_SSL_KEY_FILE") {
        return Err(ConfigError(
            "KAFKA_SSL_CERT_FILE: a client certificate needs its key (KAFKA_SSL_KEY_FILE), and \
             the key its certificate"
                .into(),
        ));
    }
    if let Some(password) = env.var("KAFKA_SSL_KEY_PASSWORD") {
        set.push(property(
            "KAFKA_SSL_KEY_PASSWORD",
            "ssl.key.password",
            &password,
        ));
    }
    Ok(set)
}

/// A file the process can read, or one line naming the variable.
pub(super) fn readable_file(variable: &str, path: &Path) -> Result<PathBuf, ConfigError> {
    std::fs::File::open(path)
        .map(|_| path.to_owned())
        .map_err(|e| ConfigError(format!("{variable}: cannot read {}: {e}", path.display())))
}

/// `KAFKA_PROPERTY_<NAME>` variables, sorted by name. Unknown properties are
/// refused by librdkafka when the clients are built, under the variable's
/// name.
fn read_passed_properties(env: &Env) -> Result<Vec<ClientProperty>, ConfigError> {
    let mut passed = Vec::new();
    for variable in env.names_with_prefix(PROPERTY_PREFIX) {
        let Some(value) = env.var(&variable) else {
            continue;
        };
        let suffix = &variable[PROPERTY_PREFIX.len()..];
        if suffix.is_empty()
            || !suffix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ConfigError(format!(
                "{variable}: the name after {PROPERTY_PREFIX} must be a librdkafka property \
                 with '.' written as '_' (e.g. {PROPERTY_PREFIX}SOCKET_KEEPALIVE_ENABLE)"
            )));
        }
        let name = suffix.to_ascii_lowercase().replace('_', ".");
        if let Some((_, owner)) = OWN_PROPERTIES.iter().find(|(p, _)| *p == name) {
            return Err(ConfigError(format!(
                "{variable}: {name} cannot be passed this way: {owner}"
            )));
        }
        passed.push(property(&variable, &name, &value));
    }
    Ok(passed)
}
