//! Finding a request's tenant: the configured sources are tried in order and
//! the first one that yields a value wins. Nothing is verified: a JWT claim is
//! read from the token's payload without checking its signature, which is
//! enough to route (the backend still authenticates the request).

use std::borrow::Cow;
use std::net::IpAddr;

use super::headers::{RequestHeaders, visible_text};
use base64::Engine;

use crate::config::model::TenantSource;

/// Longest tenant value taken from a request; longer values are ignored so a
/// client cannot make the proxy hash or store megabytes.
pub const MAX_TENANT_LEN: usize = 256;
/// Largest bearer token whose payload is decoded.
const MAX_JWT_LEN: usize = 8192;

/// The tenant found, and which source (index into the configured list) gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant<'a> {
    pub id: Cow<'a, str>,
    pub source: usize,
}

pub fn find_tenant<'a, H: RequestHeaders + ?Sized>(
    sources: &[TenantSource],
    host: Option<&'a str>,
    headers: &'a H,
) -> Option<Tenant<'a>> {
    sources.iter().enumerate().find_map(|(i, source)| {
        let id = match source {
            TenantSource::Header(name) => headers
                .first_text(name.as_str())
                .map(|v| Cow::Borrowed(v.trim())),
            TenantSource::HostLabel(n) => host.and_then(|h| host_label(h, *n)).map(Cow::Borrowed),
            TenantSource::Cookie(name) => cookie(headers, name).map(Cow::Borrowed),
            TenantSource::JwtClaim(claim) => jwt_claim(headers, claim).map(Cow::Owned),
        }?;
        (!id.is_empty() && id.len() <= MAX_TENANT_LEN).then_some(Tenant { id, source: i })
    })
}

/// Host without port, for matching and host labels.
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn host_label(host: &str, n: usize) -> Option<&str> {
    let host = host_without_port(host);
    if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    host.split('.').nth(n).filter(|l| !l.is_empty())
}

/// The value of cookie `name` from all `Cookie` headers.
pub fn cookie<'a, H: RequestHeaders + ?Sized>(headers: &'a H, name: &str) -> Option<&'a str> {
    headers
        .values_of("cookie")
        .filter_map(visible_text)
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

fn jwt_claim<H: RequestHeaders + ?Sized>(headers: &H, claim: &str) -> Option<String> {
    let auth = headers.first_text("authorization")?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.len() > MAX_JWT_LEN {
        return None;
    }
    let mut parts = token.trim().split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match value.get(claim)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{AUTHORIZATION, COOKIE};
    use http::{HeaderMap, HeaderValue};

    fn sources() -> Vec<TenantSource> {
        vec![
            TenantSource::Header("x-tenant-id".parse().unwrap()),
            TenantSource::HostLabel(0),
            TenantSource::Cookie("tenant".into()),
            TenantSource::JwtClaim("tid".into()),
        ]
    }

    fn jwt(payload: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "Bearer {}.{}.sig",
            e.encode(r#"{"alg":"none"}"#),
            e.encode(payload)
        )
    }

    #[test]
    fn first_source_wins() {
        let mut h = HeaderMap::new();
        h.insert("x-tenant-id", HeaderValue::from_static("acme"));
        let t = find_tenant(&sources(), Some("globex.shop.example.com"), &h).unwrap();
        assert_eq!((t.id.as_ref(), t.source), ("acme", 0));
        let h = HeaderMap::new();
        let t = find_tenant(&sources(), Some("globex.shop.example.com:8080"), &h).unwrap();
        assert_eq!((t.id.as_ref(), t.source), ("globex", 1));
    }

    #[test]
    fn cookie_and_jwt() {
        let only_later = vec![
            TenantSource::Cookie("tenant".into()),
            TenantSource::JwtClaim("tid".into()),
        ];
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; tenant=initech; b=2"));
        assert_eq!(find_tenant(&only_later, None, &h).unwrap().id, "initech");
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            jwt(r#"{"tid":"umbrella","sub":"u1"}"#).parse().unwrap(),
        );
        let t = find_tenant(&only_later, None, &h).unwrap();
        assert_eq!((t.id.as_ref(), t.source), ("umbrella", 1));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, jwt(r#"{"tid":42}"#).parse().unwrap());
        assert_eq!(find_tenant(&only_later, None, &h).unwrap().id, "42");
    }

    #[test]
    fn garbage_yields_no_tenant() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer not-a-jwt"));
        h.insert(COOKIE, HeaderValue::from_static("tenant"));
        let s = vec![
            TenantSource::Cookie("tenant".into()),
            TenantSource::JwtClaim("tid".into()),
            TenantSource::HostLabel(0),
        ];
        assert_eq!(find_tenant(&s, Some("10.0.0.1:80"), &h), None);
        assert_eq!(find_tenant(&s, Some("[::1]:80"), &h), None);
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(host_without_port("a.b:80"), "a.b");
        assert_eq!(host_without_port("a.b"), "a.b");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
    }
}
