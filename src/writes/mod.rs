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
//! 5. After the answer, the other regions are looked up by `_id`: if the
//!    record lived in another region (it moved), its old copies there
//!    become tombstones (see `moves`, which also does deletes).
//!
//! A write runs as its own task: once accepted it finishes (home, then
//! replica, each stored or queued, then its old copies' removal) even if
//! the client hangs up meanwhile,
//! and shutdown waits for it. Only a crash of the process between the two
//! copies can leave the replica missing; repair heals that.
//!
//! One record and many (`regiondb import`) take the same steps, in
//! [`WritePath::place_homes`] then [`WritePath::place_replicas`]: every home
//! copy of a batch, grouped by node, in one bulk apply per node (the
//! replay's) or queued; then every replica copy the same way. A single
//! write is a batch of one, whose copy goes through its node's committer
//! (`commit`): the single writes that arrive while a command for that node
//! and collection is in flight share the next command. A write that queued
//! a hint waits, before its answer, until every instance was told (`notes`
//! in `nodes`; the home copy's note travels while the replica is placed).

mod commit;
mod moves;
mod place;
mod settle;

pub use commit::Committers;
pub use moves::{MoveQueue, PlacedRecord};

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::backlog::Backlogs;
use crate::domain::{
    CopyTarget, Customer, CustomerCopy, FieldError, NodeId, RegionMap, Version, VersionClock,
};
use crate::hints::HintLog;
use crate::nodes::NodeStatuses;
use crate::store::Stores;

/// How long a write waits for the version clock's lease to be renewed
/// before answering 503.
const NO_VERSION_WAIT: Duration = Duration::from_secs(1);

/// Where one copy ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// The home copy was neither written nor queued, and nothing was
    /// written.
    #[error("home node {node} could not take the write and the hint could not be queued: {reason}")]
    Unavailable { node: NodeId, reason: String },
    /// The home copy was not queued and its direct write failed in a way
    /// that may have applied it (a timeout, an unconfirmed write concern):
    /// its version is older than any retry's, so a retry supersedes it.
    #[error("home node {node} could not take the write and the hint could not be queued: {reason}")]
    OutcomeUnknown { node: NodeId, reason: String },
    /// The home node refused this record for good (e.g. another record
    /// holds one of its unique values). Nothing was written anywhere.
    #[error("home node {node} refused the record: {reason}")]
    Rejected { node: NodeId, reason: String },
    /// Too many writes in flight (counting those whose clients hung up):
    /// nothing was written; retry shortly.
    #[error("server busy: too many writes in flight; retry shortly")]
    Busy,
    /// This instance's version slot lease could not be renewed for a while
    /// (Redis unreachable): it hands out no versions, so nothing was written.
    #[error(
        "this instance cannot give the write a version: its version slot lease in redis could not be renewed"
    )]
    NoVersion,
    /// The write's task died (a bug, or the runtime shutting down): its
    /// outcome is unknown, like a timed-out write's.
    #[error("the write was interrupted; its outcome is unknown, a retry is safe")]
    Interrupted,
}

/// A batch whose home copies are placed and whose replicas are not yet.
pub struct HomesPlaced {
    answers: Vec<Result<WriteReceipt, WriteError>>,
    /// (record's index, its replica copy) for every placed home copy.
    replicas: Vec<(usize, CustomerCopy)>,
}

impl HomesPlaced {
    /// The records whose home copy was placed: where, at which version.
    pub fn placed(&self) -> Vec<PlacedRecord> {
        (self.replicas.iter())
            .map(|(_, c)| PlacedRecord {
                id: c.customer_id().clone(),
                region: c.region.clone(),
                version: c.version,
            })
            .collect()
    }
}

