//! Shadowing: **where a request is copied, compared and its diff stored.**
//!
//! On the request path ([`capture`]) a shadowed request's body and the
//! primary answer are kept (bounded by `max_body`); when the client has its
//! answer, a [`job::ShadowJob`] is queued without waiting ([`queue`]). The
//! [`engine`] (its own thread) sends the copy to the other side, and for a
//! sample of safe requests a second request to legacy to learn noise, has
//! `shadow_diff`'s judge compare the answers and decide the verdict, counts
//! it and hands the redacted record to the store writer. The same queue and
//! engine carry recorded requests (`crate::record`) to the store. Everything
//! is bounded (queue, bytes, concurrency, timeouts), everything skipped is
//! counted with a reason, and the engine's thread yields the CPU to the data
//! plane ([`priority`]).

pub mod capture;
pub mod client;
pub mod engine;
pub mod job;
pub mod priority;
pub mod queue;

pub use capture::ShadowCapture;
pub use engine::{ShadowEngine, ShadowService, ShadowSettings};
pub use job::{EngineJob, ShadowJob, ShadowRuntime};
pub use queue::ShadowQueue;

/// Header set on every shadow copy so the receiving service can tell it
/// (value `1`), and on noise probes to legacy (value `noise`).
pub const SHADOW_HEADER: &str = "x-strangler-shadow";
