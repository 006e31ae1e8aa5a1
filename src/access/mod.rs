//! Sign-in state shared by every instance, kept in Redis next to the node
//! statuses: the open page sessions (`sessions`) and the wrong admin tokens
//! each client address has sent (`attempts`). Losing Redis's data fails
//! closed: every session ends, no address is remembered as locked out.

use std::net::IpAddr;

use crate::nodes::RedisLink;

use crate::config::SignInLimits;
use crate::nodes::StatusError;

mod attempts;
mod sessions;

pub use attempts::Attempt;

/// The sorted set of open sessions: member = session id, score = expiry
/// (Unix seconds). `redis-cli DEL regiondb:sessions` ends them all.
pub const SESSIONS_KEY: &str = "regiondb:sessions";
/// Prefix of the per-address failure counters.
pub const FAILURES_PREFIX: &str = "regiondb:sign-in-failures:";

/// A Redis call failed (the same error, and short reason, as the statuses').
pub type AccessError = StatusError;

/// The sign-in state's Redis adapter. Cheap to clone.
#[derive(Clone)]
pub struct Access {
    conn: RedisLink,
    limits: SignInLimits,
}

impl Access {
    /// Over the statuses' Redis connection (see `NodeStatuses::redis`).
    pub fn new(conn: RedisLink, limits: SignInLimits) -> Access {
        Access { conn, limits }
    }
}

/// The address failures are counted by: an IPv4 address, or an IPv6
/// address's /64 (one host usually holds a whole /64).
pub fn client_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix() {
        let key = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2::9"), key("2001:db8:1:2:ffff::1"));
    }
}
