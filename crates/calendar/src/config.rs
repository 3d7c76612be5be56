//! The `[calendar]` table of serval.toml, with its defaults in one place.

use serde::{Deserialize, Serialize};
pub use serval_core::config::{Listen, Problems};

/// The `[calendar]` table.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    pub enabled: bool,
    /// CalDAV over plain HTTP; one address or a list. 8008 was iCal Server's port.
    pub listen: Listen,
    /// CalDAV over HTTPS with the `[tls]` certificate (8443 classic); empty: none.
    pub tls_listen: Listen,
    /// Largest calendar object in bytes (CALDAV:max-resource-size). CalendarServer: 1 MB.
    pub max_resource_size: usize,
    /// Most occurrences one recurring event contributes to a query, expansion or free-busy.
    /// CalendarServer's MaxAllowedInstances is 3000.
    pub max_instances: usize,
    /// Accept clear-text (Basic) passwords over plain HTTP from non-loopback clients. Digest
    /// is accepted from anywhere: it never sends the password.
    pub allow_insecure_auth: bool,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: Listen::one("127.0.0.1:8008"),
            tls_listen: Listen(Vec::new()),
            max_resource_size: 1024 * 1024,
            max_instances: 3000,
            allow_insecure_auth: false,
        }
    }
}

/// Upper bound for `max_resource_size`: bodies are held in memory while parsed.
const MAX_RESOURCE_SIZE_LIMIT: usize = 64 * 1024 * 1024;

impl CalendarConfig {
    /// Adds every problem of the table to `problems`, each with its dotted key.
    pub fn validate(&self, problems: &mut Problems) {
        if self.enabled && self.listen.addrs().is_empty() && self.tls_listen.addrs().is_empty() {
            problems.error(
                "calendar.listen",
                "needs at least one address (or calendar.tls_listen) when enabled",
            );
        }
        if self.max_resource_size < 1024 || self.max_resource_size > MAX_RESOURCE_SIZE_LIMIT {
            problems.error(
                "calendar.max_resource_size",
                format!(
                    "must be between 1024 and {MAX_RESOURCE_SIZE_LIMIT} bytes, not {}",
                    self.max_resource_size
                ),
            );
        }
        if self.max_instances == 0 || self.max_instances > 100_000 {
            problems.error(
                "calendar.max_instances",
                format!("must be between 1 and 100000, not {}", self.max_instances),
            );
        }
        if !self.allow_insecure_auth && self.listen.addrs().iter().any(|a| !a.ip().is_loopback()) {
            problems.warning(
                "calendar.listen",
                "clients on other hosts can log in over plain HTTP only with Digest (Basic passwords are refused): use calendar.tls_listen, or set calendar.allow_insecure_auth = true on a trusted network",
            );
        }
        if self.allow_insecure_auth {
            serval_core::config::warn_plain_public(
                "calendar.listen",
                &self.listen,
                "calendars",
                problems,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_unknown_keys_are_refused() {
        let mut problems = Problems::new();
        CalendarConfig::default().validate(&mut problems);
        assert!(problems.is_empty());
        let parsed: CalendarConfig =
            toml::from_str("listen = [\"127.0.0.1:1\", \"[::1]:2\"]\nmax_instances = 10").unwrap();
        assert_eq!(parsed.listen.addrs().len(), 2);
        assert!(toml::from_str::<CalendarConfig>("bogus = 1").is_err());
    }

    #[test]
    fn public_plain_listener_warns() {
        let mut problems = Problems::new();
        CalendarConfig {
            listen: Listen::one("0.0.0.0:8008"),
            ..CalendarConfig::default()
        }
        .validate(&mut problems);
        assert_eq!(problems.iter().count(), 1);
        assert!(!problems.has_errors());
    }

    #[test]
    fn bad_values_are_reported_with_keys() {
        let mut problems = Problems::new();
        CalendarConfig {
            max_instances: 0,
            max_resource_size: 1,
            ..CalendarConfig::default()
        }
        .validate(&mut problems);
        assert_eq!(problems.iter().count(), 2);
    }
}
