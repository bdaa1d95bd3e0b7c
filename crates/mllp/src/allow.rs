//! IP allowlists: which peer addresses a listener accepts.
//!
//! A list of addresses and CIDR networks (`10.1.0.0/16`, `192.168.4.7`, `::1`,
//! `fd00::/8`). An empty list accepts everyone. IPv4 peers that arrive on an IPv6 socket
//! (`::ffff:10.1.2.3`) are compared as IPv4. Connections from other addresses are closed as
//! soon as they are accepted, before any byte is read.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The addresses a listener accepts (`allow = ["10.0.0.0/8", "127.0.0.1"]`); empty: all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAllowList(Vec<IpNet>);

impl IpAllowList {
    /// A list of networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// Whether `ip` may connect.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|n| n.contains(ip))
    }

    /// Whether the list is empty (everyone allowed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for IpAllowList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for IpAllowList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        items
            .iter()
            .map(|s| s.parse::<IpNet>())
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> IpAllowList {
        IpAllowList(items.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_and_single_addresses() {
        let l = list(&["10.1.0.0/16", "192.168.4.7", "fd00::/8", "::1"]);
        assert!(l.allows(ip("10.1.200.3")));
        assert!(!l.allows(ip("10.2.0.1")));
        assert!(l.allows(ip("192.168.4.7")));
        assert!(!l.allows(ip("192.168.4.8")));
        assert!(l.allows(ip("fd12::1")));
        assert!(!l.allows(ip("fe80::1")));
        assert!(l.allows(ip("::1")));
        // An IPv4 peer on a dual-stack socket.
        assert!(l.allows(ip("::ffff:10.1.0.9")));
        assert!(!l.allows(ip("::ffff:10.9.0.9")));
        assert!(IpAllowList::default().allows(ip("203.0.113.9")));
        assert!(list(&["0.0.0.0/0"]).allows(ip("203.0.113.9")));
        assert!(!list(&["0.0.0.0/0"]).allows(ip("2001:db8::1")));
    }

    #[test]
    fn bad_entries_are_errors() {
        for bad in ["10.0.0.0/33", "::/129", "nonsense", "10.0.0.0/x", ""] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
        let e = serde_json::from_str::<Wrapper>(r#"{"allow": ["10.0.0.0/40"]}"#).unwrap_err();
        assert!(e.to_string().contains("prefix length"), "{e}");
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Wrapper {
        allow: IpAllowList,
    }
}
