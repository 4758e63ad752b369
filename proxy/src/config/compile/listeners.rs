//! The addresses the proxy itself serves on: `listen`, the optional `tls`
//! listener and the `admin` listener with its token. Only literal addresses
//! are taken (see [`socket_addr`]), so these checks need no network.

use std::net::SocketAddr;

use super::values::socket_addr;
use crate::config::defaults::{DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN};
use crate::config::error::{ErrorSink, Place};
use crate::config::model::{AdminSettings, TlsListener};
use crate::config::raw::{RawAdmin, RawTls};

pub(super) fn compile_listen(sink: &mut ErrorSink, raw: Option<&str>) -> Option<SocketAddr> {
    sink.check(
        &Place::root().key("listen"),
        socket_addr(raw.unwrap_or(DEFAULT_LISTEN)),
    )
}

/// `None` both when there is no `tls` block and when it has an error; the
/// error is in the sink, so the file is refused either way.
pub(super) fn compile_tls(sink: &mut ErrorSink, raw: Option<&RawTls>) -> Option<TlsListener> {
    let raw = raw?;
    let place = Place::root().key("tls");
    let listen = sink.check(&place.key("listen"), socket_addr(&raw.listen));
    for (key, path) in [("cert", &raw.cert), ("key", &raw.key)] {
        if path.trim().is_empty() {
            sink.push(place.key(key), "is empty (give the path of a PEM file)");
        }
    }
    Some(TlsListener {
        listen: listen?,
        cert: raw.cert.clone(),
        key: raw.key.clone(),
    })
}

pub(super) fn compile_admin(sink: &mut ErrorSink, raw: Option<&RawAdmin>) -> Option<AdminSettings> {
    let place = Place::root().key("admin");
    let listen_text = raw
        .and_then(|a| a.listen.as_deref())
        .unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen = sink.check(&place.key("listen"), socket_addr(listen_text));
    let token_env = raw.and_then(|a| a.token_env.clone());
    if let Some(name) = &token_env {
        if !is_env_var_name(name) {
            sink.push(
                place.key("token_env"),
                format!("{name:?} is not an environment variable name"),
            );
        }
    }
    if let Some(addr) = listen {
        // Reading metrics from anywhere is harmless; changing routes is not.
        if !addr.ip().is_loopback() && token_env.is_none() {
            sink.push(
                place.key("listen"),
                format!(
                    "{addr} is not a loopback address; set admin.token_env so that changes need a token"
                ),
            );
        }
    }
    Some(AdminSettings {
        listen: listen?,
        token_env,
    })
}

/// The portable shell alphabet, so the variable can be set from any shell
/// or service manager.
fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}
