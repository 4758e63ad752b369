//! What `strangler canary` and `strangler rollback` (and the `rollback/`
//! scripts) print and exit with, as a script or an SRE at 3 a.m. reads them:
//! 0 applied (and verified), 3 only the file was edited, 4 applied but not
//! verified in time, 1 refused or failed; bounded waits and named runbooks
//! when the admin port accepts but does not answer.

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use strangler_e2e::proxy::{TOKEN, binary};
use strangler_e2e::{Backend, Http, Proxy, eventually, free_port};
use tokio::sync::Semaphore;

const BODY: &str = r#"
backends:
  legacy: { url: "LEGACY" }
  new: { url: "NEW", read_timeout: 120s }
tenant:
  - header: X-Tenant-Id
default: legacy
routes:
  - name: orders
    match: { path: /api/orders }
    new: new
    canary: 50
    sticky: none
  - name: users
    match: { path: /api/users }
    new: new
    canary: 100
"#;

/// Long enough for any command here; a command still running then has hung,
/// and the test fails instead of blocking the run.
const HANG: Duration = Duration::from_secs(120);

fn body(legacy: &str, new: &str) -> String {
    BODY.replace("LEGACY", legacy).replace("NEW", new)
}

async fn setup() -> (Proxy, Backend, Backend) {
    let legacy = Backend::start("legacy").await;
    let new = Backend::start("new").await;
    let proxy = Proxy::start(&body(&legacy.url(), &new.url())).await;
    (proxy, legacy, new)
}

