//! Group commit for direct writes ("smart batching"): one committer per
//! (node, collection), each a task with a bounded queue. A write that finds
//! the committer idle goes out at once, alone; writes that arrive while a
//! command is in flight wait for it and then share the next command (up to
//! [`MAX_BATCH`]). Nothing ever waits on a timer. Each write is answered from
//! its own copy's outcome; what to do about a failure (queue the copy, try
//! it alone) is left to the write, so a slow fallback never holds up the
//! committer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::domain::{CustomerCopy, NodeId};
use crate::nodes::NodeStatuses;
use crate::store::{CopyOutcome, StoreError, Stores};

/// The most copies one command carries.
pub const MAX_BATCH: usize = 256;
/// Copies a committer holds waiting for the next command (one full batch);
/// a home copy that finds its committer's queue full is answered 503
/// (busy), nothing written.
pub const QUEUE_DEPTH: usize = MAX_BATCH;

/// What the committer did with one copy.
#[derive(Debug)]
pub(super) enum Committed {
    /// Stored, refused, failed for now, or not tried (see [`CopyOutcome`]).
    Outcome(CopyOutcome),
    /// The node was not available when the batch was due to be sent.
    Unavailable,
    /// The whole command failed (a timeout, the network, a write concern
    /// not met): the copy's outcome is unknown.
    CommandFailed(Arc<StoreError>),
    /// The whole command was refused without naming the copy at fault: each
    /// copy must be tried alone to find out.
    Narrow,
    /// The queue was full (home copies only): nothing was written.
    Busy,
}

/// One copy waiting for its command.
struct Job {
    copy: CustomerCopy,
    answer: oneshot::Sender<Committed>,
}

/// Every (node, collection)'s committer, started on first use.
pub struct Committers {
    stores: Arc<Stores>,
    statuses: Arc<NodeStatuses>,
    queues: Mutex<HashMap<(NodeId, String), mpsc::Sender<Job>>>,
    /// Copies waiting for their command, all committers together (taken
    /// on first use: the metrics recorder is installed after this is built).
    waiting: OnceLock<metrics::Gauge>,
}

impl Committers {
    pub fn new(stores: Arc<Stores>, statuses: Arc<NodeStatuses>) -> Committers {
        Committers {
            stores,
            statuses,
            queues: Mutex::new(HashMap::new()),
            waiting: OnceLock::new(),
        }
    }

    /// Hands `copy` to `node`'s committer for its collection and waits for
    /// its outcome. With `wait_for_room` a full queue is waited on (a
    /// replica, whose home copy is placed already); without, it answers
    /// [`Committed::Busy`].
    pub(super) async fn commit(
        &self,
        node: &NodeId,
        copy: &CustomerCopy,
        wait_for_room: bool,
    ) -> Committed {
        let queue = self.queue(node, copy.collection());
        let (answer, answered) = oneshot::channel();
        let job = Job {
            copy: copy.clone(),
            answer,
        };
        let sent = if wait_for_room {
            queue.send(job).await.is_ok()
        } else {
            match queue.try_send(job) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => return Committed::Busy,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        };
        if !sent {
            // Only when the runtime is going down: the copy was not written.
            return Committed::Narrow;
        }
        self.waiting().increment(1.0);
        answered.await.unwrap_or(Committed::Narrow)
    }

    fn waiting(&self) -> &metrics::Gauge {
        self.waiting
            .get_or_init(crate::metrics::group_commit_waiting)
    }

    fn queue(&self, node: &NodeId, collection: String) -> mpsc::Sender<Job> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let key = (node.clone(), collection);
        if let Some(queue) = queues.get(&key) {
            return queue.clone();
        }
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        let committer = Committer {
            node: node.clone(),
            stores: self.stores.clone(),
            statuses: self.statuses.clone(),
            batch_sizes: crate::metrics::group_commit_batches(node.as_str()),
            waiting: self.waiting().clone(),
        };
        tokio::spawn(committer.run(jobs));
        queues.insert(key, queue.clone());
        queue
    }
}

/// One (node, collection)'s committer.
struct Committer {
    node: NodeId,
    stores: Arc<Stores>,
    statuses: Arc<NodeStatuses>,
    /// Copies per command sent to the node.
    batch_sizes: metrics::Histogram,
    waiting: metrics::Gauge,
}

impl Committer {
    /// Takes whatever is queued (at least one copy, at most [`MAX_BATCH`]),
    /// sends it as one batch, answers each copy, and repeats, until every
    /// sender is gone and the queue is empty.
    async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.waiting.decrement(batch.len() as f64);
            let (copies, answers): (Vec<CustomerCopy>, Vec<oneshot::Sender<Committed>>) =
                batch.drain(..).map(|j| (j.copy, j.answer)).unzip();
            let mut outcomes = self.send(&copies).await.into_iter();
            for answer in answers {
                let outcome = outcomes.next().unwrap_or(Committed::Narrow);
                // The write may have been dropped with its runtime: nothing
                // to tell it then.
                let _ = answer.send(outcome);
            }
        }
    }

    /// One command for the batch, if the node is available now.
    async fn send(&self, copies: &[CustomerCopy]) -> Vec<Committed> {
        let store = match self.stores.get(&self.node) {
            Some(store) if self.statuses.status(&self.node).is_available() => store,
            _ => return copies.iter().map(|_| Committed::Unavailable).collect(),
        };
        self.batch_sizes.record(copies.len() as f64);
        match store.apply_each(copies).await {
            Ok(outcomes) => outcomes.into_iter().map(Committed::Outcome).collect(),
            Err(e) if e.is_permanent() && copies.len() > 1 => {
                copies.iter().map(|_| Committed::Narrow).collect()
            }
            Err(StoreError::Rejected { message, .. }) => {
                vec![Committed::Outcome(CopyOutcome::Rejected(message))]
            }
            Err(e) => {
                let e = Arc::new(e);
                copies
                    .iter()
                    .map(|_| Committed::CommandFailed(e.clone()))
                    .collect()
            }
        }
    }
}
