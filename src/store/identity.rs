//! A node database's identity marker: one document, written the first time
//! regiondb uses the database, naming its incarnation. A node whose marker
//! is missing (or another one) after regiondb saw it is a node that lost
//! its data: restarted empty, or replaced by another database (see
//! `recovery`). The marker also says whether the node is still being
//! refilled from its replicas (`refilling`), so that the data-loss flag can
//! be derived again from the node itself if Redis loses it.

use mongodb::bson::{Document, doc};

use super::errors::is_id_conflict;
use super::{NodeStore, StoreError};

/// The collection holding the marker, in every node's database.
pub const IDENTITY_COLLECTION: &str = "regiondb_identity";
const MARKER_ID: &str = "node";

/// What a node's marker says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub incarnation: String,
    /// The node lost its data and its repair has not completed yet.
    pub refilling: bool,
}

impl NodeStore {
    /// The node's marker, if it has one.
    pub async fn identity(&self) -> Result<Option<Marker>, StoreError> {
        let coll = self.db.collection::<Document>(IDENTITY_COLLECTION);
        let found = self
            .bounded("find_identity", coll.find_one(doc! {"_id": MARKER_ID}))
            .await?;
        Ok(found.and_then(|d| {
            Some(Marker {
                incarnation: d.get_str("incarnation").ok()?.to_owned(),
                refilling: d.get_bool("refilling").unwrap_or(false),
            })
        }))
    }

    /// Says on the node's marker whether it is being refilled (see
    /// `recovery`).
    pub async fn set_refilling(&self, refilling: bool) -> Result<(), StoreError> {
        let coll = self.db.collection::<Document>(IDENTITY_COLLECTION);
        let update = doc! {"$set": {"refilling": refilling}};
        self.bounded(
            "set_refilling",
            coll.update_one(doc! {"_id": MARKER_ID}, update),
        )
        .await?;
        Ok(())
    }

    /// Writes a marker naming `incarnation` (and whether the node is being
    /// `refilling`) unless the node has one; answers the incarnation the
    /// node's marker names afterwards.
    pub async fn mark_identity(
        &self,
        incarnation: &str,
        refilling: bool,
    ) -> Result<String, StoreError> {
        let coll = self.db.collection::<Document>(IDENTITY_COLLECTION);
        let marker = doc! {
            "_id": MARKER_ID,
            "incarnation": incarnation,
            "refilling": refilling,
            "created_at": mongodb::bson::DateTime::now(),
        };
        let written = self.bounded("mark_identity", coll.insert_one(marker)).await;
        match written {
            Ok(_) => Ok(incarnation.to_owned()),
            // Another writer's marker got there first.
            Err(StoreError::Mongo { source, .. }) if is_id_conflict(&source) => Ok(self
                .identity()
                .await?
                .map_or_else(|| incarnation.to_owned(), |m| m.incarnation)),
            Err(e) => Err(e),
        }
    }
}
