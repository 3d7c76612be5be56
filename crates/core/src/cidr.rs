//! IP allow/deny lists written as CIDR blocks (`"10.0.0.0/8"`, `"2001:db8::/32"`, or a bare
//! address for one host), shared by every service's allow/deny keys (`[stream] allow/deny`,
//! `[dns] allow`, ...). Parsing and matching come from the `ipnet` crate; this module adds the
//! serde spelling and the deny-wins rule.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Most blocks in one list: matching is a linear scan per connection.
pub const MAX_CIDR_BLOCKS: usize = 4096;

/// One CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr(pub IpNet);

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let trimmed = text.trim();
        if let Ok(net) = trimmed.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        trimmed
            .parse::<IpAddr>()
            .map(|ip| Cidr(IpNet::from(ip)))
            .map_err(|_| format!("`{text}` is not an address or CIDR block like \"10.0.0.0/8\""))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client reaching an IPv6 listener shows up as ::ffff:a.b.c.d; match it
        // against IPv4 blocks too.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

/// Whether `ip` passes an allow list (empty: everyone) and a deny list; deny wins.
pub fn ip_permitted(ip: IpAddr, allow: &[Cidr], deny: &[Cidr]) -> bool {
    if deny.iter().any(|block| block.contains(ip)) {
        return false;
    }
    allow.is_empty() || allow.iter().any(|block| block.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        Cidr::try_from(text.to_string()).unwrap()
    }

    #[test]
    fn blocks_and_hosts_parse_and_match() {
        let lan = cidr("192.168.1.77/24");
        assert_eq!(lan.to_string(), "192.168.1.0/24");
        assert!(lan.contains("192.168.1.200".parse().unwrap()));
        assert!(lan.contains("::ffff:192.168.1.5".parse().unwrap()));
        assert!(!lan.contains("192.168.2.1".parse().unwrap()));
        assert!(cidr("::1").contains("::1".parse().unwrap()));
        assert!(Cidr::try_from("10.0.0.0/33".to_string()).is_err());
        assert!(Cidr::try_from("nonsense".to_string()).is_err());
    }

    #[test]
    fn deny_wins_and_empty_allow_admits_all() {
        let ip = "10.1.2.3".parse().unwrap();
        assert!(ip_permitted(ip, &[], &[]));
        assert!(ip_permitted(ip, &[cidr("10.0.0.0/8")], &[]));
        assert!(!ip_permitted(
            ip,
            &[cidr("10.0.0.0/8")],
            &[cidr("10.1.0.0/16")]
        ));
        assert!(!ip_permitted(ip, &[cidr("192.168.0.0/16")], &[]));
    }
}
