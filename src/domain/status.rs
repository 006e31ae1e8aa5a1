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
}
