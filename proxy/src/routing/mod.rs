//! Routing as a pure library: path normalization, route matching, tenant
//! lookup and the canary draw. No I/O and no Pingora, so the proxy,
//! `strangler check`, `strangler explain` and the rollback tooling all use
//! the same decision.

pub mod canary;
pub mod path;
pub mod table;
pub mod tenant;

pub use path::{PathError, normalize_path, routing_path};
pub use table::{Decision, KeyKind, Reason, RequestInfo, RouteTable, ShadowDecision};
pub use tenant::Tenant;