/// Why one copy could not be placed.
#[derive(Debug, thiserror::Error)]
enum PlaceError {
    /// The node refused the copy for good; queueing it would only move it to
    /// the dead-letter topic.
    #[error("refused: {0}")]
    Rejected(String),
    /// Neither written nor queued.
    #[error("{0}")]
    Unplaced(String),
    /// Not queued, and the direct write failed in a way that may have
    /// applied it: the outcome is unknown.
    #[error("{0}")]
    Unknown(String),
    /// The node's committer had no room: nothing was written.
    #[error("busy")]
    Busy,
}

impl PlaceError {
    /// What the write whose home copy on `node` this was answers.
    fn for_write(self, node: &NodeId) -> WriteError {
        let node = node.clone();
        match self {
            PlaceError::Rejected(reason) => WriteError::Rejected { node, reason },
            PlaceError::Unplaced(reason) => WriteError::Unavailable { node, reason },
            PlaceError::Unknown(reason) => WriteError::OutcomeUnknown { node, reason },
            PlaceError::Busy => WriteError::Busy,
        }
    }
}

pub struct WritePath {
    pub regions: RegionMap,
    pub statuses: Arc<NodeStatuses>,
    pub stores: Arc<Stores>,
    /// Direct single writes, grouped per node and collection (see
    /// `commit`).
    pub committers: Arc<Committers>,
    pub hints: Arc<HintLog>,
    pub backlogs: Arc<Backlogs>,
    pub clock: Arc<VersionClock>,
    /// Writes in flight; shutdown waits for them.
    pub tasks: TaskTracker,
    /// One permit per single write in flight, held by its task until it
    /// finishes, so writes whose clients hung up still count against the
    /// write limit.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Where single writes leave their moves to be settled in batches (see
    /// [`WritePath::settle`]); without it, each write settles its own.
    pub moves: Option<MoveQueue>,
}

