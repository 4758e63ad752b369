//! Strangler: a reverse proxy on Pingora for strangler-fig migrations.
//!
//! A request's way through the code, top to bottom:
//! - [`config`]: `routes.yaml` read, validated and compiled;
//! - [`request_path`]: the normal form requests are routed on (a leaf, shared
//!   by the compiler, the router and the data plane);
//! - [`routing`]: the pure decision: route, side, canary draw, shadow;
//! - [`dataplane`]: the Pingora proxy: request in, primary upstream, response
//!   out, metrics;
//! - [`capture`]: what is kept of a request shadowed or recorded (body and
//!   answer, bounded);
//! - [`shadow`]: the copy to the other side, handed to shadow-diff's judge
//!   and store;
//! - [`record`]: sampled requests and their answers kept (redacted) for
//!   replay;
//! - [`replay`]: recorded requests sent again to a backend and judged like
//!   shadow copies (`strangler replay`);
//! - [`live`]: the table being served (`ArcSwap`) and its upstreams;
//! - [`changes`]: every change of that table: planned, applied, written to
//!   the file, recorded, followed across the fleet;
//! - [`guard`]: the automatic guard's judgement (it acts through
//!   [`changes`]);
//! - [`rollout`]: routes that promote themselves, step by step, gated on
//!   the guard and the diff report (each step a change through
//!   [`changes`]);
//! - [`status`]: where each route stands (stage, canary, rollout, guard,
//!   verdict, share on new);
//! - [`access_log`]: one line per request, written off the request path;
//! - [`control`]: the background tasks (file watcher, SIGHUP, store watch,
//!   fleet, guard, rollouts, traffic samples, readiness);
//! - [`admin`]: the admin listener (health, metrics, routes, changes);
//! - [`metrics`]: the Prometheus registry and per-route handles;
//! - [`report`]: the diff report served by the admin listener;
//! - [`server`]: the process assembled;
//! - [`service_manager`]: the pid file and systemd's readiness notification;
//! - [`cli`]: the `strangler` subcommands.

pub mod access_log;
pub mod admin;
pub mod capture;
pub mod changes;
pub mod cli;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod guard;
pub mod live;
pub mod metrics;
pub mod record;
pub mod replay;
pub mod report;
pub mod request_path;
pub mod rollout;
pub mod routing;
pub mod server;
pub mod service_manager;
pub mod shadow;
pub mod status;
