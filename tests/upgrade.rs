//! Zero-downtime restart through Pingora's graceful upgrade: a new process
//! started with `--upgrade` takes the listening sockets from the running one
//! (SIGQUIT), which finishes what it has in flight and exits. Ten upgrades in
//! a row under load: no connection refused or reset, no request failed, and
//! a slow request in flight on the first process completes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use strangler_e2e::{Backend, Http, Mode, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Failures seen by the load, by kind.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    refused: AtomicU64,
    reset: AtomicU64,
    other: AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, kind: &AtomicU64, what: String) {
        kind.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap();
        if e.len() < 20 {
            e.push(what);
        }
    }
}

/// One request on a new connection, closed after the answer: shows whether
/// the listening socket ever refuses or resets a connection.
async fn fresh_connection_request(addr: &str, tally: &Tally) {
    let mut s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return tally.fail(&tally.refused, format!("connect: {e}")),
    };
    if let Err(e) = s
        .write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
    {
        return tally.fail(&tally.reset, format!("write: {e}"));
    }
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return tally.fail(&tally.reset, format!("read: {e}")),
        Err(_) => return tally.fail(&tally.other, "no answer in 20 s".into()),
    }
    let text = String::from_utf8_lossy(&out);
    if text.starts_with("HTTP/1.1 200") && text.contains("\"backend\":\"fast\"") {
        tally.ok.fetch_add(1, Ordering::Relaxed);
    } else {
        let head: String = text.chars().take(120).collect();
        tally.fail(&tally.other, format!("answer: {head:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_upgrades_under_load_lose_nothing() {
    let fast = Backend::start("fast").await;
    let slow = Backend::start("slow").await;
    // Longer than the 5 s an upgraded process keeps accepting, shorter than
    // that plus the grace period: only the grace period lets it finish.
    slow.set_mode(Mode::Delay(Duration::from_secs(7)));
    let body = format!(
        "backends:\n  fast: {{ url: \"{}\" }}\n  slow: {{ url: \"{}\", read_timeout: 30s }}\ndefault: fast\nroutes:\n  - name: slow\n    match: {{ path: /slow }}\n    new: slow\n    canary: 100\n",
        fast.url(),
        slow.url()
    );
    let mut proxy = Proxy::start_with_args(&body, &["--grace-period", "5"]).await;
    let addr = proxy.addr();

    // The slow request, in flight on the first process.
    let slow_url = proxy.url("/slow");
    let slow_request = tokio::spawn(async move {
        Http::new()
            .send(http::Method::GET, &slow_url, &[], b"")
            .await
    });
    strangler_e2e::eventually(Duration::from_secs(10), || async {
        slow.seen().iter().any(|s| s.path == "/slow").then_some(())
    })
    .await
    .expect("the slow request reached its backend");

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..3 {
        let (tally, stop, addr) = (tally.clone(), stop.clone(), addr.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                fresh_connection_request(&addr, &tally).await;
            }
        }));
    }
    for _ in 0..3 {
        let (tally, stop) = (tally.clone(), stop.clone());
        let url = proxy.url("/fast");
        load.push(tokio::spawn(async move {
            // Keep-alive connections: a draining process answers with
            // `Connection: close`, and the next request opens a new one.
            let http = Http::new();
            while !stop.load(Ordering::Relaxed) {
                match http.send(http::Method::GET, &url, &[], b"").await {
                    Ok(r) if r.status == 200 => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => tally.fail(&tally.other, format!("status {}", r.status)),
                    Err(e) => tally.fail(&tally.reset, format!("keep-alive: {e}")),
                }
            }
        }));
    }

    let first_pid = proxy.pid();
    for n in 1..=10 {
        let before = tally.ok.load(Ordering::Relaxed);
        proxy.upgrade().await;
        // Let each process serve before it is replaced in turn.
        strangler_e2e::eventually(Duration::from_secs(10), || async {
            (tally.ok.load(Ordering::Relaxed) > before + 50).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("no traffic served after upgrade {n}"));
    }
    assert_ne!(proxy.pid(), first_pid);

    let slow_answer = slow_request.await.unwrap();
    // Every replaced process exits on its own once drained.
    let drained = strangler_e2e::eventually(Duration::from_secs(30), || {
        let running = proxy.retired_running();
        async move { (running == 0).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }

    let ok = tally.ok.load(Ordering::Relaxed);
    let refused = tally.refused.load(Ordering::Relaxed);
    let reset = tally.reset.load(Ordering::Relaxed);
    let other = tally.other.load(Ordering::Relaxed);
    println!(
        "10 upgrades: {ok} requests served, {refused} refused, {reset} reset, {other} other failures"
    );
    println!(
        "suite: graceful upgrades: 10 faults, lost {}",
        refused + reset + other
    );
    let errors = tally.errors.lock().unwrap().clone();
    assert_eq!(
        (refused, reset, other),
        (0, 0, 0),
        "{errors:#?}\n{}",
        proxy.logs()
    );
    let slow_answer = slow_answer.unwrap_or_else(|e| panic!("slow request: {e}"));
    assert_eq!(slow_answer.status, 200);
    assert_eq!(slow_answer.backend(), "slow");
    assert!(drained.is_some(), "replaced processes still running");
    assert_eq!(proxy.retired_exit_codes(), vec![Some(0); 10]);
    // The last process serves and answers its admin API.
    let r = Http::new().get(&proxy.url("/fast"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        Http::new()
            .get(&proxy.admin_url("/readyz"), &[])
            .await
            .status,
        200
    );
}