impl WritePath {
    /// Routes, versions and places one customer record: home copy first,
    /// then its replica, then (after the answer) the removal of its old
    /// copies if it moved. Runs to the end whatever happens to the caller.
    pub async fn create_customer(
        self: &Arc<Self>,
        customer: Customer,
    ) -> Result<WriteReceipt, WriteError> {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return Err(WriteError::Busy);
        };
        let this = self.clone();
        let (answer, answered) = tokio::sync::oneshot::channel();
        // In the request's span, so its log lines carry the request id.
        self.tasks.spawn(
            async move {
                let _permit = permit;
                let homes = this.place_homes(vec![customer]).await;
                let placed = homes.placed();
                // Both before the answer, neither waiting for the other.
                let (mut answers, ()) =
                    tokio::join!(this.place_replicas(homes), this.note_unsettled(&placed));
                let _ = answer.send(answers.pop().unwrap_or(Err(WriteError::Interrupted)));
                for record in placed {
                    let unsent = match &this.moves {
                        Some(queue) => queue.send(record).err().map(|e| e.0),
                        None => Some(record),
                    };
                    if let Some(record) = unsent {
                        // No settler (or it stopped): settle here.
                        let _ = this.settle_recorded(&[record]).await;
                    }
                }
            }
            .in_current_span(),
        );
        answered.await.unwrap_or_else(|_| {
            tracing::error!("write task failed");
            Err(WriteError::Interrupted)
        })
    }

    /// Routes, versions and places a batch of records (in their order, so
    /// of two rows for one customer the later one wins): all home copies
    /// first, then all replica copies, each node's copies in one bulk
    /// apply, or queued. One answer per record, in order.
    pub async fn create_customers(
        &self,
        customers: Vec<Customer>,
    ) -> Vec<Result<WriteReceipt, WriteError>> {
        let homes = self.place_homes(customers).await;
        let placed = homes.placed();
        let (answers, ()) = tokio::join!(self.place_replicas(homes), self.note_unsettled(&placed));
        let _ = self.settle_recorded(&placed).await;
        answers
    }

    /// The first half of [`WritePath::create_customers`]: routes, versions
    /// and places the home copies. A caller may place the next batch's home
    /// copies while this batch's replicas are placed (the import does).
    pub async fn place_homes(&self, customers: Vec<Customer>) -> HomesPlaced {
        let mut answers: Vec<Result<WriteReceipt, WriteError>> = Vec::new();
        let mut copies: Vec<(usize, CustomerCopy)> = Vec::new();
        for customer in customers {
            match self.regions.route(customer.customer_zip_code_prefix) {
                Err(e) => answers.push(Err(WriteError::Invalid(e))),
                Ok(region) => {
                    let Some(version) = self.version().await else {
                        answers.push(Err(WriteError::NoVersion));
                        continue;
                    };
                    let copy = CustomerCopy::live(
                        CopyTarget::Primary,
                        region.id.clone(),
                        version,
                        customer,
                    );
                    answers.push(Ok(WriteReceipt {
                        status: Placement::Missing,
                        region: region.id.clone(),
                        node: region.id.clone(),
                        replica_node: region.replica.clone(),
                        replica: Placement::Missing,
                        version: copy.version,
                    }));
                    copies.push((answers.len() - 1, copy));
                }
            }
        }

        let homes = self.place_many(&copies, |c| c.region.clone(), true).await;
        let mut replicas = Vec::new();
        for ((i, mut copy), home) in copies.into_iter().zip(homes) {
            crate::metrics::write("home", outcome(&home));
            match home {
                Ok(placement) => {
                    if let Ok(receipt) = &mut answers[i] {
                        receipt.status = placement;
                    }
                    copy.target = CopyTarget::Replica;
                    replicas.push((i, copy));
                }
                Err(e) => answers[i] = Err(e.for_write(&copy.region)),
            }
        }
        HomesPlaced { answers, replicas }
    }

    /// The next version; while the clock's lease is not known held (a
    /// renewal is late), waits a little for one before giving up.
    async fn version(&self) -> Option<Version> {
        let deadline = tokio::time::Instant::now() + NO_VERSION_WAIT;
        loop {
            if let Some(version) = self.clock.next() {
                return Some(version);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The second half: places the replicas of the records whose home copy
    /// was placed. One answer per record, in order.
    pub async fn place_replicas(
        &self,
        homes: HomesPlaced,
    ) -> Vec<Result<WriteReceipt, WriteError>> {
        let HomesPlaced {
            mut answers,
            replicas,
        } = homes;
        let regions = &self.regions;
        let placed = self
            .place_many(
                &replicas,
                |c| {
                    regions
                        .get(c.region.as_str())
                        .map_or_else(|| c.region.clone(), |r| r.replica.clone())
                },
                false,
            )
            .await;
        let mut queued: Vec<&NodeId> = Vec::new();
        for ((i, copy), replica) in replicas.iter().zip(placed) {
            crate::metrics::write("replica", outcome(&replica));
            let placement = replica.unwrap_or_else(|reason| {
                tracing::error!(region = %copy.region, %reason,
                    customer_id = %copy.customer_id(), "replica copy missing");
                Placement::Missing
            });
            if let Ok(receipt) = &mut answers[*i] {
                receipt.replica = placement;
            }
        }
        for receipt in answers.iter().flatten() {
            if receipt.status == Placement::Queued {
                queued.push(&receipt.node);
            }
            if receipt.replica == Placement::Queued {
                queued.push(&receipt.replica_node);
            }
        }
        self.notes_landed(queued).await;
        answers
    }
}

/// The `outcome` label of `regiondb_writes_total` for one copy.
fn outcome(placed: &Result<Placement, PlaceError>) -> &'static str {
    match placed {
        Ok(Placement::Stored) => "stored",
        Ok(Placement::Queued) => "queued",
        Err(PlaceError::Rejected(_)) => "rejected",
        Err(PlaceError::Busy) => "busy",
        Ok(Placement::Missing) | Err(PlaceError::Unplaced(_) | PlaceError::Unknown(_)) => {
            "unavailable"
        }
    }
}
