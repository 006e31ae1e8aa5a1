//! The last-writer-wins write engine: a batch of copies goes insert-first,
//! and the copies whose record exists already get a versioned update where
//! theirs is newer.

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::bson::{self, Bson, Document, doc};

use super::errors::{
    WriteErrorClass, classify_write_error, command_message, is_id_conflict, is_permanent_failure,
};
use super::query::id_and_version;
use super::{CONFLICT_ROUNDS, DELETED_AT_FIELD, DELETED_FIELD, NodeStore, StoreError, ZIP_FIELD};
use crate::domain::CustomerCopy;

impl NodeStore {
    /// Applies copies with last-writer-wins: a copy is written only where no
    /// copy with an equal or newer version exists. Several copies of one
    /// record in the batch collapse to the newest first. Per collection, one
    /// unordered `insert` in the usual case, then versioned updates only for
    /// the records that existed already (see `apply_lww`).
    pub async fn apply(&self, copies: &[CustomerCopy]) -> Result<(), StoreError> {
        // Kept in the order the copies came (the order they were accepted
        // or queued), so that of two records competing for a unique value
        // the earlier one is written first.
        let mut slots: HashMap<(String, &str), usize> = HashMap::new();
        let mut by_collection: Vec<(String, Vec<&CustomerCopy>)> = Vec::new();
        for copy in copies {
            let collection = copy.collection();
            let key = (collection.clone(), copy.customer_id().as_str());
            let group = match by_collection.iter().position(|(c, _)| *c == collection) {
                Some(i) => i,
                None => {
                    by_collection.push((collection, Vec::new()));
                    by_collection.len() - 1
                }
            };
            let list = &mut by_collection[group].1;
            match slots.get(&key) {
                Some(&i) if copy.version > list[i].version => list[i] = copy,
                Some(_) => {}
                None => {
                    slots.insert(key, list.len());
                    list.push(copy);
                }
            }
        }
        for (collection, copies) in by_collection {
            self.apply_lww(&collection, copies).await?;
        }
        Ok(())
    }

    /// Writes `copies` (one per record) so that each ends up stored unless
    /// a newer version is.
    ///
    /// A batch goes insert-first: one unordered `insert` of every copy (an
    /// insert is far cheaper than an upsert that must search first, on
    /// MongoDB and more so on small test servers); the copies whose record
    /// exists already (a duplicate key on `_id`) then get a versioned update
    /// where theirs is newer. If the server fails the whole insert instead
    /// of reporting which documents were duplicates (some test servers do),
    /// the batch is sorted out with one lookup: new records inserted,
    /// older ones updated. A single copy is one versioned upsert: one round
    /// trip.
    async fn apply_lww(
        &self,
        collection: &str,
        copies: Vec<&CustomerCopy>,
    ) -> Result<(), StoreError> {
        if copies.len() < 2 {
            return self.update_lww(collection, copies).await;
        }
        let documents = copies.iter().map(|c| record_document(c)).collect();
        let existing: Vec<&CustomerCopy> = match self
            .write_command(WriteKind::Insert, collection, documents)
            .await?
        {
            Conflicts::None => return Ok(()),
            Conflicts::At(indexes) => indexes
                .into_iter()
                .filter_map(|i| copies.get(i).copied())
                .collect(),
            Conflicts::Unknown => return self.apply_after_lookup(collection, copies).await,
        };
        let stored = self.stored_versions(collection, &existing).await?;
        let older: Vec<&CustomerCopy> = existing
            .into_iter()
            .filter(|c| newer_than_stored(c, &stored))
            .collect();
        self.update_lww(collection, older).await
    }

    /// One lookup of which records exist, one unordered `insert` of the new
    /// ones, versioned updates for the older ones.
    async fn apply_after_lookup(
        &self,
        collection: &str,
        copies: Vec<&CustomerCopy>,
    ) -> Result<(), StoreError> {
        let stored = self.stored_versions(collection, &copies).await?;
        let (fresh, existing): (Vec<&CustomerCopy>, Vec<&CustomerCopy>) = copies
            .into_iter()
            .partition(|c| !stored.contains_key(c.customer_id().as_str()));
        let mut rest: Vec<&CustomerCopy> = existing
            .into_iter()
            .filter(|c| newer_than_stored(c, &stored))
            .collect();
        // A duplicate key here means another writer inserted the record
        // since the lookup: ours then goes through the versioned update.
        let documents = fresh.iter().map(|c| record_document(c)).collect();
        match self
            .write_command(WriteKind::Insert, collection, documents)
            .await?
        {
            Conflicts::None => {}
            Conflicts::Unknown => rest.extend(fresh),
            Conflicts::At(indexes) => {
                rest.extend(indexes.into_iter().filter_map(|i| fresh.get(i).copied()));
            }
        }
        self.update_lww(collection, rest).await
    }

