//! Domain types: what a customer, a region, a version and a stored copy *are*.
//!
//! Nothing in here performs I/O. Every type is built by a `parse` function that
//! either returns a value that is valid by construction or a [`FieldError`]
//! naming the offending input field ("parse, don't validate").

mod copy;
mod customer;
mod drain;
mod filter;
mod region;
mod status;
mod version;
mod view;

pub use copy::{CopyTarget, CustomerCopy, Record, Tombstone};
pub use customer::{Customer, CustomerId, Text, ZipPrefix};
pub use drain::{
    Drain, DrainTracker, HISTORY_MS, QueuePoint, QueueSample, RATE_WINDOW_MS, human_seconds,
    lag_seconds,
};
pub use filter::{MAX_PAGE_SIZE, RecordFilter};
pub use region::{NodeId, Region, RegionMap, RegionMapError, ZipRange};
pub use status::{BadStatus, NodeStatus, StatusRecord, StatusSource};
pub use version::{
    INSTANCE_SLOTS, MAX_FOLLOW_MICROS, MAX_FUTURE_MICROS, Version, VersionClock, now_micros,
    now_millis, now_secs,
};
pub use view::{NodeView, rfc3339};

/// A problem with one input field, reported to clients as
/// `{"error": message, "field": field}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
