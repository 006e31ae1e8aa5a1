//! The regions file (`REGIONS_FILE`): N regions, each with its zip range
//! and the node that keeps its replica.

use std::path::Path;

use serde::Deserialize;

use crate::domain::{NodeId, Region, RegionMap, ZipRange};

/// The regions file: one `[[region]]` table per region.
///
/// ```toml
/// [[region]]
/// id = "region_1"
/// zip_min = 1000
/// zip_max = 39999
/// replica = "region_3"
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionsFile {
    region: Vec<RegionEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionEntry {
    id: String,
    zip_min: u32,
    zip_max: u32,
    replica: String,
}

pub(super) fn load_regions_file(path: &Path) -> Result<RegionMap, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse_regions(&text)
}

fn parse_regions(text: &str) -> Result<RegionMap, String> {
    let file: RegionsFile = toml::from_str(text).map_err(|e| {
        // toml's messages span several lines (with a source excerpt); the
        // contract is one line.
        e.to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    })?;
    let regions = file
        .region
        .into_iter()
        .map(|r| {
            Ok(Region {
                id: NodeId::parse(&r.id)?,
                zips: ZipRange {
                    min: r.zip_min,
                    max: r.zip_max,
                },
                replica: NodeId::parse(&r.replica)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    RegionMap::new(regions).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_file_defines_n_regions() {
        let map = parse_regions(
            r#"
            [[region]]
            id = "north"
            zip_min = 0
            zip_max = 499
            replica = "south"
            [[region]]
            id = "south"
            zip_min = 500
            zip_max = 999
            replica = "west"
            [[region]]
            id = "west"
            zip_min = 1000
            zip_max = 1999
            replica = "north"
            [[region]]
            id = "east"
            zip_min = 2000
            zip_max = 2999
            replica = "north"
            "#,
        )
        .unwrap();
        assert_eq!(map.regions().len(), 4);
        let overlap = "[[region]]\nid=\"a\"\nzip_min=0\nzip_max=10\nreplica=\"b\"\n\
                       [[region]]\nid=\"b\"\nzip_min=5\nzip_max=20\nreplica=\"a\"\n";
        assert!(parse_regions(overlap).unwrap_err().contains("overlapping"));
        let typo = "[[region]]\nid=\"a\"\nzip_min=0\nzip_max=10\nreplika=\"b\"\n";
        let err = parse_regions(typo).unwrap_err();
        assert!(!err.contains('\n') && err.contains("replika"), "{err}");
    }
}
