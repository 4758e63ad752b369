//! The small values every part of the file is made of: addresses, durations,
//! percentages, counts, sizes, and header, cookie and method names. Each
//! parser returns the message to report; the caller, which knows the place,
//! records it with [`ErrorSink::check`](crate::config::error::ErrorSink::check).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Method};

use crate::config::raw::Scalar;
use crate::config::units::{ByteSize, Percent, parse_duration};

/// A literal `IP:PORT`. Host names are refused rather than looked up: a
/// listener binds an address, and checking a file must not depend on DNS.
pub(super) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    SocketAddr::from_str(text.trim()).map_err(|_| {
        format!("{text:?} is not an address to listen on (expected IP:PORT, e.g. 0.0.0.0:8080)")
    })
}

pub(super) fn positive_duration(raw: &Scalar) -> Result<Duration, String> {
    let d = match raw {
        Scalar::Text(t) => parse_duration(t)?,
        other => parse_duration(&other.as_text())?,
    };
    if d.is_zero() {
        return Err("must be longer than 0".to_string());
    }
    Ok(d)
}

pub(super) fn percent(raw: &Scalar) -> Result<Percent, String> {
    match raw {
        Scalar::Number(n) => Percent::new(*n),
        Scalar::Text(t) => Percent::parse(t),
        Scalar::Bool(b) => Err(format!(
            "{b} is not a percentage (expected a number from 0 to 100)"
        )),
    }
}

/// A percentage written in the file, as the fraction the engine compares
/// rates with (`5` is `0.05`).
pub(super) fn fraction(raw: &Scalar) -> Result<f64, String> {
    percent(raw).map(|p| p.get() / 100.0)
}

/// A whole number of requests or samples; zero is refused because a
/// threshold over no observations would decide on nothing.
pub(super) fn count(raw: &Scalar) -> Result<u64, String> {
    match raw {
        Scalar::Number(n) if n.fract() == 0.0 && *n >= 1.0 => Ok(*n as u64),
        other => Err(format!(
            "{} is not a count (a whole number, 1 or more)",
            other.as_text()
        )),
    }
}

pub(super) fn byte_size(raw: &Scalar) -> Result<ByteSize, String> {
    ByteSize::parse(&raw.as_text())
}

pub(super) fn header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(text.as_bytes()).map_err(|_| format!("{text:?} is not a header name"))
}

pub(super) fn cookie_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c));
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not a cookie name"))
    }
}

pub(super) fn method(text: &str) -> Result<Method, String> {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    ];
    if KNOWN.contains(&text) {
        return Method::from_bytes(text.as_bytes()).map_err(|e| e.to_string());
    }
    if KNOWN.contains(&text.to_ascii_uppercase().as_str()) {
        return Err(format!(
            "{text:?}: methods are case-sensitive, write {:?}",
            text.to_ascii_uppercase()
        ));
    }
    // Extension methods (WebDAV and the like) are allowed if they are tokens.
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '-' || c == '_')
    {
        return Method::from_bytes(text.as_bytes()).map_err(|e| e.to_string());
    }
    Err(format!("{text:?} is not an HTTP method"))
}
