//! The web surface's settings: where users reach the service
//! (`PUBLIC_URL`), which `Host` names it answers (`ALLOWED_HOSTS`), and how
//! repeated wrong admin tokens are slowed down and refused (`SIGN_IN_*`).
//! How they are enforced is in `http::security` and `http::auth`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use axum::http::Uri;

use super::ConfigError;
use super::env::Env;

#[derive(Debug, Clone)]
pub struct WebConfig {
    /// `PUBLIC_URL`'s origin (`https://db.example.com`, lowercase, no
    /// default port): a form posted from it is same-origin even when a
    /// proxy changes the `Host` header.
    pub public_origin: Option<String>,
    pub allowed_hosts: AllowedHosts,
    pub sign_in: SignInLimits,
}

/// Wrong admin tokens from one client address (see `access`).
#[derive(Debug, Clone, Copy)]
pub struct SignInLimits {
    /// Wrong tokens in a row before the address is refused (429).
    pub max_failures: u32,
    /// How long refusal lasts, counted from the last wrong token; failures
    /// further apart than this start again from zero.
    pub lockout: Duration,
    /// The wait before checking a token after one failure; it doubles with
    /// each further failure, up to [`MAX_DELAY`].
    pub delay: Duration,
}

/// The longest wait before a token is checked.
pub const MAX_DELAY: Duration = Duration::from_secs(4);

impl SignInLimits {
    /// The wait before checking a token after `failures` wrong ones.
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let doubled = self.delay.saturating_mul(1 << (failures - 1).min(16));
        doubled.min(MAX_DELAY)
    }
}

/// The `Host` names (and addresses) this service answers. A DNS rebinding
/// attack always reaches it under a name the attacker owns, never under an
/// address, so addresses are only limited to the ones it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    /// `*`: every host (the check is off).
    any: bool,
    /// Listening on every address (0.0.0.0 or ::): any address literal.
    any_address: bool,
    addresses: Vec<IpAddr>,
    /// Lowercase names; `.example.com` also matches its subdomains.
    names: Vec<String>,
}

impl AllowedHosts {
    /// Whether `host` (a `Host` header or URI authority, with or without
    /// its port) is one this service answers.
    pub fn allows(&self, host: &str) -> bool {
        let Some(host) = host_part(host) else {
            return false;
        };
        if self.any {
            return true;
        }
        if let Ok(address) = host.parse::<IpAddr>() {
            return self.any_address || self.addresses.contains(&address);
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|name| match name.strip_prefix('.') {
            Some(domain) => host == domain || host.ends_with(name.as_str()),
            None => host == *name,
        })
    }

    /// The defaults (the bind address, the loopback addresses, `localhost`
    /// and `public_host`) plus `ALLOWED_HOSTS`.
    fn read(env: &Env, bind: IpAddr, public_host: Option<String>) -> Result<Self, ConfigError> {
        let mut hosts = AllowedHosts {
            any: false,
            any_address: bind.is_unspecified(),
            addresses: vec![bind, Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()],
            names: vec!["localhost".to_owned()],
        };
        match public_host.as_deref().map(str::parse::<IpAddr>) {
            Some(Ok(address)) => hosts.addresses.push(address),
            Some(Err(_)) => hosts.names.extend(public_host),
            None => {}
        }
        for entry in env.var("ALLOWED_HOSTS").unwrap_or_default().split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                hosts.any = true;
            } else if let Ok(address) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                hosts.addresses.push(address);
            } else if is_host_name(entry.strip_prefix('.').unwrap_or(&entry)) {
                hosts.names.push(entry);
            } else {
                return Err(ConfigError(format!(
                    "ALLOWED_HOSTS: {entry:?} is not a host name, an IP address, \
                     .domain (with its subdomains) or *"
                )));
            }
        }
        Ok(hosts)
    }
}

/// The host of `host[:port]` or `[v6]:port`, without brackets.
fn host_part(authority: &str) -> Option<&str> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return (after.is_empty() || after.strip_prefix(':').is_some_and(is_port)).then_some(host);
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if is_port(port) => host,
        Some(_) => return None,
        None => authority,
    };
    (!host.is_empty()).then_some(host)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl WebConfig {
    pub(super) fn read(env: &Env, bind: IpAddr) -> Result<WebConfig, ConfigError> {
        let public = env.var("PUBLIC_URL").map(|u| public_url(&u)).transpose()?;
        let (public_origin, public_host) = public.unzip();
        Ok(WebConfig {
            public_origin,
            allowed_hosts: AllowedHosts::read(env, bind, public_host)?,
            sign_in: SignInLimits {
                max_failures: env.number("SIGN_IN_MAX_FAILURES", 10, 1, 10_000)? as u32,
                lockout: Duration::from_secs(env.number("SIGN_IN_LOCKOUT_SECS", 900, 1, 86_400)?),
                delay: env.millis("SIGN_IN_DELAY_MS", 250, 0)?,
            },
        })
    }
}

