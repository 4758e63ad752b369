//! The route table: which route a request matches, which side serves it, and
//! whether a copy is shadowed to the other side. Pure: no I/O, no clock, no
//! randomness of its own (the caller passes entropy for `sticky: none`), so
//! the proxy, `strangler explain` and the tests all share this one decision.

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, Method};

use super::headers::RequestHeaders;

use super::canary::{selected, stable_hash};
use super::tenant::{Tenant, cookie, find_tenant, host_without_port};
use crate::config::model::{
    BackendId, Config, HostMatch, Percent, Route, RouteMatch, Side, Sticky,
};
use crate::config::path_index::PathIndex;
use crate::config::precedence::priority_order;

/// What the routing decision needs to know about a request. `H` is where
/// its header fields are read from (see [`RequestHeaders`]).
#[derive(Debug)]
pub struct RequestInfo<'a, H: ?Sized = HeaderMap> {
    pub method: &'a Method,
    /// `Host` header or `:authority`, port included or not.
    pub host: Option<&'a str>,
    /// The normalized path (see [`crate::request_path::normalize_path`]).
    pub path: &'a str,
    pub headers: &'a H,
    pub client_ip: Option<IpAddr>,
    /// Any number that differs between requests; used only by `sticky: none`
    /// and when a request has no sticky key at all.
    pub entropy: u64,
}

impl<H: ?Sized> Clone for RequestInfo<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H: ?Sized> Copy for RequestInfo<'_, H> {}

/// The sticky key that decided a canary draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Tenant,
    Header,
    Cookie,
    Ip,
    /// `sticky: none`: drawn per request.
    Random,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Tenant => "tenant",
            KeyKind::Header => "header",
            KeyKind::Cookie => "cookie",
            KeyKind::Ip => "client ip",
            KeyKind::Random => "random draw",
        }
    }
}

/// Why the request went to its side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// No route matched: the `default` backend serves it.
    NoRouteMatched,
    /// The tenant is pinned to a side in the route's `tenants`.
    TenantPinned,
    /// The canary draw decided. `fallback` is true when the configured sticky
    /// key was absent and the client address (or a random draw) stood in.
    Canary {
        key: KeyKind,
        fallback: bool,
        hash: u64,
        percent: Percent,
    },
}

/// Whether a copy of the request goes to the side that did not serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowDecision {
    /// The route has no `shadow` block (or no route matched).
    Off,
    /// The method is not in the route's shadow methods.
    MethodNotShadowed,
    /// This key falls outside the shadow percentage.
    NotSampled,
    /// Copy to this side and backend.
    Copy { side: Side, backend: BackendId },
}

/// The routing decision for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'r> {
    /// Index of the route in [`Config::routes`].
    pub route: Option<usize>,
    pub side: Side,
    pub backend: BackendId,
    pub reason: Reason,
    pub tenant: Option<Tenant<'r>>,
    pub shadow: ShadowDecision,
    /// The route records this request (its `record:` sample).
    pub record: bool,
}

/// The compiled table. Built once per configuration version; deciding never
/// allocates except to decode a JWT tenant claim.
#[derive(Debug)]
pub struct RouteTable {
    config: Config,
    /// Route indices, most specific first.
    order: Vec<usize>,
    /// The routes a path can match, in that order.
    paths: PathIndex,
    /// Per route: the salt of its canary draw (the `new` backend's name, so
    /// that routes moving to one service move the same users together).
    canary_salt: Vec<Vec<u8>>,
    /// Per route: the salt of its shadow sampling.
    shadow_salt: Vec<Vec<u8>>,
    /// Per route: the salt of its record sampling.
    record_salt: Vec<Vec<u8>>,
}

