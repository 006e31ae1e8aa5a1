use std::fmt;
use std::str::FromStr;

/// Whether a node takes writes directly (`available`) or has them parked in
/// its Kafka topic (`unavailable`). Stored in Redis as exactly these words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum NodeStatus {
    Available,
    Unavailable,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Available => "available",
            NodeStatus::Unavailable => "unavailable",
        }
    }

    pub fn is_available(self) -> bool {
        self == NodeStatus::Available
    }
}

impl serde::Serialize for NodeStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for NodeStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = String::deserialize(deserializer)?;
        word.parse().map_err(serde::de::Error::custom)
    }
}

/// Who set a node's status: an operator (the API, a page, `redis-cli`) or
/// the failure detector.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum StatusSource {
    Manual,
    Probe,
}

/// What is recorded next to a status (hash `node_status_source`): who set
/// it, to what, and when (Unix milliseconds). The status is kept so that a
/// change made behind regiondb's back (`redis-cli HSET node_statuses ...`)
/// is recognised: the record then no longer matches the status, and the
/// status counts as an operator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusRecord {
    pub source: StatusSource,
    pub status: NodeStatus,
    pub at_ms: i64,
}

impl StatusRecord {
    /// Who set `status` and when (if known), given the record found next to
    /// it. No record, or one for another status: an operator, at an
    /// unknown time.
    pub fn explain(
        record: Option<&StatusRecord>,
        status: NodeStatus,
    ) -> (StatusSource, Option<i64>) {
        match record {
            Some(r) if r.status == status => (r.source, Some(r.at_ms)),
            _ => (StatusSource::Manual, None),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status must be \"available\" or \"unavailable\", got {0:?}")]
pub struct BadStatus(pub String);

impl FromStr for NodeStatus {
    type Err = BadStatus;

    /// Exact words only: a status is data other programs (redis-cli, scripts)
    /// write too, and guessing at "Available " or "up" would hide their bugs.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "available" => Ok(NodeStatus::Available),
            "unavailable" => Ok(NodeStatus::Unavailable),
            other => Err(BadStatus(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_two_words() {
        for s in [NodeStatus::Available, NodeStatus::Unavailable] {
            assert_eq!(s.as_str().parse::<NodeStatus>(), Ok(s));
        }
        assert!("Available".parse::<NodeStatus>().is_err());
        assert!("".parse::<NodeStatus>().is_err());
    }

    #[test]
    fn a_record_explains_only_the_status_it_was_written_for() {
        let record = StatusRecord {
            source: StatusSource::Probe,
            status: NodeStatus::Unavailable,
            at_ms: 42,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            r#"{"source":"probe","status":"unavailable","at_ms":42}"#
        );
        assert_eq!(serde_json::from_str::<StatusRecord>(&json).unwrap(), record);
        assert_eq!(
            StatusRecord::explain(Some(&record), NodeStatus::Unavailable),
            (StatusSource::Probe, Some(42))
        );
        // Switched back on with redis-cli: the record is stale.
        assert_eq!(
            StatusRecord::explain(Some(&record), NodeStatus::Available),
            (StatusSource::Manual, None)
        );
        assert_eq!(
            StatusRecord::explain(None, NodeStatus::Available),
            (StatusSource::Manual, None)
        );
    }
}
