//! The access log: one line per request (`access_log:` in routes.yaml), in
//! JSON with the keys of the design brief or in the NCSA combined format.
//!
//! The data plane formats a line and appends it to a shared batch; one
//! background thread takes the batches and writes them to stdout or a file,
//! when a batch fills and at least every [`FLUSH_EVERY`]. Batching keeps the
//! writer asleep under load: handing it each line would wake it once per
//! request, which cost a quarter of the proxy's throughput on two cores. A
//! write that stalls (a blocked pipe, a slow disk) or fails (a full disk)
//! holds up only that thread: once [`QUEUE_LINES`] lines wait, new ones are
//! dropped and counted in `strangler_access_log_dropped_total`, as are the
//! lines of a batch whose write failed. No request ever waits on the log.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::IntCounter;

use crate::config::{AccessLogFormat, AccessLogSettings, AccessLogTarget};

/// Lines waiting for the writer before new ones are dropped.
pub const QUEUE_LINES: usize = 16_384;
/// A batch this large wakes the writer.
const BATCH_BYTES: usize = 64 * 1024;
/// The longest a line waits in a batch that does not fill.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

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

/// Lines for one target, newline-terminated.
struct Batch {
    target: Arc<AccessLogSettings>,
    text: String,
    lines: u64,
}

#[derive(Default)]
struct Pending {
    batches: VecDeque<Batch>,
    /// Lines in `batches`.
    lines: usize,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when a batch fills.
    full: Condvar,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The data plane's end of the access log; cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
    dropped: IntCounter,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Each worker formats its line here, outside the shared lock.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

impl AccessLog {
    /// Starts the writer thread. `dropped` counts lines that were not
    /// written: `capacity` lines were already waiting, or the write failed.
    pub fn spawn(capacity: usize, dropped: IntCounter) -> AccessLog {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            full: Condvar::new(),
            capacity,
        });
        let writer = shared.clone();
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("strangler access log".to_string())
            .spawn(move || write_batches(&writer, &counter))
            .expect("spawning the access log writer");
        AccessLog { shared, dropped }
    }

    /// Queues `entry` for `settings`' target; never blocks on the writer.
    pub fn submit(&self, settings: &Arc<AccessLogSettings>, entry: &Entry<'_>) {
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            match settings.format {
                AccessLogFormat::Json => write_json(&mut line, entry),
                AccessLogFormat::Combined => write_combined(&mut line, entry),
            }
            line.push('\n');
            let mut pending = self.shared.lock();
            if pending.lines >= self.shared.capacity {
                drop(pending);
                self.dropped.inc();
                return;
            }
            let reuse = pending
                .batches
                .back()
                .is_some_and(|b| Arc::ptr_eq(&b.target, settings) && b.text.len() < BATCH_BYTES);
            if !reuse {
                pending.batches.push_back(Batch {
                    target: settings.clone(),
                    text: String::with_capacity(BATCH_BYTES + 1024),
                    lines: 0,
                });
            }
            pending.lines += 1;
            let batch = pending.batches.back_mut().expect("just ensured");
            batch.text.push_str(&line);
            batch.lines += 1;
            let filled = batch.text.len() >= BATCH_BYTES;
            drop(pending);
            if filled {
                self.shared.full.notify_one();
            }
        });
    }
}