/// `PUBLIC_URL`'s origin and host name.
fn public_url(url: &str) -> Result<(String, String), ConfigError> {
    let bad = || {
        ConfigError(format!(
            "PUBLIC_URL: must be the http:// or https:// address users open, \
             such as https://regiondb.example.com, got {url:?}"
        ))
    };
    let uri: Uri = url.parse().map_err(|_| bad())?;
    let scheme = uri
        .scheme_str()
        .map(str::to_ascii_lowercase)
        .ok_or_else(bad)?;
    let authority = uri.authority().ok_or_else(bad)?;
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad()),
    };
    if authority.as_str().contains('@') || uri.query().is_some() {
        return Err(bad());
    }
    let host = authority.host().to_ascii_lowercase();
    let origin = match authority.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    };
    Ok((origin, host.trim_matches(['[', ']']).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)], bind: &str) -> Result<WebConfig, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        WebConfig::read(&Env::new(&get, Vec::new()), bind.parse().unwrap())
    }

    #[test]
    fn by_default_the_bind_address_loopback_and_localhost_are_allowed() {
        let hosts = read(&[], "127.0.0.1").unwrap().allowed_hosts;
        for ok in [
            "127.0.0.1:8000",
            "localhost:8000",
            "LOCALHOST",
            "[::1]:8000",
            "localhost.",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:8000",
            "localhost.evil.example",
            "10.0.0.7:8000",
            "",
            ":8000",
            "localhost:80:80",
            "[::1]x",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
        // Bound to every address: every address literal, still no other name.
        let hosts = read(&[], "0.0.0.0").unwrap().allowed_hosts;
        assert!(hosts.allows("10.0.0.7:8000") && hosts.allows("[fe80::1]"));
        assert!(!hosts.allows("evil.example"));
    }

    #[test]
    fn public_url_and_allowed_hosts_add_names() {
        let web = read(
            &[
                ("PUBLIC_URL", "HTTPS://DB.Example.com:443/"),
                ("ALLOWED_HOSTS", " app , .corp.example, 10.1.2.3 "),
            ],
            "127.0.0.1",
        )
        .unwrap();
        assert_eq!(web.public_origin.as_deref(), Some("https://db.example.com"));
        let hosts = web.allowed_hosts;
        for ok in [
            "db.example.com",
            "app:8000",
            "corp.example",
            "a.b.corp.example",
            "10.1.2.3",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        assert!(!hosts.allows("evilcorp.example") && !hosts.allows("example.com"));
        let web = read(&[("PUBLIC_URL", "http://x.example:8080")], "127.0.0.1").unwrap();
        assert_eq!(web.public_origin.as_deref(), Some("http://x.example:8080"));
        for (url, host) in [
            ("http://10.0.0.5:8000", "10.0.0.5:8000"),
            ("http://[fd00::5]/", "[fd00::5]"),
        ] {
            let web = read(&[("PUBLIC_URL", url)], "127.0.0.1").unwrap();
            assert!(web.allowed_hosts.allows(host), "{url}");
        }
        let any = read(&[("ALLOWED_HOSTS", "*")], "127.0.0.1").unwrap();
        assert!(any.allowed_hosts.allows("evil.example"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("ALLOWED_HOSTS", "evil example"),
            ("ALLOWED_HOSTS", "http://x"),
            ("PUBLIC_URL", "db.example.com"),
            ("PUBLIC_URL", "ftp://db.example.com"),
            ("PUBLIC_URL", "https://user@db.example.com"),
            ("SIGN_IN_MAX_FAILURES", "0"),
        ] {
            let err = read(&[(name, value)], "127.0.0.1").unwrap_err().to_string();
            assert!(err.contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn the_wait_doubles_up_to_its_cap() {
        let limits = read(&[], "127.0.0.1").unwrap().sign_in;
        assert_eq!(limits.max_failures, 10);
        assert_eq!(limits.lockout, Duration::from_secs(900));
        let waits: Vec<u128> = (0..7).map(|n| limits.delay_after(n).as_millis()).collect();
        assert_eq!(waits, [0, 250, 500, 1000, 2000, 4000, 4000]);
    }
}
