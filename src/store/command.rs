//! One raw write command (`insert` or `update`, unordered, with the node's
//! write concern) and what its reply says about each of its items: stored,
//! a race on `_id` to resolve, refused for good, or failed for now.

use mongodb::bson::{Bson, Document, doc};

use super::errors::{
    WriteErrorClass, classify_write_error, command_message, is_id_conflict, is_permanent_failure,
};
use super::{NodeStore, StoreError};

/// The two write commands a copy goes through.
#[derive(Clone, Copy)]
pub(super) enum WriteKind {
    /// `insert` of new documents.
    Insert,
    /// `update` with versioned upserts.
    Update,
}

/// What became of one copy of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOutcome {
    /// Stored, or superseded by a version already stored that is as new or
    /// newer.
    Stored,
    /// Refused for good (a unique index other than `_id`, a validator):
    /// the server's message.
    Rejected(String),
    /// Failed for a reason a retry may overcome (an election, a write
    /// conflict): the server's message. Its outcome is unknown.
    Failed(String),
    /// Not sent: a newer copy of the same record in the batch stood for it,
    /// and that one was not stored.
    NotTried,
}

/// Which items of a write command hit a duplicate key on `_id`.
pub(super) enum Conflicts {
    None,
    /// These statements (by index).
    At(Vec<usize>),
    /// The whole command failed on one: any of them may have.
    Unknown,
}

/// A write command's reply, item by item.
pub(super) struct Reply {
    pub(super) conflicts: Conflicts,
    /// Items that failed for another reason (by index), each `Rejected` or
    /// `Failed`.
    pub(super) failures: Vec<(usize, CopyOutcome)>,
}

impl NodeStore {
    /// Runs one unordered `insert` or `update` command. Duplicate keys on
    /// `_id` are conflicts for the caller to resolve; any other per-item
    /// error fails only its item. A failure of the whole command (a
    /// timeout, the network, a write concern not met, a refusal the server
    /// does not pin on one item) is an error.
    pub(super) async fn write_command(
        &self,
        kind: WriteKind,
        collection: &str,
        items: Vec<Document>,
    ) -> Result<Reply, StoreError> {
        let n = items.len();
        if n == 0 {
            return Ok(Reply {
                conflicts: Conflicts::None,
                failures: Vec::new(),
            });
        }
        let (name, items_field) = match kind {
            WriteKind::Insert => ("insert", "documents"),
            WriteKind::Update => ("update", "updates"),
        };
        let command = doc! {
            name: collection,
            items_field: items,
            "ordered": false,
            "writeConcern": self.write_concern.clone(),
        };
        let reply = match self
            .bounded_for(name, n, self.db.run_command(command))
            .await
        {
            Err(StoreError::Mongo { source, .. }) if is_id_conflict(&source) => {
                return Ok(Reply {
                    conflicts: Conflicts::Unknown,
                    failures: Vec::new(),
                });
            }
            // The whole command refused for good (a duplicate on another
            // unique index, a validator, ...): say so in the server's words.
            Err(StoreError::Mongo { source, .. }) if is_permanent_failure(&source) => {
                return Err(self.rejected(command_message(&source)));
            }
            other => other?,
        };
        if let Ok(wce) = reply.get_document("writeConcernError") {
            return Err(StoreError::NotDurable {
                node: self.node.clone(),
                message: wce
                    .get_str("errmsg")
                    .unwrap_or("write concern error")
                    .to_owned(),
            });
        }
        self.write_errors(&reply)
    }

    /// Sorts the per-item errors of a write command's reply.
    fn write_errors(&self, reply: &Document) -> Result<Reply, StoreError> {
        let mut conflicts = Vec::new();
        let mut failures = Vec::new();
        for error in reply.get_array("writeErrors").into_iter().flatten() {
            let Bson::Document(d) = error else {
                return Err(self.rejected("malformed write error".into()));
            };
            let message = d.get_str("errmsg").unwrap_or("write error");
            let code = d.get_i32("code").ok();
            let Some(index) = d
                .get_i32("index")
                .ok()
                .and_then(|i| usize::try_from(i).ok())
            else {
                return Err(self.rejected(message.to_owned()));
            };
            match classify_write_error(code, message, d.get_document("keyPattern").ok()) {
                WriteErrorClass::IdConflict => conflicts.push(index),
                WriteErrorClass::Transient => failures.push((
                    index,
                    CopyOutcome::Failed(format!(
                        "{message} (code {}; retryable)",
                        code.unwrap_or(0)
                    )),
                )),
                WriteErrorClass::Permanent => {
                    failures.push((index, CopyOutcome::Rejected(message.to_owned())));
                }
            }
        }
        let conflicts = if conflicts.is_empty() {
            Conflicts::None
        } else {
            Conflicts::At(conflicts)
        };
        Ok(Reply {
            conflicts,
            failures,
        })
    }

    pub(super) fn rejected(&self, message: String) -> StoreError {
        StoreError::Rejected {
            node: self.node.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NodeId;

    async fn store() -> NodeStore {
        let node = NodeId::parse("region_1").expect("node");
        // No I/O until the first operation; none happens here.
        NodeStore::new(
            node,
            "mongodb://127.0.0.1:1",
            std::time::Duration::from_secs(1),
            1,
        )
        .await
        .expect("client")
    }

    #[tokio::test]
    async fn each_item_of_a_reply_gets_its_own_outcome() {
        let reply = doc! {
            "ok": 1, "n": 1,
            "writeErrors": [
                {"index": 0, "code": 11000, "errmsg": "E11000 dup", "keyPattern": {"_id": 1}},
                {"index": 1, "code": 112, "errmsg": "WriteConflict"},
                {"index": 2, "code": 11000, "errmsg": "E11000 dup",
                 "keyPattern": {"customer_unique_id": 1}},
            ],
        };
        let reply = store().await.write_errors(&reply).expect("per-item errors");
        assert!(matches!(reply.conflicts, Conflicts::At(ref at) if at == &[0]));
        assert_eq!(reply.failures.len(), 2);
        // A transient error fails its item only, as retryable (the write
        // path queues that copy alone); a refusal fails its item for good.
        assert!(
            matches!(&reply.failures[0], (1, CopyOutcome::Failed(m)) if m.contains("retryable"))
        );
        assert!(matches!(&reply.failures[1], (2, CopyOutcome::Rejected(_))));
    }

    #[tokio::test]
    async fn an_error_naming_no_item_fails_the_command() {
        let reply = doc! {"ok": 1, "writeErrors": [{"code": 112, "errmsg": "x"}]};
        assert!(store().await.write_errors(&reply).is_err());
    }
}
