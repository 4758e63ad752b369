//! Progressive delivery with the real binary, real backends and the real
//! store: a healthy route climbs from 0 to 100 by itself; a failing new
//! side is rolled back by its gate and stays there; real diffs hold a route
//! while matching answers promote another; people pause, resume, promote
//! and abort; a restart resumes at the same step; and in a fleet on
//! PostgreSQL, killing the proxy that drives a rollout lets another finish
//! it. Pauses are seconds long; nothing asserts a timing beyond generous
//! bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use strangler_e2e::backend::{Answer, Script};
use strangler_e2e::proxy::run_cli;
use strangler_e2e::{Backend, Http, Mode, Proxy, Seen, eventually};

fn json(body: Value) -> Answer {
    (
        200,
        vec![("content-type".into(), "application/json".into())],
        body.to_string().into_bytes(),
    )
}

/// The same answer whichever side gives it.
fn same() -> Script {
    Arc::new(|seen: &Seen| json(serde_json::json!({"path": seen.path, "total": 10})))
}

/// The same answer with one field changed.
fn different() -> Script {
    Arc::new(|seen: &Seen| json(serde_json::json!({"path": seen.path, "total": 11})))
}

/// A configuration with one route, `orders` on `/api/orders` from `legacy`
/// to `new`, whose further keys are `keys` (indented as a route's).
fn orders_route(legacy: &Backend, new: &Backend, keys: &str) -> String {
    let keys: String = keys.lines().map(|k| format!("    {k}\n")).collect();
    format!(
        "backends:\n  legacy: {{ url: \"{}\" }}\n  new: {{ url: \"{}\" }}\ndefault: legacy\nroutes:\n  - name: orders\n    match: {{ path: /api/orders }}\n    new: new\n{keys}",
        legacy.url(),
        new.url()
    )
}

async fn backends(new_mode: Mode) -> (Backend, Backend) {
    let legacy = Backend::start("legacy").await;
    legacy.set_mode(Mode::Script(same()));
    let new = Backend::start("new").await;
    new.set_mode(new_mode);
    (legacy, new)
}

/// Requests to each path, a few hundred a second, until dropped.
struct Traffic(Arc<AtomicBool>);

