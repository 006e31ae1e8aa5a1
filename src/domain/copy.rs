use serde::Serialize;
use serde_json::Value;

use super::{Customer, NodeId, Version};

/// Which copy of a record: the one in its home region's `customers`
/// collection, or the one in `replica_<region>` on the replica node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyTarget {
    Primary,
    Replica,
}

/// One copy of one accepted write, for one node: what a direct write stores
/// and what a hint carries, so a replayed hint is applied exactly like the
/// direct write it stands in for. Its JSON form is the hint format of the
/// product contract:
/// `{"target", "region", "version", "customer": {the five fields}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerCopy {
    pub target: CopyTarget,
    /// The record's home region (not necessarily the node holding this copy).
    pub region: NodeId,
    pub version: Version,
    pub customer: Customer,
}

impl CustomerCopy {
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
        let customer = value
            .get("customer")
            .and_then(Value::as_object)
            .ok_or_else(|| "\"customer\" must be an object".to_owned())
            .and_then(|c| Customer::parse(c).map_err(|e| format!("customer: {e}")))?;
        Ok(CustomerCopy {
            target,
            region,
            version,
            customer,
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
        let copy = CustomerCopy {
            target: CopyTarget::Replica,
            region: NodeId::parse("region_2").unwrap(),
            version: Version::new(42),
            customer,
        };
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
    fn rejects_malformed_hints() {
        for bad in [
            &b"nope"[..],
            br#"{"target":"x","region":"r","version":1,"customer":{}}"#,
            br#"{"target":"primary","region":"r","version":"1","customer":{}}"#,
            br#"{"target":"primary","region":"r","version":1,"customer":{}}"#,
        ] {
            assert!(CustomerCopy::from_json_bytes(bad).is_err());
        }
    }
}
