//! Hot reload: file changes, SIGHUP and POST /reload; bad files keep the old
//! table; reloads under load lose nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strangler_e2e::{Backend, Http, Proxy};

fn body(a: &str, b: &str, canary: u32) -> String {
    format!(
        r#"
backends:
  legacy: {{ url: "{a}" }}
  new: {{ url: "{b}" }}
default: legacy
routes:
  - name: api
    match: {{ path: /api }}
    new: new
    canary: {canary}
    sticky: none
"#
    )
}

async fn setup() -> (Proxy, Backend, Backend) {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let proxy = Proxy::start(&body(&legacy.url(), &new.url(), 0)).await;
    (proxy, legacy, new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_change_is_picked_up() {
    let (proxy, legacy, new) = setup().await;
    let http = Http::new();
    assert_eq!(http.get(&proxy.url("/api"), &[]).await.backend(), "legacy");
    proxy.rewrite_body(&body(&legacy.url(), &new.url(), 100));
    assert_eq!(proxy.wait_version(2).await, 2);
    assert_eq!(http.get(&proxy.url("/api"), &[]).await.backend(), "new");
    let m = proxy.metrics().await;
    assert_eq!(
        m.sum("strangler_canary_percent", &[("route", "api")]),
        100.0
    );
    assert_eq!(m.sum("strangler_config_version", &[]), 2.0);
    assert!(m.sum("strangler_config_reloads_total", &[("result", "ok")]) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_rejected_and_the_old_table_keeps_serving() {
    let (proxy, legacy, new) = setup().await;
    let http = Http::new();
    let before = proxy
        .metrics()
        .await
        .sum("strangler_config_reloads_total", &[("result", "error")]);
    // Broken in two places; the log must name both.
    proxy.rewrite_body(&body(&legacy.url(), &new.url(), 130).replace("new: new", "new: nowhere"));
    let m = strangler_e2e::eventually(Duration::from_secs(10), || async {
        let m = proxy.metrics().await;
        (m.sum("strangler_config_reloads_total", &[("result", "error")]) > before).then_some(m)
    })
    .await
    .expect("the bad reload is counted");
    assert_eq!(m.sum("strangler_config_version", &[]), 1.0);
    assert_eq!(http.get(&proxy.url("/api"), &[]).await.backend(), "legacy");
    let logs = proxy.logs();
    assert!(logs.contains("routes[0].canary: 130 is over 100"), "{logs}");
    assert!(
        logs.contains("routes[0].new: unknown backend \"nowhere\""),
        "{logs}"
    );

    // Truncated and garbage files too, and every invalid fixture that
    // `strangler check` is tested on.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/invalid");
    let mut texts: Vec<String> = [
        "",
        "version: 1\nbackends:\n  legacy: { url: ",
        "\u{0}\u{1}binary",
    ]
    .map(String::from)
    .to_vec();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            texts.push(std::fs::read_to_string(path).unwrap());
        }
    }
    assert!(texts.len() > 6);
    for text in &texts {
        proxy.write_raw(text);
        let r = http
            .post(
                &proxy.admin_url("/reload"),
                &[(Proxy::auth_header().0, &Proxy::auth_header().1)],
                b"",
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.text());
        let errors = r.json()["errors"].as_array().unwrap().clone();
        assert!(!errors.is_empty());
        // Every error of a file that was read has its position.
        let details = r.json()["details"].as_array().unwrap().clone();
        assert_eq!(details.len(), errors.len(), "{}", r.text());
        for d in &details {
            assert!(d["line"].as_u64().is_some_and(|l| l >= 1), "{d}");
            assert!(d["column"].as_u64().is_some_and(|c| c >= 1), "{d}");
        }
        assert_eq!(http.get(&proxy.url("/api"), &[]).await.backend(), "legacy");
    }
    assert_eq!(proxy.version().await, 1);
    println!(
        "suite: invalid config files: {} vectors, lost 0",
        texts.len() + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_post_reload_apply_a_new_version() {
    let (proxy, legacy, new) = setup().await;
    let http = Http::new();
    // Write without changing metadata the watcher relies on? It will see it
    // too; either path must end at the same version.
    proxy.rewrite_body(&body(&legacy.url(), &new.url(), 100));
    proxy.signal("HUP");
    proxy.wait_version(2).await;
    assert_eq!(http.get(&proxy.url("/api"), &[]).await.backend(), "new");

    proxy.rewrite_body(&body(&legacy.url(), &new.url(), 0));
    let (k, v) = Proxy::auth_header();
    let r = http
        .post(&proxy.admin_url("/reload"), &[(k, &v)], b"")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["version"].as_u64().unwrap() >= 3);
    assert_eq!(http.get(&proxy.url("/api"), &[]).await.backend(), "legacy");
    // The same file again is not a new version.
    let again = http
        .post(&proxy.admin_url("/reload"), &[(k, &v)], b"")
        .await;
    assert_eq!(again.json()["changed"], false);
}

/// Sends requests from `workers` tasks until `stop` is set; counts failures.
/// The stop flag, failure count and success count that [`load`] shares.
fn counters() -> (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    )
}

fn load(
    proxy_url: String,
    workers: usize,
    stop: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    ok: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|_| {
            let (url, stop, failures, ok) = (
                proxy_url.clone(),
                stop.clone(),
                failures.clone(),
                ok.clone(),
            );
            tokio::spawn(async move {
                let http = Http::new();
                while stop.load(Ordering::SeqCst) == 0 {
                    match http.send(http::Method::GET, &url, &[], b"").await {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => {
                            eprintln!("status {}: {}", r.status, r.text());
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => {
                            eprintln!("error: {e}");
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_load_lose_no_request() {
    let (proxy, legacy, new) = setup().await;
    let (stop, failures, ok) = counters();
    let workers = load(
        proxy.url("/api/x"),
        8,
        stop.clone(),
        failures.clone(),
        ok.clone(),
    );
    let http = Http::new();
    let (k, v) = Proxy::auth_header();
    let mut last = 1;
    for i in 0..100u32 {
        proxy.rewrite_body(&body(&legacy.url(), &new.url(), (i * 7) % 101));
        let r = http
            .post(&proxy.admin_url("/reload"), &[(k, &v)], b"")
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        last = r.json()["version"].as_u64().unwrap();
    }
    stop.store(1, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    println!(
        "suite: reloads under load: 100 faults, lost {}",
        failures.load(Ordering::SeqCst)
    );
    assert!(last >= 90, "reloads applied: version {last}");
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert!(
        ok.load(Ordering::SeqCst) > 100,
        "load ran: {}",
        ok.load(Ordering::SeqCst)
    );
    assert!(legacy.requests() > 0 && new.requests() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_storm_does_not_kill_the_process() {
    let (mut proxy, legacy, new) = setup().await;
    let (stop, failures, ok) = counters();
    let workers = load(
        proxy.url("/api/x"),
        4,
        stop.clone(),
        failures.clone(),
        ok.clone(),
    );
    proxy.rewrite_body(&body(&legacy.url(), &new.url(), 50));
    let pid = proxy.pid().to_string();
    // 1000 signals as fast as one shell can send them (`kill` is a builtin).
    let script = format!("for i in $(seq 1000); do kill -HUP {pid} || exit 1; done");
    let sent = std::time::Instant::now();
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    println!("1000 SIGHUPs sent in {:?}", sent.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(1, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    println!(
        "suite: SIGHUP storm: 1000 faults, lost {}",
        failures.load(Ordering::SeqCst)
    );
    assert!(proxy.is_running(), "{}", proxy.logs());
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    // The storm's reloads may still be draining on a loaded machine: wait for
    // the new version, then check the storm made exactly one (the file's
    // content changed once; a reload of the same content makes no version).
    assert_eq!(proxy.wait_version(2).await, 2);
    assert_eq!(
        Http::new()
            .get(&proxy.admin_url("/healthz"), &[])
            .await
            .status,
        200
    );
}

/// A file caught half-written (written in place, not renamed over) is
/// rejected and the old table keeps serving; once complete it is applied.
/// No request fails meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_file_is_rejected_until_it_is_complete() {
    use std::io::Write;
    let (proxy, legacy, new) = setup().await;
    let (stop, failures, ok) = counters();
    let workers = load(
        proxy.url("/api/x"),
        4,
        stop.clone(),
        failures.clone(),
        ok.clone(),
    );
    let errors =
        |m: &strangler_e2e::Scrape| m.sum("strangler_config_reloads_total", &[("result", "error")]);
    let before = errors(&proxy.metrics().await);

    let old = std::fs::read_to_string(&proxy.config_path).unwrap();
    let complete = old.replace("canary: 0", "canary: 100");
    assert_ne!(old, complete);
    // Cut inside the second backend's quoted URL: not valid YAML.
    let cut = complete.find(&new.url()).unwrap() + 8;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&proxy.config_path)
        .unwrap();
    file.write_all(&complete.as_bytes()[..cut]).unwrap();
    file.sync_all().unwrap();
    // Stays half-written for many watch intervals (100 ms here).
    let m = strangler_e2e::eventually(Duration::from_secs(10), || async {
        let m = proxy.metrics().await;
        (errors(&m) > before).then_some(m)
    })
    .await
    .expect("the half-written file is read and rejected");
    assert_eq!(m.sum("strangler_config_version", &[]), 1.0);
    assert_eq!(
        Http::new().get(&proxy.url("/api/x"), &[]).await.backend(),
        "legacy"
    );

    file.write_all(&complete.as_bytes()[cut..]).unwrap();
    file.sync_all().unwrap();
    drop(file);
    assert_eq!(proxy.wait_version(2).await, 2, "{}", proxy.logs());
    let served = legacy.requests();
    assert_eq!(
        Http::new().get(&proxy.url("/api/x"), &[]).await.backend(),
        "new"
    );

    stop.store(1, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert!(ok.load(Ordering::SeqCst) > 0 && served > 0);
}
