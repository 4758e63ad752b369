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
    let mut proxy = Proxy::start_with_args(&body, &["--grace-period", "5s"]).await;
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

/// What systemd does on `systemctl reload strangler` (the packaged unit's
/// `ExecReload`), without systemd: `strangler upgrade` replaces the running
/// process under load, each process announces itself on the notify socket
/// (`READY=1`, `MAINPID=`) and in the pid file once it serves, and a new
/// process that cannot start leaves the old one serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangler_upgrade_hands_over_as_systemd_reload_does() {
    use std::os::unix::net::UnixDatagram;

    let fast = Backend::start("fast").await;
    let notify_dir = tempfile::tempdir().unwrap();
    let notify_path = notify_dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let next_notice = || {
        let mut buf = [0u8; 512];
        let n = notify.recv(&mut buf).expect("a notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let body = format!(
        "backends:\n  fast: {{ url: \"{}\" }}\ndefault: fast\n",
        fast.url()
    );
    let notify_env = notify_path.display().to_string();
    // A grace period, as in production: the old process accepts for its
    // 5 s of hand-over, and what it accepted last must finish.
    let proxy = Proxy::start_with_env_and_args(
        &body,
        "sqlite://{dir}/strangler.db",
        &[("NOTIFY_SOCKET", &notify_env)],
        &["--grace-period", "2s"],
    )
    .await;
    let old_pid = proxy.pid();
    let pid_file = proxy.dir.path().join("strangler.pid");
    assert_eq!(
        next_notice(),
        format!("READY=1\nMAINPID={old_pid}\nSTATUS=serving")
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{old_pid}\n")
    );

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..3 {
        let (tally, stop, addr) = (tally.clone(), stop.clone(), proxy.addr());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                fresh_connection_request(&addr, &tally).await;
            }
        }));
    }

    let upgrade = |log: &std::path::Path| {
        let log = std::fs::File::create(log).unwrap();
        // Not through pipes: the new process inherits them and outlives
        // the command, as it does under systemd (the journal's stream).
        std::process::Command::new(strangler_e2e::proxy::binary())
            .args(["upgrade", "--pid-file"])
            .arg(&pid_file)
            .env("NOTIFY_SOCKET", &notify_env)
            .env("STRANGLER_ADMIN_TOKEN", "x")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap()
            .code()
    };
    let log_path = notify_dir.path().join("upgrade.log");
    let code = upgrade(&log_path);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(code, Some(0), "{log}\n{}", proxy.logs());
    let new_pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(new_pid, old_pid);
    let _new = Reaper(new_pid);
    assert!(
        log.contains(&format!("upgrade: pid {new_pid} serves")),
        "{log}"
    );
    assert_eq!(
        next_notice(),
        format!("READY=1\nMAINPID={new_pid}\nSTATUS=serving")
    );
    let cmdline = std::fs::read(format!("/proc/{new_pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains(" serve --config ") && cmdline.trim_end().ends_with("--upgrade"),
        "the running command line plus --upgrade: {cmdline}"
    );

    // The old process hands over, drains and exits.
    let gone = strangler_e2e::eventually(Duration::from_secs(30), || async {
        (!std::path::Path::new(&format!("/proc/{old_pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{old_pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")))
        .then_some(())
    })
    .await;
    assert!(gone.is_some(), "pid {old_pid} still running");
    let before = tally.ok.load(Ordering::Relaxed);
    strangler_e2e::eventually(Duration::from_secs(10), || async {
        (tally.ok.load(Ordering::Relaxed) > before + 20).then_some(())
    })
    .await
    .expect("the new process serves");

    // A new process that cannot start (the file is invalid now) hands
    // nothing over: the upgrade fails and the running one serves on.
    std::fs::write(&proxy.config_path, "version: 1\nroutes: [\n").unwrap();
    let failed_log = notify_dir.path().join("failed.log");
    let code = upgrade(&failed_log);
    let log = std::fs::read_to_string(&failed_log).unwrap();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("nothing was handed over"), "{log}");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{new_pid}\n")
    );
    assert!(std::path::Path::new(&format!("/proc/{new_pid}/cmdline")).exists());
    let before = tally.ok.load(Ordering::Relaxed);
    strangler_e2e::eventually(Duration::from_secs(10), || async {
        (tally.ok.load(Ordering::Relaxed) > before + 20).then_some(())
    })
    .await
    .expect("the running process still serves");

    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (refused, reset, other) = (
        tally.refused.load(Ordering::Relaxed),
        tally.reset.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
    );
    let errors = tally.errors.lock().unwrap().clone();
    assert_eq!((refused, reset, other), (0, 0, 0), "{errors:#?}");
}

/// Stops a process this test did not start (the one `strangler upgrade`
/// started) when the test ends, pass or fail.
struct Reaper(u32);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.to_string()])
            .status();
    }
}
