//! The `[stream]` table of serval.toml: what the operator sets, with the defaults in one place.
//!
//! Values that people write by hand (`rtp_ports = "6970-6999"`, `session_timeout = "60s"`,
//! `max_bandwidth = "100Mbit"`) are parsed into typed values at load time, so the rest of the
//! crate never sees a string; [`StreamConfig::validate`] then reports every remaining problem
//! with its dotted key.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
pub use serval_core::config::{HumanDuration, Listen, Problems};

pub use crate::access::ip::Cidr;
pub use crate::access::policy::AccessRuleConfig;
pub use crate::access::AuthScheme;

/// The `[stream]` table.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    pub enabled: bool,
    /// RTSP listen addresses; one string or a list. 554 and 7070 are the classic ports.
    pub listen: Listen,
    /// The movies folder; empty means `<data_dir>/media` (created at start if missing).
    pub media_dir: PathBuf,
    /// Server UDP ports for RTP (even) and RTCP (odd). A firewall range, not a session limit:
    /// every UDP session shares one pair and RTCP is told apart by the client's address.
    pub rtp_ports: PortRange,
    /// A session with no RTSP request and no RTCP for this long is closed.
    pub session_timeout: HumanDuration,
    /// A session that was set up but never played is closed after this long, whatever its
    /// keep-alives (SETUP floods hold nothing for long); such sessions are also the first closed
    /// to make room when a cap is reached, so a flood never refuses a client that goes on to PLAY.
    pub unplayed_session_timeout: HumanDuration,
    /// Concurrent RTSP connections; more are answered 503 and closed (after closing the oldest
    /// connection that never set up a session). Protects file descriptors and memory.
    pub max_connections: u32,
    /// Sum of the bitrates of open sessions; a SETUP beyond it gets 453 Not Enough Bandwidth, so
    /// the link is never oversubscribed (every viewer would stutter). `"auto"`: the speed of the
    /// fastest network interface, or 10 Gbit/s when none reports one.
    pub max_bandwidth: MaxBandwidth,
    /// Largest RTP payload in bytes (hint tracks carry their own sizes).
    pub max_payload: u16,
    /// RTSPS (RTSP over TLS with the `[tls]` certificate, RTP interleaved in the TLS stream)
    /// addresses; empty: none. 322 is the registered port.
    pub tls_listen: Listen,
    /// Client addresses allowed to connect (CIDR blocks; empty: all), then refused (deny wins).
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    /// Open RTSP connections from one client address; more are answered 503 and closed (after
    /// closing that address's oldest connection without a session). Sized for an office behind
    /// one NAT address: it stops one host from taking every connection, not a crowd of viewers.
    pub max_connections_per_ip: u32,
    /// Sessions one client address may hold at once; a SETUP beyond it closes that address's
    /// oldest never-played session, or gets 453 when all of them play. Sized for NAT too.
    pub max_sessions_per_client: u32,
    /// A request head must arrive whole within this time once its first byte has come
    /// (defeats clients that send one byte a second).
    pub request_timeout: HumanDuration,
    /// Scheme of access rules that name none: `digest` (passwords never cross the network)
    /// or `basic`.
    pub auth_scheme: AuthScheme,
    /// Per-folder access rules; the nearest of these and the `qtaccess` files applies.
    pub access: Vec<AccessRuleConfig>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            enabled: true,
            listen: Listen(vec![SocketAddr::from(([0, 0, 0, 0], 8554))]),
            media_dir: PathBuf::new(),
            rtp_ports: PortRange {
                first: 6970,
                last: 6999,
            },
            session_timeout: HumanDuration(Duration::from_secs(60)),
            unplayed_session_timeout: HumanDuration(Duration::from_secs(20)),
            // 2,000 connections: 1,000 viewers and room for as many again (RTSP-over-HTTP
            // viewers hold two each); a connection costs a few KiB.
            max_connections: 2000,
            // The old server's 100 Mbit/s refused a normal office's audience on a gigabit LAN.
            max_bandwidth: MaxBandwidth::Auto,
            max_payload: 1400,
            tls_listen: Listen(Vec::new()),
            allow: Vec::new(),
            deny: Vec::new(),
            max_connections_per_ip: 1000,
            max_sessions_per_client: 1000,
            request_timeout: HumanDuration(Duration::from_secs(10)),
            auth_scheme: AuthScheme::Digest,
            access: Vec::new(),
        }
    }
}

/// Smallest payload we accept: below it H.264 FU-A overhead dominates.
const MIN_PAYLOAD: u16 = 200;
/// Largest payload that fits a 1500-byte Ethernet MTU with IPv4, UDP and RTP headers.
const MAX_PAYLOAD: u16 = 1460;

