//! The rules every variable follows: surrounding white space is ignored,
//! an empty value counts as unset, and a bad value is one line naming the
//! variable and what it must be.

use std::time::Duration;

use super::ConfigError;

/// The variables, read through a lookup function (the process environment,
/// or a map in tests).
pub(super) struct Env<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    /// Every variable's name, for the settings named by a prefix
    /// (`KAFKA_PROPERTY_*`); empty when only looked up by name.
    names: Vec<String>,
}

impl<'a> Env<'a> {
    pub(super) fn new(get: &'a dyn Fn(&str) -> Option<String>, names: Vec<String>) -> Env<'a> {
        Env { get, names }
    }

    /// The names starting with `prefix`, sorted.
    pub(super) fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = (self.names.iter())
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The trimmed value; `None` when unset or empty.
    pub(super) fn var(&self, name: &str) -> Option<String> {
        (self.get)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A whole number from `min` to `max`, `default` when unset.
    pub(super) fn number(
        &self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        match self.var(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ConfigError(format!(
                    "{name}: must be a whole number from {min} to {max}, got {v:?}"
                ))),
            },
        }
    }

    /// Milliseconds from `min` to 600000 (ten minutes).
    pub(super) fn millis(
        &self,
        name: &str,
        default: u64,
        min: u64,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, min, 600_000)
            .map(Duration::from_millis)
    }

    /// Like [`Env::millis`], where 0 means "off" (`None`).
    pub(super) fn millis_or_off(
        &self,
        name: &str,
        default: u64,
    ) -> Result<Option<Duration>, ConfigError> {
        let every = self.millis(name, default, 0)?;
        Ok((!every.is_zero()).then_some(every))
    }

    /// A port number, `default` when unset.
    pub(super) fn port(&self, name: &str, default: u16) -> Result<u16, ConfigError> {
        self.var(name).map_or(Ok(default), |v| parse_port(name, &v))
    }

    /// The value, checked to start with one of `schemes`.
    pub(super) fn url(
        &self,
        name: &str,
        default: &str,
        schemes: &[&str],
    ) -> Result<String, ConfigError> {
        let url = self.var(name).unwrap_or_else(|| default.to_owned());
        check_scheme(name, &url, schemes)?;
        Ok(url)
    }
}

pub(super) fn parse_port(name: &str, value: &str) -> Result<u16, ConfigError> {
    match value.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ConfigError(format!(
            "{name}: must be a port number from 1 to 65535, got {value:?}"
        ))),
    }
}

pub(super) fn check_scheme(name: &str, url: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    if schemes.iter().any(|s| url.starts_with(s)) {
        return Ok(());
    }
    Err(ConfigError(format!(
        "{name}: must start with {}",
        schemes.join(" or ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_unset_and_bad_numbers_name_their_range() {
        let get = |name: &str| match name {
            "BLANK" => Some("  ".to_owned()),
            "BIG" => Some("700000".to_owned()),
            _ => None,
        };
        let env = Env::new(&get, Vec::new());
        assert_eq!(env.var("BLANK"), None);
        assert_eq!(env.number("BLANK", 7, 1, 9).unwrap(), 7);
        let err = env.millis("BIG", 1, 0).unwrap_err().to_string();
        assert!(
            err.contains("BIG: must be a whole number from 0 to 600000"),
            "{err}"
        );
        assert_eq!(env.millis_or_off("UNSET", 0).unwrap(), None);
    }
}
