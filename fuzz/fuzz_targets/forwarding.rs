//! What a load balancer (or anyone on the network) says about a client: a
//! PROXY protocol header (v1 line or v2 binary) and `X-Forwarded-For` lists,
//! into `dataplane::proxy_protocol` and `routing::forwarded`.
//!
//! Properties, beyond never panicking:
//! - a version 1 line is accepted only if it ends in CRLF and is at most 107
//!   bytes, and an accepted TCP4/TCP6 line names an address of that family;
//! - a version 2 header is accepted only with its signature, version 2 and a
//!   known command;
//! - the client found from an `X-Forwarded-For` list is the peer or one of
//!   the list's addresses; an untrusted peer is the client whatever the list
//!   says, and the list sent upstream ends with the peer.

#![no_main]

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use strangler::config::{Cidr, TrustedProxies};
use strangler::dataplane::proxy_protocol::{parse_v1, parse_v2};
use strangler::routing::forwarded::{entry_address, forwarded};

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            if let Ok(source) = parse_v1(rest) {
                assert!(rest.ends_with(b"\r\n"), "accepted without CRLF");
                if let Some(addr) = source {
                    let text = std::str::from_utf8(rest).unwrap();
                    if text.starts_with("PROXY TCP4 ") {
                        assert!(addr.is_ipv4());
                    } else {
                        assert!(text.starts_with("PROXY TCP6 ") && addr.is_ipv6());
                    }
                }
            }
        }
        1 => {
            if rest.len() < 16 {
                return;
            }
            let mut head = [0u8; 16];
            head.copy_from_slice(&rest[..16]);
            // Give every input the signature, so the fuzzer works on what
            // follows it.
            head[..12].copy_from_slice(V2_SIGNATURE);
            if parse_v2(&head, &rest[16..]).is_ok() {
                assert_eq!(head[12] >> 4, 2);
                assert!(head[12] & 0x0f <= 1);
            }
        }
        _ => {
            // [peer: 4 bytes][trusted /prefix: 1 byte][X-Forwarded-For text]
            if rest.len() < 5 {
                return;
            }
            let peer = IpAddr::from([rest[0], rest[1], rest[2], rest[3]]);
            let bits = rest[4] % 33;
            let network = format!("{}/{bits}", mask(peer, bits));
            let trusted = TrustedProxies::new(vec![Cidr::parse(&network).unwrap()]);
            let mut headers = HeaderMap::new();
            for part in rest[5..].split(|&b| b == b'\n') {
                if let Ok(v) = HeaderValue::from_bytes(part) {
                    headers.append("x-forwarded-for", v);
                }
            }
            let f = forwarded(peer, &headers, &trusted);
            assert!(f.forwarded_for.ends_with(&peer.to_string()));
            if !f.trusted_peer {
                assert_eq!(f.client, peer);
                assert_eq!(f.forwarded_for, peer.to_string());
            } else if f.client != peer {
                assert!(
                    f.forwarded_for
                        .split(',')
                        .any(|e| entry_address(e.trim()) == Some(f.client)),
                    "{f:?} names a client that is not in the list"
                );
            }
        }
    }
});

fn mask(ip: IpAddr, bits: u8) -> IpAddr {
    let IpAddr::V4(v4) = ip else { unreachable!() };
    let m = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
    IpAddr::V4((u32::from(v4) & m).into())
}
