//! Who the client is, and what the upstream is told about it. Pure: the
//! data plane and `strangler explain` give it the peer and the headers.
//!
//! The peer is the socket's peer, or the source of a PROXY header that a
//! trusted peer sent. Only a trusted peer is believed: then the client is the
//! last address of `X-Forwarded-For` that is not itself trusted (the hops
//! after it are our own load balancers), and that peer's `X-Forwarded-For`,
//! `-Proto`, `-Host` and `X-Request-Id` are passed on. An untrusted peer's
//! values are replaced, so a client cannot choose its own address, its
//! sticky bucket or the id a report quotes.

use std::net::IpAddr;

use super::headers::{RequestHeaders, visible_text};

use crate::config::model::{TrustedProxies, canonical};

/// What the request says about where it came from, as far as it is believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The client's address: sticky `ip`, the keyless fallback, the access
    /// log.
    pub client: IpAddr,
    /// Whether the peer is a trusted proxy (its headers are kept).
    pub trusted_peer: bool,
    /// `X-Forwarded-For` for the upstream: a trusted peer's list with the
    /// peer appended, else the peer alone.
    pub forwarded_for: String,
}

/// Addresses in `X-Forwarded-For` values, left to right, across repeated
/// headers. Entries that are not addresses (`unknown`, obfuscated ids) stop
/// the walk where they stand, as they cannot be judged trusted.
fn forwarded_for_entries<H: RequestHeaders + ?Sized>(headers: &H) -> Vec<&str> {
    headers
        .values_of("x-forwarded-for")
        .filter_map(visible_text)
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect()
}

/// An entry as an address: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80` or `::1`.
/// Anything else (`unknown`, an obfuscated id, a port that is not a
/// number) is not an address.
pub fn entry_address(entry: &str) -> Option<IpAddr> {
    let port_ok = |p: &str| p.parse::<u16>().is_ok();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) if port_ok(p) => {}
            None if after.is_empty() => {}
            _ => return None,
        }
        return host.parse().ok().map(canonical);
    }
    // Unbracketed, a port goes only with IPv4: `::1:80` is an IPv6 address.
    let (host, port) = entry.rsplit_once(':')?;
    if host.contains(':') || !port_ok(port) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

pub fn forwarded<H: RequestHeaders + ?Sized>(
    peer: IpAddr,
    headers: &H,
    trusted: &TrustedProxies,
) -> Forwarded {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return Forwarded {
            client: peer,
            trusted_peer: false,
            forwarded_for: address_text(peer),
        };
    }
    let entries = forwarded_for_entries(headers);
    let mut client = peer;
    for entry in entries.iter().rev() {
        match entry_address(entry) {
            Some(ip) => {
                client = ip;
                if !trusted.contains(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    let forwarded_for = if entries.is_empty() {
        address_text(peer)
    } else {
        format!("{}, {peer}", entries.join(", "))
    };
    Forwarded {
        client,
        trusted_peer: true,
        forwarded_for,
    }
}

/// An address as text, in one allocation (`to_string` grows its buffer
/// once on the way: this runs for every request). IPv4, the common case, is
/// written digit by digit: `Display` for `Ipv4Addr` formats into a scratch
/// buffer through `fmt::write`, a thousand instructions of a fast-path
/// request's fifty-five thousand (bench/instructions.sh).
fn address_text(ip: IpAddr) -> String {
    // The longest IPv6 text, `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`.
    let mut text = String::with_capacity(45);
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(_) => {
            use std::fmt::Write;
            let _ = write!(text, "{ip}");
        }
    }
    text
}

/// A request id a trusted peer may hand us: printable ASCII without spaces,
/// at most 128 bytes, so it is safe in a header, a log line and a report.
pub fn acceptable_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 128 && value.iter().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    #[test]
    fn an_address_reads_as_its_display_text() {
        let samples = [
            "0.0.0.0",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "10.200.7.250",
            "::1",
            "2001:db8::8a2e:370:7334",
        ];
        for text in samples {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(address_text(ip), ip.to_string(), "{text}");
        }
        for octet in 0..=255u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(octet, 0, octet, 255 - octet));
            assert_eq!(address_text(ip), ip.to_string());
        }
    }
    use crate::config::model::Cidr;

    fn trusted(blocks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(blocks.iter().map(|b| Cidr::parse(b).unwrap()).collect())
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_and_its_list_is_replaced() {
        let f = forwarded(
            ip("203.0.113.9"),
            &xff(&["1.1.1.1"]),
            &trusted(&["10.0.0.0/8"]),
        );
        assert_eq!(f.client, ip("203.0.113.9"));
        assert!(!f.trusted_peer);
        assert_eq!(f.forwarded_for, "203.0.113.9");
    }

    #[test]
    fn a_trusted_peer_is_believed_up_to_the_last_untrusted_hop() {
        let t = trusted(&["10.0.0.0/8"]);
        // A client's own claim (1.1.1.1) stays left of the real client.
        let f = forwarded(ip("10.0.0.2"), &xff(&["1.1.1.1, 198.51.100.7"]), &t);
        assert_eq!(f.client, ip("198.51.100.7"));
        assert_eq!(f.forwarded_for, "1.1.1.1, 198.51.100.7, 10.0.0.2");
        // Two of our own hops, one list per header.
        let f = forwarded(ip("10.0.0.2"), &xff(&["198.51.100.7", "10.9.9.9"]), &t);
        assert_eq!(f.client, ip("198.51.100.7"));
        assert_eq!(f.forwarded_for, "198.51.100.7, 10.9.9.9, 10.0.0.2");
    }

    #[test]
    fn a_trusted_peer_without_a_list_is_the_client() {
        let f = forwarded(ip("10.0.0.2"), &HeaderMap::new(), &trusted(&["10.0.0.0/8"]));
        assert_eq!(f.client, ip("10.0.0.2"));
        assert_eq!(f.forwarded_for, "10.0.0.2");
    }

    #[test]
    fn entries_with_ports_and_garbage() {
        let t = trusted(&["10.0.0.0/8"]);
        let f = forwarded(ip("10.0.0.2"), &xff(&["[2001:db8::1]:443"]), &t);
        assert_eq!(f.client, ip("2001:db8::1"));
        let f = forwarded(ip("10.0.0.2"), &xff(&["198.51.100.7:5555"]), &t);
        assert_eq!(f.client, ip("198.51.100.7"));
        // An entry that is not an address ends the walk at the last hop
        // judged so far.
        let f = forwarded(ip("10.0.0.2"), &xff(&["unknown, 10.1.1.1"]), &t);
        assert_eq!(f.client, ip("10.1.1.1"));
        // Found by the fuzzer: a port that is not a number is no address.
        assert_eq!(entry_address("3::fffA:.1"), None);
        assert_eq!(entry_address("1.2.3.4:x"), None);
        assert_eq!(entry_address("[::1]:x"), None);
        assert_eq!(entry_address("::1"), Some(ip("::1")));
    }

    #[test]
    fn request_ids_from_peers_are_bounded() {
        assert!(acceptable_request_id(b"abc-123"));
        assert!(!acceptable_request_id(b"a b"));
        assert!(!acceptable_request_id(b""));
        assert!(!acceptable_request_id(&[b'a'; 129]));
    }
}
