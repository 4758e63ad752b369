//! Starts the real `strangler` binary on ephemeral loopback ports with a
//! configuration written to a temporary directory, and stops it on drop.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::client::Http;
use crate::metrics::Scrape;

pub const TOKEN: &str = "test-admin-token";

/// A port nothing listens on now, picked at random below Linux's ephemeral
/// range and reserved for this test process alone.
///
/// Not `bind(0)`: Linux hands the port it has just freed to the next
/// caller, so two test processes probing at the same moment got the same
/// port, and with the proxy's SO_REUSEPORT listeners both could bind it
/// (seen once: a request for one proxy answered by another's admin server).
/// Random ports alone still leave the moment between this probe and the
/// proxy's own bind, in which another test process may pick the same port
/// (seen once in CI: a proxy's admin port taken by another test's
/// listener, whose echoed JSON was then read as the proxy's metrics). So
/// each port handed out is also claimed with a file that only one process
/// can create ([`claim`]).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut next = h.finish();
    for _ in 0..1000 {
        let port = 20_000 + (next % 12_000) as u16;
        if claim(port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
        next = next.rotate_left(17).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Claims `port` for this test process: true if no other test process
/// claimed it in the last ten minutes (longer than any test holds a port;
/// a whole run hands out a few hundred of the 12,000).
fn claim(port: u16) -> bool {
    const HELD_FOR: Duration = Duration::from_secs(600);
    let dir = std::env::temp_dir().join("strangler-test-ports");
    let _ = fs::create_dir_all(&dir);
    let path = dir.join(port.to_string());
    let create = || {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .is_ok()
    };
    if create() {
        return true;
    }
    let stale = fs::metadata(&path)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().unwrap_or_default() > HELD_FOR)
        .unwrap_or(false);
    // Of two processes finding the same stale claim, only one removes it
    // and creates it again; the other's create fails.
    stale && fs::remove_file(&path).is_ok() && create()
}

/// The `strangler` binary next to the test executable (`target/<profile>/`),
/// or `$STRANGLER_BIN`.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("STRANGLER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("strangler");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build --bin strangler), or set STRANGLER_BIN",
        bin.display()
    );
    bin
}

/// `body` (backends, tenant, default, routes) under the header every test
/// proxy gets: ephemeral listeners, the admin token, and `store`.
fn standard_template(body: &str, store: &str) -> String {
    format!(
        "version: 1\nlisten: 127.0.0.1:{{listen}}\nadmin:\n  listen: 127.0.0.1:{{admin}}\n  token_env: STRANGLER_ADMIN_TOKEN\nstore: {store}\n{body}"
    )
}

#[derive(Debug)]
pub struct Proxy {
    child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub dir: TempDir,
    pub config_path: PathBuf,
    log_path: PathBuf,
    template: String,
    args: Vec<String>,
    /// Processes replaced by [`Proxy::upgrade`], still draining or exited.
    retired: Vec<Child>,
    /// Upgrades so far; process N > 0 logs to `strangler.N.log`.
    generation: u32,
    /// A command the binary is run under (see [`Proxy::start_wrapped`]).
    wrapper: Vec<String>,
}

impl Proxy {
    /// Starts a proxy whose config is `body` (backends, tenant, default,
    /// routes) under a header that sets the listeners and the admin token.
    pub async fn start(body: &str) -> Proxy {
        Proxy::start_with_store(body, "sqlite://{dir}/strangler.db").await
    }

    /// Like [`Proxy::start`] with another store URL (`{dir}` is replaced).
    pub async fn start_with_store(body: &str, store: &str) -> Proxy {
        Proxy::start_template(&standard_template(body, store)).await
    }

    /// Like [`Proxy::start_with_store`], with variables added to the
    /// process's environment.
    pub async fn start_with_env(body: &str, store: &str, env: &[(&str, &str)]) -> Proxy {
        Proxy::start_with_env_and_args(body, store, env, &[]).await
    }

    /// Like [`Proxy::start_with_env`], with more command-line arguments.
    pub async fn start_with_env_and_args(
        body: &str,
        store: &str,
        env: &[(&str, &str)],
        extra_args: &[&str],
    ) -> Proxy {
        let mut wrapper = vec!["env".to_string()];
        wrapper.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        Proxy::start_wrapped(&standard_template(body, store), extra_args, &wrapper).await
    }

    /// Like [`Proxy::start`], with more command-line arguments (which
    /// replace the test defaults for the flags they give).
    pub async fn start_with_args(body: &str, extra_args: &[&str]) -> Proxy {
        let template = standard_template(body, "sqlite://{dir}/strangler.db");
        Proxy::start_with(&template, extra_args).await
    }

    /// A member of a fleet: every member's file is the same text (the
    /// listeners come from the command line), as on a fleet of hosts.
    pub async fn start_fleet_member(body: &str, store: &str) -> Proxy {
        Proxy::start_fleet_member_with(body, store, &[]).await
    }

