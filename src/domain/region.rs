use std::collections::HashSet;
use std::fmt;

use serde::Serialize;

use super::{FieldError, ZipPrefix};

/// The id of a node, which is also the id of the region it is home to, the
/// name of its MongoDB database and (with an optional prefix) of its Kafka
/// topic. Lower-case letters, digits and `_`, starting with a letter, so it is
/// valid in all three places and in an environment variable name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "region_1")]
pub struct NodeId(String);

impl NodeId {
    pub const MAX_LEN: usize = 48;

    pub fn parse(s: &str) -> Result<NodeId, String> {
        let ok_start = s.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        let ok_rest = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok_start && ok_rest && s.len() <= Self::MAX_LEN {
            Ok(NodeId(s.to_owned()))
        } else {
            Err(format!(
                "node id {s:?} must be 1-{} characters of a-z, 0-9 and _, starting with a letter",
                Self::MAX_LEN
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `region_2` -> `REGION_2`, for per-node environment variables.
    pub fn env_suffix(&self) -> String {
        self.0.to_ascii_uppercase()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An inclusive range of zip-code prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipRange {
    pub min: u32,
    pub max: u32,
}

impl ZipRange {
    pub fn contains(&self, zip: ZipPrefix) -> bool {
        (self.min..=self.max).contains(&zip.get())
    }

    fn overlaps(&self, other: &ZipRange) -> bool {
        self.min <= other.max && other.min <= self.max
    }
}

/// A region: its home node (same id), the zip prefixes it owns and the node
/// that keeps its replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub id: NodeId,
    pub zips: ZipRange,
    pub replica: NodeId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionMapError {
    #[error("no regions defined")]
    Empty,
    #[error("region {0} is defined twice")]
    Duplicate(NodeId),
    #[error("region {region}: zip range {min}-{max} is empty (min > max)")]
    EmptyRange { region: NodeId, min: u32, max: u32 },
    #[error("regions {a} and {b} have overlapping zip ranges")]
    Overlap { a: NodeId, b: NodeId },
    #[error("region {0}: its replica must be on another node")]
    ReplicaIsHome(NodeId),
    #[error("region {region}: replica node {replica} is not a defined region")]
    UnknownReplica { region: NodeId, replica: NodeId },
}

/// All regions, checked once: ranges disjoint, replicas on other, known
/// nodes. Answers "which node is home to this zip" and "which node keeps the
/// replica of this region".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionMap {
    /// In the order given (the default map: region_1, region_2, region_3);
    /// reads list regions in this order.
    regions: Vec<Region>,
}

impl RegionMap {
    pub fn new(regions: Vec<Region>) -> Result<RegionMap, RegionMapError> {
        if regions.is_empty() {
            return Err(RegionMapError::Empty);
        }
        let mut seen = HashSet::new();
        for r in &regions {
            if !seen.insert(&r.id) {
                return Err(RegionMapError::Duplicate(r.id.clone()));
            }
            if r.zips.min > r.zips.max {
                return Err(RegionMapError::EmptyRange {
                    region: r.id.clone(),
                    min: r.zips.min,
                    max: r.zips.max,
                });
            }
        }
        for (i, a) in regions.iter().enumerate() {
            if let Some(b) = regions[i + 1..].iter().find(|b| a.zips.overlaps(&b.zips)) {
                return Err(RegionMapError::Overlap {
                    a: a.id.clone(),
                    b: b.id.clone(),
                });
            }
            if a.replica == a.id {
                return Err(RegionMapError::ReplicaIsHome(a.id.clone()));
            }
            if !seen.contains(&a.replica) {
                return Err(RegionMapError::UnknownReplica {
                    region: a.id.clone(),
                    replica: a.replica.clone(),
                });
            }
        }
        Ok(RegionMap { regions })
    }

    /// The seed system's three regions and replica ring.
    pub fn default_regions() -> RegionMap {
        let region = |id: &str, min, max, replica: &str| Region {
            id: NodeId(id.into()),
            zips: ZipRange { min, max },
            replica: NodeId(replica.into()),
        };
        RegionMap {
            regions: vec![
                region("region_1", 1000, 39999, "region_3"),
                region("region_2", 40000, 69999, "region_1"),
                region("region_3", 70000, 99999, "region_2"),
            ],
        }
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Node ids; every region's home node, in region order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeId> {
        self.regions.iter().map(|r| &r.id)
    }

    pub fn get(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id.as_str() == id)
    }

    pub fn home_of(&self, zip: ZipPrefix) -> Option<&Region> {
        self.regions.iter().find(|r| r.zips.contains(zip))
    }

    /// The home region of a customer's zip, or an error for its field.
    pub fn route(&self, zip: ZipPrefix) -> Result<&Region, FieldError> {
        self.home_of(zip).ok_or_else(|| {
            FieldError::new(
                "customer_zip_code_prefix",
                format!(
                    "customer_zip_code_prefix {zip} is in no region (regions cover {})",
                    self.describe()
                ),
            )
        })
    }

    /// "1000-39999 region_1, 40000-69999 region_2, ..." for messages and hints.
    pub fn describe(&self) -> String {
        self.regions
            .iter()
            .map(|r| format!("{}-{} {}", r.zips.min, r.zips.max, r.id))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The regions whose replica lives on `node`.
    pub fn replicas_hosted_by<'a>(&'a self, node: &'a NodeId) -> impl Iterator<Item = &'a Region> {
        self.regions.iter().filter(move |r| &r.replica == node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: &str, min: u32, max: u32, replica: &str) -> Region {
        Region {
            id: NodeId::parse(id).unwrap(),
            zips: ZipRange { min, max },
            replica: NodeId::parse(replica).unwrap(),
        }
    }

    #[test]
    fn default_map_routes_the_seed_ranges() {
        let map = RegionMap::default_regions();
        assert_eq!(RegionMap::new(map.regions().to_vec()), Ok(map.clone()));
        let home = |z| map.home_of(ZipPrefix::new(z)).map(|r| r.id.as_str());
        assert_eq!(home(999), None);
        assert_eq!(home(1000), Some("region_1"));
        assert_eq!(home(39999), Some("region_1"));
        assert_eq!(home(40000), Some("region_2"));
        assert_eq!(home(69999), Some("region_2"));
        assert_eq!(home(70000), Some("region_3"));
        assert_eq!(home(99999), Some("region_3"));
        assert_eq!(home(100000), None);
        let err = map.route(ZipPrefix::new(500)).unwrap_err();
        assert_eq!(err.field, "customer_zip_code_prefix");
        assert!(
            err.message.contains("1000-39999 region_1"),
            "{}",
            err.message
        );
        let r1 = NodeId::parse("region_1").unwrap();
        let hosted: Vec<_> = map.replicas_hosted_by(&r1).map(|r| r.id.as_str()).collect();
        assert_eq!(hosted, ["region_2"]);
    }

    #[test]
    fn rejects_bad_maps() {
        assert_eq!(RegionMap::new(vec![]), Err(RegionMapError::Empty));
        let overlap = RegionMap::new(vec![region("a", 0, 10, "b"), region("b", 10, 20, "a")]);
        assert!(matches!(overlap, Err(RegionMapError::Overlap { .. })));
        let self_replica = RegionMap::new(vec![region("a", 0, 10, "a"), region("b", 11, 20, "a")]);
        assert!(matches!(
            self_replica,
            Err(RegionMapError::ReplicaIsHome(_))
        ));
        let unknown = RegionMap::new(vec![region("a", 0, 10, "c"), region("b", 11, 20, "a")]);
        assert!(matches!(
            unknown,
            Err(RegionMapError::UnknownReplica { .. })
        ));
        let dup = RegionMap::new(vec![region("a", 0, 10, "b"), region("a", 11, 20, "b")]);
        assert!(matches!(dup, Err(RegionMapError::Duplicate(_))));
        let empty = RegionMap::new(vec![region("a", 10, 0, "b"), region("b", 11, 20, "a")]);
        assert!(matches!(empty, Err(RegionMapError::EmptyRange { .. })));
    }

    #[test]
    fn node_ids_are_safe_names() {
        assert!(NodeId::parse("region_1").is_ok());
        for bad in [
            "",
            "Region",
            "1region",
            "re-gion",
            "a.b",
            "région",
            &"a".repeat(49),
        ] {
            assert!(NodeId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(NodeId::parse("region_2").unwrap().env_suffix(), "REGION_2");
    }
}
