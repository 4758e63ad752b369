//! The standard `process_*` metrics (CPU, memory, file descriptors, threads,
//! start time), read from `/proc/self` when `/metrics` is rendered, under the
//! names every Prometheus client uses, so the usual dashboards and alerts
//! (descriptors near the limit, memory growth) work unchanged.
//!
//! Read by hand rather than through the `prometheus` crate's `process`
//! feature, which pulls in `procfs` and its dependencies for five numbers.
//! Off Linux the series stay at zero.

use std::sync::{Arc, Mutex};

use prometheus::{Counter, Gauge, IntGauge, Registry};

/// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, which is
/// 100 on every Linux architecture Strangler builds for (the kernel keeps it
/// fixed for user space whatever its internal HZ).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone)]
pub(super) struct ProcessMetrics {
    cpu_seconds: Counter,
    resident_bytes: IntGauge,
    virtual_bytes: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    threads: IntGauge,
    start_time: Gauge,
    /// CPU seconds already added to the counter; shared by every clone, so
    /// that whichever renders adds only what is new.
    cpu_reported: Arc<Mutex<f64>>,
}

/// What `/proc/self/stat` says, the fields used here.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    cpu_ticks: u64,
    threads: i64,
    start_ticks: u64,
    virtual_bytes: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may itself contain spaces and parentheses, so fields are counted from
/// the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state) of proc(5).
    let field = |n: usize| fields.get(n - 3).copied();
    let num = |n: usize| field(n)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: num(14)? + num(15)?,
        threads: field(20)?.parse().ok()?,
        start_ticks: num(22)?,
        virtual_bytes: num(23)?,
    })
}

/// Resident memory from `/proc/self/status` (`VmRSS`, in kB), which unlike
/// the page count in `stat` needs no page size.
fn parse_resident_bytes(status: &str) -> Option<i64> {
    let kb: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The soft limit on open files from `/proc/self/limits`.
fn parse_max_fds(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Seconds since the epoch at which the machine booted (`btime`).
fn parse_boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

impl ProcessMetrics {
    pub(super) fn register(registry: &Registry) -> ProcessMetrics {
        let int_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let cpu_seconds = Counter::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(cpu_seconds.clone()))
            .expect("unique metric");
        let start_time = Gauge::new(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(start_time.clone()))
            .expect("unique metric");
        let metrics = ProcessMetrics {
            cpu_seconds,
            resident_bytes: int_gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            virtual_bytes: int_gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
            open_fds: int_gauge("process_open_fds", "Number of open file descriptors."),
            max_fds: int_gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            ),
            threads: int_gauge("process_threads", "Number of OS threads in the process."),
            start_time,
            cpu_reported: Arc::new(Mutex::new(0.0)),
        };
        metrics.refresh();
        metrics
    }

    /// Reads `/proc/self` again. Cheap (four small files and a directory
    /// listing); called once per scrape.
    pub(super) fn refresh(&self) {
        if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            let cpu = stat.cpu_ticks as f64 / TICKS_PER_SECOND;
            let mut reported = self.cpu_reported.lock().unwrap_or_else(|e| e.into_inner());
            if cpu > *reported {
                self.cpu_seconds.inc_by(cpu - *reported);
                *reported = cpu;
            }
            self.threads.set(stat.threads);
            self.virtual_bytes.set(stat.virtual_bytes as i64);
            if self.start_time.get() == 0.0 {
                if let Some(boot) = std::fs::read_to_string("/proc/stat")
                    .ok()
                    .as_deref()
                    .and_then(parse_boot_time)
                {
                    self.start_time
                        .set(boot + stat.start_ticks as f64 / TICKS_PER_SECOND);
                }
            }
        }
        if let Some(rss) = std::fs::read_to_string("/proc/self/status")
            .ok()
            .as_deref()
            .and_then(parse_resident_bytes)
        {
            self.resident_bytes.set(rss);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The listing itself holds one descriptor while it runs.
            self.open_fds.set(dir.count() as i64 - 1);
        }
        if let Some(max) = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .as_deref()
            .and_then(parse_max_fds)
        {
            self.max_fds.set(max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and a parenthesis, as proc(5) allows.
        let text = "4242 (str (a) ngler) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 50 0 0 20 0 7 0 123456 987654321 2500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(text).expect("parses");
        assert_eq!(s.cpu_ticks, 300);
        assert_eq!(s.threads, 7);
        assert_eq!(s.start_ticks, 123456);
        assert_eq!(s.virtual_bytes, 987654321);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn limits_and_boot_time() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\n";
        assert_eq!(parse_max_fds(limits), Some(20000));
        assert_eq!(
            parse_boot_time("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1.7e9)
        );
        assert_eq!(
            parse_resident_bytes("Name:\tstrangler\nVmRSS:\t   49240 kB\n"),
            Some(49240 * 1024)
        );
    }

    #[test]
    fn this_process_is_read() {
        let registry = Registry::new();
        let m = ProcessMetrics::register(&registry);
        m.refresh();
        if cfg!(target_os = "linux") {
            assert!(m.resident_bytes.get() > 0);
            assert!(m.open_fds.get() > 0);
            assert!(m.max_fds.get() >= m.open_fds.get());
            assert!(m.threads.get() >= 1);
            assert!(m.start_time.get() > 1.5e9);
        }
    }
}