    /// Like [`Proxy::start_fleet_member`], with more command-line arguments.
    pub async fn start_fleet_member_with(body: &str, store: &str, extra_args: &[&str]) -> Proxy {
        let template = format!(
            "version: 1\nlisten: 0.0.0.0:8080\nadmin:\n  listen: 127.0.0.1:9901\n  token_env: STRANGLER_ADMIN_TOKEN\nstore: {store}\n{body}"
        );
        Proxy::start_with(&template, extra_args).await
    }

    /// The store URL of this proxy's configuration.
    pub fn store_url(&self) -> String {
        let text = fs::read_to_string(&self.config_path).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("store: "))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| format!("sqlite://{}/strangler.db", self.dir.path().display()))
    }

    /// Starts a proxy from a full template with `{listen}`, `{admin}` and
    /// `{dir}` placeholders.
    pub async fn start_template(template: &str) -> Proxy {
        Proxy::start_with(template, &[]).await
    }

    pub async fn start_with(template: &str, extra_args: &[&str]) -> Proxy {
        Proxy::start_wrapped(template, extra_args, &[]).await
    }

    /// Like [`Proxy::start_with`], with the binary run under a wrapper
    /// command: `wrapper` (with `{dir}` filled in), then the binary and its
    /// arguments, e.g. `unshare --mount sh -c '... && exec "$@"' sh`. The
    /// wrapper must end by exec-ing the binary, so that the process id stays
    /// the proxy's (signals, [`Proxy::pid`]).
    pub async fn start_wrapped(template: &str, extra_args: &[&str], wrapper: &[&str]) -> Proxy {
        let mut last_log = String::new();
        // A port taken between free_port() and bind: try again with others.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let admin_port = free_port();
            let config_path = dir.path().join("routes.yaml");
            let log_path = dir.path().join("strangler.log");
            let mut proxy = Proxy {
                child: None,
                port,
                admin_port,
                config_path,
                log_path,
                template: template.to_string(),
                args: Vec::new(),
                retired: Vec::new(),
                generation: 0,
                wrapper: Vec::new(),
                dir,
            };
            proxy.wrapper = wrapper.iter().map(|w| proxy.fill(w)).collect();
            proxy.write_template(template);
            let log = fs::File::create(&proxy.log_path).expect("log file");
            let mut args: Vec<String> = vec![
                "serve".into(),
                "--config".into(),
                proxy.config_path.display().to_string(),
                "--pid-file".into(),
                proxy.dir.path().join("strangler.pid").display().to_string(),
                "--upgrade-sock".into(),
                proxy.dir.path().join("upgrade.sock").display().to_string(),
            ];
            // Defaults for tests, unless the test gives its own.
            for (flag, value) in [
                ("--threads", "2"),
                ("--watch-interval", "100ms"),
                ("--grace-period", "0s"),
                ("--shutdown-timeout", "5s"),
            ] {
                if !extra_args.contains(&flag) {
                    args.extend([flag.to_string(), value.to_string()]);
                }
            }
            if !template.contains("{listen}") {
                // The file names no ports of its own: give them on the command
                // line (several instances from one identical file).
                args.extend([
                    "--listen".to_string(),
                    format!("127.0.0.1:{port}"),
                    "--admin-listen".to_string(),
                    format!("127.0.0.1:{admin_port}"),
                ]);
            }
            args.extend(extra_args.iter().map(|s| s.to_string()));
            proxy.args = args;
            proxy.spawn(log);
            if proxy.wait_ready(Duration::from_secs(20)).await {
                return proxy;
            }
            last_log = proxy.logs();
        }
        panic!("strangler did not become ready:\n{last_log}");
    }

    fn spawn(&mut self, log: fs::File) {
        let mut command = match self.wrapper.split_first() {
            None => Command::new(binary()),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary());
                c
            }
        };
        let child = command
            .args(&self.args)
            .env("STRANGLER_ADMIN_TOKEN", TOKEN)
            .env("STRANGLER_ACTOR", "tester")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn strangler");
        self.child = Some(child);
    }

    /// Stops the process and starts it again on the same file and ports.
    pub async fn restart(&mut self) {
        self.stop();
        let log = fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        self.spawn(log);
        assert!(
            self.wait_ready(Duration::from_secs(20)).await,
            "strangler did not come back:\n{}",
            self.logs()
        );
    }

    /// The live table (`GET /routes`).
    pub async fn routes(&self) -> serde_json::Value {
        Http::new()
            .get(&self.admin_url("/routes"), &[])
            .await
            .json()
    }

    /// The canary of a route in the live table.
    pub async fn canary(&self, route: &str) -> f64 {
        let routes = self.routes().await;
        routes["routes"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == route))
            .and_then(|r| r["canary"].as_f64())
            .unwrap_or_else(|| panic!("no route {route} in {routes}"))
    }

    async fn wait_ready(&mut self, timeout: Duration) -> bool {
        let http = Http::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            if let Ok(r) = http
                .send(http::Method::GET, &self.admin_url("/readyz"), &[], b"")
                .await
            {
                // Only this proxy's own answer counts: a port taken by another
                // test's listener may answer 200 too.
                if r.status == 200 && r.body.as_ref() == b"ready\n" {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub fn fill(&self, template: &str) -> String {
        template
            .replace("{listen}", &self.port.to_string())
            .replace("{admin}", &self.admin_port.to_string())
            .replace("{dir}", &self.dir.path().display().to_string())
    }

    fn write_template(&self, template: &str) {
        write_atomically(&self.config_path, &self.fill(template));
    }

    /// Replaces the config body (same header as at start), atomically.
    pub fn rewrite_body(&self, body: &str) {
        let store_line = self.template.find("\nstore: ").expect("start() template") + 1;
        let header_end =
            store_line + self.template[store_line..].find('\n').expect("store line") + 1;
        let template = format!("{}{body}", &self.template[..header_end]);
        self.write_template(&template);
    }

    /// Writes raw text as the config file (for broken files).
    pub fn write_raw(&self, text: &str) {
        write_atomically(&self.config_path, text);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal by name (HUP, INT, TERM, QUIT) with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    fn generation_log(&self, n: u32) -> PathBuf {
        self.dir.path().join(format!("strangler.{n}.log"))
    }

    /// A zero-downtime upgrade, as the runbook does it: start a new process
    /// with `--upgrade`, wait until it waits for the listening sockets, send
    /// SIGQUIT to the old one, and wait until the new one runs. The old one
    /// drains in the background (see [`Proxy::retired_running`]).
    pub async fn upgrade(&mut self) {
        let sock = self.dir.path().join("upgrade.sock");
        let _ = fs::remove_file(&sock);
        self.generation += 1;
        let log_path = self.generation_log(self.generation);
        let log = fs::File::create(&log_path).expect("log file");
        let old = self.child.take().expect("running");
        self.args.push("--upgrade".into());
        self.spawn(log);
        self.args.pop();
        let waited = crate::eventually(Duration::from_secs(10), || async {
            sock.exists().then_some(())
        })
        .await;
        assert!(
            waited.is_some(),
            "new process never opened {}:\n{}",
            sock.display(),
            self.logs()
        );
        let status = Command::new("kill")
            .args(["-QUIT", &old.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -QUIT failed");
        self.retired.push(old);
        let ready = crate::eventually(Duration::from_secs(20), || async {
            let text = fs::read_to_string(&log_path).unwrap_or_default();
            text.contains("ready: serving").then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "new process did not take over:\n{}",
            self.logs()
        );
    }

    /// How many replaced processes are still running (draining).
    pub fn retired_running(&mut self) -> usize {
        self.retired
            .iter_mut()
            .map(|c| c.try_wait())
            .filter(|w| matches!(w, Ok(None)))
            .count()
    }

    /// Exit codes of replaced processes that have exited.
    pub fn retired_exit_codes(&mut self) -> Vec<Option<i32>> {
        self.retired
            .iter_mut()
            .filter_map(|c| c.try_wait().ok().flatten())
            .map(|s| s.code())
            .collect()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Everything the process (and, after upgrades, each of its successors)
    /// wrote.
    pub fn logs(&self) -> String {
        let mut text = fs::read_to_string(&self.log_path).unwrap_or_default();
        for n in 1..=self.generation {
            text.push_str(&format!("\n--- process {n} ---\n"));
            text.push_str(&fs::read_to_string(self.generation_log(n)).unwrap_or_default());
        }
        text
    }

    pub async fn metrics(&self) -> Scrape {
        let r = Http::new().get(&self.admin_url("/metrics"), &[]).await;
        assert_eq!(r.status, 200);
        Scrape::parse(&r.text())
    }

    /// The metrics once request counting has caught up: the proxy counts a
    /// request just after its answer is sent, so a scrape right after an
    /// answer can miss it. Waits until the request counters hold still.
    pub async fn metrics_settled(&self) -> Scrape {
        let mut last = self.metrics().await;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.metrics().await;
            let total = |m: &Scrape| {
                m.sum("strangler_requests_total", &[])
                    + m.sum("strangler_upstream_errors_total", &[])
            };
            if total(&now) == total(&last) {
                return now;
            }
            last = now;
        }
        last
    }

    /// The config version being served, from `/routes`.
    pub async fn version(&self) -> u64 {
        let r = Http::new().get(&self.admin_url("/routes"), &[]).await;
        r.json()["version"].as_u64().expect("version")
    }

    /// Waits until the served version is at least `v`.
    pub async fn wait_version(&self, v: u64) -> u64 {
        crate::eventually(Duration::from_secs(10), || async {
            let now = self.version().await;
            (now >= v).then_some(now)
        })
        .await
        .unwrap_or_else(|| panic!("version {v} not reached; logs:\n{}", self.logs()))
    }

    pub fn auth_header() -> (&'static str, String) {
        ("authorization", format!("Bearer {TOKEN}"))
    }

    /// Stops the process with SIGINT and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for mut child in self.retired.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Temp file and rename, as an editor or config management would.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, text).expect("write temp config");
    fs::rename(&tmp, path).expect("rename config");
}

/// Runs the `strangler` binary with arguments; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .env("STRANGLER_ADMIN_TOKEN", TOKEN)
        .env("STRANGLER_ACTOR", "tester")
        .output()
        .expect("run strangler");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
