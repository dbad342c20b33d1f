//! Value types that can only hold valid values: container ids, network names,
//! interface names, MAC addresses and CIDRs. Validation lives here, once.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnetwork::IpNetwork;

use crate::error::Error;

/// The spec's charset for container ids and network names:
/// `^[A-Za-z0-9][A-Za-z0-9_.\-]*$`.
fn valid_id_charset(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse()
                    .map_err(|e: Error| serde::de::Error::custom(e.msg))
            }
        }
    };
}

/// CNI_CONTAINERID: non-empty, spec charset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);
string_newtype!(ContainerId);

impl FromStr for ContainerId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::invalid_env("CNI_CONTAINERID is empty"));
        }
        if !valid_id_charset(s) {
            return Err(Error::invalid_env(format!(
                "invalid CNI_CONTAINERID {s:?}: must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$"
            )));
        }
        Ok(ContainerId(s.to_string()))
    }
}

/// A network's `name`: same charset as container ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkName(String);
string_newtype!(NetworkName);

impl FromStr for NetworkName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        if !valid_id_charset(s) {
            return Err(Error::invalid_config(format!(
                "invalid network name {s:?}: must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$"
            )));
        }
        Ok(NetworkName(s.to_string()))
    }
}

/// A Linux interface name: 1-15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);
string_newtype!(IfName);

/// IFNAMSIZ is 16 including the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

impl FromStr for IfName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::invalid_env(format!("invalid interface name {s:?}: {why}"));
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > MAX_IFNAME_LEN {
            return Err(bad(&format!(
                "{} bytes, at most {MAX_IFNAME_LEN} allowed",
                s.len()
            )));
        }
        if s == "." || s == ".." {
            return Err(bad("'.' and '..' are not allowed"));
        }
        if s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
            return Err(bad("'/', ':' and whitespace are not allowed"));
        }
        Ok(IfName(s.to_string()))
    }
}

/// A 48-bit MAC address. Parses `aa:bb:cc:dd:ee:ff` (also `-` separated, any
/// case); displays lower-case with colons, as the kernel and the spec do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for Mac {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::invalid_config(format!("invalid MAC address {s:?}"));
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(bad());
            }
            out[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.msg))
    }
}

/// An address with its prefix length, host bits kept (`10.0.0.5/24`). Unlike a
/// bare `IpNetwork` parse, the `/len` is required: `"10.0.0.1"` is not a CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(IpNetwork);

impl Cidr {
    pub fn new(ip: IpAddr, prefix: u8) -> Result<Cidr, Error> {
        IpNetwork::new(ip, prefix)
            .map(Cidr)
            .map_err(|e| Error::invalid_config(format!("invalid prefix /{prefix} for {ip}: {e}")))
    }
    pub fn ip(&self) -> IpAddr {
        self.0.ip()
    }
    pub fn prefix(&self) -> u8 {
        self.0.prefix()
    }
    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.0.network()
    }
    pub fn is_ipv4(&self) -> bool {
        self.0.is_ipv4()
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }
    pub fn inner(&self) -> IpNetwork {
        self.0
    }
}

impl From<IpNetwork> for Cidr {
    fn from(n: IpNetwork) -> Cidr {
        Cidr(n)
    }
}

impl From<Cidr> for IpNetwork {
    fn from(c: Cidr) -> IpNetwork {
        c.0
    }
}

impl FromStr for Cidr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::invalid_config(format!("invalid CIDR {s:?}: {why}"));
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| bad("missing /prefix-length".into()))?;
        let ip: IpAddr = addr.parse().map_err(|e| bad(format!("{e}")))?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
            return Err(bad("prefix length must be a number".into()));
        }
        let prefix: u8 = len.parse().map_err(|e| bad(format!("{e}")))?;
        IpNetwork::new(ip, prefix)
            .map(Cidr)
            .map_err(|e| bad(format!("{e}")))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.ip(), self.0.prefix())
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn container_ids() {
        for ok in ["a", "abc-123", "A.b_c-d", "0"] {
            assert_eq!(ok.parse::<ContainerId>().unwrap().as_str(), ok);
        }
        for bad in ["", "-abc", ".a", "_a", "a/b", "a b", "a:b", "ä", "a\n"] {
            let e = bad.parse::<ContainerId>().unwrap_err();
            assert_eq!(e.code, ErrorCode::INVALID_ENV, "{bad:?}");
        }
    }

    #[test]
    fn network_names_use_code_7() {
        assert!("my-net.1".parse::<NetworkName>().is_ok());
        let e = "bad name".parse::<NetworkName>().unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_CONFIG);
        assert!("".parse::<NetworkName>().is_err());
    }

    #[test]
    fn interface_names() {
        for ok in ["eth0", "a", "123456789012345", "net1.100", "eth-0_x"] {
            assert!(ok.parse::<IfName>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1234567890123456",
            ".",
            "..",
            "eth/0",
            "eth:0",
            "eth 0",
            "eth\t0",
        ] {
            let e = bad.parse::<IfName>().unwrap_err();
            assert_eq!(e.code, ErrorCode::INVALID_ENV, "{bad:?}");
        }
        // 15 bytes but multi-byte characters: length counts bytes.
        assert!("éééééééé".parse::<IfName>().is_err());
    }

    #[test]
    fn macs() {
        let m: Mac = "AA:bb:0c:0D:ee:01".parse().unwrap();
        assert_eq!(m.to_string(), "aa:bb:0c:0d:ee:01");
        assert_eq!("aa-bb-0c-0d-ee-01".parse::<Mac>().unwrap(), m);
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "a:bb:cc:dd:ee:ff",
            "zz:bb:cc:dd:ee:ff",
            "aabb.ccdd.eeff",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        assert!("01:00:5e:00:00:01".parse::<Mac>().unwrap().is_multicast());
        assert!(Mac([0; 6]).is_zero());
        let j = serde_json::to_string(&m).unwrap();
        assert_eq!(j, "\"aa:bb:0c:0d:ee:01\"");
        assert_eq!(serde_json::from_str::<Mac>(&j).unwrap(), m);
    }

    #[test]
    fn cidrs_keep_host_bits_and_require_a_prefix() {
        let c: Cidr = "10.1.2.3/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.2.3/24");
        assert_eq!(c.network().to_string(), "10.1.2.0");
        assert_eq!(c.prefix(), 24);
        assert!(c.contains("10.1.2.200".parse().unwrap()));
        let v6: Cidr = "fd00::5/64".parse().unwrap();
        assert!(!v6.is_ipv4());
        assert_eq!(v6.to_string(), "fd00::5/64");
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "fd00::/129",
            "10.0.0.1/",
            "10.0.0.1/+8",
            "x/8",
            "10.0.0.1/8/8",
            "10.0.0.1/0008",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert!(Cidr::new("10.0.0.1".parse().unwrap(), 40).is_err());
    }
}
