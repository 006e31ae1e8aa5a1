//! The last-writer-wins write engine: a batch of copies goes insert-first,
//! and the copies whose record exists already get a versioned update where
//! theirs is newer. Every copy gets its own outcome: one refused or failed
//! copy does not fail the others.

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::bson::{self, Document, doc};

use super::command::{Conflicts, CopyOutcome, WriteKind};
use super::query::id_and_version;
use super::{CONFLICT_ROUNDS, DELETED_AT_FIELD, DELETED_FIELD, NodeStore, StoreError, ZIP_FIELD};
use crate::domain::CustomerCopy;

impl NodeStore {
    /// Applies copies with last-writer-wins, all or nothing as far as the
    /// caller is concerned: `Ok` only if every copy is stored (or
    /// superseded); else the first copy's refusal or failure, in batch
    /// order. See [`NodeStore::apply_each`].
    pub async fn apply(&self, copies: &[CustomerCopy]) -> Result<(), StoreError> {
        for outcome in self.apply_each(copies).await? {
            match outcome {
                CopyOutcome::Stored | CopyOutcome::NotTried => {}
                CopyOutcome::Rejected(message) => return Err(self.rejected(message)),
                CopyOutcome::Failed(message) => {
                    return Err(StoreError::NotDurable {
                        node: self.node.clone(),
                        message,
                    });
                }
            }
        }
        Ok(())
    }

    /// Applies copies with last-writer-wins: a copy is written only where no
    /// copy with an equal or newer version exists. Several copies of one
    /// record in the batch collapse to the newest, which alone is sent; the
    /// older ones are `Stored` (superseded) if it was stored, else
    /// `NotTried`. Per collection, one unordered `insert` in the usual case,
    /// then versioned updates only for the records that existed already
    /// (see `apply_lww`). One outcome per copy, in order; an error only when
    /// a whole command failed (its copies' outcomes are unknown).
    pub async fn apply_each(
        &self,
        copies: &[CustomerCopy],
    ) -> Result<Vec<CopyOutcome>, StoreError> {
        // Kept in the order the copies came (the order they were accepted
        // or queued), so that of two records competing for a unique value
        // the earlier one is written first.
        let mut slots: HashMap<(String, &str), (usize, usize)> = HashMap::new();
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        // Each copy's record: its group, and its place in the group.
        let mut slot_of: Vec<(usize, usize)> = Vec::with_capacity(copies.len());
        for (i, copy) in copies.iter().enumerate() {
            let collection = copy.collection();
            let key = (collection.clone(), copy.customer_id().as_str());
            if let Some(&(g, k)) = slots.get(&key) {
                slot_of.push((g, k));
                let newest = &mut groups[g].1[k];
                if copy.version > copies[*newest].version {
                    *newest = i;
                }
                continue;
            }
            let g = match groups.iter().position(|(c, _)| *c == collection) {
                Some(g) => g,
                None => {
                    groups.push((collection, Vec::new()));
                    groups.len() - 1
                }
            };
            let slot = (g, groups[g].1.len());
            slots.insert(key, slot);
            slot_of.push(slot);
            groups[g].1.push(i);
        }
        let mut outcomes = vec![CopyOutcome::NotTried; copies.len()];
        for (collection, sent) in &groups {
            let batch: Vec<&CustomerCopy> = sent.iter().map(|i| &copies[*i]).collect();
            for (i, outcome) in sent.iter().zip(self.apply_lww(collection, batch).await?) {
                outcomes[*i] = outcome;
            }
        }
        // The older copies of a record stand or fall with its newest.
        for (i, (g, k)) in slot_of.into_iter().enumerate() {
            let newest = groups[g].1[k];
            if i != newest && outcomes[newest] == CopyOutcome::Stored {
                outcomes[i] = CopyOutcome::Stored;
            }
        }
        Ok(outcomes)
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
    ) -> Result<Vec<CopyOutcome>, StoreError> {
        let mut out = vec![CopyOutcome::Stored; copies.len()];
        let all: Vec<usize> = (0..copies.len()).collect();
        if copies.len() < 2 {
            self.update_lww(collection, &copies, all, &mut out).await?;
            return Ok(out);
        }
        let documents = copies.iter().map(|c| record_document(c)).collect();
        let reply = self
            .write_command(WriteKind::Insert, collection, documents)
            .await?;
        for (i, outcome) in reply.failures {
            if let Some(slot) = out.get_mut(i) {
                *slot = outcome;
            }
        }
        let existing = match reply.conflicts {
            Conflicts::None => return Ok(out),
            Conflicts::At(indexes) => indexes,
            Conflicts::Unknown => {
                self.apply_after_lookup(collection, &copies, all, &mut out)
                    .await?;
                return Ok(out);
            }
        };
        let older = self.still_newer(collection, &copies, existing).await?;
        self.update_lww(collection, &copies, older, &mut out)
            .await?;
        Ok(out)
    }