impl RouteTable {
    pub fn new(config: Config) -> RouteTable {
        let order = priority_order(&config.routes);
        let paths = PathIndex::new(&config.routes, &order);
        let canary_salt = config
            .routes
            .iter()
            .map(|r| config.backend(r.new).name.as_str().as_bytes().to_vec())
            .collect();
        let shadow_salt = config
            .routes
            .iter()
            .map(|r| format!("shadow:{}", r.name).into_bytes())
            .collect();
        let record_salt = config
            .routes
            .iter()
            .map(|r| format!("record:{}", r.name).into_bytes())
            .collect();
        RouteTable {
            config,
            order,
            paths,
            canary_salt,
            shadow_salt,
            record_salt,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Route indices, most specific first: the order in which they are tried.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The first route, in priority order, whose conditions all hold. Only
    /// routes whose path condition holds are looked at, found through the
    /// path index, so the cost does not grow with the table.
    pub fn match_route<H: RequestHeaders + ?Sized>(
        &self,
        req: &RequestInfo<'_, H>,
    ) -> Option<usize> {
        let host = req.host.map(host_without_port);
        let routes = &self.config.routes;
        self.paths.find(routes, req.path, |i| {
            other_conditions_hold(&routes[i].matcher, req, host)
        })
    }

    pub fn decide<'r, H: RequestHeaders + ?Sized>(&self, req: &RequestInfo<'r, H>) -> Decision<'r> {
        let Some(index) = self.match_route(req) else {
            return Decision {
                route: None,
                side: Side::Legacy,
                backend: self.config.default_backend,
                reason: Reason::NoRouteMatched,
                tenant: None,
                shadow: ShadowDecision::Off,
                record: false,
            };
        };
        let route = &self.config.routes[index];
        let needs_tenant = !route.pins.is_empty()
            || route.sticky == Sticky::Tenant
            || route.shadow.is_some()
            || route.record.is_some();
        let tenant = if needs_tenant {
            find_tenant(&self.config.tenant, req.host, req.headers)
        } else {
            None
        };

        let pinned = tenant.as_ref().and_then(|t| route.pin_for(&t.id));
        let (side, reason, key_hash) = match pinned {
            Some(side) => (side, Reason::TenantPinned, None),
            None => {
                let (key, fallback, hash) = self.sticky_hash(index, route, req, tenant.as_ref());
                let side = if selected(hash, route.canary) {
                    Side::New
                } else {
                    Side::Legacy
                };
                let reason = Reason::Canary {
                    key,
                    fallback,
                    hash,
                    percent: route.canary,
                };
                (side, reason, Some((key, hash)))
            }
        };

        // Shadowing and recording are sampled on the same key as the canary,
        // each salted apart, so a given user is either always or never
        // shadowed (or recorded).
        let sampled = |salt: &[u8], percent| {
            let key_bytes = match key_hash {
                Some((KeyKind::Random, _)) => req.entropy.to_le_bytes().to_vec(),
                Some((_, h)) => h.to_le_bytes().to_vec(),
                None => tenant
                    .as_ref()
                    .map(|t| t.id.as_bytes().to_vec())
                    .unwrap_or_default(),
            };
            selected(stable_hash(salt, &key_bytes), percent)
        };
        let shadow = match &route.shadow {
            None => ShadowDecision::Off,
            Some(policy) if !policy.methods.contains(req.method) => {
                ShadowDecision::MethodNotShadowed
            }
            Some(policy) => {
                if sampled(&self.shadow_salt[index], policy.percent) {
                    let other = side.other();
                    ShadowDecision::Copy {
                        side: other,
                        backend: route.backend_for(other),
                    }
                } else {
                    ShadowDecision::NotSampled
                }
            }
        };
        let record = route
            .record
            .as_ref()
            .is_some_and(|policy| sampled(&self.record_salt[index], policy.percent));

        Decision {
            route: Some(index),
            side,
            backend: route.backend_for(side),
            reason,
            tenant,
            shadow,
            record,
        }
    }

    fn sticky_hash<H: RequestHeaders + ?Sized>(
        &self,
        index: usize,
        route: &Route,
        req: &RequestInfo<'_, H>,
        tenant: Option<&Tenant<'_>>,
    ) -> (KeyKind, bool, u64) {
        let salt = &self.canary_salt[index];
        let configured: Option<(KeyKind, Cow<'_, [u8]>)> = match &route.sticky {
            Sticky::Tenant => tenant.map(|t| (KeyKind::Tenant, Cow::Borrowed(t.id.as_bytes()))),
            Sticky::Header(name) => req
                .headers
                .first(name.as_str())
                .filter(|v| !v.is_empty())
                .map(|v| (KeyKind::Header, Cow::Borrowed(v))),
            Sticky::Cookie(name) => cookie(req.headers, name)
                .filter(|v| !v.is_empty())
                .map(|v| (KeyKind::Cookie, Cow::Borrowed(v.as_bytes()))),
            Sticky::Ip => req.client_ip.map(|ip| (KeyKind::Ip, ip_bytes(ip))),
            Sticky::None => {
                return (
                    KeyKind::Random,
                    false,
                    stable_hash(salt, &req.entropy.to_le_bytes()),
                );
            }
        };
        match configured {
            Some((kind, bytes)) => (kind, false, stable_hash(salt, &bytes)),
            // Requests without the key still stay on one side per client.
            None => match req.client_ip {
                Some(ip) => (KeyKind::Ip, true, stable_hash(salt, &ip_bytes(ip))),
                None => (
                    KeyKind::Random,
                    true,
                    stable_hash(salt, &req.entropy.to_le_bytes()),
                ),
            },
        }
    }
}

fn ip_bytes(ip: IpAddr) -> Cow<'static, [u8]> {
    match ip {
        IpAddr::V4(v4) => Cow::Owned(v4.octets().to_vec()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Cow::Owned(v4.octets().to_vec()),
            None => Cow::Owned(v6.octets().to_vec()),
        },
    }
}

/// Every condition of a route but its path (which the index has checked).
fn other_conditions_hold<H: RequestHeaders + ?Sized>(
    m: &RouteMatch,
    req: &RequestInfo<'_, H>,
    host: Option<&str>,
) -> bool {
    if let Some(methods) = &m.methods {
        if !methods.contains(req.method) {
            return false;
        }
    }
    if let Some(expected) = &m.host {
        let Some(host) = host else { return false };
        let ok = match expected {
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        };
        if !ok {
            return false;
        }
    }
    m.headers.iter().all(|(name, value)| {
        req.headers
            .values_of(name.as_str())
            .any(|v| v == value.as_bytes())
    })
}

#[cfg(test)]
mod tests;
