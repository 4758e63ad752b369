//! The checked model of what a real deployment puts around the proxy: the
//! peers believed about client addresses ([`TrustedProxies`]), the access log
//! ([`AccessLogSettings`]), the `Host` a backend is sent ([`UpstreamHost`]) and
//! the path the new side of a route receives ([`Rewrite`]). Values only: what
//! they do to a request is in `routing::forwarded` and `routing::rewrite`.

use std::fmt;
use std::net::IpAddr;

use regex::Regex;

/// An address block: `10.0.0.0/8`, `::1/128`, or a bare address (all bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let bad = || format!("{text:?} is not an address block (expected e.g. 10.0.0.0/8 or ::1)");
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b.parse::<u8>().map_err(|_| bad())?,
        };
        if bits > max {
            return Err(format!(
                "{text:?}: a /{bits} block is longer than the address"
            ));
        }
        let cidr = Cidr {
            network: addr,
            bits,
        };
        if cidr.mask(addr) != addr {
            return Err(format!(
                "{text:?} has bits set past /{bits} (did you mean {}/{bits}?)",
                cidr.mask(addr)
            ));
        }
        Ok(cidr)
    }

    fn mask(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(a) => {
                let m = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & m).into())
            }
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        addr.is_ipv4() == self.network.is_ipv4() && self.mask(addr) == self.network
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.bits)
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:10.0.0.1`) is the
/// IPv4 address, so one block list serves both kinds of listener.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// `trusted_proxies`: the peers whose `X-Forwarded-*`, `X-Request-Id` and
/// PROXY header are believed. Empty: nobody's are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(blocks)
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(addr))
    }
}

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    File(String),
}

impl fmt::Display for AccessLogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessLogTarget::Stdout => f.write_str("stdout"),
            AccessLogTarget::File(p) => f.write_str(p),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object a line, with the keys of the design brief.
    Json,
    /// The NCSA combined format that log tools read.
    Combined,
}

impl AccessLogFormat {
    pub fn parse(text: &str) -> Result<AccessLogFormat, String> {
        match text {
            "json" => Ok(AccessLogFormat::Json),
            "combined" => Ok(AccessLogFormat::Combined),
            other => Err(format!(
                "{other:?} is not an access log format (use json or combined)"
            )),
        }
    }
}

/// `access_log:`; absent means no access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSettings {
    pub target: AccessLogTarget,
    pub format: AccessLogFormat,
}

/// The `Host` header a backend is sent (`backends.NAME.host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamHost {
    /// The client's `Host`, unchanged.
    Preserve,
    /// The host (and port, unless the scheme's default) of the backend's
    /// first URL, as written in the file.
    Backend(String),
    /// A name given in the file.
    Literal(String),
}

impl UpstreamHost {
    /// The value to send, or `None` to keep the client's.
    pub fn value(&self) -> Option<&str> {
        match self {
            UpstreamHost::Preserve => None,
            UpstreamHost::Backend(h) | UpstreamHost::Literal(h) => Some(h),
        }
    }
}

impl fmt::Display for UpstreamHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamHost::Preserve => f.write_str("preserve (the client's Host)"),
            UpstreamHost::Backend(h) => write!(f, "backend ({h})"),
            UpstreamHost::Literal(h) => f.write_str(h),
        }
    }
}

/// A route's `rewrite:`: what the new side receives instead of the path the
/// request was routed on. Legacy always gets the path unchanged.
#[derive(Debug, Clone)]
pub enum Rewrite {
    /// `strip_prefix` (whole segments) then `add_prefix`; either may be absent.
    Prefix {
        strip: Option<String>,
        add: Option<String>,
    },
    /// When `regex` matches the path, the path becomes `to` with `$1`.. and
    /// `${name}` replaced by the groups; otherwise it is unchanged.
    Regex { regex: Regex, to: String },
}

impl fmt::Display for Rewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rewrite::Prefix { strip, add } => {
                let mut parts = Vec::new();
                if let Some(s) = strip {
                    parts.push(format!("strip_prefix {s}"));
                }
                if let Some(a) = add {
                    parts.push(format!("add_prefix {a}"));
                }
                f.write_str(&parts.join(", "))
            }
            Rewrite::Regex { regex, to } => write!(f, "regex {} to {to}", regex.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_contain_their_addresses() {
        let b = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(b.contains("10.1.2.3".parse().unwrap()));
        assert!(!b.contains("11.0.0.1".parse().unwrap()));
        assert!(b.contains("::ffff:10.0.0.9".parse().unwrap()));
        let one = Cidr::parse("127.0.0.2").unwrap();
        assert!(one.contains("127.0.0.2".parse().unwrap()));
        assert!(!one.contains("127.0.0.3".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn bad_blocks_say_why() {
        assert!(
            Cidr::parse("10.0.0.1/8")
                .unwrap_err()
                .contains("10.0.0.0/8")
        );
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("longer"));
        assert!(Cidr::parse("example.com").is_err());
    }
}