impl Traffic {
    fn start(proxy: &Proxy, paths: &[&str]) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        for path in paths {
            for n in 0..2 {
                let (url, stop) = (proxy.url(&format!("{path}/{n}")), stop.clone());
                tokio::spawn(async move {
                    let http = Http::new();
                    while !stop.load(Ordering::SeqCst) {
                        let _ = http.send(http::Method::GET, &url, &[], b"").await;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                });
            }
        }
        Traffic(stop)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn cli(proxy: &Proxy, args: &[&str]) -> (i32, String, String) {
    let config = proxy.config_path.display().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", &config]);
    run_cli(&all)
}

async fn rollout(proxy: &Proxy, route: &str) -> Value {
    Http::new()
        .get(&proxy.admin_url(&format!("/rollouts/{route}")), &[])
        .await
        .json()
}

async fn wait_state(proxy: &Proxy, route: &str, state: &str, within: Duration) -> Value {
    eventually(within, || async {
        let r = rollout(proxy, route).await;
        (r["state"] == state).then_some(r)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{route} never reached {state}; last: {}\nlogs:\n{}",
            last_status(proxy, route),
            proxy.logs()
        )
    })
}

fn last_status(proxy: &Proxy, route: &str) -> String {
    let (_, out, err) = cli(proxy, &["rollout", "status", route]);
    format!("{out}{err}")
}

/// The audit rows of the rollout (source `rollout`), oldest first.
fn rollout_versions(proxy: &Proxy) -> Vec<Value> {
    let (code, out, err) = cli(proxy, &["history", "--json", "--limit", "100"]);
    assert_eq!(code, 0, "{err}");
    let h: Value = serde_json::from_str(&out).unwrap();
    let mut rows: Vec<Value> = h["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["source"] == "rollout")
        .cloned()
        .collect();
    rows.reverse();
    rows
}

async fn metric(proxy: &Proxy, name: &str, labels: &[(&str, &str)]) -> f64 {
    proxy.metrics().await.sum(name, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_route_climbs_from_0_to_100_by_itself() {
    let (legacy, new) = backends(Mode::Script(same())).await;
    let proxy = Proxy::start(&orders_route(
        &legacy,
        &new,
        concat!(
            "sticky: none\n",
            "shadow: { percent: 100, min_samples: 20, max_diff_rate: 5 }\n",
            "guard: { window: 5s, min_requests: 10 }\n",
            "rollout: { steps: [10, 50, 100], pause: 2s, require: [guard, report], start: auto }\n",
        ),
    ))
    .await;
    // Exported from start-up, before anything happened.
    let m = proxy.metrics().await;
    for state in [
        "idle",
        "waiting",
        "promoting",
        "held",
        "rolled_back",
        "done",
    ] {
        assert!(
            m.has(
                "strangler_rollout_state",
                &[("route", "orders"), ("state", state)]
            ),
            "no strangler_rollout_state for {state}"
        );
    }
    assert_eq!(
        m.sum("strangler_rollout_failures_total", &[("route", "orders")]),
        0.0
    );
    assert_eq!(
        m.sum(
            "strangler_route_stage",
            &[("route", "orders"), ("stage", "shadow")]
        ),
        1.0
    );

    let _traffic = Traffic::start(&proxy, &["/api/orders"]);
    let started = std::time::Instant::now();
    let done = wait_state(&proxy, "orders", "done", Duration::from_secs(90)).await;
    println!(
        "0 -> 10 -> 50 -> 100 with 2 s pauses: done after {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(done["step"], 100.0, "{done:#}\n{}", proxy.logs());
    assert_eq!(proxy.canary("orders").await, 100.0);
    assert!(
        std::fs::read_to_string(&proxy.config_path)
            .unwrap()
            .contains("canary: 100")
    );

    // Each step once, in order, recorded as the rollout's, with the gates'
    // figures as the reason.
    let steps = rollout_versions(&proxy);
    let summaries: Vec<&str> = steps
        .iter()
        .map(|v| v["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        [
            "orders: canary 10",
            "orders: canary 50",
            "orders: canary 100"
        ],
        "{steps:#?}"
    );
    for v in &steps {
        let reason = v["reason"].as_str().unwrap();
        assert!(
            reason.contains("guard: holds") && reason.contains("report: holds"),
            "{reason}"
        );
        assert!(
            reason.contains("ready over"),
            "the report's figures: {reason}"
        );
    }
    // The first step was earned at canary 0 on shadow comparisons alone.
    assert!(
        steps[0]["reason"]
            .as_str()
            .unwrap()
            .contains("nothing on the new side")
    );

    let m = proxy.metrics().await;
    assert_eq!(
        m.sum("strangler_rollout_step", &[("route", "orders")]),
        100.0,
        "{}\n{}",
        m.text,
        proxy.logs()
    );
    assert_eq!(
        m.sum(
            "strangler_rollout_state",
            &[("route", "orders"), ("state", "done")]
        ),
        1.0
    );
    assert_eq!(
        m.sum("strangler_rollout_state", &[("route", "orders")]),
        1.0,
        "one state at a time"
    );
    assert_eq!(
        m.sum(
            "strangler_route_stage",
            &[("route", "orders"), ("stage", "migrated")]
        ),
        1.0
    );

    // Where it stands, for people.
    let (code, out, err) = cli(&proxy, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 of 1 routes migrated"), "{out}");
    let line = out.lines().find(|l| l.starts_with("orders")).unwrap();
    for word in ["migrated", "100%", "done 100%", "healthy", "ready"] {
        assert!(line.contains(word), "{word:?} missing in {line:?}\n{out}");
    }
    let (_, out, _) = cli(&proxy, &["status", "--json"]);
    let status: Value = serde_json::from_str(&out).unwrap();
    let route = &status["routes"][0];
    assert_eq!(route["stage"], "migrated");
    assert_eq!(route["report"]["verdict"], "ready");
    assert!(route["new_share"].as_f64().unwrap() > 0.0);
    assert!(status["total"]["requests"].as_u64().unwrap() > 0);
    // The same from GET /status, and from elsewhere with --admin.
    let direct: Value = Http::new()
        .get(&proxy.admin_url("/status"), &[])
        .await
        .json();
    assert_eq!(direct["routes"][0]["stage"], "migrated");
    let (code, out, err) = run_cli(&[
        "status",
        "--config",
        "/nonexistent/routes.yaml",
        "--admin",
        &proxy.admin_url(""),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 of 1 routes migrated"), "{out}");
    // The report page names the stage.
    let page = Http::new()
        .get(&proxy.admin_url("/api/report"), &[])
        .await
        .json();
    assert_eq!(page["routes"][0]["stage"], "migrated");
    let html = Http::new()
        .get(&proxy.admin_url("/report"), &[])
        .await
        .text();
    assert!(html.contains("data-stage=\"migrated\""), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_new_side_is_rolled_back_by_its_gate_and_stays_there() {
    let (legacy, new) = backends(Mode::Status(503)).await;
    let proxy = Proxy::start(&orders_route(
        &legacy,
        &new,
        concat!(
            "sticky: none\n",
            "guard: { window: 10m, min_requests: 10, error_rate_margin: 10 }\n",
            "rollout: { steps: [20, 100], pause: 2s, require: [guard] }\n",
        ),
    ))
    .await;
    let _traffic = Traffic::start(&proxy, &["/api/orders"]);
    // start: manual: nothing happens until a person starts it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rollout(&proxy, "orders").await["state"], "idle");
    let (code, out, err) = cli(&proxy, &["rollout", "start", "orders", "--reason", "go"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("waiting at 0%"), "{out}");
    // Starting a running rollout says so and changes nothing.
    let (code, out, _) = cli(&proxy, &["rollout", "start", "orders"]);
    assert_eq!(code, 0);
    assert!(out.contains("already running"), "{out}");

    let failed = wait_state(&proxy, "orders", "rolled_back", Duration::from_secs(60)).await;
    assert_eq!(proxy.canary("orders").await, 0.0);
    let reason = failed["reason"].as_str().unwrap();
    // The rollout's gate or the route's own guard, whichever judged first:
    // both read the same failures and both roll back.
    assert!(
        reason.contains("at 20%") || reason.contains("the guard rolled the route back"),
        "it failed at the first step with traffic: {reason}"
    );
    assert!(reason.contains("5xx rate"), "{reason}");
    assert_eq!(
        metric(
            &proxy,
            "strangler_rollout_failures_total",
            &[("route", "orders")]
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &proxy,
            "strangler_rollbacks_total",
            &[("route", "orders"), ("trigger", "auto")]
        )
        .await,
        1.0
    );
    // And stays there.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(proxy.canary("orders").await, 0.0);
    assert_eq!(rollout(&proxy, "orders").await["state"], "rolled_back");
    let steps: Vec<String> = rollout_versions(&proxy)
        .iter()
        .map(|v| v["summary"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(steps[0], "orders: canary 20", "{steps:?}");
    assert!(steps.len() <= 2, "no step after the failure: {steps:?}");
    let (_, out, _) = cli(&proxy, &["rollout", "status", "orders"]);
    assert!(out.contains("orders: rolled_back at 0%"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_diffs_hold_a_route_while_matching_answers_promote_another() {
    let legacy = Backend::start("legacy").await;
    legacy.set_mode(Mode::Script(same()));
    let matching = Backend::start("matching").await;
    matching.set_mode(Mode::Script(same()));
    let differing = Backend::start("differing").await;
    differing.set_mode(Mode::Script(different()));
    let proxy = Proxy::start(&format!(
        r#"
backends:
  legacy: {{ url: "{}" }}
  matching: {{ url: "{}" }}
  differing: {{ url: "{}" }}
default: legacy
routes:
  - name: users
    match: {{ path: /api/users }}
    new: matching
    sticky: none
    shadow: {{ percent: 100, min_samples: 20, max_diff_rate: 5 }}
    rollout: {{ steps: [50, 100], pause: 1s, require: [report], on_failure: hold, start: auto }}
  - name: orders
    match: {{ path: /api/orders }}
    new: differing
    sticky: none
    shadow: {{ percent: 100, min_samples: 20, max_diff_rate: 5 }}
    rollout: {{ steps: [50, 100], pause: 1s, require: [report], on_failure: hold, start: auto }}
"#,
        legacy.url(),
        matching.url(),
        differing.url()
    ))
    .await;
    let _traffic = Traffic::start(&proxy, &["/api/users", "/api/orders"]);
    let held = wait_state(&proxy, "orders", "held", Duration::from_secs(60)).await;
    let reason = held["reason"].as_str().unwrap();
    assert!(
        reason.contains("report failed") && reason.contains("not ready"),
        "{reason}"
    );
    wait_state(&proxy, "users", "done", Duration::from_secs(60)).await;
    assert_eq!(proxy.canary("users").await, 100.0);
    assert_eq!(
        proxy.canary("orders").await,
        0.0,
        "never got its first step"
    );
    assert_eq!(
        metric(
            &proxy,
            "strangler_rollout_failures_total",
            &[("route", "orders")]
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &proxy,
            "strangler_rollout_failures_total",
            &[("route", "users")]
        )
        .await,
        0.0
    );
    let (_, out, _) = cli(&proxy, &["status"]);
    let orders = out.lines().find(|l| l.starts_with("orders")).unwrap();
    assert!(
        orders.contains("shadow")
            && orders.contains("held 0% -> 50%")
            && orders.contains("not ready"),
        "{out}"
    );
    assert!(out.contains("1 of 2 routes migrated"), "{out}");
    // Held, it stays held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rollout(&proxy, "orders").await["state"], "held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_pause_resume_promote_and_abort() {
    let (legacy, new) = backends(Mode::Script(same())).await;
    let proxy = Proxy::start(&orders_route(
        &legacy,
        &new,
        concat!(
            "shadow: { percent: 100, min_samples: 1000000 }\n",
            "rollout: { steps: [5, 25, 100], pause: 1s, require: [report] }\n",
        ),
    ))
    .await;
    // Refused with reasons, and no proxy means exit 3.
    let (code, _, err) = cli(&proxy, &["rollout", "pause", "orders"]);
    assert_eq!(code, 1);
    assert!(err.contains("not running"), "{err}");
    let (code, _, err) = cli(&proxy, &["rollout", "start", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no route named \"nope\""), "{err}");
    // Changes need the token; reading does not, from anywhere (--admin).
    let r = Http::new()
        .post(&proxy.admin_url("/rollouts/orders/start"), &[], b"{}")
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let (code, out, err) = run_cli(&[
        "rollout",
        "status",
        "orders",
        "--admin",
        &proxy.admin_url(""),
        "--config",
        "/nonexistent",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("orders: idle at 0%"), "{out}");
    let (code, out, _) = run_cli(&[
        "rollout",
        "status",
        "--admin",
        "127.0.0.1:1",
        "--config",
        "/nonexistent",
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("no proxy answered"), "{out}");

    // The config from STRANGLER_CONFIG, the proxy from STRANGLER_ADMIN,
    // as an SRE's shell would have them.
    let env_run = |vars: &[(&str, String)], args: &[&str]| {
        let mut c = std::process::Command::new(strangler_e2e::proxy::binary());
        c.args(args)
            .current_dir("/")
            .env("STRANGLER_ACTOR", "tester");
        c.env(
            "STRANGLER_ADMIN_TOKEN",
            Proxy::auth_header().1.trim_start_matches("Bearer "),
        );
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let config = proxy.config_path.display().to_string();
    let (code, out) = env_run(
        &[("STRANGLER_CONFIG", config)],
        &["rollout", "start", "orders"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("orders: waiting at 0%"), "{out}");
    let (code, out) = env_run(
        &[
            ("STRANGLER_ADMIN", proxy.admin_url("")),
            ("STRANGLER_CONFIG", "/nonexistent".into()),
        ],
        &["status"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 of 1 routes migrated"), "{out}");
    // The report gate waits for data it will not get: waiting at 0.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = rollout(&proxy, "orders").await;
    assert_eq!(
        (r["state"].as_str(), r["step"].as_f64()),
        (Some("waiting"), Some(0.0))
    );

    // promote: the next step now, audited as the person's decision.
    let (code, out, err) = cli(
        &proxy,
        &["rollout", "promote", "orders", "--reason", "confident"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(proxy.canary("orders").await, 5.0);
    let v = rollout_versions(&proxy).pop().unwrap();
    assert_eq!(v["actor"], "tester");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("gates skipped: confident"),
        "{v}"
    );

    // pause and resume.
    assert_eq!(
        cli(&proxy, &["rollout", "pause", "orders", "--reason", "lunch"]).0,
        0
    );
    let r = rollout(&proxy, "orders").await;
    assert_eq!(r["state"], "held");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("paused by tester: lunch")
    );
    assert_eq!(cli(&proxy, &["rollout", "resume", "orders"]).0, 0);
    assert_eq!(rollout(&proxy, "orders").await["state"], "waiting");

    // A person's own canary change pauses it.
    let (code, out, err) = cli(&proxy, &["canary", "orders", "12"]);
    assert_eq!(code, 0, "{out}{err}");
    let r = rollout(&proxy, "orders").await;
    assert_eq!(r["state"], "held");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("set the canary to 12%"),
        "{r}"
    );
    // Resumed, it continues from there: the next step is 25.
    assert_eq!(cli(&proxy, &["rollout", "resume", "orders"]).0, 0);
    let r = rollout(&proxy, "orders").await;
    assert_eq!(
        (r["step"].as_f64(), r["next"].as_f64()),
        (Some(12.0), Some(25.0))
    );

    // abort: back to 0 as a rollback.
    let (code, out, err) = cli(&proxy, &["rollout", "abort", "orders", "--reason", "no"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(proxy.canary("orders").await, 0.0);
    let r = rollout(&proxy, "orders").await;
    assert_eq!(r["state"], "rolled_back");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("aborted by tester: no")
    );
    assert_eq!(
        metric(
            &proxy,
            "strangler_rollbacks_total",
            &[("route", "orders"), ("trigger", "manual")]
        )
        .await,
        1.0
    );
    let (_, out, _) = cli(&proxy, &["history", "--audit", "--limit", "3"]);
    assert!(out.contains("aborted"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_resumes_at_the_same_step() {
    let (legacy, new) = backends(Mode::Script(same())).await;
    let mut proxy = Proxy::start(&orders_route(
        &legacy,
        &new,
        "rollout: { steps: [10, 50, 100], pause: 4s, require: [], start: auto }\n",
    ))
    .await;
    let first = eventually(Duration::from_secs(30), || async {
        let r = rollout(&proxy, "orders").await;
        (r["step"] == 10.0 && r["state"] == "waiting").then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("no first step:\n{}", proxy.logs()));
    proxy.restart().await;
    // The same step, begun at the same moment: the pause is not restarted.
    let again = rollout(&proxy, "orders").await;
    assert_eq!(again["step"], 10.0, "{again}");
    if again["state"] == "waiting" {
        assert_eq!(again["since_ms"], first["since_ms"]);
    }
    wait_state(&proxy, "orders", "done", Duration::from_secs(60)).await;
    let summaries: Vec<String> = rollout_versions(&proxy)
        .iter()
        .map(|v| v["summary"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        summaries,
        [
            "orders: canary 10",
            "orders: canary 50",
            "orders: canary 100"
        ],
        "no step repeated or skipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_fleet_another_proxy_finishes_a_rollout_when_its_driver_dies() {
    let (legacy, new) = backends(Mode::Script(same())).await;
    let body = orders_route(
        &legacy,
        &new,
        "rollout: { steps: [10, 50, 100], pause: 3s, require: [], start: auto }\n",
    );
    let store = shadow_diff::store::testing::fresh_postgres_url("rollout_fleet").await;
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(Proxy::start_fleet_member(&body, &store).await);
    }
    let drivers = |fleet: &Vec<Proxy>| {
        let urls: Vec<String> = fleet.iter().map(|p| p.admin_url("/rollouts")).collect();
        async move {
            let mut out = Vec::new();
            for (i, u) in urls.iter().enumerate() {
                if Http::new().get(u, &[]).await.json()["driven_here"] == true {
                    out.push(i);
                }
            }
            out
        }
    };
    // Exactly one drives, and the first step reaches every proxy.
    let driver = eventually(Duration::from_secs(30), || async {
        let d = drivers(&fleet).await;
        (d.len() == 1).then(|| d[0])
    })
    .await
    .expect("one driver");
    for p in &fleet {
        eventually(Duration::from_secs(30), || async {
            (p.canary("orders").await >= 10.0).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("the first step did not reach a proxy:\n{}", p.logs()));
    }
    assert!(
        rollout(&fleet[driver], "orders").await["step"]
            .as_f64()
            .unwrap()
            < 100.0
    );
    fleet[driver].signal("KILL");
    let killed = std::time::Instant::now();
    let mut survivors: Vec<Proxy> = fleet
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != driver)
        .map(|(_, p)| p)
        .collect();
    let next = eventually(Duration::from_secs(20), || async {
        let d = drivers(&survivors).await;
        (d.len() == 1).then(|| d[0])
    })
    .await
    .expect("another proxy takes over");
    println!(
        "driver killed; proxy {next} of the survivors drives {} ms later",
        killed.elapsed().as_millis()
    );
    for p in &survivors {
        wait_state(p, "orders", "done", Duration::from_secs(60)).await;
        assert_eq!(p.canary("orders").await, 100.0);
    }
    // Each step once, by two different drivers.
    let steps = rollout_versions(&survivors[next]);
    let summaries: Vec<&str> = steps
        .iter()
        .map(|v| v["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        [
            "orders: canary 10",
            "orders: canary 50",
            "orders: canary 100"
        ]
    );
    let instances: std::collections::HashSet<&str> = steps
        .iter()
        .map(|v| v["instance"].as_str().unwrap())
        .collect();
    assert!(instances.len() >= 2, "one driver did it all: {steps:#?}");
    survivors.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_gate_of_a_fresh_proxy_fires_the_alert_in_a_real_prometheus() {
    use strangler_e2e::prometheus::{Prometheus, alert_rules};
    let (legacy, new) = backends(Mode::Script(different())).await;
    let proxy = Proxy::start(&orders_route(
        &legacy,
        &new,
        concat!(
            "shadow: { percent: 100, min_samples: 20, max_diff_rate: 5 }\n",
            "rollout: { steps: [50, 100], pause: 1s, require: [report], on_failure: hold }\n",
        ),
    ))
    .await;
    let prometheus = Prometheus::start(proxy.admin_port, &alert_rules()).await;
    // Prometheus has seen the counter at zero before anything happened.
    let series = r#"strangler_rollout_failures_total{route="orders"}"#;
    let seen_at_zero = eventually(Duration::from_secs(30), || async {
        (prometheus.value(series).await? == 0.0).then_some(())
    })
    .await;
    assert!(seen_at_zero.is_some(), "Prometheus never saw {series} at 0");
    assert!(prometheus.firing("StranglerRolloutFailed").await.is_empty());

    let _traffic = Traffic::start(&proxy, &["/api/orders"]);
    assert_eq!(cli(&proxy, &["rollout", "start", "orders"]).0, 0);
    wait_state(&proxy, "orders", "held", Duration::from_secs(60)).await;
    let fired = eventually(Duration::from_secs(30), || async {
        let alerts = prometheus.firing("StranglerRolloutFailed").await;
        alerts
            .iter()
            .any(|a| a["route"] == "orders" && a["severity"] == "page")
            .then_some(())
    })
    .await;
    assert!(
        fired.is_some(),
        "StranglerRolloutFailed did not fire; {}",
        prometheus
            .query(&format!("{series}[1m]"))
            .await
            .unwrap_or_default()
    );
    // Held, not rolled back: the other alert waits for its 30 minutes.
    assert!(prometheus.firing("StranglerRolloutHeld").await.is_empty());
}