    /// One lookup of which of `pending` exist, one unordered `insert` of the
    /// new ones, versioned updates for the older ones.
    async fn apply_after_lookup(
        &self,
        collection: &str,
        copies: &[&CustomerCopy],
        pending: Vec<usize>,
        out: &mut [CopyOutcome],
    ) -> Result<(), StoreError> {
        let stored = self.stored_versions(collection, copies, &pending).await?;
        let (fresh, existing): (Vec<usize>, Vec<usize>) = pending
            .into_iter()
            .partition(|i| !stored.contains_key(copies[*i].customer_id().as_str()));
        let mut rest: Vec<usize> = existing
            .into_iter()
            .filter(|i| newer_than_stored(copies[*i], &stored))
            .collect();
        // A duplicate key here means another writer inserted the record
        // since the lookup: ours then goes through the versioned update.
        let documents = fresh.iter().map(|i| record_document(copies[*i])).collect();
        let reply = self
            .write_command(WriteKind::Insert, collection, documents)
            .await?;
        for (k, outcome) in reply.failures {
            if let Some(i) = fresh.get(k) {
                out[*i] = outcome;
            }
        }
        match reply.conflicts {
            Conflicts::None => {}
            Conflicts::Unknown => rest.extend(fresh),
            Conflicts::At(indexes) => {
                rest.extend(indexes.into_iter().filter_map(|k| fresh.get(k).copied()));
            }
        }
        self.update_lww(collection, copies, rest, out).await
    }

    /// Versioned upserts of the copies at `pending`. A duplicate key on
    /// `_id` means another write got there first: either a newer copy (then
    /// ours is stale: done) or an older one that raced our upsert (then ours
    /// is retried, and now matches as an update).
    async fn update_lww(
        &self,
        collection: &str,
        copies: &[&CustomerCopy],
        mut pending: Vec<usize>,
        out: &mut [CopyOutcome],
    ) -> Result<(), StoreError> {
        for _ in 0..CONFLICT_ROUNDS {
            if pending.is_empty() {
                return Ok(());
            }
            let statements = pending.iter().map(|i| lww_statement(copies[*i])).collect();
            let reply = self
                .write_command(WriteKind::Update, collection, statements)
                .await?;
            for (k, outcome) in reply.failures {
                if let Some(i) = pending.get(k) {
                    out[*i] = outcome;
                }
            }
            let conflicted: Vec<usize> = match reply.conflicts {
                Conflicts::None => return Ok(()),
                // The whole command failed (some servers report a
                // duplicate key that way): which statements ran is
                // unknown, but every one is idempotent.
                Conflicts::Unknown => pending,
                Conflicts::At(indexes) => indexes
                    .into_iter()
                    .filter_map(|k| pending.get(k).copied())
                    .collect(),
            };
            pending = self.still_newer(collection, copies, conflicted).await?;
        }
        for i in pending {
            out[i] = CopyOutcome::Failed(format!(
                "kept losing upsert races after {CONFLICT_ROUNDS} rounds"
            ));
        }
        Ok(())
    }

    /// Those of `indexes` whose copy is newer than what the node holds.
    async fn still_newer(
        &self,
        collection: &str,
        copies: &[&CustomerCopy],
        indexes: Vec<usize>,
    ) -> Result<Vec<usize>, StoreError> {
        let stored = self.stored_versions(collection, copies, &indexes).await?;
        Ok(indexes
            .into_iter()
            .filter(|i| newer_than_stored(copies[*i], &stored))
            .collect())
    }

    /// Which of the records at `indexes` exist, with their stored version
    /// (`None` for a document without one, written by another tool).
    async fn stored_versions(
        &self,
        collection: &str,
        copies: &[&CustomerCopy],
        indexes: &[usize],
    ) -> Result<HashMap<String, Option<i64>>, StoreError> {
        if indexes.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<&str> = indexes
            .iter()
            .map(|i| copies[*i].customer_id().as_str())
            .collect();
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