/// Runs a command to its end (at most [`HANG`]); (exit code, stdout, stderr).
fn run(mut command: Command) -> (i32, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + HANG;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} still running after {HANG:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().unwrap_or(-1),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

/// The binary with the test's token and actor, and `env` on top.
fn strangler(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(binary());
    c.args(args)
        .env("STRANGLER_ADMIN_TOKEN", TOKEN)
        .env("STRANGLER_ACTOR", "tester");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// `strangler ARGS --config FILE`.
fn cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let config = config.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--config", &config]);
    run(strangler(&all, &[]))
}

fn file(proxy: &Proxy) -> String {
    std::fs::read_to_string(&proxy.config_path).unwrap()
}

/// The config's audit rows, newest first (read from the store by the CLI).
fn audit(config: &Path) -> Vec<serde_json::Value> {
    let (code, out, err) = cli(config, &["history", "--audit", "--json", "--limit", "100"]);
    assert_eq!(code, 0, "{err}");
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    h["audit"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_exits_0_when_live_and_3_when_only_the_file_was_edited() {
    let (mut proxy, ..) = setup().await;
    let (code, out, err) = cli(&proxy.config_path, &["canary", "orders", "30"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("canary 30% live from the next request"),
        "{out}"
    );
    assert_eq!(proxy.canary("orders").await, 30.0);

    proxy.stop();
    let (code, out, err) = cli(&proxy.config_path, &["canary", "orders", "12.5"]);
    assert_eq!(code, 3, "{out}{err}");
    let admin = format!("127.0.0.1:{}", proxy.admin_port);
    assert!(
        out.contains(&format!(
            "no proxy answered at {admin} (nothing listens there), so nothing changed live here and only the file was edited"
        )),
        "{out}"
    );
    assert!(out.contains("canary 12.5% written to"), "{out}");
    assert!(out.contains("runbooks/ramp-canary.md"), "{out}");
    assert!(file(&proxy).contains("canary: 12.5"), "{}", file(&proxy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_offline_edits_the_file_and_asks_no_proxy() {
    let (proxy, ..) = setup().await;
    let (code, out, err) = cli(
        &proxy.config_path,
        &[
            "canary",
            "orders",
            "20",
            "--offline",
            "--reason",
            "proxy hung",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("--offline: no proxy was asked; only the file was edited"),
        "{out}"
    );
    assert!(file(&proxy).contains("canary: 20"), "{}", file(&proxy));
    // The running proxy loads the file by itself, as the output says.
    let loaded = eventually(Duration::from_secs(20), || async {
        (proxy.canary("orders").await == 20.0).then_some(())
    })
    .await;
    assert!(loaded.is_some(), "the proxy never loaded the edited file");
    // The proxy was not asked: every canary audit row is the CLI's own (a
    // change through the admin API is audited by the proxy's instance), and
    // the proxy never logged a canary request.
    let rows: Vec<_> = audit(&proxy.config_path)
        .into_iter()
        .filter(|r| r["action"] == "canary")
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["instance"], "cli", "{rows:?}");
    assert_eq!(rows[0]["outcome"], "applied to the file (--offline)");
    assert!(
        !proxy.logs().contains("canary of orders"),
        "{}",
        proxy.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_exits_0_when_verified_and_3_when_only_the_file_was_edited() {
    let (mut proxy, _legacy, new) = setup().await;
    let http = Http::new();
    for i in 0..20 {
        http.get(&proxy.url(&format!("/api/users/{i}")), &[]).await;
    }
    assert!(new.requests() > 0);
    let (code, out, err) = cli(&proxy.config_path, &["rollback", "users"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("users: "), "{out}");
    assert!(out.contains("verified: none since"), "{out}");
    assert_eq!(proxy.canary("users").await, 0.0);

    // Version 1 is the file the proxy started with.
    let (code, out, err) = cli(&proxy.config_path, &["rollback", "--to", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("version 1 restored live"), "{out}");
    assert_eq!(proxy.canary("users").await, 100.0);

    proxy.stop();
    let (code, out, err) = cli(&proxy.config_path, &["rollback", "users"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("only the file was edited"), "{out}");
    assert!(out.contains("runbooks/rollback-route.md"), "{out}");
    assert!(file(&proxy).contains("canary: 0"), "{}", file(&proxy));

    let (code, out, err) = cli(&proxy.config_path, &["rollback", "--to", "1"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("only the file was edited"), "{out}");
    assert!(out.contains("version 1 written to"), "{out}");
    assert!(file(&proxy).contains("canary: 100"), "{}", file(&proxy));
}

/// A backend that holds every request until the test lets one go.
struct Gate {
    arrived: Arc<AtomicUsize>,
    permits: Arc<Semaphore>,
    addr: SocketAddr,
}

impl Gate {
    async fn start() -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrived = Arc::new(AtomicUsize::new(0));
        let permits = Arc::new(Semaphore::new(0));
        let (a, p) = (arrived.clone(), permits.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (a, p) = (a.clone(), p.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        let (a, p) = (a.clone(), p.clone());
                        async move {
                            a.fetch_add(1, Ordering::SeqCst);
                            p.acquire().await.unwrap().forget();
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                br#"{"backend": "new"}"#,
                            ))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Gate {
            arrived,
            permits,
            addr,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_exits_4_when_the_new_side_still_answers_at_the_timeout() {
    // Requests already on the new side when the rollback is made still
    // finish there (and are counted) afterwards. The gate holds HELD of
    // them; the test lets one finish every STEP for as long as the command
    // runs, so the new side never has QUIET (500 ms) of silence before the
    // command's --timeout, however slow the machine: releases stop only once
    // the command has exited. Running out of held requests fails the test
    // instead of letting it pass.
    const HELD: usize = 150;
    const STEP: Duration = Duration::from_millis(100);
    let legacy = Backend::start("legacy").await;
    let gate = Gate::start().await;
    let proxy = Proxy::start(&body(&legacy.url(), &format!("http://{}", gate.addr))).await;
    let http = Http::new();
    let mut held = Vec::new();
    for i in 0..HELD {
        let (http, url) = (http.clone(), proxy.url(&format!("/api/users/{i}")));
        held.push(tokio::spawn(async move { http.get(&url, &[]).await }));
    }
    let all_there = eventually(Duration::from_secs(60), || async {
        (gate.arrived.load(Ordering::SeqCst) == HELD).then_some(())
    })
    .await;
    assert!(
        all_there.is_some(),
        "not every request reached the new side"
    );

    let config = proxy.config_path.display().to_string();
    let command = tokio::task::spawn_blocking(move || {
        run(strangler(
            &["rollback", "users", "--timeout", "3s", "--config", &config],
            &[],
        ))
    });
    let mut released = 0;
    while !command.is_finished() {
        assert!(
            released < HELD,
            "the held requests ran out before the command ended"
        );
        gate.permits.add_permits(1);
        released += 1;
        tokio::time::sleep(STEP).await;
    }
    let (code, out, err) = command.await.unwrap();
    println!("{out}{err}");
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("users: last request to the new side"), "{out}");
    assert!(
        out.contains("NOT verified: the new side still receives requests"),
        "{out}"
    );
    assert!(
        out.contains("the rollback is live, but NOT verified within 3 s"),
        "{out}"
    );
    assert!(out.contains("runbooks/rollback-route.md"), "{out}");
    // Applied all the same: new requests go to legacy.
    assert_eq!(proxy.canary("users").await, 0.0);
    let r = http.get(&proxy.url("/api/users/x"), &[]).await;
    assert_eq!(r.backend(), "legacy");
    gate.permits.add_permits(HELD);
    for h in held {
        let _ = h.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_change_exits_1_and_says_nothing_was_changed() {
    let (proxy, ..) = setup().await;
    let before = file(&proxy);
    let config = proxy.config_path.display().to_string();
    let wrong = [("STRANGLER_ADMIN_TOKEN", "wrong-token")];
    for args in [
        vec!["canary", "orders", "30"],
        vec!["rollback", "orders"],
        vec!["rollback", "--to", "1"],
    ] {
        let mut all = args.clone();
        all.extend(["--config", &config]);
        let (code, out, err) = run(strangler(&all, &wrong));
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains("the proxy refused the change (401): missing or wrong bearer token"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("nothing was changed, live or in the file"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(file(&proxy), before);
    assert_eq!(proxy.canary("orders").await, 50.0);
}

/// A routes.yaml (in `dir`) whose admin address is `admin`, with no proxy.
fn config_with_admin(dir: &Path, admin: SocketAddr) -> PathBuf {
    let path = dir.join("routes.yaml");
    let text = format!(
        "version: 1\nlisten: 127.0.0.1:{}\nadmin:\n  listen: {admin}\n  token_env: STRANGLER_ADMIN_TOKEN\nstore: sqlite://{}/strangler.db\n{}",
        free_port(),
        dir.display(),
        body("http://127.0.0.1:1", "http://127.0.0.1:2")
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Each change command against `admin`: exit 1, the message names the
/// address, what happened and the runbook, and the file is untouched.
fn assert_no_contact(config: &Path, admin: SocketAddr, what: &str) {
    let before = std::fs::read_to_string(config).unwrap();
    for (args, runbook, sent) in [
        (
            vec!["canary", "orders", "30"],
            "runbooks/ramp-canary.md",
            "The change was sent and may or may not have been applied",
        ),
        (
            vec!["rollback", "orders"],
            "runbooks/rollback-route.md",
            "The change was not sent.",
        ),
        (
            vec!["rollback", "--all"],
            "runbooks/rollback-everything.md",
            "The change was not sent.",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--timeout", "2s"]);
        let (code, out, err) = cli(config, &all);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        let addr = admin.to_string();
        for needle in [
            what,
            &addr,
            runbook,
            "(\"No answer from the proxy\")",
            "--offline",
            "restart the proxy",
        ] {
            assert!(err.contains(needle), "{args:?}: no {needle:?} in:\n{err}");
        }
        if what.contains("accepted the connection but") {
            // Connected: the canary went out; the rollback stopped at the
            // scrape before it.
            assert!(err.contains(sent), "{args:?}: no {sent:?} in:\n{err}");
        } else {
            assert!(err.contains("The change was not sent."), "{args:?}: {err}");
        }
        assert!(!err.contains("os error"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(config).unwrap(), before);
}

#[test]
fn an_admin_port_that_accepts_and_never_answers_is_1_with_the_address_and_the_runbook() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_admin(dir.path(), admin);
    assert_no_contact(
        &config,
        admin,
        &format!("the proxy at {admin} accepted the connection but did not answer in 2 s"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_port_that_never_accepts_is_1_with_the_address_and_the_runbook() {
    // A listener that never accepts, its accept queue filled: the kernel
    // drops further connection attempts, as a black-holed address does.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let admin = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    let full = (0..200).any(|_| {
        match std::net::TcpStream::connect_timeout(&admin, Duration::from_millis(300)) {
            Ok(s) => {
                fillers.push(s);
                false
            }
            Err(_) => true,
        }
    });
    assert!(full, "the accept queue never filled");
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_admin(dir.path(), admin);
    tokio::task::spawn_blocking(move || {
        assert_no_contact(
            &config,
            admin,
            &format!("nothing at {admin} accepted the connection in 2 s"),
        )
    })
    .await
    .unwrap();
    drop(listener);
}

#[test]
fn help_lists_the_exit_codes() {
    for command in ["canary", "rollback"] {
        let (code, out, _) = run(strangler(&[command, "--help"], &[]));
        assert_eq!(code, 0);
        for line in [
            "Exit codes:",
            "0  the running proxy applied it",
            "3  no proxy listens at the config's admin address",
            "4  (rollback) applied live, but the new side still received requests",
            "1  refused",
            "--offline",
        ] {
            assert!(
                out.contains(line),
                "{command} --help: no {line:?} in:\n{out}"
            );
        }
    }
}

/// A directory laid out as a fresh clone, as far as the scripts can see:
/// `rollback/all` and `rollback/route` (copied from this checkout, modes
/// kept), and `target/debug/strangler` when `with_binary`; plus `bin/`, a
/// PATH with only what the scripts run (so no `strangler` on it).
fn clone_layout(with_binary: bool) -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // In the target dir: the same file system as the binary, for a hard link.
    let clone = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::create_dir_all(clone.path().join("rollback")).unwrap();
    for script in ["all", "route"] {
        std::fs::copy(
            root.join("rollback").join(script),
            clone.path().join("rollback").join(script),
        )
        .unwrap();
    }
    if with_binary {
        let debug = clone.path().join("target/debug");
        std::fs::create_dir_all(&debug).unwrap();
        let bin = debug.join("strangler");
        if std::fs::hard_link(binary(), &bin).is_err() {
            std::fs::copy(binary(), &bin).unwrap();
        }
    }
    let bin = clone.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let path = std::env::var_os("PATH").unwrap();
    for tool in ["bash", "env", "dirname", "readlink", "id", "cat"] {
        let found = std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("no {tool} on PATH"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    clone
}

/// Runs a script of the layout from `cwd`, with a clean environment.
fn script(
    clone: &Path,
    name: &str,
    args: &[&str],
    cwd: &Path,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut c = Command::new(clone.join("rollback").join(name));
    c.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", clone.join("bin"))
        .env("STRANGLER_ADMIN_TOKEN", TOKEN)
        .env("STRANGLER_ACTOR", "tester");
    for (k, v) in env {
        c.env(k, v);
    }
    run(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripts_find_the_debug_build_of_a_fresh_clone_from_any_directory() {
    let (mut proxy, ..) = setup().await;
    let clone = clone_layout(true);
    let (code, out, err) = tokio::task::spawn_blocking({
        let (clone, cwd) = (clone.path().to_owned(), proxy.dir.path().to_owned());
        move || {
            script(
                &clone,
                "route",
                &["orders", "--", "5xx on orders"],
                &cwd,
                &[],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rolled back orders"), "{out}");
    assert!(out.contains("verified: none since"), "{out}");
    assert_eq!(proxy.canary("orders").await, 0.0);
    let rows = audit(&proxy.config_path);
    assert_eq!(rows[0]["reason"], "5xx on orders", "{rows:?}");

    // rollback/all from elsewhere, the config named by STRANGLER_CONFIG.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = proxy.config_path.display().to_string();
    let (code, out, err) = tokio::task::spawn_blocking({
        let (clone, cwd) = (clone.path().to_owned(), elsewhere.path().to_owned());
        move || {
            script(
                &clone,
                "all",
                &["cause unknown"],
                &cwd,
                &[("STRANGLER_CONFIG", &config)],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(proxy.canary("users").await, 0.0);

    // The binary's exit code comes through: 3 with no proxy.
    proxy.stop();
    let (code, out, err) = script(
        clone.path(),
        "route",
        &["users", "--", "again"],
        proxy.dir.path(),
        &[],
    );
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("only the file was edited"), "{out}");
}

#[test]
fn the_scripts_say_where_they_looked_when_there_is_no_binary() {
    let clone = clone_layout(false);
    let cwd = tempfile::tempdir().unwrap();
    for (name, args) in [("route", vec!["orders", "--", "why"]), ("all", vec!["why"])] {
        let (code, out, err) = script(clone.path(), name, &args, cwd.path(), &[]);
        assert_eq!(code, 127, "{name}: {out}{err}");
        for needle in [
            format!("rollback/{name}: no strangler binary found; nothing was changed"),
            "$STRANGLER_BIN: not set".to_string(),
            "strangler on PATH: not found".to_string(),
            format!(
                "{}/target/release/strangler: missing",
                clone.path().display()
            ),
            format!("{}/target/debug/strangler: missing", clone.path().display()),
            "cargo build --release --bin strangler".to_string(),
        ] {
            assert!(err.contains(&needle), "{name}: no {needle:?} in:\n{err}");
        }
    }
}
