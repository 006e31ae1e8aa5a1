//! What tests are made of: regions, customers, zips in each region, times.

use serde_json::{Value, json};

pub const NODES: [&str; 3] = ["region_1", "region_2", "region_3"];

/// One region of the map a test runs with: its zips and its replica node.
#[derive(Clone, Debug)]
pub struct RegionSpec {
    pub id: String,
    pub min: u32,
    pub max: u32,
    pub replica: String,
}

/// The product's default map for 3 regions; otherwise `n` regions
/// splitting the zips evenly, each replicated on the one before it (the
/// default ring's rule).
pub fn region_specs(n: usize) -> Vec<RegionSpec> {
    if n == 3 {
        let spec = |id: &str, min, max, replica: &str| RegionSpec {
            id: id.into(),
            min,
            max,
            replica: replica.into(),
        };
        return vec![
            spec("region_1", 1000, 39999, "region_3"),
            spec("region_2", 40000, 69999, "region_1"),
            spec("region_3", 70000, 99999, "region_2"),
        ];
    }
    let (first, last) = (1000u32, 99999u32);
    let width = (last - first + 1) / n as u32;
    (0..n)
        .map(|i| RegionSpec {
            id: format!("region_{}", i + 1),
            min: first + i as u32 * width,
            max: if i + 1 == n {
                last
            } else {
                first + (i as u32 + 1) * width - 1
            },
            replica: format!("region_{}", (i + n - 1) % n + 1),
        })
        .collect()
}

/// A regions file (see docs/configuration.md) for `specs`.
pub fn regions_file(specs: &[RegionSpec]) -> String {
    specs
        .iter()
        .map(|r| {
            format!(
                "[[region]]\nid = \"{}\"\nzip_min = {}\nzip_max = {}\nreplica = \"{}\"\n",
                r.id, r.min, r.max, r.replica
            )
        })
        .collect()
}

/// The wall clock in microseconds (the unit of versions).
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A valid customer body for zip `zip`.
pub fn customer(id: &str, zip: u32) -> Value {
    json!({
        "customer_id": id,
        "customer_unique_id": format!("unique-{id}"),
        "customer_zip_code_prefix": zip,
        "customer_city": "sao paulo",
        "customer_state": "SP",
    })
}

/// Zip codes inside each default region.
pub const ZIP_1: u32 = 1310;

pub const ZIP_2: u32 = 45000;

pub const ZIP_3: u32 = 80000;
