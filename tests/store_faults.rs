//! Store faults: the diff database down or its disk full.
//!
//! The real binary shadows a route whose legacy and new backends always
//! answer differently, so every comparison is a diff that should become a row,
//! while clients keep sending. Then the store fails: PostgreSQL behind a
//! [`Relay`] that is cut for 60 s (refusing, then black-holing connections),
//! PostgreSQL lost right after it received a `COMMIT`, and SQLite on a 2 MiB
//! tmpfs that fills up. In each case no client request fails, and the books
//! balance exactly: comparisons made (`strangler_shadow_diffs_total`) = rows
//! in the store + `strangler_shadow_dropped_total{reason="store"}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shadow_diff::{DiffAndHistoryStore, DiffQuery};
use strangler_e2e::backend::Answer;
use strangler_e2e::relay::{Cut, postgres_through_relay};
use strangler_e2e::{Backend, Http, Mode, Proxy, Scrape, Seen, eventually};
use tokio::task::JoinHandle;

const ROUTE: &str = "orders";

/// The shadowed route: every request is copied to `new` and compared; no
/// noise probes, so every difference is real and every comparison a diff.
fn config(legacy: &str, new: &str) -> String {
    format!(
        r#"
backends:
  legacy: {{ url: "{legacy}" }}
  new: {{ url: "{new}" }}
default: legacy
routes:
  - name: {ROUTE}
    match: {{ path: /api/orders }}
    new: new
    canary: 0
    shadow: {{ percent: 100, noise_sample: 0, timeout: 5s }}
"#
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------- load

/// One client request: when it started (since the load began), how long it
/// took, and what went wrong, if anything.
#[derive(Debug)]
struct Sample {
    at: Duration,
    latency: Duration,
    error: Option<String>,
}

/// Steady client load: `tasks` clients, each sending a request, then
/// pausing `pace`, until stopped.
struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<Vec<Sample>>>,
}

impl Load {
    fn start(proxy: &Proxy, tasks: usize, pace: Duration) -> Load {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let tasks = (0..tasks)
            .map(|t| {
                let base = proxy.url("/api/orders");
                let stop = stop.clone();
                let sent = sent.clone();
                tokio::spawn(async move {
                    let http = Http::new();
                    let mut samples = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let t0 = Instant::now();
                        let url = format!("{base}/{t}-{i}");
                        let r = http.send(http::Method::GET, &url, &[], b"").await;
                        let latency = t0.elapsed();
                        sent.fetch_add(1, Ordering::Relaxed);
                        let error = match r {
                            Err(e) => Some(format!("GET {url}: {e}")),
                            Ok(r) if r.status != 200 => {
                                Some(format!("GET {url}: {} {}", r.status, r.text()))
                            }
                            // The client always gets the primary's answer.
                            Ok(r) if r.headers.get("x-served-by").is_none_or(|v| v != "legacy") => {
                                Some(format!("GET {url}: not legacy's answer: {:?}", r.headers))
                            }
                            Ok(_) => None,
                        };
                        samples.push(Sample {
                            at: t0 - started,
                            latency,
                            error,
                        });
                        tokio::time::sleep(pace).await;
                    }
                    samples
                })
            })
            .collect();
        Load {
            started,
            stop,
            sent,
            tasks,
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Time since the load began, to mark phases.
    fn mark(&self) -> Duration {
        self.started.elapsed()
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.expect("load task"));
        }
        all
    }
}

/// Zero client errors, and p99 per phase printed (not asserted).
fn check_clients(samples: &[Sample], phases: &[(&str, Duration, Duration)]) {
    let errors: Vec<&String> = samples.iter().filter_map(|s| s.error.as_ref()).collect();
    for (name, from, to) in phases {
        let mut l: Vec<Duration> = samples
            .iter()
            .filter(|s| s.at >= *from && s.at < *to)
            .map(|s| s.latency)
            .collect();
        l.sort();
        let p99 = l
            .get((l.len() * 99 / 100).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default();
        println!(
            "clients {name:>8}: {:>6} requests, p99 {:>8.2} ms",
            l.len(),
            p99.as_secs_f64() * 1000.0
        );
    }
    assert!(
        errors.is_empty(),
        "{} of {} client requests failed; first: {:#?}",
        errors.len(),
        samples.len(),
        &errors[..errors.len().min(5)]
    );
}

// ---------------------------------------------------------------- books

/// The proxy's side of the books, for the route.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counters {
    /// Comparisons made (every verdict).
    generated: f64,
    /// Comparisons the writer reports as written.
    stored: f64,
    /// Comparisons lost on the way to the store.
    dropped: f64,
}

