//! The write path, top to bottom.
//!
//! 1. The customer is parsed (by the HTTP layer) and routed to its home
//!    region by zip prefix.
//! 2. It gets a version, once, at acceptance.
//! 3. The home copy is placed: written directly if the home node is
//!    available and the write succeeds, otherwise parked in the node's Kafka
//!    topic. If neither worked the client gets 503 and nothing was written.
//! 4. Only then the replica copy is placed the same way on the replica node;
//!    its result is reported but never turns success into failure.

use std::sync::Arc;

use serde::Serialize;

use crate::domain::{
    CopyTarget, Customer, CustomerCopy, FieldError, NodeId, RegionMap, Version, VersionClock,
};
use crate::hints::HintLog;
use crate::nodes::NodeStatuses;
use crate::store::Stores;

/// Where one copy ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Written to the node's MongoDB.
    Stored,
    /// Durably appended to the node's Kafka topic; replayed later.
    Queued,
    /// Neither: the node could not be written and Kafka did not take the
    /// hint. Only ever reported for a replica (repair heals it).
    Missing,
}

/// What happened to an accepted write.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReceipt {
    /// The home copy: `stored` or `queued`.
    pub status: Placement,
    pub region: NodeId,
    pub node: NodeId,
    pub replica_node: NodeId,
    pub replica: Placement,
    pub version: Version,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The input is fine but routes nowhere.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The home copy was neither written nor queued. Nothing was written,
    /// except possibly a direct write that timed out (unknown outcome); its
    /// version is older than any retry's, so a retry supersedes it.
    #[error("home node {node} could not take the write and the hint could not be queued: {reason}")]
    Unavailable { node: NodeId, reason: String },
}

pub struct WritePath {
    regions: RegionMap,
    statuses: Arc<NodeStatuses>,
    stores: Arc<Stores>,
    hints: Arc<HintLog>,
    clock: VersionClock,
}

impl WritePath {
    pub fn new(
        regions: RegionMap,
        statuses: Arc<NodeStatuses>,
        stores: Arc<Stores>,
        hints: Arc<HintLog>,
    ) -> Self {
        WritePath {
            regions,
            statuses,
            stores,
            hints,
            clock: VersionClock::new(),
        }
    }

    pub async fn create_customer(&self, customer: Customer) -> Result<WriteReceipt, WriteError> {
        let region = self.regions.route(customer.customer_zip_code_prefix)?;
        let version = self.clock.next();

        let mut copy = CustomerCopy {
            target: CopyTarget::Primary,
            region: region.id.clone(),
            version,
            customer,
        };
        let status = match self.place(&region.id, &copy).await {
            Ok(placement) => placement,
            Err(reason) => {
                return Err(WriteError::Unavailable {
                    node: region.id.clone(),
                    reason,
                });
            }
        };

        copy.target = CopyTarget::Replica;
        let replica = self
            .place(&region.replica, &copy)
            .await
            .unwrap_or_else(|reason| {
                tracing::error!(region = %region.id, node = %region.replica, %reason,
                    customer_id = %copy.customer.customer_id, "replica copy missing");
                Placement::Missing
            });

        Ok(WriteReceipt {
            status,
            region: region.id.clone(),
            node: region.id.clone(),
            replica_node: region.replica.clone(),
            replica,
            version,
        })
    }

    /// Writes `copy` to `node` directly if it is available, else (or if that
    /// fails) parks it in the node's topic. `Err` says why neither worked.
    async fn place(&self, node: &NodeId, copy: &CustomerCopy) -> Result<Placement, String> {
        if self.statuses.status(node).is_available()
            && let Some(store) = self.stores.get(node)
        {
            match store.apply(std::slice::from_ref(copy)).await {
                Ok(()) => return Ok(Placement::Stored),
                // Treated as unavailable for this write: queue it.
                Err(e) => tracing::warn!(%node, error = %e, "direct write failed; queueing"),
            }
        }
        match self.hints.park(node, copy).await {
            Ok(()) => Ok(Placement::Queued),
            Err(e) => Err(e.to_string()),
        }
    }
}
