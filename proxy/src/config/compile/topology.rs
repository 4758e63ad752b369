//! What surrounds the listener: `proxy_protocol`, `trusted_proxies` and
//! `access_log`. A PROXY-protocol listener with nobody trusted would refuse
//! every connection, so that combination is an error, not a surprise.

use std::sync::Arc;

use crate::config::error::{ErrorSink, Place};
use crate::config::model::{
    AccessLogFormat, AccessLogSettings, AccessLogTarget, Cidr, TrustedProxies,
};
use crate::config::raw::RawAccessLog;

pub(super) fn compile_trusted_proxies(
    sink: &mut ErrorSink,
    raw: Option<&Vec<String>>,
) -> TrustedProxies {
    let place = Place::root().key("trusted_proxies");
    let blocks = raw
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| sink.check(&place.index(i), Cidr::parse(text)))
        .collect();
    TrustedProxies::new(blocks)
}

pub(super) fn check_proxy_protocol(
    sink: &mut ErrorSink,
    proxy_protocol: bool,
    trusted: Option<&Vec<String>>,
) {
    if proxy_protocol && trusted.is_none_or(|t| t.is_empty()) {
        sink.push(
            Place::root().key("proxy_protocol"),
            "needs trusted_proxies: a PROXY header is accepted only from the load balancers listed there",
        );
    }
}

pub(super) fn compile_access_log(
    sink: &mut ErrorSink,
    raw: Option<&RawAccessLog>,
) -> Option<Arc<AccessLogSettings>> {
    let raw = raw?;
    let place = Place::root().key("access_log");
    let target = match raw.path.as_deref().map(str::trim) {
        None => {
            sink.push(
                place.key("path"),
                "missing; say where lines go (stdout or a file path)",
            );
            None
        }
        Some("") => {
            sink.push(place.key("path"), "is empty (use stdout or a file path)");
            None
        }
        Some("stdout") | Some("-") => Some(AccessLogTarget::Stdout),
        Some(path) => Some(AccessLogTarget::File(path.to_string())),
    };
    let format = sink.optional(
        &place,
        "format",
        raw.format.as_deref(),
        AccessLogFormat::Json,
        AccessLogFormat::parse,
    );
    Some(Arc::new(AccessLogSettings {
        target: target?,
        format: format?,
    }))
}
