//! MongoDB, one database per node: the client setup and the bounds every
//! call runs under. Copies are applied with last-writer-wins in `apply`
//! (through the raw write commands of `command`), read back in `query`;
//! errors are sorted out in `errors`.
//!
//! Every call is bounded by the node's timeout. A call that timed out has an
//! *unknown* outcome (a frozen server may still apply it when it wakes); the
//! version carried by every copy makes a late apply harmless.

use std::collections::HashMap;
use std::time::Duration;

use mongodb::bson::{self, Document, doc};
use mongodb::options::{Acknowledgment, ClientOptions};
use mongodb::{Client, Database, IndexModel};

use crate::domain::{NodeId, RegionMap};

mod apply;
mod command;
mod errors;
mod identity;
mod query;

pub use command::CopyOutcome;
pub use errors::StoreError;
use errors::command_code;
pub use identity::{IDENTITY_COLLECTION, Marker};
pub use query::{Held, StoredCustomer};

/// Index on the field every range filter uses.
const ZIP_FIELD: &str = "customer_zip_code_prefix";
/// `true` on a tombstone: the record is gone from this region as of its
/// version (deleted, or moved away); it keeps no personal field.
pub const DELETED_FIELD: &str = "deleted";
/// When a tombstone's delete (or move) was accepted.
const DELETED_AT_FIELD: &str = "deleted_at";
/// Extra time allowed per record in a multi-record command.
const PER_ITEM_TIME: Duration = Duration::from_millis(10);
/// Rounds of "re-read the stored versions and retry the newer copies" after
/// duplicate keys on `_id` before giving up (as a retryable error).
const CONFLICT_ROUNDS: usize = 5;
/// Every node's store. Built from the region map, so every node has one.
pub struct Stores(Vec<NodeStore>);

impl Stores {
    pub async fn connect(
        regions: &RegionMap,
        uris: &HashMap<NodeId, String>,
        timeout: Duration,
    ) -> Result<Stores, StoreError> {
        let mut stores = Vec::new();
        for node in regions.nodes() {
            let uri = uris
                .get(node)
                .map_or("mongodb://localhost:27017", String::as_str);
            // One committer per collection the node holds: its own
            // customers and each replica it hosts.
            let committers = 1 + regions.replicas_hosted_by(node).count();
            let committers = u32::try_from(committers).unwrap_or(u32::MAX);
            stores.push(NodeStore::new(node.clone(), uri, timeout, committers).await?);
        }
        Ok(Stores(stores))
    }

