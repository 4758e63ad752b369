//! What a proxy worker is made of: Pingora's proxy engine running
//! [`StranglerProxy`], behind Strangler's connection loop ([`GuardedApp`]),
//! with the owned fast path in front when it is on. [`Workers`] holds what
//! every worker of a process shares (the live table, the counters, the
//! shadow queue, the in-flight count, the access log) and builds each
//! worker's application. `strangler serve` builds one per thread
//! (`server.rs` adds listeners and TLS); the differential fuzz target builds
//! one engine worker and one fast-path worker on the same table.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use pingora::apps::HttpServerOptions;
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;

use super::connection::{ConnectionLimits, ConnectionStats, GuardedApp};
use super::fast_path::FastPath;
use super::hygiene::Rejection;
use super::service::StranglerProxy;
use crate::access_log::AccessLog;
use crate::live::Live;
use crate::shadow::ShadowQueue;

/// A worker's application, as a Pingora service runs it.
pub type WorkerApp = GuardedApp<HttpProxy<StranglerProxy>>;

/// Settings of the data plane that are not in `routes.yaml`.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// From a request's first byte to the end of its header.
    pub header_timeout: Duration,
    /// Requests in flight above which new ones get a fast 503.
    pub max_inflight: usize,
    /// Access-log lines queued for the writer before new ones are dropped.
    pub access_log_queue: usize,
}

/// What every worker of one process shares.
#[derive(Debug, Clone)]
pub struct Workers {
    proxy: StranglerProxy,
    stats: ConnectionStats,
    limits: ConnectionLimits,
    fast_path_served: prometheus::IntCounter,
}

impl Workers {
    /// Registers the data plane's process-wide counters
    /// (`strangler_rejected_requests_total`,
    /// `strangler_access_log_dropped_total`,
    /// `strangler_fast_path_requests_total`) in `live`'s registry and starts
    /// the access-log writer.
    pub fn new(live: &Arc<Live>, shadow: ShadowQueue, settings: WorkerSettings) -> Workers {
        let metrics = live.metrics();
        let rejected = StranglerProxy::rejected_counter(metrics);
        let stats = ConnectionStats {
            header_timeouts: rejected.with_label_values(&[Rejection::HeaderTimeout.as_str()]),
            headers_too_large: rejected.with_label_values(&[Rejection::HeadersTooLarge.as_str()]),
            bad_request_lines: rejected.with_label_values(&[Rejection::BadRequestLine.as_str()]),
            proxy_protocol: rejected.with_label_values(&[Rejection::ProxyProtocol.as_str()]),
        };
        let dropped = prometheus::IntCounter::new(
            "strangler_access_log_dropped_total",
            "Access-log lines not written: the writer was behind (queue full) or the write failed.",
        )
        .expect("valid metric");
        metrics.register_extra(Box::new(dropped.clone()));
        let access_log = AccessLog::spawn(settings.access_log_queue.max(1), dropped);
        let fast_path_served = prometheus::IntCounter::new(
            "strangler_fast_path_requests_total",
            "Requests served on the owned HTTP/1 fast path (--fast-path) rather than Pingora's proxy engine.",
        )
        .expect("valid metric");
        metrics.register_extra(Box::new(fast_path_served.clone()));
        let proxy = StranglerProxy::new(
            live.clone(),
            rejected,
            shadow,
            Arc::new(AtomicUsize::new(0)),
            settings.max_inflight,
            access_log,
        );
        Workers {
            proxy,
            stats,
            limits: ConnectionLimits {
                header_deadline: settings.header_timeout,
                keepalive: Duration::from_secs(60),
            },
            fast_path_served,
        }
    }

    /// One worker's application: the engine (with h2c) behind the
    /// connection loop, and the fast path in front of it when `fast_path`.
    pub fn app(&self, conf: &Arc<ServerConf>, fast_path: bool) -> WorkerApp {
        let fast =
            fast_path.then(|| FastPath::new(self.proxy.clone(), self.fast_path_served.clone()));
        let mut http = pingora::proxy::http_proxy(conf, self.proxy.clone());
        http.server_options = Some({
            let mut o = HttpServerOptions::default();
            o.h2c = true;
            o
        });
        GuardedApp::new(
            http,
            self.limits,
            true,
            self.stats.clone(),
            self.proxy.live.clone(),
            fast,
        )
    }

    /// `strangler_fast_path_requests_total`.
    pub fn fast_path_counter(&self) -> prometheus::IntCounter {
        self.fast_path_served.clone()
    }

    /// Counts connections refused for their PROXY header (the TLS
    /// listener's pre-handshake callback counts there too).
    pub fn proxy_protocol_refused(&self) -> prometheus::IntCounter {
        self.stats.proxy_protocol.clone()
    }
}
