//! The stores themselves: reading MongoDB documents directly.

use mongodb::bson::{Document, doc};

use super::*;

impl TestApp {
    pub async fn mongo_client(&self, index: usize) -> mongodb::Client {
        let mut options = mongodb::options::ClientOptions::parse(&self.mongo_uris[index])
            .await
            .expect("mongo uri");
        options.server_selection_timeout = Some(Duration::from_secs(5));
        mongodb::Client::with_options(options).expect("mongo client")
    }

    /// All documents of `node`'s `collection`, keyed by `_id`.
    pub async fn docs(&self, node: &str, collection: &str) -> Vec<Document> {
        let client = self.mongo_client(node_index(node)).await;
        let cursor = client
            .database(node)
            .collection::<Document>(collection)
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .expect("find");
        futures::TryStreamExt::try_collect(cursor)
            .await
            .expect("cursor")
    }

    pub async fn doc(&self, node: &str, collection: &str, id: &str) -> Option<Document> {
        let client = self.mongo_client(node_index(node)).await;
        client
            .database(node)
            .collection::<Document>(collection)
            .find_one(doc! {"_id": id})
            .await
            .expect("find_one")
    }

    /// Writes `doc` as it is (by `_id`, replacing what is there): a copy
    /// as another tool, or a crash halfway through a write, would leave it.
    pub async fn put_doc(&self, node: &str, collection: &str, doc: Document) {
        let id = doc.get("_id").cloned().expect("_id");
        self.mongo_client(node_index(node))
            .await
            .database(node)
            .collection::<Document>(collection)
            .replace_one(doc! {"_id": id}, doc)
            .upsert(true)
            .await
            .expect("put doc");
    }

    /// Waits until `node.collection` holds `id` at `version`.
    pub async fn wait_for_doc(&self, node: &str, collection: &str, id: &str, version: i64) {
        wait_until(
            &format!("{node}.{collection} to hold {id} at version {version}"),
            DEADLINE,
            || async {
                self.doc(node, collection, id)
                    .await
                    .is_some_and(|d| d.get_i64("version") == Ok(version))
            },
        )
        .await;
    }
}

/// `region_K`'s position in the region map (K - 1).
pub fn node_index(node: &str) -> usize {
    node.strip_prefix("region_")
        .and_then(|k| k.parse::<usize>().ok())
        .and_then(|k| k.checked_sub(1))
        .expect("a node id of the form region_K")
}

/// A unique index on `customer_unique_id` of `node`'s own customers, as an
/// operator might add.
pub async fn unique_index(app: &TestApp, node: &str) {
    let client = app.mongo_client(node_index(node)).await;
    let index = mongodb::IndexModel::builder()
        .keys(mongodb::bson::doc! {"customer_unique_id": 1})
        .options(
            mongodb::options::IndexOptions::builder()
                .unique(true)
                .build(),
        )
        .build();
    client
        .database(node)
        .collection::<mongodb::bson::Document>("customers")
        .create_index(index)
        .await
        .expect("unique index");
}
