//! The access log: one line per request (`access_log:` in routes.yaml), in
//! JSON with the keys of the design brief or in the NCSA combined format.
//!
//! The data plane formats a line and hands it to a bounded queue; one
//! background thread writes the queue to stdout or a file. A write that
//! stalls (a blocked pipe, a slow disk) or fails (a full disk) holds up only
//! that thread: once the queue is full, new lines are dropped and counted in
//! `strangler_access_log_dropped_total`, and no request ever waits.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use chrono::{DateTime, Utc};
use prometheus::IntCounter;

use crate::config::{AccessLogFormat, AccessLogSettings, AccessLogTarget};

/// Lines held for the writer before new ones are dropped.
pub const QUEUE_LINES: usize = 16_384;

/// One request as the access log shows it.
#[derive(Debug)]
pub struct Entry<'a> {
    pub at: DateTime<Utc>,
    pub request_id: &'a str,
    pub client: Option<std::net::IpAddr>,
    pub method: &'a str,
    /// The path as the client sent it, without the query (which may carry
    /// credentials).
    pub path: &'a str,
    pub version: &'a str,
    pub route: &'a str,
    /// `None` (with `backend`) for a request the proxy answered itself
    /// before any backend was asked.
    pub side: Option<&'a str>,
    pub backend: Option<&'a str>,
    pub status: u16,
    pub duration_ms: f64,
    pub bytes_out: usize,
    pub upstream_error: Option<&'a str>,
    pub shadowed: bool,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

struct Line {
    target: Arc<AccessLogSettings>,
    text: String,
}

/// The data plane's end of the access log; cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessLog {
    lines: SyncSender<Line>,
    dropped: IntCounter,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line").finish_non_exhaustive()
    }
}

impl AccessLog {
    /// Starts the writer thread. `dropped` counts lines that were not
    /// written: the queue was full, or the write failed.
    pub fn spawn(capacity: usize, dropped: IntCounter) -> AccessLog {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("strangler access log".to_string())
            .spawn(move || write_lines(rx, counter))
            .expect("spawning the access log writer");
        AccessLog { lines: tx, dropped }
    }

    /// Queues `entry` for `settings`' target; never blocks.
    pub fn submit(&self, settings: &Arc<AccessLogSettings>, entry: &Entry<'_>) {
        let text = match settings.format {
            AccessLogFormat::Json => json_line(entry),
            AccessLogFormat::Combined => combined_line(entry),
        };
        let line = Line {
            target: settings.clone(),
            text,
        };
        match self.lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }
}

enum Sink {
    Stdout(std::io::Stdout),
    File(std::io::BufWriter<std::fs::File>),
}

