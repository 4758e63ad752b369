//! Routing as a pure library: route matching, tenant lookup and the canary
//! draw, on the checked model only. No I/O and no Pingora, so the proxy,
//! `strangler check`, `strangler explain` and the rollback tooling all use
//! the same decision. The path normal form it routes on lives in
//! [`crate::request_path`], which the configuration compiler shares.

pub mod canary;
pub mod forwarded;
pub mod headers;
pub mod rewrite;
pub mod table;
pub mod tenant;

pub use crate::request_path::{PathError, normalize_path, routing_path};
pub use headers::RequestHeaders;
pub use table::{Decision, KeyKind, Reason, RequestInfo, RouteTable, ShadowDecision};
pub use tenant::Tenant;