impl StreamConfig {
    /// Adds every problem of the table to `problems`, each naming its key (`stream.rtp_ports`).
    pub fn validate(&self, problems: &mut Problems) {
        let mut warnings: Vec<(&'static str, String)> = Vec::new();
        let mut problem = |key: &'static str, message: String| problems.error(key, message);
        if self.enabled && self.listen.0.is_empty() {
            problem(
                "stream.listen",
                "needs at least one address when the service is enabled".into(),
            );
        }
        if !self.rtp_ports.first.is_multiple_of(2) {
            problem(
                "stream.rtp_ports",
                format!(
                    "must start on an even port (RTP even, RTCP odd), not {}",
                    self.rtp_ports.first
                ),
            );
        }
        if self.rtp_ports.pairs() == 0 {
            problem(
                "stream.rtp_ports",
                format!("{} holds no even/odd port pair", self.rtp_ports),
            );
        }
        if self.session_timeout.0 < Duration::from_secs(5) {
            problem(
                "stream.session_timeout",
                format!(
                    "{} is too short for clients' keep-alives (at least 5s)",
                    self.session_timeout
                ),
            );
        }
        if self.unplayed_session_timeout.0 < Duration::from_secs(5) {
            problem(
                "stream.unplayed_session_timeout",
                format!(
                    "{} leaves a player no time between SETUP and PLAY (at least 5s)",
                    self.unplayed_session_timeout
                ),
            );
        }
        if self.max_connections == 0 {
            problem("stream.max_connections", "must be at least 1".into());
        }
        if self.max_bandwidth == MaxBandwidth::Limit(Bandwidth { bits_per_second: 0 }) {
            problem("stream.max_bandwidth", "must be above zero".into());
        }
        if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&self.max_payload) {
            problem(
                "stream.max_payload",
                format!(
                    "{} is outside {MIN_PAYLOAD}..={MAX_PAYLOAD} bytes",
                    self.max_payload
                ),
            );
        }
        if self.max_connections_per_ip == 0 {
            problem("stream.max_connections_per_ip", "must be at least 1".into());
        } else if self.max_connections_per_ip < 2 {
            warnings.push((
                "stream.max_connections_per_ip",
                "1 connection per address cannot play over RTSP-over-HTTP (a viewer needs 2)"
                    .into(),
            ));
        }
        if self.max_sessions_per_client == 0 {
            problem(
                "stream.max_sessions_per_client",
                "must be at least 1".into(),
            );
        }
        if self.request_timeout.0 < Duration::from_secs(1) {
            problem(
                "stream.request_timeout",
                format!(
                    "{} is too short for a request to arrive (at least 1s)",
                    self.request_timeout
                ),
            );
        }
        if !self.media_dir.as_os_str().is_empty() && self.media_dir.is_relative() {
            problem(
                "stream.media_dir",
                format!("{} must be an absolute path", self.media_dir.display()),
            );
        }
        for (index, rule) in self.access.iter().enumerate() {
            for message in rule.problems() {
                problems.error(format!("stream.access[{index}]"), message);
            }
        }
        for (key, message) in warnings {
            problems.warning(key, message);
        }
    }
}

