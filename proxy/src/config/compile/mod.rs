//! Turns the raw file ([`RawConfig`]) into the validated model ([`Config`]),
//! reporting every problem at once, each with its place.
//!
//! This module only orchestrates: each part of the file is checked by the
//! module that owns it, all into one [`ErrorSink`], and the model is built
//! only if the sink stayed empty. Checks that need more than one part (routes
//! naming backends, a route that another one shadows) run after the parts
//! they need. The calls follow the file's order because the report, sorted
//! by place, keeps this order for errors found at the same place.
//!
//! The only I/O here is reading the certificate files a backend's `tls:`
//! names ([`upstream_tls`]), relative to `base` (the file's directory), so
//! that an unusable one is an error with its place. Backend hosts are resolved where upstreams are
//! built (`live::upstream`), so that `strangler check` gives the same answer
//! on a machine that cannot see production DNS.

mod backends;
mod guard;
mod health;
mod listeners;
mod matching;
mod reachability;
mod record;
mod rewrite;
mod rollout;
mod routes;
mod settings;
mod shadow;
mod tenants;
mod topology;
mod upstream_tls;
mod values;

pub use backends::parse_endpoint;
pub use routes::parse_sticky;

use std::path::Path;

use super::error::{ConfigError, ErrorSink};
use super::model::Config;
use super::raw::RawConfig;

/// Compiles a decoded file; relative paths in it are taken from `base`. On
/// failure every error found is returned.
pub fn compile(raw: RawConfig, base: &Path) -> Result<Config, Vec<ConfigError>> {
    let mut sink = ErrorSink::default();

    settings::check_version(&mut sink, raw.version.as_ref());
    let listen = listeners::compile_listen(&mut sink, raw.listen.as_deref());
    let proxy_protocol = raw.proxy_protocol.unwrap_or(false);
    topology::check_proxy_protocol(&mut sink, proxy_protocol, raw.trusted_proxies.as_ref());
    let trusted_proxies =
        topology::compile_trusted_proxies(&mut sink, raw.trusted_proxies.as_ref());
    let access_log = topology::compile_access_log(&mut sink, raw.access_log.as_ref());
    let tls = listeners::compile_tls(&mut sink, raw.tls.as_ref());
    let admin = listeners::compile_admin(&mut sink, raw.admin.as_ref());
    let store = settings::compile_store(&mut sink, raw.store.as_deref());

    let backends = backends::compile_backends(&mut sink, &raw.backends, base);
    let known = backends::KnownBackends::new(&backends, &raw.backends);
    let tenant = tenants::compile_tenant_sources(&mut sink, &raw.tenant);
    let default_backend =
        backends::compile_default_backend(&mut sink, &known, raw.default.as_deref());

    let routes = routes::compile_routes(&mut sink, &raw.routes, &known, default_backend);
    reachability::check_reachability(&mut sink, &routes);

    if !sink.is_empty() {
        return Err(sink.into_errors());
    }
    // Every part that yields nothing has recorded why, so an empty sink means
    // every part is present.
    Ok(Config {
        listen: listen.expect("checked"),
        proxy_protocol,
        trusted_proxies,
        access_log,
        tls,
        admin: admin.expect("checked"),
        store: store.expect("checked"),
        backends,
        tenant,
        default_backend: default_backend.expect("checked"),
        routes: routes.routes,
    })
}
