//! `strangler status`: where every route stands, from a running proxy's
//! `GET /status`, as a table (or `--json`).

use anyhow::{Result, bail};
use serde_json::Value;

use super::StatusArgs;
use super::rollout::{Printed, ask, client};

pub fn run(args: &StatusArgs) -> Result<Printed> {
    let client = client(&args.target)?;
    let reply = match ask(&client, "GET", "/status", None)? {
        Ok(r) => r,
        Err(printed) => return Ok(printed),
    };
    if reply.status != 200 {
        bail!("the proxy said {}: {}", reply.status, reply.error());
    }
    let status = reply.json();
    let text = if args.json {
        serde_json::to_string_pretty(&status)? + "\n"
    } else {
        table(&status)
    };
    Ok(Printed { text, code: 0 })
}

fn pct(share: &Value) -> String {
    share
        .as_f64()
        .map(|s| format!("{:.1}%", s * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// The status as a table with a total line.
pub fn table(status: &Value) -> String {
    let routes = status["routes"].as_array().cloned().unwrap_or_default();
    let width = routes
        .iter()
        .filter_map(|r| r["route"].as_str().map(str::len))
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<width$}  {:<8}  {:>6}  {:<22}  {:<9}  {:<15}  NEW (LAST {})\n",
        "ROUTE",
        "STAGE",
        "CANARY",
        "ROLLOUT",
        "GUARD",
        "REPORT",
        window(status),
    );
    for r in &routes {
        let rollout = match r["rollout"].as_object() {
            None => "-".to_string(),
            Some(o) => {
                let step = o["step"]
                    .as_f64()
                    .map(|s| format!("{s}%"))
                    .unwrap_or_default();
                match o["next"].as_f64() {
                    Some(n) => format!("{} {step} -> {n}%", o["state"].as_str().unwrap_or("?")),
                    None => format!("{} {step}", o["state"].as_str().unwrap_or("?")),
                }
            }
        };
        let report = r["report"]["verdict"]
            .as_str()
            .map(|v| v.replace('_', " "))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<width$}  {:<8}  {:>6}  {:<22}  {:<9}  {:<15}  {} of {}\n",
            r["route"].as_str().unwrap_or("?"),
            r["stage"].as_str().unwrap_or("?"),
            format!("{}%", r["canary"].as_f64().unwrap_or(0.0)),
            rollout,
            r["guard"].as_str().unwrap_or("?"),
            report,
            pct(&r["new_share"]),
            r["requests"].as_u64().unwrap_or(0),
        ));
    }
    let total = &status["total"];
    out.push_str(&format!(
        "{} of {} routes migrated, {} of requests on new services ({} of {} in the last {}, on this proxy {})\n",
        total["migrated"].as_u64().unwrap_or(0),
        total["routes"].as_u64().unwrap_or(0),
        pct(&total["new_share"]),
        total["on_new"].as_u64().unwrap_or(0),
        total["requests"].as_u64().unwrap_or(0),
        window(status),
        status["instance"].as_str().unwrap_or("?"),
    ));
    if let Some(e) = status["store_error"].as_str() {
        out.push_str(&format!("the store could not be read: {e}\n"));
    }
    out
}

fn window(status: &Value) -> String {
    let secs = status["total"]["window_seconds"].as_u64().unwrap_or(0);
    crate::config::units::format_duration(std::time::Duration::from_secs(secs.max(1)))
}
