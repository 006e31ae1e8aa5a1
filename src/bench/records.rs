//! The records a run writes: unique ids and unique values per run, zip
//! prefixes inside the regions a workload aims at.

use mongodb::bson::{Document, doc};
use serde::Serialize;

use crate::domain::Region;

/// One customer record, as the API takes it.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRecord {
    pub customer_id: String,
    pub customer_unique_id: String,
    pub customer_zip_code_prefix: u32,
    pub customer_city: String,
    pub customer_state: String,
}

impl BenchRecord {
    /// Record number `n` of worker `worker` in run `run`, homed in `region`.
    pub fn new(run: &str, worker: usize, n: u64, region: &Region) -> BenchRecord {
        let span = u64::from(region.zips.max - region.zips.min) + 1;
        let spread = n.wrapping_mul(7919).wrapping_add(worker as u64 * 104_729) % span;
        let zip = region.zips.min + u32::try_from(spread).unwrap_or(0);
        BenchRecord {
            customer_id: format!("bench-{run}-{worker}-{n}"),
            customer_unique_id: format!("bench-u-{run}-{worker}-{n}"),
            customer_zip_code_prefix: zip,
            customer_city: "bench city".into(),
            customer_state: "SP".into(),
        }
    }

    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The fields a naive client stores (without `_id` and version).
    pub fn document(&self) -> Document {
        doc! {
            "customer_id": &self.customer_id,
            "customer_unique_id": &self.customer_unique_id,
            "customer_zip_code_prefix": i64::from(self.customer_zip_code_prefix),
            "customer_city": &self.customer_city,
            "customer_state": &self.customer_state,
        }
    }
}

/// Writes `per_region` records per region as a CSV `regiondb import` reads
/// (the Olist header): a seed for the read workloads that goes in through
/// the bulk path. Answers how many rows.
pub fn write_seed(
    path: &std::path::Path,
    regions: &[Region],
    per_region: u64,
) -> std::io::Result<u64> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "{}", crate::generate::HEADER)?;
    let tag = format!("{}i", run_tag());
    let mut rows = 0;
    for (w, region) in regions.iter().enumerate() {
        for n in 0..per_region {
            let r = BenchRecord::new(&tag, w, n, region);
            writeln!(
                out,
                "\"{}\",\"{}\",\"{}\",\"{}\",\"{}\"",
                r.customer_id,
                r.customer_unique_id,
                r.customer_zip_code_prefix,
                r.customer_city,
                r.customer_state
            )?;
            rows += 1;
        }
    }
    out.flush()?;
    Ok(rows)
}

/// The customer ids of a seed CSV (its first column).
pub fn read_ids(path: &std::path::Path) -> std::io::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(|id| id.trim_matches('"').to_owned())
        .filter(|id| !id.is_empty())
        .collect())
}

/// A short tag that keeps this run's ids apart from every other run's.
pub fn run_tag() -> String {
    format!("{:x}", crate::domain::now_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RegionMap;

    #[test]
    fn records_stay_in_their_region_and_are_unique() {
        let map = RegionMap::default_regions();
        let region = &map.regions()[1];
        let a = BenchRecord::new("r", 0, 1, region);
        let b = BenchRecord::new("r", 1, 1, region);
        assert_ne!(a.customer_id, b.customer_id);
        assert_ne!(a.customer_unique_id, b.customer_unique_id);
        for n in 0..1000 {
            let zip = BenchRecord::new("r", 3, n, region).customer_zip_code_prefix;
            assert!((region.zips.min..=region.zips.max).contains(&zip));
        }
    }
}