/// An inclusive UDP port range, written `"6970-6999"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// Number of (even RTP, odd RTCP) pairs inside the range.
    pub fn pairs(&self) -> u16 {
        let first_even = self.first.saturating_add(self.first % 2);
        if self.last <= first_even {
            return 0;
        }
        (self.last - first_even).div_ceil(2)
    }

    /// The even RTP ports of every pair, lowest first.
    pub fn rtp_ports(&self) -> impl Iterator<Item = u16> {
        let first_even = self.first.saturating_add(self.first % 2);
        (0..self.pairs()).map(move |i| first_even + 2 * i)
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let (first, last) = text
            .split_once('-')
            .ok_or_else(|| format!("`{text}` is not a range like \"6970-6999\""))?;
        let parse = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("`{s}` in `{text}` is not a port number"))
        };
        let (first, last) = (parse(first)?, parse(last)?);
        if first == 0 || last < first {
            return Err(format!("`{text}` must be low-high with ports above 0"));
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// `max_bandwidth`: `"auto"` (the link's speed) or a fixed bit rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BandwidthText")]
pub enum MaxBandwidth {
    Auto,
    Limit(Bandwidth),
}

/// What `auto` becomes when no interface reports its speed (virtual machines, loopback-only
/// hosts): high enough never to refuse what the host can send.
pub const AUTO_BANDWIDTH_FALLBACK_BPS: u64 = 10_000_000_000;

impl MaxBandwidth {
    /// The cap in bit/s, resolving `auto` with the interfaces under `sys_class_net`
    /// (`/sys/class/net` on Linux), and where the figure came from, for the start-up log.
    pub fn resolve(&self, sys_class_net: &std::path::Path) -> (u64, String) {
        match self {
            MaxBandwidth::Limit(b) => (b.bits_per_second, "stream.max_bandwidth".into()),
            MaxBandwidth::Auto => match fastest_link(sys_class_net) {
                Some((name, bps)) => (bps, format!("auto: speed of {name}")),
                None => (
                    AUTO_BANDWIDTH_FALLBACK_BPS,
                    "auto: no interface reports its speed".into(),
                ),
            },
        }
    }
}

/// The fastest non-loopback interface that reports a speed (Mbit/s in `<iface>/speed`).
fn fastest_link(sys_class_net: &std::path::Path) -> Option<(String, u64)> {
    let entries = std::fs::read_dir(sys_class_net).ok()?;
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "lo")
        .filter_map(|e| {
            let speed = std::fs::read_to_string(e.path().join("speed")).ok()?;
            let mbit: i64 = speed.trim().parse().ok()?;
            let mbit = u64::try_from(mbit).ok().filter(|&m| m > 0)?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                mbit.saturating_mul(1_000_000),
            ))
        })
        .max_by_key(|(_, bps)| *bps)
}

impl TryFrom<BandwidthText> for MaxBandwidth {
    type Error = String;
    fn try_from(value: BandwidthText) -> Result<Self, String> {
        match &value {
            BandwidthText::Text(text) if text.trim().eq_ignore_ascii_case("auto") => {
                Ok(MaxBandwidth::Auto)
            }
            _ => Bandwidth::try_from(value).map(MaxBandwidth::Limit),
        }
    }
}

impl Serialize for MaxBandwidth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxBandwidth::Auto => s.serialize_str("auto"),
            MaxBandwidth::Limit(b) => b.serialize(s),
        }
    }
}

