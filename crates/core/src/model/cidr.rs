//! IPv4 CIDR blocks: parsing, RFC 1918 checks, overlap and subnet carving.
//! Pure arithmetic; knows nothing of manifests or Azure.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    addr: u32,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("`{0}` is not an IPv4 CIDR block like 10.10.0.0/24")]
    Syntax(String),
    #[error("`{input}` has host bits set; the network address is {network}")]
    HostBits { input: String, network: Ipv4Cidr },
}

impl Ipv4Cidr {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Ipv4Cidr {
            addr: u32::from(addr) & mask(prefix),
            prefix,
        })
    }
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    pub fn first(&self) -> u32 {
        self.addr
    }
    pub fn last(&self) -> u32 {
        self.addr | !mask(self.prefix)
    }
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
    /// RFC 1918 private space: 10/8, 172.16/12, 192.168/16.
    pub fn is_private(&self) -> bool {
        let blocks = [
            Ipv4Cidr::from_parts(0x0a00_0000, 8),
            Ipv4Cidr::from_parts(0xac10_0000, 12),
            Ipv4Cidr::from_parts(0xc0a8_0000, 16),
        ];
        blocks.iter().any(|b| {
            b.prefix <= self.prefix && b.first() <= self.first() && self.last() <= b.last()
        })
    }
    /// The `index`-th block of length `prefix` inside this one.
    pub fn subnet(&self, prefix: u8, index: u32) -> Option<Ipv4Cidr> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let count = 1u64 << (prefix - self.prefix);
        if u64::from(index) >= count {
            return None;
        }
        let step = 1u64 << (32 - prefix);
        Some(Ipv4Cidr::from_parts(
            (u64::from(self.addr) + u64::from(index) * step) as u32,
            prefix,
        ))
    }
    /// The address `offset` places into the block.
    pub fn host(&self, offset: u32) -> Option<Ipv4Addr> {
        (u64::from(offset) < self.size()).then(|| Ipv4Addr::from(self.addr + offset))
    }
    /// Addresses a VM can use: Azure reserves the first four and the last one.
    pub fn azure_usable(&self) -> u64 {
        self.size().saturating_sub(5)
    }
    fn from_parts(addr: u32, prefix: u8) -> Self {
        Ipv4Cidr { addr, prefix }
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let syntax = || CidrError::Syntax(s.to_string());
        let (ip, len) = s.split_once('/').ok_or_else(syntax)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| syntax())?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix: u8 = len.parse().map_err(|_| syntax())?;
        let cidr = Ipv4Cidr::new(ip, prefix).ok_or_else(syntax)?;
        if cidr.addr != u32::from(ip) {
            return Err(CidrError::HostBits {
                input: s.to_string(),
                network: cidr,
            });
        }
        Ok(cidr)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(c("10.10.0.0/24").to_string(), "10.10.0.0/24");
        assert!(matches!(
            "10.10.0.1/24".parse::<Ipv4Cidr>(),
            Err(CidrError::HostBits { .. })
        ));
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/24",
            "x/24",
            "10.0.0.0/",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap_and_private() {
        assert!(c("10.0.0.0/22").overlaps(&c("10.0.3.0/24")));
        assert!(!c("10.0.0.0/22").overlaps(&c("10.0.4.0/24")));
        assert!(c("172.31.0.0/24").is_private());
        assert!(!c("172.32.0.0/24").is_private());
        assert!(!c("8.8.8.0/24").is_private());
        assert!(!c("10.0.0.0/7").is_private());
    }

    #[test]
    fn carves_subnets() {
        let s = c("10.10.0.0/24");
        assert_eq!(s.subnet(25, 1).unwrap().to_string(), "10.10.0.128/25");
        assert_eq!(s.subnet(25, 2), None);
        assert_eq!(s.host(4).unwrap().to_string(), "10.10.0.4");
        assert_eq!(c("10.0.0.0/27").azure_usable(), 27);
    }
}