    /// Versioned upserts of `copies`. A duplicate key on `_id` means
    /// another write got there first: either a newer copy (then ours is
    /// stale: done) or an older one that raced our upsert (then ours is
    /// retried, and now matches as an update).
    async fn update_lww(
        &self,
        collection: &str,
        mut copies: Vec<&CustomerCopy>,
    ) -> Result<(), StoreError> {
        for _ in 0..CONFLICT_ROUNDS {
            if copies.is_empty() {
                return Ok(());
            }
            let statements = copies.iter().map(|c| lww_statement(c)).collect();
            let conflicted: Vec<&CustomerCopy> = match self
                .write_command(WriteKind::Update, collection, statements)
                .await?
            {
                Conflicts::None => return Ok(()),
                // The whole command failed (some servers report a
                // duplicate key that way): which statements ran is
                // unknown, but every one is idempotent.
                Conflicts::Unknown => copies,
                Conflicts::At(indexes) => indexes
                    .into_iter()
                    .filter_map(|i| copies.get(i).copied())
                    .collect(),
            };
            let stored = self.stored_versions(collection, &conflicted).await?;
            copies = conflicted
                .into_iter()
                .filter(|c| newer_than_stored(c, &stored))
                .collect();
        }
        if copies.is_empty() {
            return Ok(());
        }
        Err(StoreError::NotDurable {
            node: self.node.clone(),
            message: format!(
                "{} copies kept losing upsert races after {CONFLICT_ROUNDS} rounds",
                copies.len()
            ),
        })
    }

    /// Which of `copies`' records exist, with their stored version (`None`
    /// for a document without one, written by another tool).
    async fn stored_versions(
        &self,
        collection: &str,
        copies: &[&CustomerCopy],
    ) -> Result<HashMap<String, Option<i64>>, StoreError> {
        let ids: Vec<&str> = copies.iter().map(|c| c.customer_id().as_str()).collect();
        let coll = self.db.collection::<Document>(collection);
        let docs: Vec<Document> = self
            .bounded_for("find_versions", ids.len(), async {
                let cursor = coll
                    .find(doc! {"_id": {"$in": &ids}})
                    .projection(doc! {"version": 1})
                    .await?;
                cursor.try_collect().await
            })
            .await?;
        Ok(docs.iter().filter_map(id_and_version).collect())
    }

    /// Runs one unordered `insert` or `update` command and sorts out its
    /// errors: duplicate keys on `_id` are conflicts for the caller to
    /// resolve; any other write error is a rejection.
    async fn write_command(
        &self,
        kind: WriteKind,
        collection: &str,
        items: Vec<Document>,
    ) -> Result<Conflicts, StoreError> {
        let n = items.len();
        if n == 0 {
            return Ok(Conflicts::None);
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
                return Ok(Conflicts::Unknown);
            }
            // The whole command refused for good (a duplicate on another
            // unique index, a validator, ...): say so in the server's words.
            Err(StoreError::Mongo { source, .. }) if is_permanent_failure(&source) => {
                return Err(self.rejected(command_message(&source)));
            }
            other => other?,
        };
        let conflicts = self.write_errors(&reply)?;
        if let Ok(wce) = reply.get_document("writeConcernError") {
            return Err(StoreError::NotDurable {
                node: self.node.clone(),
                message: wce
                    .get_str("errmsg")
                    .unwrap_or("write concern error")
                    .to_owned(),
            });
        }
        Ok(if conflicts.is_empty() {
            Conflicts::None
        } else {
            Conflicts::At(conflicts)
        })
    }

    /// The statements of a write command's reply that hit a duplicate key on
    /// `_id`; any other per-document error ends the command as a refusal
    /// (permanent) or a retryable failure (transient), by its code.
    fn write_errors(&self, reply: &Document) -> Result<Vec<usize>, StoreError> {
        let mut conflicts = Vec::new();
        for error in reply.get_array("writeErrors").into_iter().flatten() {
            let Bson::Document(d) = error else {
                return Err(self.rejected("malformed write error".into()));
            };
            let message = d.get_str("errmsg").unwrap_or("write error");
            let code = d.get_i32("code").ok();
            let class = classify_write_error(code, message, d.get_document("keyPattern").ok());
            match (class, d.get_i32("index")) {
                (WriteErrorClass::IdConflict, Ok(i)) => {
                    conflicts.push(usize::try_from(i).unwrap_or(usize::MAX));
                }
                (WriteErrorClass::Transient, _) => {
                    return Err(StoreError::NotDurable {
                        node: self.node.clone(),
                        message: format!("{message} (code {}; retryable)", code.unwrap_or(0)),
                    });
                }
                _ => return Err(self.rejected(message.to_owned())),
            }
        }
        Ok(conflicts)
    }

    fn rejected(&self, message: String) -> StoreError {
        StoreError::Rejected {
            node: self.node.clone(),
            message,
        }
    }
}