impl Counters {
    fn of(m: &Scrape) -> Counters {
        Counters {
            generated: m.sum("strangler_shadow_diffs_total", &[("route", ROUTE)]),
            stored: m.sum("strangler_shadow_stored_total", &[("route", ROUTE)]),
            // (+ 0.0: a sum of no samples is -0.)
            dropped: m.sum(
                "strangler_shadow_dropped_total",
                &[("route", ROUTE), ("reason", "store")],
            ) + 0.0,
        }
    }
}

/// Waits until every comparison made is accounted for (stored or dropped)
/// and nothing moves any more: the writer has flushed.
async fn settled(proxy: &Proxy) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last: Option<Counters> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let m = proxy.metrics().await;
        let c = Counters::of(&m);
        if last == Some(c) && c.generated == c.stored + c.dropped {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "the writer never settled: {c:?} (generated = stored + dropped expected); logs:\n{}",
            tail(&proxy.logs(), 40)
        );
        last = Some(c);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Prints the books and checks they balance against `rows`, the diffs
/// actually in the store for the route.
fn check_books(test: &str, m: &Scrape, rows: usize) -> Counters {
    let c = Counters::of(m);
    // (+ 0.0: a sum of no samples is -0.)
    let by_reason = |r: &str| {
        m.sum(
            "strangler_shadow_dropped_total",
            &[("route", ROUTE), ("reason", r)],
        ) + 0.0
    };
    println!(
        "books {test}: generated {} = rows {rows} + dropped(store) {}  [writer says stored {}; \
         other drops, before any comparison: queue_full {}, too_large {}, method {}]",
        c.generated,
        c.dropped,
        c.stored,
        by_reason("queue_full"),
        by_reason("too_large"),
        by_reason("method"),
    );
    let verdicts = |v: &str| {
        m.sum(
            "strangler_shadow_diffs_total",
            &[("route", ROUTE), ("verdict", v)],
        )
    };
    assert_eq!(
        verdicts("match"),
        0.0,
        "every comparison should differ (legacy and new never agree)"
    );
    assert_eq!(
        c.generated,
        rows as f64 + c.dropped,
        "{test}: the books do not balance: generated {} != rows {rows} + dropped {}",
        c.generated,
        c.dropped
    );
    assert_eq!(
        c.stored, rows as f64,
        "{test}: the writer's stored count disagrees with the rows in the store"
    );
    // The clients were checked before the books (every one a 200).
    println!("suite: diff store faults: 1 faults, lost 0");
    c
}

/// Every stored diff of the route in `store` (and how many came in at or
/// after `since_ms`).
async fn rows(store: &DiffAndHistoryStore, since_ms: Option<i64>) -> usize {
    store
        .diffs(&DiffQuery {
            route: Some(ROUTE.into()),
            since_ms,
            limit: 10_000_000,
            ..Default::default()
        })
        .await
        .expect("read diffs")
        .len()
}

/// The sum of the per-minute comparison counts of the route.
async fn counted(store: &DiffAndHistoryStore) -> i64 {
    store
        .counts(shadow_diff::Source::Shadow, Some(ROUTE), None, None)
        .await
        .expect("read counts")
        .iter()
        .map(|c| c.n)
        .sum()
}

// ---------------------------------------------------------------- PostgreSQL

/// Two backends that always differ: each says who it is in a header and in
/// the body.
async fn differing_backends(body_bytes: usize) -> (Backend, Backend) {
    let side = |name: &'static str| {
        Mode::Script(Arc::new(move |seen: &Seen| -> Answer {
            let pad = if name == "legacy" { "l" } else { "n" }.repeat(body_bytes);
            (
                200,
                vec![
                    ("content-type".into(), "application/json".into()),
                    ("x-served-by".into(), name.into()),
                ],
                serde_json::json!({"side": name, "path": seen.path, "pad": pad})
                    .to_string()
                    .into_bytes(),
            )
        }))
    };
    let legacy = Backend::start("legacy").await;
    legacy.set_mode(side("legacy"));
    let new = Backend::start("new").await;
    new.set_mode(side("new"));
    (legacy, new)
}

