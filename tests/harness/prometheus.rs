//! A real Prometheus (Debian's `prometheus` package) scraping a proxy's admin
//! listener every second and evaluating the project's alert rules, as an
//! operator's would: what a test reads from it is what would page someone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Http, eventually, free_port};

/// The repository's `grafana/alerts.yml`.
pub fn alert_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .join("grafana/alerts.yml")
}

#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    api: String,
    http: Http,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `rules` loaded, scraping `127.0.0.1:ADMIN_PORT`
    /// as job `strangler` every second, and waits until it answers queries.
    pub async fn start(admin_port: u16, rules: &Path) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: strangler\n    static_configs:\n      - targets: ['127.0.0.1:{admin_port}']\n",
                rules.display(),
            ),
        )
        .expect("write prometheus.yml");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "prometheus (Debian package `prometheus`) is needed; scripts/setup installs it",
            );
        let prometheus = Prometheus {
            child,
            api: format!("http://127.0.0.1:{port}/api/v1"),
            http: Http::new(),
            _dir: dir,
        };
        let ready = eventually(Duration::from_secs(30), || async {
            prometheus.query("vector(1)").await.map(|_| ())
        })
        .await;
        assert!(ready.is_some(), "Prometheus did not start");
        prometheus
    }

    /// An instant query's `data.result`; `None` while Prometheus is not
    /// answering (it answers 503 in plain text while it starts).
    pub async fn query(&self, q: &str) -> Option<serde_json::Value> {
        let reply = self.query_raw(q).await?;
        (reply["status"] == "success").then(|| reply["data"]["result"].clone())
    }

    /// The full answer of an instant query, success or a query error
    /// (`None` while Prometheus is not answering).
    pub async fn query_raw(&self, q: &str) -> Option<serde_json::Value> {
        let url = format!("{}/query?query={}", self.api, crate::client::encode(q));
        let reply = self
            .http
            .send(http::Method::GET, &url, &[], b"")
            .await
            .ok()?;
        (reply.status == 200 || reply.status == 400 || reply.status == 422).then(|| reply.json())
    }

    /// The value of a query returning one series, if it returns one.
    pub async fn value(&self, q: &str) -> Option<f64> {
        let result = self.query(q).await?;
        let series = result.as_array()?;
        if series.len() != 1 {
            return None;
        }
        series[0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until Prometheus has scraped the proxy at least once.
    pub async fn wait_scraped(&self) {
        let scraped = eventually(Duration::from_secs(30), || async {
            (self.value(r#"up{job="strangler"}"#).await? == 1.0).then_some(())
        })
        .await;
        assert!(scraped.is_some(), "Prometheus did not scrape the proxy");
    }

    /// The alerts in state `firing` named `name`, with their labels.
    pub async fn firing(&self, name: &str) -> Vec<serde_json::Value> {
        let q = format!(r#"ALERTS{{alertname="{name}", alertstate="firing"}}"#);
        self.query(&q)
            .await
            .and_then(|r| r.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|s| s["metric"].clone())
            .collect()
    }

    /// The loaded rule groups (`/api/v1/rules`).
    pub async fn rules(&self) -> serde_json::Value {
        self.http
            .get(&format!("{}/rules", self.api), &[])
            .await
            .json()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
