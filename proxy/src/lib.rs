//! Strangler: a reverse proxy on Pingora for strangler-fig migrations.
//!
//! A request's way through the code, top to bottom:
//! - [`config`]: `routes.yaml` read, validated and compiled;
//! - [`request_path`]: the normal form requests are routed on (a leaf, shared
//!   by the compiler, the router and the data plane);
//! - [`routing`]: the pure decision: route, side, canary draw, shadow;
//! - [`dataplane`]: the Pingora proxy: request in, primary upstream, response
//!   out, metrics;
//! - [`shadow`]: the copy to the other side, the comparison and the store;
//! - [`live`]: the live table (`ArcSwap`) and hot reload;
//! - [`admin`]: the admin listener (health, metrics, routes, reload);
//! - [`metrics`]: the Prometheus registry and per-route handles;
//! - [`cli`]: the `strangler` subcommands.

pub mod admin;
pub mod changes;
pub mod cli;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod guard;
pub mod live;
pub mod metrics;
pub mod report;
pub mod request_path;
pub mod routing;
pub mod server;
pub mod shadow;