/// A bit rate: `"100Mbit"`, `"500kbit"`, `"1Gbit"`, or a bare number of kbit/s as the old
/// server's `maximum_bandwidth` was (`102400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BandwidthText")]
pub struct Bandwidth {
    pub bits_per_second: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BandwidthText {
    Kbits(u64),
    Text(String),
}

impl TryFrom<BandwidthText> for Bandwidth {
    type Error = String;
    fn try_from(value: BandwidthText) -> Result<Self, String> {
        let text = match value {
            BandwidthText::Kbits(kbits) => {
                return Ok(Bandwidth {
                    bits_per_second: kbits.saturating_mul(1000),
                })
            }
            BandwidthText::Text(text) => text,
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let value: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a bit rate like \"100Mbit\""))?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "kbit" | "kbit/s" => 1000,
            "bit" | "bit/s" => 1,
            "mbit" | "mbit/s" => 1_000_000,
            "gbit" | "gbit/s" => 1_000_000_000,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}` (use kbit, Mbit or Gbit)"
                ))
            }
        };
        Ok(Bandwidth {
            bits_per_second: value.saturating_mul(multiplier),
        })
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} Mbit/s", self.bits_per_second as f64 / 1e6)
    }
}

// Serialized as the text an operator writes, so `serval config default` prints "6970-6999" and
// "100Mbit" rather than their parts (added by the lead for `config default`).
impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Bandwidth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.bits_per_second;
        let text = match b {
            0 => "0kbit".to_string(),
            b if b % 1_000_000_000 == 0 => format!("{}Gbit", b / 1_000_000_000),
            b if b % 1_000_000 == 0 => format!("{}Mbit", b / 1_000_000),
            b if b % 1000 == 0 => format!("{}kbit", b / 1000),
            b => format!("{b}bit"),
        };
        s.serialize_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StreamConfig, toml::de::Error> {
        toml::from_str(text)
    }

    fn problems_of(config: &StreamConfig) -> Vec<String> {
        let mut problems = Problems::new();
        config.validate(&mut problems);
        problems.iter().map(|p| p.key.clone()).collect()
    }

    #[test]
    fn empty_table_gives_the_documented_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config, StreamConfig::default());
        assert_eq!(config.rtp_ports.pairs(), 15);
        assert_eq!(config.session_timeout.0, Duration::from_secs(60));
        assert!(problems_of(&config).is_empty());
    }

    #[test]
    fn listen_accepts_one_address_or_a_list() {
        assert_eq!(
            parse(r#"listen = "127.0.0.1:554""#).unwrap().listen.0.len(),
            1
        );
        assert_eq!(
            parse(r#"listen = ["127.0.0.1:554", "[::1]:7070"]"#)
                .unwrap()
                .listen
                .0
                .len(),
            2
        );
        assert!(parse(r#"listen = "nonsense""#).is_err());
    }

    #[test]
    fn values_written_by_hand_parse() {
        let config = parse(
            "rtp_ports = \"7000-7003\"\nsession_timeout = \"2m\"\nmax_bandwidth = \"5Mbit\"\nmax_connections = 10\n",
        )
        .unwrap();
        assert_eq!(
            config.rtp_ports,
            PortRange {
                first: 7000,
                last: 7003
            }
        );
        assert_eq!(
            config.rtp_ports.rtp_ports().collect::<Vec<_>>(),
            [7000, 7002]
        );
        assert_eq!(config.session_timeout.0, Duration::from_secs(120));
        assert_eq!(
            config.max_bandwidth,
            MaxBandwidth::Limit(Bandwidth {
                bits_per_second: 5_000_000
            })
        );
        assert_eq!(
            parse("max_bandwidth = 102400").unwrap().max_bandwidth,
            MaxBandwidth::Limit(Bandwidth {
                bits_per_second: 102_400_000
            })
        );
        assert_eq!(
            parse("max_bandwidth = \"auto\"").unwrap().max_bandwidth,
            MaxBandwidth::Auto
        );
    }

    #[test]
    fn access_keys_parse_and_validate() {
        let config = parse(
            "allow = [\"10.0.0.0/8\", \"::1\"]\ndeny = [\"10.9.0.0/16\"]\nmax_connections_per_ip = 4\n\
             tls_listen = \"127.0.0.1:322\"\nauth_scheme = \"basic\"\n\
             [[access]]\npath = \"private/\"\nrequire = [\"group:staff\", \"user:bob\", \"valid-user\"]\n\
             scheme = \"digest\"\ndeny = [\"192.0.2.0/24\"]\n\
             [[access]]\npath = \"../x\"\nrequire = [\"nobody\"]\n",
        )
        .unwrap();
        assert_eq!(config.allow.len(), 2);
        assert_eq!(config.tls_listen.0.len(), 1);
        assert_eq!(config.auth_scheme, AuthScheme::Basic);
        assert_eq!(config.access[0].scheme, Some(AuthScheme::Digest));
        assert_eq!(
            problems_of(&config),
            ["stream.access[1]", "stream.access[1]"]
        );
        assert!(parse("allow = [\"10.0.0.0/99\"]").is_err());
        assert!(parse("[[access]]\npath = \"x\"\nrequires = []\n").is_err());
        // The defaults print as TOML (`serval config default`) and read back the same.
        let text = toml::to_string(&config).unwrap();
        assert_eq!(parse(&text).unwrap(), config);
        let text = toml::to_string(&StreamConfig::default()).unwrap();
        assert_eq!(parse(&text).unwrap(), StreamConfig::default());
    }

    #[test]
    fn auto_bandwidth_is_the_fastest_link_or_10_gbit() {
        let dir = tempfile::tempdir().unwrap();
        for (name, speed) in [
            ("lo", "100000"),
            ("eth0", "1000"),
            ("eth1", "-1"),
            ("wlan0", ""),
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("speed"), speed).unwrap();
        }
        assert_eq!(MaxBandwidth::Auto.resolve(dir.path()).0, 1_000_000_000);
        std::fs::write(dir.path().join("eth0").join("speed"), "-1").unwrap();
        assert_eq!(
            MaxBandwidth::Auto.resolve(dir.path()).0,
            AUTO_BANDWIDTH_FALLBACK_BPS
        );
        assert_eq!(
            MaxBandwidth::Limit(Bandwidth { bits_per_second: 7 })
                .resolve(dir.path())
                .0,
            7
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("rtsp_port = 554").is_err());
    }

    #[test]
    fn validate_names_each_bad_key() {
        let config = parse(
            "rtp_ports = \"6971-6971\"\nsession_timeout = \"1s\"\nmax_connections = 0\nmax_payload = 9000\nmedia_dir = \"rel\"\n",
        )
        .unwrap();
        let keys = problems_of(&config);
        assert_eq!(
            keys,
            [
                "stream.rtp_ports",
                "stream.rtp_ports",
                "stream.session_timeout",
                "stream.max_connections",
                "stream.max_payload",
                "stream.media_dir"
            ]
        );
        assert!(parse("rtp_ports = \"9-3\"").is_err());
        assert!(parse("session_timeout = \"5 fortnights\"").is_err());
    }
}
