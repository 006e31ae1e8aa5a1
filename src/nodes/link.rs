//! The one Redis connection every part of regiondb shares: a
//! [`ConnectionManager`] (reconnects by itself) to one server, or to the
//! primary that Redis Sentinel names. With Sentinel, a connection that is
//! refused, dropped, or answered `READONLY` (an old primary demoted to a
//! replica) makes the link ask the sentinels again and move to the primary
//! they name; a command that surely did not run (refused, `READONLY`) is
//! retried once there. TLS (`rediss://`) takes its CA and client
//! certificate from files.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, TlsCertificates, Value,
};

use crate::config::{RedisConfig, SentinelConfig};

/// A cheap-to-clone handle; see the module's comment.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    /// The current server: its client (for subscriptions) and connection.
    current: RwLock<(Client, ConnectionManager)>,
    sentinel: Option<tokio::sync::Mutex<Sentinel>>,
    config: ConnectionManagerConfig,
    db: i64,
}

struct Sentinel {
    client: SentinelClient,
    last_asked: Option<Instant>,
}

/// The shortest time between two questions to the sentinels.
const ASK_AGAIN_AFTER: Duration = Duration::from_millis(200);

impl RedisLink {
    /// Connects to the server (with Sentinel: the primary the sentinels
    /// name now).
    pub async fn connect(
        config: &RedisConfig,
        manager: ConnectionManagerConfig,
    ) -> RedisResult<RedisLink> {
        let tls = certificates(config)?;
        let info = config.url.as_str().into_connection_info()?;
        let db = info.redis_settings().db();
        let mut sentinel = match &config.sentinel {
            Some(s) => Some(sentinel_client(s, config, &info, tls.clone())?),
            None => None,
        };
        let client = match (&mut sentinel, tls) {
            (Some(s), _) => s.async_get_client().await?,
            (None, Some(tls)) => Client::build_with_tls(info, tls)?,
            (None, None) => Client::open(info)?,
        };
        let conn = client
            .get_connection_manager_with_config(manager.clone())
            .await?;
        Ok(RedisLink {
            inner: Arc::new(Inner {
                current: RwLock::new((client, conn)),
                sentinel: sentinel.map(|client| {
                    tokio::sync::Mutex::new(Sentinel {
                        client,
                        last_asked: None,
                    })
                }),
                config: manager,
                db,
            }),
        })
    }

    /// A link to one server (no Sentinel, no TLS files) that connects on
    /// first use: for what needs a handle but may never call.
    pub fn unconnected(url: &str) -> RedisResult<RedisLink> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new();
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        let db = client.get_connection_info().redis_settings().db();
        Ok(RedisLink {
            inner: Arc::new(Inner {
                current: RwLock::new((client, conn)),
                sentinel: None,
                config,
                db,
            }),
        })
    }

    /// The database number every connection selects.
    pub fn db(&self) -> i64 {
        self.inner.db
    }

    /// A subscription connection to the current server.
    pub async fn pubsub(&self) -> RedisResult<PubSub> {
        let client = self.current().0;
        match client.get_async_pubsub().await {
            Err(e) if self.inner.sentinel.is_some() && moved(&e) => {
                self.follow_primary().await?;
                self.current().0.get_async_pubsub().await
            }
            other => other,
        }
    }

    fn current(&self) -> (Client, ConnectionManager) {
        let current = self.inner.current.read().unwrap_or_else(|e| e.into_inner());
        current.clone()
    }

    /// Asks the sentinels for the primary and connects to it afresh (at
    /// most once per [`ASK_AGAIN_AFTER`], whoever asks); a different
    /// primary than before is logged and counted.
    async fn follow_primary(&self) -> RedisResult<()> {
        let Some(sentinel) = &self.inner.sentinel else {
            return Ok(());
        };
        let mut sentinel = sentinel.lock().await;
        if sentinel
            .last_asked
            .is_some_and(|at| at.elapsed() < ASK_AGAIN_AFTER)
        {
            return Ok(());
        }
        sentinel.last_asked = Some(Instant::now());
        let client = sentinel.client.async_get_client().await?;
        let addr = client.get_connection_info().addr().to_string();
        let conn = client
            .get_connection_manager_with_config(self.inner.config.clone())
            .await?;
        if addr != self.current().0.get_connection_info().addr().to_string() {
            tracing::warn!(primary = %addr, "redis: following the primary the sentinels name");
            crate::metrics::redis_primary_changed();
        }
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = (client, conn);
        Ok(())
    }

    /// After `e`: with Sentinel, an error that says the server is gone or
    /// no longer the primary moves the link; `true` when the command surely
    /// did not run (refused, `READONLY`) and may be sent once more.
    async fn retry_after(&self, e: &RedisError) -> bool {
        if self.inner.sentinel.is_none() || !moved(e) {
            return false;
        }
        let not_run = e.is_connection_refusal() || read_only(e);
        match self.follow_primary().await {
            Ok(()) => not_run,
            Err(asked) => {
                tracing::warn!(error = %asked, "redis: the sentinels could not name a primary");
                false
            }
        }
    }
}

/// The server is gone, or is no longer the primary.
fn moved(e: &RedisError) -> bool {
    e.is_connection_refusal() || e.is_io_error() || e.is_connection_dropped() || read_only(e)
}

fn read_only(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut conn = self.current().1;
            match conn.req_packed_command(cmd).await {
                Err(e) if self.retry_after(&e).await => {
                    let mut conn = self.current().1;
                    conn.req_packed_command(cmd).await
                }
                answer => answer,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut conn = self.current().1;
            match conn.req_packed_commands(pipeline, offset, count).await {
                Err(e) if self.retry_after(&e).await => {
                    let mut conn = self.current().1;
                    conn.req_packed_commands(pipeline, offset, count).await
                }
                answer => answer,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}

/// The CA and client certificate files, read once (`rediss://` only).
fn certificates(config: &RedisConfig) -> RedisResult<Option<TlsCertificates>> {
    if config.ca_file.is_none() && config.client_cert.is_none() {
        return Ok(None);
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "cannot read a TLS file",
                format!("{}: {e}", path.display()),
            ))
        })
    };
    let root_cert = config.ca_file.as_deref().map(read).transpose()?;
    let client_tls = match &config.client_cert {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        None => None,
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// A sentinel client that names the primary `sentinel.master`, reached
/// with `info`'s user, password, database and TLS.
fn sentinel_client(
    sentinel: &SentinelConfig,
    config: &RedisConfig,
    info: &redis::ConnectionInfo,
    tls: Option<TlsCertificates>,
) -> RedisResult<SentinelClient> {
    let secure = config.uses_tls();
    let addresses = sentinel.addresses.iter().filter_map(|a| {
        let (host, port) = a.rsplit_once(':')?;
        let port = port.parse().ok()?;
        Some(if secure {
            ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.to_owned(), port)
        })
    });
    let settings = info.redis_settings();
    let mut builder =
        SentinelClientBuilder::new(addresses, &sentinel.master, SentinelServerType::Master)?
            .set_client_to_redis_db(settings.db());
    if let Some(user) = settings.username() {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = settings.password() {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(password) = &sentinel.password {
        builder = builder.set_client_to_sentinel_password(password.expose());
    }
    if secure {
        builder = builder
            .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
        if let Some(tls) = tls {
            builder = builder
                .set_client_to_redis_certificates(tls.clone())
                .set_client_to_sentinel_certificates(tls);
        }
    }
    builder.build()
}