/// The writer: takes every waiting batch when one fills or [`FLUSH_EVERY`]
/// passes, opens the target a batch names (a reload may change it), and
/// writes each batch with one call. A batch that cannot be written is
/// counted as dropped, and the target is opened again for the next one (the
/// file may have been removed, or the disk freed).
fn write_batches(shared: &Shared, dropped: &IntCounter) {
    let mut open: Option<Opened> = None;
    loop {
        let batches = {
            let mut pending = shared.lock();
            if pending.batches.iter().all(|b| b.text.len() < BATCH_BYTES) {
                pending = shared
                    .full
                    .wait_timeout(pending, FLUSH_EVERY)
                    .map(|(p, _)| p)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            pending.lines = 0;
            std::mem::take(&mut pending.batches)
        };
        for batch in batches {
            let target = &batch.target.target;
            let current = open.as_mut().is_some_and(|o| o.still(target));
            if !current {
                open = match Opened::open(target) {
                    Ok(o) => Some(o),
                    Err(e) => {
                        log::warn!("access log: cannot open {target}: {e}");
                        None
                    }
                };
            }
            let written = open.as_mut().is_some_and(|o| {
                o.sink.write_all(batch.text.as_bytes()).is_ok() && o.sink.flush().is_ok()
            });
            if !written {
                dropped.inc_by(batch.lines);
                open = None;
            }
        }
    }
}

/// How often the writer checks that its file is still the one at the path.
const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// The target being written, and for a file which file it is: log rotation
/// renames the file (and may create a new one), and the lines must follow
/// the path, not the renamed file, without a signal or a restart.
struct Opened {
    target: AccessLogTarget,
    sink: Box<dyn std::io::Write>,
    /// Device and inode of the open file.
    identity: Option<(u64, u64)>,
    checked: std::time::Instant,
}

impl Opened {
    fn open(target: &AccessLogTarget) -> std::io::Result<Opened> {
        let (sink, identity): (Box<dyn std::io::Write>, _) = match target {
            AccessLogTarget::Stdout => (Box::new(std::io::stdout()), None),
            AccessLogTarget::File(path) => {
                use std::os::unix::fs::MetadataExt;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                let meta = file.metadata()?;
                // Unbuffered: a batch is written with one call already.
                (Box::new(file), Some((meta.dev(), meta.ino())))
            }
        };
        Ok(Opened {
            target: target.clone(),
            sink,
            identity,
            checked: std::time::Instant::now(),
        })
    }

    /// Whether this is still the place to write `target`'s lines.
    fn still(&mut self, target: &AccessLogTarget) -> bool {
        if self.target != *target {
            return false;
        }
        let AccessLogTarget::File(path) = target else {
            return true;
        };
        if self.checked.elapsed() < REOPEN_CHECK {
            return true;
        }
        self.checked = std::time::Instant::now();
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).is_ok_and(|m| Some((m.dev(), m.ino())) == self.identity)
    }
}

/// `2026-12-02T06:00:00.500Z`; the part up to the seconds is made once a
/// second per thread.
fn write_timestamp(out: &mut String, at: &DateTime<Utc>) {
    thread_local! {
        static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    SECOND.with(|cache| {
        let mut cache = cache.borrow_mut();
        let secs = at.timestamp();
        if cache.0 != secs {
            cache.1 = at.format("%Y-%m-%dT%H:%M:%S").to_string();
            cache.0 = secs;
        }
        out.push_str(&cache.1);
    });
    let _ = write!(out, ".{:03}Z", at.timestamp_subsec_millis());
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
    write_json(&mut out, e);
    out
}

fn write_json(out: &mut String, e: &Entry<'_>) {
    out.push_str("{\"ts\":\"");
    write_timestamp(out, &e.at);
    out.push('"');
    out.push_str(",\"request_id\":");
    json_string(out, e.request_id);
    out.push_str(",\"client\":");
    match e.client {
        Some(ip) => {
            let _ = write!(out, "\"{ip}\"");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"method\":");
    json_string(out, e.method);
    out.push_str(",\"path\":");
    json_string(out, e.path);
    out.push_str(",\"route\":");
    json_string(out, e.route);
    out.push_str(",\"side\":");
    match e.side {
        Some(side) => json_string(out, side),
        None => out.push_str("null"),
    }
    out.push_str(",\"backend\":");
    match e.backend {
        Some(b) => json_string(out, b),
        None => out.push_str("null"),
    }
    let _ = write!(
        out,
        ",\"status\":{},\"duration_ms\":{:.3},\"bytes_out\":{},\"upstream_error\":",
        e.status, e.duration_ms, e.bytes_out
    );
    match e.upstream_error {
        Some(kind) => json_string(out, kind),
        None => out.push_str("null"),
    }
    let _ = write!(out, ",\"shadowed\":{}}}", e.shadowed);
}

pub fn combined_line(e: &Entry<'_>) -> String {
    let mut out = String::with_capacity(256);
    write_combined(&mut out, e);
    out
}

/// `client - - [time] "METHOD path VERSION" status bytes "referer" "agent"`.
fn write_combined(out: &mut String, e: &Entry<'_>) {
    let quoted = |out: &mut String, s: Option<&str>| match s {
        Some(s) => {
            for c in s.chars() {
                if c == '\\' || c == '"' {
                    out.push('\\');
                }
                out.push(c);
            }
        }
        None => out.push('-'),
    };
    match e.client {
        Some(c) => {
            let _ = write!(out, "{c}");
        }
        None => out.push('-'),
    }
    let _ = write!(
        out,
        " - - [{}] \"{} ",
        e.at.format("%d/%b/%Y:%H:%M:%S %z"),
        e.method
    );
    quoted(out, Some(e.path));
    let _ = write!(out, " {}\" {} {} \"", e.version, e.status, e.bytes_out);
    quoted(out, e.referer);
    out.push_str("\" \"");
    quoted(out, e.user_agent);
    out.push('"');
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
