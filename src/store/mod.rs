//! MongoDB, one database per node: applies copies with last-writer-wins and
//! answers filtered reads.
//!
//! Every call is bounded by the node's timeout. A call that timed out has an
//! *unknown* outcome (a frozen server may still apply it when it wakes); the
//! version carried by every copy makes a late apply harmless.

use std::collections::HashMap;
use std::time::Duration;

use futures::TryStreamExt;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::{Acknowledgment, ClientOptions};
use mongodb::{Client, Database, IndexModel};

use crate::domain::{CustomerCopy, NodeId, RecordFilter, RegionMap};

mod errors;
mod identity;

pub use errors::StoreError;
use errors::{
    WriteErrorClass, classify_write_error, command_code, command_message, is_id_conflict,
    is_permanent_failure,
};
pub use identity::IDENTITY_COLLECTION;

/// Index on the field every range filter uses.
const ZIP_FIELD: &str = "customer_zip_code_prefix";
/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;
/// Extra time allowed per record in a multi-record command.
const PER_ITEM_TIME: Duration = Duration::from_millis(10);
/// Rounds of "re-read the stored versions and retry the newer copies" after
/// duplicate keys on `_id` before giving up (as a retryable error).
const CONFLICT_ROUNDS: usize = 5;
/// A record as read back from a node. Documents written by other tools may
/// lack fields; they read as empty rather than failing the whole page.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct StoredCustomer {
    pub customer_id: String,
    pub customer_unique_id: String,
    pub customer_zip_code_prefix: i64,
    pub customer_city: String,
    pub customer_state: String,
    pub region: String,
    pub version: Option<i64>,
}

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
            stores.push(NodeStore::new(node.clone(), uri, timeout).await?);
        }
        Ok(Stores(stores))
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
    pub async fn new(node: NodeId, uri: &str, timeout: Duration) -> Result<NodeStore, StoreError> {
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

    /// Applies copies with last-writer-wins: a copy is written only where no
    /// copy with an equal or newer version exists. Several copies of one
    /// record in the batch collapse to the newest first. One `update`
    /// command per collection in the usual case.
    pub async fn apply(&self, copies: &[CustomerCopy]) -> Result<(), StoreError> {
        // Kept in the order the copies came (the order they were accepted
        // or queued), so that of two records competing for a unique value
        // the earlier one is written first.
        let mut slots: HashMap<(String, &str), usize> = HashMap::new();
        let mut by_collection: Vec<(String, Vec<&CustomerCopy>)> = Vec::new();
        for copy in copies {
            let collection = copy.collection();
            let key = (collection.clone(), copy.customer.customer_id.as_str());
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
            .partition(|c| !stored.contains_key(c.customer.customer_id.as_str()));
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
        let ids: Vec<&str> = copies
            .iter()
            .map(|c| c.customer.customer_id.as_str())
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

    /// Counts the records of `collection` matching `filter`.
    pub async fn count(&self, collection: &str, filter: &RecordFilter) -> Result<u64, StoreError> {
        let coll = self.db.collection::<Document>(collection);
        // The server stops too when the client gives up (`maxTimeMS`).
        let count = coll
            .count_documents(filter_document(filter))
            .max_time(self.timeout);
        self.bounded("count", count).await
    }

    /// One page of `collection` matching `filter`, in `customer_id` order.
    pub async fn find(
        &self,
        collection: &str,
        filter: &RecordFilter,
        skip: u64,
        limit: u64,
    ) -> Result<Vec<StoredCustomer>, StoreError> {
        let coll = self.db.collection::<Document>(collection);
        let docs: Vec<Document> = self
            .bounded("find", async {
                let cursor = coll
                    .find(filter_document(filter))
                    .sort(doc! {"_id": 1})
                    .skip(skip)
                    .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                    .max_time(self.timeout)
                    .await?;
                cursor.try_collect().await
            })
            .await?;
        Ok(docs.iter().map(stored_customer).collect())
    }

    /// One page of `(id, version)` pairs of `collection` in `_id` order,
    /// starting after `after` (repair walks collections with these).
    pub async fn versions_page(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        let coll = self.db.collection::<Document>(collection);
        let filter = match after {
            Some(id) => doc! {"_id": {"$gt": id}},
            None => doc! {},
        };
        let docs: Vec<Document> = self
            .bounded_for("versions_page", limit, async {
                let cursor = coll
                    .find(filter)
                    .projection(doc! {"version": 1})
                    .sort(doc! {"_id": 1})
                    .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                    .await?;
                cursor.try_collect().await
            })
            .await?;
        Ok(docs.iter().filter_map(id_and_version).collect())
    }

    /// The records of `collection` with these ids.
    pub async fn find_ids(
        &self,
        collection: &str,
        ids: &[&str],
    ) -> Result<Vec<StoredCustomer>, StoreError> {
        let coll = self.db.collection::<Document>(collection);
        let docs: Vec<Document> = self
            .bounded_for("find_ids", ids.len(), async {
                let cursor = coll.find(doc! {"_id": {"$in": ids}}).await?;
                cursor.try_collect().await
            })
            .await?;
        Ok(docs.iter().map(stored_customer).collect())
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
    match stored.get(copy.customer.customer_id.as_str()) {
        None | Some(None) => true,
        Some(Some(v)) => *v < copy.version.get(),
    }
}

/// The stored fields of a copy (without `_id`).
/// A document's `_id` and `version` (`None` for a document without one,
/// written by another tool); nothing for a document without a string id.
fn id_and_version(d: &Document) -> Option<(String, Option<i64>)> {
    let id = d.get_str("_id").ok()?.to_owned();
    Some((id, d.get_i64("version").ok()))
}

fn record_fields(copy: &CustomerCopy) -> Document {
    let c = &copy.customer;
    doc! {
        "customer_id": c.customer_id.as_str(),
        "customer_unique_id": c.customer_unique_id.as_str(),
        ZIP_FIELD: i64::from(c.customer_zip_code_prefix.get()),
        "customer_city": c.customer_city.as_str(),
        "customer_state": c.customer_state.as_str(),
        "region": copy.region.as_str(),
        "version": copy.version.get(),
        "updated_at": bson::DateTime::from_millis(copy.version.accepted_at_millis()),
    }
}

/// A copy as a new document, for the insert-first path.
fn record_document(copy: &CustomerCopy) -> Document {
    let mut d = doc! {"_id": copy.customer.customer_id.as_str()};
    d.extend(record_fields(copy));
    d
}

/// "Set this copy if what is stored is older (or has no version)"; the
/// upsert inserts it where there is nothing. When a newer copy exists the
/// filter matches nothing and the upsert collides with its `_id`: a
/// duplicate-key error that means "maybe stale" (see `update_lww`).
fn lww_statement(copy: &CustomerCopy) -> Document {
    doc! {
        // "not >= version" also matches a document without a version
        // (written by another tool), in one predicate the _id index serves.
        "q": {
            "_id": copy.customer.customer_id.as_str(),
            "version": {"$not": {"$gte": copy.version.get()}},
        },
        "u": {"$set": record_fields(copy)},
        "upsert": true,
    }
}

/// The MongoDB query for a filter. City and state are matched as
/// case-insensitive substrings: the user's text is escaped, never run as a
/// pattern.
fn filter_document(filter: &RecordFilter) -> Document {
    let mut query = Document::new();
    let mut zip = Document::new();
    if let Some(min) = filter.zip_min {
        zip.insert("$gte", i64::from(min.get()));
    }
    if let Some(max) = filter.zip_max {
        zip.insert("$lte", i64::from(max.get()));
    }
    if !zip.is_empty() {
        query.insert(ZIP_FIELD, zip);
    }
    for (field, text) in [
        ("customer_city", &filter.city),
        ("customer_state", &filter.state),
    ] {
        if let Some(text) = text {
            query.insert(
                field,
                doc! {"$regex": regex_syntax::escape(text.as_str()), "$options": "i"},
            );
        }
    }
    query
}

fn stored_customer(d: &Document) -> StoredCustomer {
    let text = |k: &str| match d.get(k) {
        Some(Bson::String(s)) => s.clone(),
        Some(Bson::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let int = |k: &str| match d.get(k) {
        Some(Bson::Int32(n)) => Some(i64::from(*n)),
        Some(Bson::Int64(n)) => Some(*n),
        Some(Bson::Double(f)) if f.fract() == 0.0 => Some(*f as i64),
        Some(Bson::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    StoredCustomer {
        customer_id: text("customer_id"),
        customer_unique_id: text("customer_unique_id"),
        customer_zip_code_prefix: int(ZIP_FIELD).unwrap_or_default(),
        customer_city: text("customer_city"),
        customer_state: text("customer_state"),
        region: text("region"),
        version: int("version"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RegionMap, ZipPrefix};

    #[test]
    fn user_text_is_escaped_not_interpreted() {
        let mut filter = RecordFilter::parse(|_| None, &RegionMap::default_regions()).unwrap();
        filter.city = Some(crate::domain::Text::parse("city", "a.*(b").unwrap());
        filter.zip_min = Some(ZipPrefix::new(10));
        let q = filter_document(&filter);
        let city = q.get_document("customer_city").unwrap();
        assert_eq!(city.get_str("$regex").unwrap(), r"a\.\*\(b");
        assert_eq!(city.get_str("$options").unwrap(), "i");
        assert_eq!(q.get_document(ZIP_FIELD).unwrap().get_i64("$gte"), Ok(10));
        assert!(
            q.get(ZIP_FIELD)
                .unwrap()
                .as_document()
                .unwrap()
                .get("$lte")
                .is_none()
        );
    }

    #[test]
    fn lenient_about_documents_written_by_others() {
        let d = doc! {"customer_id": "x", "customer_zip_code_prefix": "01310", "version": 3_i32};
        let c = stored_customer(&d);
        assert_eq!(c.customer_zip_code_prefix, 1310);
        assert_eq!(c.version, Some(3));
        assert_eq!(c.customer_city, "");
    }
}
