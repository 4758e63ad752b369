//! `strangler canary`, `strangler rollback` and `strangler history`.
//!
//! A change goes to the running proxy's admin API (live from the next
//! request, written back to routes.yaml by the proxy, recorded); with no
//! proxy running, the file is edited here and the change recorded in the
//! store directly. A rollback is then verified on the proxy's metrics: it
//! waits until no new request reaches the new side and says how long that
//! took.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rollback::atomic::write_atomically;
use rollback::edit::{Edit, apply_all};
use rollback::history::{AuditEntry, History, VersionEntry};
use serde_json::{Value, json};
use shadow_diff::DiffStore;

use super::admin_client::{AdminClient, ClientError, Reply, actor};
use crate::cli::{CanaryArgs, HistoryArgs, RollbackArgs};
use crate::config::{self, Config, Percent, Side};
use crate::live::digest;

/// How long the new side must stay silent for a rollback to count as done.
const QUIET: Duration = Duration::from_millis(500);

fn load(path: &Path) -> Result<(Config, String)> {
    config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

fn describe_file(outcome: &Value) -> String {
    match outcome["file"]["status"].as_str() {
        Some("written") => "routes.yaml updated".into(),
        Some("unchanged") => "nothing to change in routes.yaml".into(),
        Some("not_written") => format!(
            "routes.yaml NOT updated: {} (the change is live; a reload will not undo it)",
            outcome["file"]["detail"]
                .as_str()
                .unwrap_or("unknown reason")
        ),
        _ => String::new(),
    }
}

fn refused(reply: &Reply, client: &AdminClient) -> anyhow::Error {
    let hint = match reply.status {
        401 if !client.has_token() => {
            " (the token variable named by admin.token_env is not set here)"
        }
        401 => " (check the token in the variable named by admin.token_env)",
        _ => "",
    };
    anyhow::anyhow!(
        "the proxy refused the change ({}): {}{hint}",
        reply.status,
        reply.error()
    )
}

pub fn canary(args: &CanaryArgs) -> Result<String> {
    let percent = Percent::parse(&args.percent).map_err(anyhow::Error::msg)?;
    let (config, _) = load(&args.config)?;
    if config.route(&args.route).is_none() {
        bail!(
            "no route named {:?} in {}",
            args.route,
            args.config.display()
        );
    }
    let client = AdminClient::for_config(&config);
    let body = json!({"percent": percent.get(), "reason": args.reason, "actor": actor()});
    match client.request(
        "POST",
        &format!("/routes/{}/canary", args.route),
        Some(&body),
    ) {
        Ok(reply) if reply.status == 200 => {
            let o = reply.json();
            Ok(format!(
                "{}: canary {}% live from the next request (version {}); {}\n",
                args.route,
                percent,
                o["version"],
                describe_file(&o)
            ))
        }
        Ok(reply) => Err(refused(&reply, &client)),
        Err(ClientError::Unreachable(addr)) => {
            let edits = vec![Edit::SetCanary {
                route: args.route.clone(),
                percent: percent.to_string(),
            }];
            let note = edit_file_alone(&args.config, &config, &edits, "canary", &args.reason)?;
            Ok(format!(
                "no proxy answered at {addr}; {}: canary {}% written to {} ({note}); it takes effect when a proxy loads the file\n",
                args.route,
                percent,
                args.config.display()
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// The change with no proxy running: edit, validate, write, record.
fn edit_file_alone(
    path: &Path,
    config: &Config,
    edits: &[Edit],
    action: &str,
    reason: &str,
) -> Result<String> {
    let text = std::fs::read_to_string(path)?;
    let new_text = apply_all(&text, edits)?;
    config::parse(&new_text, &path.display().to_string())
        .map_err(|e| anyhow::anyhow!("the edited file would not be valid: {e}"))?;
    if new_text == text {
        return Ok("already so".into());
    }
    write_atomically(path, &new_text)?;
    // Recorded when the store can be reached; the file is what matters.
    let recorded = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let store = tokio::time::timeout(
                Duration::from_secs(5),
                DiffStore::connect(config.store.as_str()),
            )
            .await??;
            let history = History::open(&store).await?;
            let summary = edits
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            let version = history
                .record_version(
                    &VersionEntry {
                        instance: "cli".into(),
                        actor: actor(),
                        source: action.into(),
                        reason: reason.into(),
                        summary: summary.clone(),
                        digest: digest(&new_text),
                    },
                    &new_text,
                )
                .await?;
            history
                .record_change("cli", &actor(), version, edits)
                .await?;
            history
                .audit(&AuditEntry {
                    instance: "cli".into(),
                    actor: actor(),
                    action: action.into(),
                    target: edits.iter().map(edit_route).collect::<Vec<_>>().join(","),
                    reason: reason.into(),
                    detail: summary,
                    outcome: "applied to the file (no proxy running)".into(),
                    version: Some(version),
                })
                .await?;
            Ok::<i64, anyhow::Error>(version)
        });
    Ok(match recorded {
        Ok(v) => format!("recorded as version {v}"),
        Err(e) => format!("not recorded in the store: {e}"),
    })
}

fn edit_route(e: &Edit) -> String {
    match e {
        Edit::SetCanary { route, .. } | Edit::SetPin { route, .. } => route.clone(),
    }
}

/// The edits a rollback makes to a config (when no proxy is running).
fn rollback_edits(config: &Config, routes: &[String], tenant: Option<&str>) -> Vec<Edit> {
    let mut edits = Vec::new();
    for name in routes {
        let Some(route) = config.route(name) else {
            continue;
        };
        match tenant {
            Some(t) => {
                if route.pin_for(t) != Some(Side::Legacy) {
                    edits.push(Edit::SetPin {
                        route: name.clone(),
                        tenant: t.to_string(),
                        side: "legacy".into(),
                    });
                }
            }
            None => {
                if route.canary.get() != 0.0 {
                    edits.push(Edit::SetCanary {
                        route: name.clone(),
                        percent: "0".into(),
                    });
                }
                for (t, side) in &route.pins {
                    if *side == Side::New {
                        edits.push(Edit::SetPin {
                            route: name.clone(),
                            tenant: t.clone(),
                            side: "legacy".into(),
                        });
                    }
                }
            }
        }
    }
    edits
}

pub fn rollback(args: &RollbackArgs) -> Result<String> {
    let started = Instant::now();
    let (config, _) = load(&args.config)?;
    let client = AdminClient::for_config(&config);
    if let Some(version) = args.to {
        return restore(args, &config, &client, version);
    }
    let routes: Vec<String> = if args.all {
        config.routes.iter().map(|r| r.name.to_string()).collect()
    } else {
        args.routes.clone()
    };
    if routes.is_empty() {
        bail!("name the routes to roll back, or --all");
    }
    for r in &routes {
        if config.route(r).is_none() {
            bail!("no route named {r:?} in {}", args.config.display());
        }
    }
    let body =
        json!({"routes": routes, "tenant": args.tenant, "reason": args.reason, "actor": actor()});
    // Counts from before the change, so that a new-side request finishing
    // while the change is being made is seen.
    let baseline: Vec<Option<f64>> = routes
        .iter()
        .map(|r| new_side_requests(&client, r))
        .collect();
    let mut out = String::new();
    match client.request("POST", "/rollback", Some(&body)) {
        Ok(reply) if reply.status == 200 => {
            let o = reply.json();
            let what = match &args.tenant {
                Some(t) => format!("tenant {t} pinned to legacy"),
                None => "all traffic to legacy".into(),
            };
            out.push_str(&format!(
                "rolled back {} ({what}) live at version {} in {} ms; {}\n",
                routes.join(", "),
                o["version"],
                started.elapsed().as_millis(),
                describe_file(&o)
            ));
            if args.tenant.is_none() && !args.no_verify {
                out.push_str(&verify(&client, &routes, baseline, started, args.timeout)?);
            }
        }
        Ok(reply) => return Err(refused(&reply, &client)),
        Err(ClientError::Unreachable(addr)) => {
            let edits = rollback_edits(&config, &routes, args.tenant.as_deref());
            let note = edit_file_alone(&args.config, &config, &edits, "rollback", &args.reason)?;
            out.push_str(&format!(
                "no proxy answered at {addr}; rollback of {} written to {} ({note})\n",
                routes.join(", "),
                args.config.display()
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(out)
}

fn restore(
    args: &RollbackArgs,
    config: &Config,
    client: &AdminClient,
    version: i64,
) -> Result<String> {
    let body = json!({"to_version": version, "reason": args.reason, "actor": actor()});
    match client.request("POST", "/rollback", Some(&body)) {
        Ok(reply) if reply.status == 200 => {
            let o = reply.json();
            Ok(format!(
                "version {version} restored live as version {}; {}\n",
                o["version"],
                describe_file(&o)
            ))
        }
        Ok(reply) => Err(refused(&reply, client)),
        Err(ClientError::Unreachable(addr)) => {
            let text = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    let store = DiffStore::connect(config.store.as_str()).await?;
                    let history = History::open(&store).await?;
                    history
                        .config_of(version)
                        .await?
                        .with_context(|| format!("version {version} is not in the history"))
                })?;
            config::parse(&text, "restored")
                .map_err(|e| anyhow::anyhow!("version {version} is not valid today: {e}"))?;
            write_atomically(&args.config, &text)?;
            Ok(format!(
                "no proxy answered at {addr}; version {version} written to {}\n",
                args.config.display()
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Requests to the new side of `route` so far, from the proxy's metrics.
fn new_side_requests(client: &AdminClient, route: &str) -> Option<f64> {
    let reply = client.request("GET", "/metrics", None).ok()?;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    let needle = format!("route=\"{route}\"");
    Some(
        text.lines()
            .filter(|l| {
                l.starts_with("strangler_requests_total{")
                    && l.contains(&needle)
                    && l.contains("side=\"new\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// Watches the new side of each route until it has been silent for
/// [`QUIET`]; reports when its last request came.
fn verify(
    client: &AdminClient,
    routes: &[String],
    baseline: Vec<Option<f64>>,
    started: Instant,
    timeout: Duration,
) -> Result<String> {
    let mut last: Vec<(Option<f64>, Instant, Option<Duration>)> = baseline
        .into_iter()
        .map(|count| (count, started, None))
        .collect();
    let deadline = Instant::now() + timeout;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let mut all_quiet = true;
        for (i, route) in routes.iter().enumerate() {
            let count = new_side_requests(client, route);
            let (prev, changed_at, last_request) = &mut last[i];
            if count != *prev {
                *prev = count;
                *changed_at = now;
                *last_request = Some(now.duration_since(started));
            }
            if now.duration_since(*changed_at) < QUIET {
                all_quiet = false;
            }
        }
        if all_quiet || now >= deadline {
            let mut out = String::new();
            for (route, (_, changed_at, last_request)) in routes.iter().zip(&last) {
                let quiet = now.duration_since(*changed_at) >= QUIET;
                let when = match last_request {
                    Some(d) => format!(
                        "last request to the new side {} ms after the command",
                        d.as_millis()
                    ),
                    None => "no request reached the new side after the command".into(),
                };
                out.push_str(&format!(
                    "  {route}: {when}; {}\n",
                    if quiet {
                        format!(
                            "verified: none since ({} ms of quiet)",
                            now.duration_since(*changed_at).as_millis()
                        )
                    } else {
                        "NOT verified: the new side still receives requests".to_string()
                    }
                ));
            }
            out.push_str(&format!(
                "verification took {:.2} s\n",
                started.elapsed().as_secs_f64()
            ));
            if !all_quiet {
                bail!("{out}rollback not verified within {timeout:?}");
            }
            return Ok(out);
        }
    }
}

pub fn history(args: &HistoryArgs) -> Result<String> {
    let store_url = match &args.store {
        Some(s) => s.clone(),
        None => load(&args.config)?.0.store.as_str().to_string(),
    };
    let (versions, audit) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let store = DiffStore::connect_existing(&store_url)
                .await
                .with_context(|| format!("cannot open the store {store_url}"))?;
            let history = History::open(&store).await?;
            Ok::<_, anyhow::Error>((
                history.versions(args.limit).await?,
                history.audit_rows(args.limit).await?,
            ))
        })?;
    if args.json {
        return Ok(
            serde_json::to_string_pretty(&json!({"versions": versions, "audit": audit}))? + "\n",
        );
    }
    let time = shadow_diff::report::html::format_time;
    let mut out = String::from(
        "VERSION  WHEN                     SOURCE    WHO                  WHAT (WHY)\n",
    );
    for v in &versions {
        out.push_str(&format!(
            "{:>7}  {:<23}  {:<8}  {:<19}  {} ({})\n",
            v.version,
            time(v.created_at_ms),
            v.entry.source,
            v.entry.actor,
            v.entry.summary,
            v.entry.reason
        ));
    }
    if args.audit {
        out.push_str("\nAUDIT\n");
        for a in &audit {
            out.push_str(&format!(
                "{}  {:<19}  {:<8} {:<20} {} [{}] ({})\n",
                time(a.created_at_ms),
                a.entry.actor,
                a.entry.action,
                a.entry.target,
                a.entry.detail,
                a.entry.outcome,
                a.entry.reason
            ));
        }
    }
    Ok(out)
}
