//! The data plane: the Pingora proxy service. Read [`service`] top to bottom
//! for a request's way through the proxy: hygiene checks and the route
//! decision, the upstream peer, the request and response filters, error
//! answers and metrics.

pub mod connection;
pub mod ctx;
pub mod hygiene;
pub mod proxy_protocol;
pub mod respond;
pub mod service;

pub use service::StranglerProxy;