async fn wait_stored(proxy: &Proxy, n: f64) {
    eventually(Duration::from_secs(30), || async {
        let m = proxy.metrics().await;
        (Counters::of(&m).stored >= n).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("nothing stored; logs:\n{}", tail(&proxy.logs(), 40)));
}

/// The issue's scenario: PostgreSQL unreachable for 60 s under steady load,
/// first refusing connections (a stopped server, 30 s), then black-holing
/// them (a partition, 30 s: connects hang until the writer's own timeouts,
/// and a connect still pending at the restore is delivered late).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_gone_for_60s_fails_no_client_and_the_books_balance() {
    let (legacy, new) = differing_backends(64).await;
    let (direct, relayed, relay) = postgres_through_relay("storecut").await;
    let proxy = Proxy::start_with(
        &format!(
            "version: 1\nlisten: 127.0.0.1:{{listen}}\nadmin:\n  listen: 127.0.0.1:{{admin}}\n  token_env: STRANGLER_ADMIN_TOKEN\nstore: {relayed}\n{}",
            config(&legacy.url(), &new.url())
        ),
        // A smaller store queue than the default, so that the black hole
        // (the writer stuck in connects) also drops at the queue.
        &["--store-queue", "2000"],
    )
    .await;
    assert_eq!(
        Http::new()
            .get(&proxy.url("/api/orders/warm-up"), &[])
            .await
            .status,
        200
    );
    wait_stored(&proxy, 1.0).await;

    let load = Load::start(&proxy, 4, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(7)).await;
    let before = Counters::of(&proxy.metrics().await);
    let cut_at = load.mark();
    relay.cut(Cut::Refuse);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let refused = Counters::of(&proxy.metrics().await);
    relay.cut(Cut::Blackhole);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = Counters::of(&proxy.metrics().await);
    let restore_at = load.mark();
    let restore_ms = now_ms();
    relay.restore();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let end_at = load.mark();
    println!("{} client requests sent", load.sent());
    let samples = load.finish().await;
    check_clients(
        &samples,
        &[
            ("before", Duration::ZERO, cut_at),
            ("cut", cut_at, restore_at),
            ("after", restore_at, end_at + Duration::from_secs(1)),
        ],
    );

    let m = settled(&proxy).await;
    let store = DiffAndHistoryStore::connect(&direct)
        .await
        .expect("connect directly");
    let rows_total = rows(&store, None).await;
    let rows_after = rows(&store, Some(restore_ms)).await;
    println!(
        "relay: {} connections accepted, {} forwarded, {} refused, {} held, {} closed by a cut",
        relay.accepted(),
        relay.forwarded(),
        relay.refused(),
        relay.held(),
        relay.closed_by_cut()
    );
    println!(
        "phases: before cut {before:?}; after 30 s refused {refused:?}; after 30 s black hole {during:?}"
    );
    let c = check_books("postgres cut 60 s", &m, rows_total);
    println!("rows of requests received after the restore: {rows_after}");
    assert!(
        relay.refused() > 0 && relay.held() > 0,
        "the writer met both kinds of cut"
    );
    assert!(
        during.dropped > before.dropped,
        "diffs made while the store was gone are dropped and counted: {before:?} -> {during:?}"
    );
    assert!(
        rows_after > 0,
        "the writer recovers: requests after the restore are stored"
    );
    assert_eq!(
        counted(&store).await,
        c.stored as i64,
        "each stored comparison is counted once per minute row"
    );
    assert!(
        proxy
            .metrics()
            .await
            .sum("strangler_shadow_requests_total", &[("outcome", "sent")])
            > 0.0
    );
}

/// The `COMMIT` of a batch reaches PostgreSQL, and the connection is lost
/// before the answer comes back: the batch is committed, but the writer
/// cannot know it from the failed call. It must neither count the batch as
/// dropped while its rows are in the store, nor write it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_lost_after_commit_neither_loses_nor_double_counts_a_batch() {
    let (legacy, new) = differing_backends(64).await;
    let (direct, relayed, relay) = postgres_through_relay("commitcut").await;
    let proxy = Proxy::start_with_store(&config(&legacy.url(), &new.url()), &relayed).await;
    let load = Load::start(&proxy, 2, Duration::from_millis(20));
    wait_stored(&proxy, 1.0).await;

    // A simple-protocol Query message: 'Q', length 11, "COMMIT\0".
    relay.cut_after(b"Q\x00\x00\x00\x0bCOMMIT\x00", Cut::Refuse);
    eventually(Duration::from_secs(20), || async {
        (relay.tripped() > 0).then_some(())
    })
    .await
    .expect("a COMMIT went through the relay");
    let at_cut = Counters::of(&proxy.metrics().await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    relay.restore();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let samples = load.finish().await;
    check_clients(&samples, &[("all", Duration::ZERO, Duration::MAX)]);

    let m = settled(&proxy).await;
    let store = DiffAndHistoryStore::connect(&direct)
        .await
        .expect("connect directly");
    let rows_total = rows(&store, None).await;
    println!("at the cut: {at_cut:?}");
    let c = check_books("postgres lost after COMMIT", &m, rows_total);
    assert_eq!(counted(&store).await, c.stored as i64);
    // The case this test is about did happen: a batch was in doubt, and
    // the store said it was committed.
    let log = proxy.logs();
    assert!(
        log.contains("in doubt was committed"),
        "no batch was settled as committed:\n{}",
        tail(&log, 20)
    );
}