    /// The nodes whose MongoDB refuses this client for a reason no wait
    /// would change (a certificate not trusted, credentials refused), with
    /// the driver's reason on one line. Asked of every node at once; a node
    /// that is merely down is not listed.
    pub async fn refusals(&self) -> Vec<(NodeId, String)> {
        let asked = self.0.iter().map(|store| async move {
            let refusal = store.refusal().await?;
            Some((store.node.clone(), refusal))
        });
        futures::future::join_all(asked)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Stops every client's background work now (a start that gives up):
    /// left to the end of the runtime, the driver's tasks would panic there.
    pub async fn shutdown(&self) {
        for store in &self.0 {
            store.client.clone().shutdown().immediate(true).await;
        }
    }

    /// The store of `node`; `None` only for ids outside the region map.
    pub fn get(&self, node: &NodeId) -> Option<&NodeStore> {
        self.0.iter().find(|s| s.node() == node)
    }

    pub fn iter(&self) -> impl Iterator<Item = &NodeStore> {
        self.0.iter()
    }
}

/// One node's MongoDB database.
#[derive(Clone)]
pub struct NodeStore {
    node: NodeId,
    client: Client,
    db: Database,
    timeout: Duration,
    /// The write concern, sent with our raw `update` commands (which,
    /// unlike the typed helpers, do not inherit it).
    write_concern: Document,
}

impl NodeStore {
    /// Builds the client; no I/O happens until the first operation, so a node
    /// that is down at start is not an error.
    ///
    /// The pool is sized for the group commit: at least `committers`
    /// connections are kept open (one per committer, each with at most one
    /// command in flight), so a write does not wait for a connection to be
    /// made; the pool's maximum (the driver's 10, or the URI's
    /// `maxPoolSize`) leaves the rest to reads, the replay and repair. The
    /// URI's `minPoolSize` wins.
    pub async fn new(
        node: NodeId,
        uri: &str,
        timeout: Duration,
        committers: u32,
    ) -> Result<NodeStore, StoreError> {
        let mongo = |source| StoreError::Mongo {
            node: node.clone(),
            source,
        };
        let mut options = ClientOptions::parse(uri).await.map_err(mongo)?;
        options.app_name = Some("regiondb".into());
        options.server_selection_timeout = Some(timeout);
        options.connect_timeout = Some(timeout);
        // Failover and queueing are our job; a driver retry would only stretch
        // the time a frozen node holds a request.
        options.retry_reads = Some(false);
        options.retry_writes = Some(false);
        let max = options.max_pool_size.unwrap_or(10);
        options.min_pool_size = options.min_pool_size.or(Some(committers.min(max)));
        // Acknowledged means durable: a majority of the replica set, on
        // disk. The URI's `w` / `journal` override either part.
        let mut concern = options.write_concern.clone().unwrap_or_default();
        concern.w = concern.w.or(Some(Acknowledgment::Majority));
        concern.journal = concern.journal.or(Some(true));
        let write_concern = bson::to_document(&concern).unwrap_or_default();
        options.write_concern = Some(concern);
        let client = Client::with_options(options).map_err(mongo)?;
        let db = client.database(node.as_str());
        Ok(NodeStore {
            node,
            client,
            db,
            timeout,
            write_concern,
        })
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Creates the zip index on `customers` and on each hosted replica
    /// collection; an existing index is fine.
    pub async fn ensure_indexes(&self, collections: &[String]) -> Result<(), StoreError> {
        for name in collections {
            let index = IndexModel::builder().keys(doc! {ZIP_FIELD: 1}).build();
            let coll = self.db.collection::<Document>(name);
            match self.bounded("create_index", coll.create_index(index)).await {
                Ok(_) => {}
                // 85/86: an index on these keys exists with other options.
                Err(StoreError::Mongo { source, .. })
                    if matches!(command_code(&source), Some(85 | 86)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// See [`Stores::refusals`]: one ping, given time for the driver's own
    /// server selection to fail with its reason.
    async fn refusal(&self) -> Option<String> {
        let admin = self.client.database("admin");
        let ping = admin.run_command(doc! {"ping": 1});
        let Ok(Err(e)) = tokio::time::timeout(self.timeout * 2, ping.into_future()).await else {
            return None;
        };
        let text = e.to_string();
        let refused = [
            "certificate",
            "Authentication failed",
            "AuthenticationFailed",
        ];
        (refused.iter().any(|r| text.contains(r)))
            .then(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(
            "ping",
            self.client.database("admin").run_command(doc! {"ping": 1}),
        )
        .await
        .map(|_| ())
    }

    async fn bounded<T>(
        &self,
        call: &'static str,
        op: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T, StoreError> {
        self.bounded_for(call, 1, op).await
    }

    /// Bounds a call that handles `items` records: the node's timeout plus a
    /// little per record, so a replay batch is not cut off by the limit meant
    /// for a single write.
    /// Timed in `regiondb_backend_call_duration_seconds` as `call`.
    async fn bounded_for<T>(
        &self,
        call: &'static str,
        items: usize,
        op: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T, StoreError> {
        let extra = PER_ITEM_TIME
            .saturating_mul(u32::try_from(items.saturating_sub(1)).unwrap_or(u32::MAX));
        let timeout = self.timeout.saturating_add(extra);
        let bounded = async {
            match tokio::time::timeout(timeout, op.into_future()).await {
                Err(_) => Err(StoreError::Timeout {
                    node: self.node.clone(),
                    timeout,
                }),
                Ok(Err(source)) => Err(StoreError::Mongo {
                    node: self.node.clone(),
                    source,
                }),
                Ok(Ok(v)) => Ok(v),
            }
        };
        crate::metrics::timed("mongodb", call, bounded).await
    }
}
