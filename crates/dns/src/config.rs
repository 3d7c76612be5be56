//! The `[dns]` table.

use serde::{Deserialize, Serialize};
pub use serval_core::cidr::Cidr;
pub use serval_core::config::{ByteSize, HumanDuration, Listen, Problems};

use crate::zone::LocalZone;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    pub enabled: bool,
    /// UDP and TCP on each address.
    pub listen: Listen,
    /// Clients that may ask; everyone else gets REFUSED (UDP and TCP).
    pub allow: Vec<Cidr>,
    /// Resolvers names outside the local zones are forwarded to ("192.0.2.53" or
    /// "192.0.2.53:53"), tried in order. Empty: full recursion from the root.
    pub forwarders: Vec<String>,
    /// Root hints in named.root format, instead of the compiled-in ones; empty: compiled-in.
    pub root_hints_file: String,
    /// Presentation-format DS/DNSKEY lines for "." instead of the compiled-in root anchors.
    pub trust_anchors_file: String,
    /// Validate answers with DNSSEC: AD on secure ones, SERVFAIL (EDE 6-12) on bogus ones
    /// unless the client sets CD.
    pub dnssec: bool,
    /// Answer from expired cache entries (TTL 30 s, EDE 3) when the authorities do not
    /// answer within 1.8 s (RFC 8767); kept up to a day past expiry.
    pub serve_stale: bool,
    /// Most memory the cache holds (records as wire bytes plus a fixed cost per entry).
    pub cache_size: ByteSize,
    /// Test switch: ask name servers on 127.0.0.0/8 and ::1 and keep loopback glue.
    pub allow_loopback_upstreams: bool,
    /// How long one forwarder gets to answer before the next is tried.
    pub forward_timeout: HumanDuration,
    /// One line per query in `dns-access.log` (client, transport, question, code, time).
    pub query_log: bool,
    #[serde(rename = "local_zone")]
    pub local_zones: Vec<LocalZoneConfig>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            // Off until full recursion lands: with neither recursion nor forwarders it answers
            // only its local zones.
            enabled: false,
            listen: Listen::one("127.0.0.1:5353"),
            allow: ["127.0.0.0/8", "::1/128"]
                .into_iter()
                .filter_map(|c| Cidr::try_from(c.to_string()).ok())
                .collect(),
            forwarders: Vec::new(),
            root_hints_file: String::new(),
            trust_anchors_file: String::new(),
            dnssec: true,
            serve_stale: true,
            cache_size: ByteSize(64 << 20),
            allow_loopback_upstreams: false,
            forward_timeout: HumanDuration(std::time::Duration::from_secs(2)),
            query_log: false,
            local_zones: Vec::new(),
        }
    }
}

/// One `[[dns.local_zone]]`: names the office answers itself.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LocalZoneConfig {
    /// The zone's apex, e.g. "office.test".
    pub name: String,
    /// Zone-file lines: owner relative to the zone (`@` for the apex), an optional TTL, the
    /// type and its data, e.g. "printer A 192.168.1.50", "@ MX 10 mail.office.test.".
    pub records: Vec<String>,
    /// TTL of records that give none.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

fn default_ttl() -> u32 {
    3600
}

impl DnsConfig {
    pub fn validate(&self, problems: &mut Problems) {
        if !self.enabled {
            return;
        }
        if self.listen.addrs().is_empty() {
            problems.error("dns.listen", "needs at least one address when enabled");
        }
        if self.allow.is_empty() {
            problems.warning(
                "dns.allow",
                "empty: every client is refused; list the office's networks",
            );
        }
        for (i, f) in self.forwarders.iter().enumerate() {
            if let Err(e) = parse_forwarder(f) {
                problems.error(format!("dns.forwarders[{i}]"), e);
            }
        }
        if !self.root_hints_file.is_empty() {
            let path = std::path::Path::new(&self.root_hints_file);
            if let Err(e) = crate::recursor::roots::read_hints(path) {
                problems.error("dns.root_hints_file", e.to_string());
            }
        }
        if !self.trust_anchors_file.is_empty() {
            let path = std::path::Path::new(&self.trust_anchors_file);
            if let Err(e) = crate::recursor::dnssec::Anchors::read(path) {
                problems.error("dns.trust_anchors_file", e);
            }
        }
        if self.allow_loopback_upstreams {
            problems.warning(
                "dns.allow_loopback_upstreams",
                "on: name servers on loopback are asked (a test switch; a referral to 127.0.0.1 could make Serval ask itself)",
            );
        }
        if self.cache_size.0 < 1 << 20 {
            problems.error("dns.cache_size", "must be at least 1MB");
        }
        if self.forward_timeout.0.is_zero() {
            problems.error("dns.forward_timeout", "must be more than 0 s");
        }
        for (i, zone) in self.local_zones.iter().enumerate() {
            if let Err(e) = LocalZone::build(zone) {
                problems.error(format!("dns.local_zone[{i}]"), e.to_string());
            }
        }
        let mut names: Vec<String> = self
            .local_zones
            .iter()
            .map(|z| z.name.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            problems.error("dns.local_zone", "two local zones have the same name");
        }
    }
}

/// A forwarder's address: an IP with an optional port (53 by default).
pub fn parse_forwarder(text: &str) -> Result<std::net::SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!("`{text}` is not an address like \"192.0.2.53\" or \"[2001:db8::53]:53\"")
        })
}