// ---------------------------------------------------------------- SQLite

/// SQLite on a 2 MiB tmpfs, mounted in a private mount namespace of the
/// proxy alone (`unshare`): diffs with large bodies fill it until every
/// write fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_disk_full_fails_no_client_and_the_books_balance() {
    let (legacy, new) = differing_backends(8 * 1024).await;
    let template = format!(
        "version: 1\nlisten: 127.0.0.1:{{listen}}\nadmin:\n  listen: 127.0.0.1:{{admin}}\n  token_env: STRANGLER_ADMIN_TOKEN\nstore: sqlite://{{dir}}/store/strangler.db\n{}",
        config(&legacy.url(), &new.url())
    );
    let mut proxy = Proxy::start_wrapped(
        &template,
        &[],
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mkdir -p {dir}/store && mount -t tmpfs -o size=2M strangler-store {dir}/store && exec \"$@\"",
            "strangler-in-namespace",
        ],
    )
    .await;
    let store_dir = proxy.dir.path().join("store");
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", proxy.pid())).unwrap();
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(&format!(" {} ", store_dir.display()))
                && l.contains("strangler-store")),
        "the proxy's store directory is the small tmpfs:\n{mounts}"
    );
    let ours = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !ours.contains("strangler-store"),
        "the tmpfs stays in the proxy's namespace"
    );

    let load = Load::start(&proxy, 4, Duration::from_millis(10));
    let full = eventually(Duration::from_secs(120), || async {
        let c = Counters::of(&proxy.metrics().await);
        (c.stored > 0.0 && c.dropped >= 50.0).then_some(c)
    })
    .await;
    let full_at = load.mark();
    // Keep going on the full disk for a while.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let end_at = load.mark();
    println!("{} client requests sent", load.sent());
    let samples = load.finish().await;
    let Some(full) = full else {
        panic!(
            "the store never filled up: {:?}; logs:\n{}",
            Counters::of(&proxy.metrics().await),
            tail(&proxy.logs(), 40)
        )
    };
    println!("disk full (dropping) at {full_at:?}: {full:?}");
    check_clients(
        &samples,
        &[
            ("filling", Duration::ZERO, full_at),
            ("full", full_at, end_at + Duration::from_secs(1)),
        ],
    );

    assert!(proxy.is_running(), "the proxy is still up");
    assert_eq!(
        Http::new()
            .get(&proxy.url("/api/orders/still-up"), &[])
            .await
            .status,
        200
    );
    let m = settled(&proxy).await;
    // The file as the proxy sees it, read through its mount namespace
    // (/proc/PID/root), copied out with its write-ahead log: SQLite itself
    // would resolve that magic link to our own root.
    let inside = format!("/proc/{}/root{}", proxy.pid(), store_dir.display());
    let copy = tempfile::tempdir().unwrap();
    for file in ["strangler.db", "strangler.db-wal"] {
        let from = format!("{inside}/{file}");
        let bytes = std::fs::read(&from).unwrap_or_else(|e| panic!("read {from}: {e}"));
        println!("{file}: {} bytes", bytes.len());
        std::fs::write(copy.path().join(file), bytes).unwrap();
    }
    let store =
        DiffAndHistoryStore::connect(&format!("sqlite://{}/strangler.db", copy.path().display()))
            .await
            .expect("open the copy of the store");
    let rows_total = rows(&store, None).await;
    let log = proxy.logs();
    println!(
        "store log lines: {}",
        log.lines()
            .filter(|l| l.contains("diff store"))
            .take(3)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let c = check_books("sqlite disk full", &m, rows_total);
    assert!(c.stored > 0.0 && c.dropped > 0.0, "{c:?}");
    assert_eq!(counted(&store).await, c.stored as i64);
    // The end of the line is the disk (the message is SQLite's).
    assert!(
        log.contains("full"),
        "the log says why writes fail:\n{}",
        tail(&log, 20)
    );
}
