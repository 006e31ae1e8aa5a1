//! Reads: counting and paging filtered records (never a tombstone), the
//! `(id, version)` walk repair uses, lookups by id, and the tombstones
//! purge walks and removes. Documents written by other tools are
//! read leniently.

use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};

use std::collections::HashMap;

use super::{DELETED_FIELD, NodeStore, StoreError, ZIP_FIELD};
use crate::domain::RecordFilter;

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
    /// A tombstone: the record is gone from this region as of `version`
    /// (never shown by reads; its personal fields are empty).
    #[serde(skip)]
    pub deleted: bool,
}

impl NodeStore {
    /// Counts the records of `collection` matching `filter`, but those of
    /// the ids in `except`.
    pub async fn count(
        &self,
        collection: &str,
        filter: &RecordFilter,
        except: &[String],
    ) -> Result<u64, StoreError> {
        let coll = self.db.collection::<Document>(collection);
        // The server stops too when the client gives up (`maxTimeMS`).
        let count = coll
            .count_documents(filter_except(filter, except))
            .max_time(self.timeout);
        self.bounded("count", count).await
    }

    /// One page of `collection` matching `filter` (but the ids in
    /// `except`), in `customer_id` order.
    pub async fn find(
        &self,
        collection: &str,
        filter: &RecordFilter,
        except: &[String],
        (skip, limit): (u64, u64),
    ) -> Result<Vec<StoredCustomer>, StoreError> {
        let coll = self.db.collection::<Document>(collection);
        let docs: Vec<Document> = self
            .bounded("find", async {
                let cursor = coll
                    .find(filter_except(filter, except))
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
        self.id_page("versions_page", collection, Document::new(), after, limit)
            .await
    }

    /// One page of `(id, version)` pairs of the documents of `collection`
    /// matching `filter`, in `_id` order, after `after`.
    async fn id_page(
        &self,
        call: &'static str,
        collection: &str,
        mut filter: Document,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        let coll = self.db.collection::<Document>(collection);
        if let Some(id) = after {
            filter.insert("_id", doc! {"$gt": id});
        }
        let docs: Vec<Document> = self
            .bounded_for(call, limit, async {
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
}

/// A document's `_id` and `version` (`None` for a document without one,
/// What one node holds of a record: its version (`None` for a document
/// without one) and whether it is a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub version: Option<i64>,
    pub deleted: bool,
}

impl NodeStore {
    /// What `collection` holds of each of `ids` (absent ids are left out).
    pub async fn held(
        &self,
        collection: &str,
        ids: &[&str],
    ) -> Result<HashMap<String, Held>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let coll = self.db.collection::<Document>(collection);
        let docs: Vec<Document> = self
            .bounded_for("find_held", ids.len(), async {
                let cursor = coll
                    .find(doc! {"_id": {"$in": ids}})
                    .projection(doc! {"version": 1, DELETED_FIELD: 1})
                    .await?;
                cursor.try_collect().await
            })
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| {
                let (id, version) = id_and_version(d)?;
                let deleted = matches!(d.get(DELETED_FIELD), Some(Bson::Boolean(true)));
                Some((id, Held { version, deleted }))
            })
            .collect())
    }

    /// One page of the live records of `collection` written at or after
    /// the version `since`, in `_id` order after `after` (the writes whose
    /// moves may still be unsettled when Redis lost its record of them).
    pub async fn recent_page(
        &self,
        collection: &str,
        after: Option<&str>,
        since: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let filter = doc! {DELETED_FIELD: {"$ne": true}, "version": {"$gte": since}};
        self.versioned_page("recent_page", collection, filter, after, limit)
            .await
    }

    /// One page of the tombstones of `collection` older than `before` (a
    /// version), in `_id` order after `after`: what purge may remove.
    pub async fn tombstones_page(
        &self,
        collection: &str,
        after: Option<&str>,
        before: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let filter = doc! {DELETED_FIELD: true, "version": {"$lt": before}};
        self.versioned_page("tombstones_page", collection, filter, after, limit)
            .await
    }

    /// [`NodeStore::id_page`] of documents matching `filter` on their
    /// version, so every one has a version.
    async fn versioned_page(
        &self,
        call: &'static str,
        collection: &str,
        filter: Document,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let page = self.id_page(call, collection, filter, after, limit);
        Ok(page
            .await?
            .into_iter()
            .filter_map(|(id, v)| Some((id, v?)))
            .collect())
    }

    /// Removes these tombstones, each only if it is still the tombstone at
    /// that version (a newer write in between is kept). Answers how many
    /// went.
    pub async fn remove_tombstones(
        &self,
        collection: &str,
        tombstones: &[(String, i64)],
    ) -> Result<u64, StoreError> {
        if tombstones.is_empty() {
            return Ok(0);
        }
        let deletes: Vec<Document> = tombstones
            .iter()
            .map(|(id, version)| {
                doc! {"q": {"_id": id, "version": version, DELETED_FIELD: true}, "limit": 1}
            })
            .collect();
        let command = doc! {
            "delete": collection,
            "deletes": deletes,
            "ordered": false,
            "writeConcern": self.write_concern.clone(),
        };
        let reply = self
            .bounded_for(
                "remove_tombstones",
                tombstones.len(),
                self.db.run_command(command),
            )
            .await?;
        Ok(u64::try_from(reply.get_i32("n").unwrap_or(0)).unwrap_or(0))
    }
}

/// written by another tool); nothing for a document without a string id.
pub(super) fn id_and_version(d: &Document) -> Option<(String, Option<i64>)> {
    let id = d.get_str("_id").ok()?.to_owned();
    Some((id, d.get_i64("version").ok()))
}

/// [`filter_document`], leaving out the ids in `except`.
fn filter_except(filter: &RecordFilter, except: &[String]) -> Document {
    let mut query = filter_document(filter);
    if !except.is_empty() {
        query.insert("_id", doc! {"$nin": except});
    }
    query
}

/// The MongoDB query for a filter. City and state are matched as
/// case-insensitive substrings: the user's text is escaped, never run as a
/// pattern.
fn filter_document(filter: &RecordFilter) -> Document {
    let mut query = doc! {DELETED_FIELD: {"$ne": true}};
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
        deleted: matches!(d.get(DELETED_FIELD), Some(Bson::Boolean(true))),
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
