//! A node database's identity marker: one document, written the first time
//! regiondb uses the database, naming its incarnation. A node whose marker
//! is missing (or another one) after regiondb saw it is a node that lost
//! its data: restarted empty, or replaced by another database (see
//! `recovery`).

use mongodb::bson::{Document, doc};

use super::errors::is_id_conflict;
use super::{NodeStore, StoreError};

/// The collection holding the marker, in every node's database.
pub const IDENTITY_COLLECTION: &str = "regiondb_identity";
const MARKER_ID: &str = "node";

impl NodeStore {
    /// The incarnation the node's marker names, if it has one.
    pub async fn identity(&self) -> Result<Option<String>, StoreError> {
        let coll = self.db.collection::<Document>(IDENTITY_COLLECTION);
        let found = self
            .bounded("find_identity", coll.find_one(doc! {"_id": MARKER_ID}))
            .await?;
        Ok(found.and_then(|d| d.get_str("incarnation").ok().map(str::to_owned)))
    }

    /// Writes a marker naming `incarnation` unless the node has one; answers
    /// the incarnation the node's marker names afterwards.
    pub async fn mark_identity(&self, incarnation: &str) -> Result<String, StoreError> {
        let coll = self.db.collection::<Document>(IDENTITY_COLLECTION);
        let marker = doc! {
            "_id": MARKER_ID,
            "incarnation": incarnation,
            "created_at": mongodb::bson::DateTime::now(),
        };
        let written = self.bounded("mark_identity", coll.insert_one(marker)).await;
        match written {
            Ok(_) => Ok(incarnation.to_owned()),
            // Another writer's marker got there first.
            Err(StoreError::Mongo { source, .. }) if is_id_conflict(&source) => Ok(self
                .identity()
                .await?
                .unwrap_or_else(|| incarnation.to_owned())),
            Err(e) => Err(e),
        }
    }
}