/// The two write commands a copy goes through.
#[derive(Clone, Copy)]
enum WriteKind {
    /// `insert` of new documents.
    Insert,
    /// `update` with versioned upserts.
    Update,
}

/// Which items of a write command hit a duplicate key on `_id`.
enum Conflicts {
    None,
    /// These statements (by index).
    At(Vec<usize>),
    /// The whole command failed on one: any of them may have.
    Unknown,
}

/// Whether `copy` is newer than what `stored` says is on the node (a
/// missing record or one without a version counts as older).
fn newer_than_stored(copy: &CustomerCopy, stored: &HashMap<String, Option<i64>>) -> bool {
    match stored.get(copy.customer_id().as_str()) {
        None | Some(None) => true,
        Some(Some(v)) => *v < copy.version.get(),
    }
}

/// The fields a tombstone does not keep: everything personal.
const PERSONAL_FIELDS: [&str; 4] = [
    "customer_unique_id",
    ZIP_FIELD,
    "customer_city",
    "customer_state",
];

/// What storing a copy sets (without `_id`), and what it removes: a live
/// copy removes a tombstone's marks, a tombstone every personal field.
fn record_fields(copy: &CustomerCopy) -> (Document, Document) {
    let mut set = doc! {
        "customer_id": copy.customer_id().as_str(),
        "region": copy.region.as_str(),
        "version": copy.version.get(),
        "updated_at": bson::DateTime::from_millis(copy.version.accepted_at_millis()),
    };
    let mut unset = Document::new();
    match copy.customer() {
        Some(c) => {
            set.insert("customer_unique_id", c.customer_unique_id.as_str());
            set.insert(ZIP_FIELD, i64::from(c.customer_zip_code_prefix.get()));
            set.insert("customer_city", c.customer_city.as_str());
            set.insert("customer_state", c.customer_state.as_str());
            unset.insert(DELETED_FIELD, "");
            unset.insert(DELETED_AT_FIELD, "");
        }
        None => {
            set.insert(DELETED_FIELD, true);
            let at = bson::DateTime::from_millis(copy.version.accepted_at_millis());
            set.insert(DELETED_AT_FIELD, at);
            for field in PERSONAL_FIELDS {
                unset.insert(field, "");
            }
        }
    }
    (set, unset)
}

/// A copy as a new document, for the insert-first path.
fn record_document(copy: &CustomerCopy) -> Document {
    let mut d = doc! {"_id": copy.customer_id().as_str()};
    d.extend(record_fields(copy).0);
    d
}

/// "Set this copy if what is stored is older (or has no version)"; the
/// upsert inserts it where there is nothing. When a newer copy exists the
/// filter matches nothing and the upsert collides with its `_id`: a
/// duplicate-key error that means "maybe stale" (see `update_lww`).
fn lww_statement(copy: &CustomerCopy) -> Document {
    let (set, unset) = record_fields(copy);
    doc! {
        // "not >= version" also matches a document without a version
        // (written by another tool), in one predicate the _id index serves.
        "q": {
            "_id": copy.customer_id().as_str(),
            "version": {"$not": {"$gte": copy.version.get()}},
        },
        "u": {"$set": set, "$unset": unset},
        "upsert": true,
    }
}
