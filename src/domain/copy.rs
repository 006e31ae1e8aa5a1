use serde::Serialize;
use serde_json::Value;

use super::{Customer, CustomerId, NodeId, Text, Version};

/// Which copy of a record: the one in its home region's `customers`
/// collection, or the one in `replica_<region>` on the replica node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyTarget {
    Primary,
    Replica,
}

/// What a copy holds: the record, or a tombstone that says the record is
/// gone from this region as of the copy's version (deleted, or moved to
/// another region). A tombstone keeps the id and nothing personal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Record {
    #[serde(rename = "customer")]
    Live(Customer),
    #[serde(rename = "tombstone")]
    Tombstone(Tombstone),
}

/// The one field a tombstone keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tombstone {
    pub customer_id: CustomerId,
}

/// One copy of one accepted write, for one node: what a direct write stores
/// and what a hint carries, so a replayed hint is applied exactly like the
/// direct write it stands in for. Its JSON form is the hint format of the
/// product contract: `{"target", "region", "version", "customer": {the five
/// fields}}`, or for a tombstone `{..., "tombstone": {"customer_id"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerCopy {
    pub target: CopyTarget,
    /// The region whose copy this is: the record's home region for a live
    /// copy; for a tombstone, the region the record is gone from (not
    /// necessarily the node holding this copy).
    pub region: NodeId,
    pub version: Version,
    #[serde(flatten)]
    pub record: Record,
}

impl CustomerCopy {
    /// A live copy of `customer`.
    pub fn live(target: CopyTarget, region: NodeId, version: Version, customer: Customer) -> Self {
        CustomerCopy {
            target,
            region,
            version,
            record: Record::Live(customer),
        }
    }

    /// A tombstone of `customer_id` in `region`'s `target` copy.
    pub fn tombstone(
        target: CopyTarget,
        region: NodeId,
        version: Version,
        customer_id: CustomerId,
    ) -> Self {
        CustomerCopy {
            target,
            region,
            version,
            record: Record::Tombstone(Tombstone { customer_id }),
        }
    }

    pub fn customer_id(&self) -> &CustomerId {
        match &self.record {
            Record::Live(c) => &c.customer_id,
            Record::Tombstone(t) => &t.customer_id,
        }
    }

    /// The record, unless this is a tombstone.
    pub fn customer(&self) -> Option<&Customer> {
        match &self.record {
            Record::Live(c) => Some(c),
            Record::Tombstone(_) => None,
        }
    }

    pub fn is_tombstone(&self) -> bool {
        matches!(self.record, Record::Tombstone(_))
    }

    /// The collection this copy lives in on its node.
    pub fn collection(&self) -> String {
        match self.target {
            CopyTarget::Primary => Self::PRIMARY_COLLECTION.to_owned(),
            CopyTarget::Replica => Self::replica_collection(&self.region),
        }
    }

    pub const PRIMARY_COLLECTION: &'static str = "customers";

    pub fn replica_collection(region: &NodeId) -> String {
        format!("replica_{region}")
    }

    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a hint read back from Kafka. Hints are data from outside this
    /// process (another version of it, a tool), so they are checked like any
    /// other input.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<CustomerCopy, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let target = match value.get("target").and_then(Value::as_str) {
            Some("primary") => CopyTarget::Primary,
            Some("replica") => CopyTarget::Replica,
            _ => return Err("\"target\" must be \"primary\" or \"replica\"".into()),
        };
        let region = value
            .get("region")
            .and_then(Value::as_str)
            .ok_or("\"region\" must be a string")
            .and_then(|s| NodeId::parse(s).map_err(|_| "\"region\" is not a node id"))?;
        let version = value
            .get("version")
            .and_then(Value::as_i64)
            .map(Version::new)
            .ok_or("\"version\" must be an integer")?;
        let record = match (value.get("customer"), value.get("tombstone")) {
            (Some(Value::Object(c)), None) => {
                Record::Live(Customer::parse(c).map_err(|e| format!("customer: {e}"))?)
            }
            (None, Some(Value::Object(t))) => {
                let id = t
                    .get("customer_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let customer_id = Text::parse("customer_id", id)
                    .map_err(|e| format!("tombstone: {}", e.message))?;
                Record::Tombstone(Tombstone { customer_id })
            }
            _ => {
                return Err(
                    "exactly one of \"customer\" and \"tombstone\" must be an object".into(),
                );
            }
        };
        Ok(CustomerCopy {
            target,
            region,
            version,
            record,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hint_json_round_trips_in_the_contract_shape() {
        let customer = Customer::parse(
            json!({"customer_id":"c1","customer_unique_id":"u1","customer_zip_code_prefix":45000,
                   "customer_city":"x","customer_state":"y"})
            .as_object()
            .unwrap(),
        )
        .unwrap();
        let copy = CustomerCopy::live(
            CopyTarget::Replica,
            NodeId::parse("region_2").unwrap(),
            Version::new(42),
            customer,
        );
        let bytes = copy.to_json_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["target"], "replica");
        assert_eq!(v["region"], "region_2");
        assert_eq!(v["version"], 42);
        assert_eq!(v["customer"]["customer_zip_code_prefix"], 45000);
        assert_eq!(CustomerCopy::from_json_bytes(&bytes), Ok(copy.clone()));
        assert_eq!(copy.collection(), "replica_region_2");
    }

    #[test]
    fn a_tombstone_carries_the_id_and_nothing_personal() {
        let copy = CustomerCopy::tombstone(
            CopyTarget::Primary,
            NodeId::parse("region_1").unwrap(),
            Version::new(43),
            Text::parse("customer_id", "c1").unwrap(),
        );
        let bytes = copy.to_json_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["tombstone"], json!({"customer_id": "c1"}));
        assert!(v.get("customer").is_none(), "{v}");
        assert_eq!(CustomerCopy::from_json_bytes(&bytes), Ok(copy.clone()));
        assert!(copy.is_tombstone() && copy.customer().is_none());
        assert_eq!(copy.customer_id().as_str(), "c1");
    }

    #[test]
    fn rejects_malformed_hints() {
        for bad in [
            &b"nope"[..],
            br#"{"target":"x","region":"r","version":1,"customer":{}}"#,
            br#"{"target":"primary","region":"r","version":"1","customer":{}}"#,
            br#"{"target":"primary","region":"r","version":1,"customer":{}}"#,
            br#"{"target":"primary","region":"r","version":1,"tombstone":{"customer_id":""}}"#,
            br#"{"target":"primary","region":"r","version":1}"#,
        ] {
            assert!(CustomerCopy::from_json_bytes(bad).is_err());
        }
    }
}