impl Sink {
    fn open(target: &AccessLogTarget) -> std::io::Result<Sink> {
        Ok(match target {
            AccessLogTarget::Stdout => Sink::Stdout(std::io::stdout()),
            AccessLogTarget::File(path) => Sink::File(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
        })
    }

    fn write_line(&mut self, text: &str) -> std::io::Result<()> {
        match self {
            Sink::Stdout(out) => {
                let mut out = out.lock();
                out.write_all(text.as_bytes())?;
                out.write_all(b"\n")
            }
            Sink::File(f) => {
                f.write_all(text.as_bytes())?;
                f.write_all(b"\n")
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

/// The writer: opens the target a line names (a reload may change it), and
/// flushes whenever the queue runs empty, so lines appear promptly without a
/// syscall per line under load. Lines still buffered when a write or flush
/// fails are counted as dropped, and the target is opened again for the next
/// line (the file may have been removed, or the disk freed).
fn write_lines(rx: Receiver<Line>, dropped: IntCounter) {
    let mut open: Option<(AccessLogTarget, Sink)> = None;
    // Lines accepted by the sink's buffer but not yet flushed.
    let mut pending: u64 = 0;
    let fail = |open: &mut Option<(AccessLogTarget, Sink)>, pending: &mut u64| {
        dropped.inc_by(*pending);
        *pending = 0;
        *open = None;
    };
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(line) = next.take() {
            let same = matches!(&open, Some((t, _)) if *t == line.target.target);
            if !same {
                let flushed = open.as_mut().is_none_or(|(_, sink)| sink.flush().is_ok());
                if !flushed {
                    fail(&mut open, &mut pending);
                }
                pending = 0;
                match Sink::open(&line.target.target) {
                    Ok(sink) => open = Some((line.target.target.clone(), sink)),
                    Err(e) => {
                        log::warn!("access log: cannot open {}: {e}", line.target.target);
                        open = None;
                    }
                }
            }
            pending += 1;
            let written = open
                .as_mut()
                .is_some_and(|(_, sink)| sink.write_line(&line.text).is_ok());
            if !written {
                fail(&mut open, &mut pending);
            }
            next = rx.try_recv().ok();
        }
        match open.as_mut().map(|(_, sink)| sink.flush().is_ok()) {
            Some(true) => pending = 0,
            Some(false) => fail(&mut open, &mut pending),
            None => {}
        }
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub fn json_line(e: &Entry<'_>) -> String {
    let mut out = String::with_capacity(320);
    out.push_str("{\"ts\":");
    json_string(
        &mut out,
        &e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    out.push_str(",\"request_id\":");
    json_string(&mut out, e.request_id);
    out.push_str(",\"client\":");
    match e.client {
        Some(ip) => json_string(&mut out, &ip.to_string()),
        None => out.push_str("null"),
    }
    out.push_str(",\"method\":");
    json_string(&mut out, e.method);
    out.push_str(",\"path\":");
    json_string(&mut out, e.path);
    out.push_str(",\"route\":");
    json_string(&mut out, e.route);
    out.push_str(",\"side\":");
    match e.side {
        Some(side) => json_string(&mut out, side),
        None => out.push_str("null"),
    }
    out.push_str(",\"backend\":");
    match e.backend {
        Some(b) => json_string(&mut out, b),
        None => out.push_str("null"),
    }
    let _ = write!(
        out,
        ",\"status\":{},\"duration_ms\":{:.3},\"bytes_out\":{},\"upstream_error\":",
        e.status, e.duration_ms, e.bytes_out
    );
    match e.upstream_error {
        Some(kind) => json_string(&mut out, kind),
        None => out.push_str("null"),
    }
    let _ = write!(out, ",\"shadowed\":{}}}", e.shadowed);
    out
}

/// `client - - [time] "METHOD path VERSION" status bytes "referer" "agent"`.
pub fn combined_line(e: &Entry<'_>) -> String {
    let quoted = |s: Option<&str>| match s {
        Some(s) => s.replace('\\', "\\\\").replace('"', "\\\""),
        None => "-".to_string(),
    };
    format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
        e.client
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into()),
        e.at.format("%d/%b/%Y:%H:%M:%S %z"),
        e.method,
        quoted(Some(e.path)),
        e.version,
        e.status,
        e.bytes_out,
        quoted(e.referer),
        quoted(e.user_agent),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            at: DateTime::parse_from_rfc3339("2026-12-02T06:00:00.5Z")
                .unwrap()
                .with_timezone(&Utc),
            request_id: "abc",
            client: Some("198.51.100.7".parse().unwrap()),
            method: "GET",
            path: "/a\"b",
            version: "HTTP/1.1",
            route: "orders",
            side: Some("new"),
            backend: Some("orders"),
            status: 200,
            duration_ms: 1.25,
            bytes_out: 42,
            upstream_error: None,
            shadowed: true,
            referer: None,
            user_agent: Some("curl/8"),
        }
    }

    #[test]
    fn json_lines_parse_with_every_key() {
        let line = json_line(&entry());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts"], "2026-12-02T06:00:00.500Z");
        assert_eq!(v["path"], "/a\"b");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 1.25);
        assert_eq!(v["upstream_error"], serde_json::Value::Null);
        assert_eq!(v["shadowed"], true);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "ts",
                "request_id",
                "client",
                "method",
                "path",
                "route",
                "side",
                "backend",
                "status",
                "duration_ms",
                "bytes_out",
                "upstream_error",
                "shadowed"
            ]
        );
    }

    #[test]
    fn combined_lines() {
        assert_eq!(
            combined_line(&entry()),
            "198.51.100.7 - - [02/Dec/2026:06:00:00 +0000] \"GET /a\\\"b HTTP/1.1\" 200 42 \"-\" \"curl/8\""
        );
    }
}
