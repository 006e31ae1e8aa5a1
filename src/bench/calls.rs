//! What the workers of each workload send.

use hyper::Method;

use super::http::Call;
use super::records::BenchRecord;
use crate::domain::Region;

/// `POST /create-customer` of record `n` of `worker`, homed in one of
/// `regions` in turn.
pub fn create_call(tag: &str, worker: usize, n: u64, regions: &[Region]) -> Call {
    let region = &regions[(worker + n as usize) % regions.len()];
    Call {
        method: Method::POST,
        path: "/create-customer".into(),
        body: Some(BenchRecord::new(tag, worker, n, region).json()),
    }
}

/// A page of up to 50 records of a 2,000-wide zip range in some region.
pub fn filter_call(worker: usize, n: u64, regions: &[Region]) -> Call {
    let region = &regions[(worker + n as usize) % regions.len()];
    let span = (region.zips.max - region.zips.min)
        .saturating_sub(2000)
        .max(1);
    let offset = u32::try_from((n * 7919 + worker as u64 * 31) % u64::from(span)).unwrap_or(0);
    let min = region.zips.min + offset;
    Call {
        method: Method::GET,
        path: format!(
            "/filter-records?zipRangeMin={min}&zipRangeMax={}&limit=50",
            min + 2000
        ),
        body: None,
    }
}

pub fn lookup_call(worker: usize, n: u64, ids: &[String]) -> Call {
    let id = match ids.len() {
        0 => "none",
        len => ids[((n * 7919 + worker as u64 * 104_729) % len as u64) as usize].as_str(),
    };
    Call {
        method: Method::GET,
        path: format!("/customers/{id}"),
        body: None,
    }
}
