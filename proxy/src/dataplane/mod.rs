//! The data plane: the Pingora proxy service. Read [`service`] top to bottom
//! for a request's way through the proxy: hygiene checks and the route
//! decision, the upstream peer, the request and response filters, error
//! answers and metrics. `exchange` holds those steps, shared with the owned
//! HTTP/1 fast path ([`fast_path`]) that [`connection`]'s loop hands plain
//! requests to when `--fast-path` is on.

mod client_request;
pub mod connection;
pub mod ctx;
mod exchange;
mod fast_answer;
pub mod fast_path;
pub mod hygiene;
pub mod kept_timer;
#[cfg(test)]
mod loopback;
pub mod proxy_protocol;
pub mod respond;
pub mod service;
mod upstream_answer;
pub mod upstream_pool;
mod wire_head;
pub mod workers;

pub use service::StranglerProxy;
