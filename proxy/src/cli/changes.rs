//! `strangler canary`, `strangler rollback` and `strangler history`.
//!
//! A change goes to the running proxy's admin API (live from the next
//! request, written back to routes.yaml by the proxy, recorded); with no
//! proxy listening, or with `--offline`, the file is edited here and the
//! change recorded in the store directly. A rollback is then verified on the
//! proxy's metrics: it waits until no new request reaches the new side and
//! says how long that took.
//!
//! What happened is an [`Outcome`]; `main` turns it into the exit code, so
//! that a script (or an SRE at 3 a.m.) can tell "live" from "only the file"
//! from "live but still receiving requests".

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rollback::atomic::write_atomically;
use rollback::edit::{Edit, apply_all};
use rollback::history::{ChangeSource, History};
use serde_json::{Value, json};
use shadow_diff::DiffAndHistoryStore;

use super::admin_client::{AdminClient, ClientError, Reply, actor, seconds};
use crate::changes::record::{ChangeRecord, FleetRecord, Recorder};
use crate::changes::{ChangeMeta, ChangeRequest, describe, plan};
use crate::cli::{CanaryArgs, HistoryArgs, RollbackArgs};
use crate::config::{self, Config, Percent};
use crate::live::digest;

/// How long the new side must stay silent for a rollback to count as done.
const QUIET: Duration = Duration::from_millis(500);

/// How long the store gets when the CLI records a change itself.
const STORE_WAIT: Duration = Duration::from_secs(5);

/// What a `canary` or `rollback` achieved. Failures (refused, no answer,
/// bad input) are errors instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The running proxy applied the change; a rollback of whole routes was
    /// also confirmed on its metrics (unless `--no-verify`).
    Applied,
    /// `--offline`: the file was edited (and recorded); no proxy was asked.
    Offline,
    /// Nothing listens at the config's admin address: only the file was
    /// edited, nothing changed live.
    FileOnly,
    /// The proxy applied the rollback, but its new side still received
    /// requests when `--timeout` ran out.
    NotVerified,
}

/// The outcome and what to print for it.
#[derive(Debug)]
pub struct Done {
    pub outcome: Outcome,
    pub text: String,
}

/// The runbook page for a command, named in messages that need one.
#[derive(Debug, Clone, Copy)]
enum Runbook {
    RampCanary,
    RollbackRoute,
    RollbackEverything,
}

impl Runbook {
    fn path(self) -> &'static str {
        match self {
            Runbook::RampCanary => "runbooks/ramp-canary.md",
            Runbook::RollbackRoute => "runbooks/rollback-route.md",
            Runbook::RollbackEverything => "runbooks/rollback-everything.md",
        }
    }
}

/// Why the CLI edits the file itself.
#[derive(Debug, Clone, Copy)]
enum Alone {
    /// Connection refused at this admin address.
    NoProxy(SocketAddr),
    /// The operator asked for it.
    Offline,
}

impl Alone {
    /// The audit row's outcome.
    fn audit_outcome(self) -> &'static str {
        match self {
            Alone::NoProxy(_) => "applied to the file (no proxy running)",
            Alone::Offline => "applied to the file (--offline)",
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            Alone::NoProxy(_) => Outcome::FileOnly,
            Alone::Offline => Outcome::Offline,
        }
    }

    /// The start of the message: where the change went and why.
    fn lead(self) -> String {
        match self {
            Alone::NoProxy(addr) => format!(
                "no proxy answered at {addr} (nothing listens there), so nothing changed live here and only the file was edited"
            ),
            Alone::Offline => "--offline: no proxy was asked; only the file was edited".into(),
        }
    }

    /// The end of the message: when it takes effect, what to check.
    fn tail(self, runbook: Runbook) -> String {
        match self {
            Alone::NoProxy(_) => format!(
                "it takes effect when a proxy loads the file. If a proxy should be running with this file, it is down or this is the wrong file: see {} (\"Exit codes\")",
                runbook.path()
            ),
            Alone::Offline => {
                "a proxy running on this file loads it at its next file check, or when it starts"
                    .into()
            }
        }
    }
}

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
    let hint = client.refusal_hint(reply.status);
    // A 4xx (and the 503 of a store that is not connected) is decided
    // before anything is applied; a 500 is a failure half-way.
    let changed = match reply.status {
        400..=499 | 503 => "nothing was changed, live or in the file".to_string(),
        _ => format!(
            "the change may be partly applied: check http://{}/routes and `strangler history --audit`",
            client.addr
        ),
    };
    anyhow::anyhow!(
        "the proxy refused the change ({}): {}{hint}; {changed}",
        reply.status,
        reply.error()
    )
}

/// A proxy that is there but cannot be talked to: say what it did, whether
/// the change went out (`change_sent`: the failed request was the change,
/// and it was written), and what to do.
fn no_contact(e: &ClientError, change_sent: bool, runbook: Runbook, file: &Path) -> anyhow::Error {
    let sent = if change_sent {
        "The change was sent and may or may not have been applied (`strangler history --audit --limit 3` shows whether the proxy recorded it)."
    } else {
        "The change was not sent."
    };
    let scripts = match runbook {
        Runbook::RampCanary => "",
        Runbook::RollbackRoute | Runbook::RollbackEverything => {
            " (rollback/route, rollback/all: STRANGLER_OFFLINE=1)"
        }
    };
    anyhow::anyhow!(
        "{e}. {sent}\nSee {} (\"No answer from the proxy\"): to change {} alone, run the same command again with --offline{scripts}, then restart the proxy so that it loads the file.",
        runbook.path(),
        file.display()
    )
}

pub fn canary(args: &CanaryArgs) -> Result<Done> {
    let percent = Percent::parse(&args.percent).map_err(anyhow::Error::msg)?;
    let (config, _) = load(&args.config)?;
    if config.route(&args.route).is_none() {
        bail!(
            "no route named {:?} in {}",
            args.route,
            args.config.display()
        );
    }
    let in_file = |alone: Alone| -> Result<Done> {
        let request = ChangeRequest::Canary {
            route: args.route.clone(),
            percent,
        };
        let edits = plan(&config, &request)?;
        let note = edit_file_alone(
            &args.config,
            &config,
            &edits,
            ChangeSource::Canary,
            &args.reason,
            alone,
        )?;
        Ok(Done {
            outcome: alone.outcome(),
            text: format!(
                "{}: {}: canary {}% written to {} ({note}); {}\n",
                alone.lead(),
                args.route,
                percent,
                args.config.display(),
                alone.tail(Runbook::RampCanary)
            ),
        })
    };
    if args.offline {
        return in_file(Alone::Offline);
    }
    let client = AdminClient::for_target(Some(&config), args.admin.as_deref(), args.timeout)
        .map_err(anyhow::Error::msg)?;
    let body = json!({"percent": percent.get(), "reason": args.reason, "actor": actor()});
    match client.request(
        "POST",
        &format!("/routes/{}/canary", args.route),
        Some(&body),
    ) {
        Ok(reply) if reply.status == 200 => {
            let o = reply.json();
            Ok(Done {
                outcome: Outcome::Applied,
                text: format!(
                    "{}: canary {}% live from the next request (version {}); {}\n",
                    args.route,
                    percent,
                    o["version"],
                    describe_file(&o)
                ),
            })
        }
        Ok(reply) => Err(refused(&reply, &client)),
        Err(ClientError::Unreachable(addr)) => in_file(Alone::NoProxy(addr)),
        Err(e) => Err(no_contact(
            &e,
            e.request_sent(),
            Runbook::RampCanary,
            &args.config,
        )),
    }
}

/// The change without a proxy: edit, validate, write, record.
fn edit_file_alone(
    path: &Path,
    config: &Config,
    edits: &[Edit],
    source: ChangeSource,
    reason: &str,
    alone: Alone,
) -> Result<String> {
    let text = std::fs::read_to_string(path)?;
    let new_text = apply_all(&text, edits)?;
    config::parse_file(&new_text, path)
        .map_err(|e| anyhow::anyhow!("the edited file would not be valid: {e}"))?;
    if new_text == text {
        return Ok("already so".into());
    }
    write_atomically(path, &new_text)?;
    // Recorded when the store can be reached; the file is what matters.
    let summary = describe(edits);
    let recorded = with_recorder(config, |recorder| {
        let meta = ChangeMeta {
            actor: actor(),
            source,
            reason: reason.into(),
            summary: summary.clone(),
        };
        let version = recorder
            .record_version(&meta, &digest(&new_text), &new_text)
            .unwrap_or_else(|| Err("not connected".into()))
            .map_err(anyhow::Error::msg)?;
        let r = recorder.record(&ChangeRecord {
            source,
            actor: actor(),
            reason: reason.into(),
            target: edits.iter().map(edit_route).collect::<Vec<_>>().join(","),
            detail: summary,
            outcome: alone.audit_outcome().into(),
            version: Some(version),
            fleet: Some(FleetRecord::Edits(edits.to_vec())),
        });
        for failed in [r.fleet.map(|f| f.map(|_| ())), r.audit] {
            if let Some(Err(e)) = failed {
                bail!(e);
            }
        }
        Ok(version)
    });
    Ok(match recorded {
        // Recorded as a fleet change too: proxies on a shared store apply it.
        Ok(v) if config.store.as_str().starts_with("postgres") => format!(
            "recorded as version {v}; proxies on this PostgreSQL store apply it within seconds"
        ),
        Ok(v) => format!("recorded as version {v}"),
        Err(e) => format!("not recorded in the store: {e}"),
    })
}

/// Runs `job` with a recorder connected to the config's store (for the
/// CLI, which records what it changes alone the way a proxy would).
fn with_recorder<T>(config: &Config, job: impl FnOnce(&Recorder) -> Result<T>) -> Result<T> {
    // Multi-threaded: the recorder makes its calls with `block_on` from
    // this thread, outside the runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let history = runtime.block_on(async {
        let store = tokio::time::timeout(
            STORE_WAIT,
            DiffAndHistoryStore::connect(config.store.as_str()),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the store {} did not answer in {}",
                config.store.as_str(),
                seconds(STORE_WAIT)
            )
        })??;
        Ok::<_, anyhow::Error>(History::open(&store).await?)
    })?;
    let recorder = Recorder::new("cli".into());
    recorder.connect(history, runtime.handle().clone());
    job(&recorder)
}

fn edit_route(e: &Edit) -> String {
    match e {
        Edit::SetCanary { route, .. } | Edit::SetPin { route, .. } => route.clone(),
    }
}

pub fn rollback(args: &RollbackArgs) -> Result<Done> {
    let started = Instant::now();
    let (config, _) = load(&args.config)?;
    let runbook = if args.all {
        Runbook::RollbackEverything
    } else {
        Runbook::RollbackRoute
    };
    if let Some(version) = args.to {
        return restore(args, &config, version);
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
    let in_file = |alone: Alone| -> Result<Done> {
        let request = ChangeRequest::Rollback {
            routes: routes.clone(),
            tenant: args.tenant.clone(),
        };
        let edits = plan(&config, &request)?;
        let note = edit_file_alone(
            &args.config,
            &config,
            &edits,
            ChangeSource::Rollback,
            &args.reason,
            alone,
        )?;
        Ok(Done {
            outcome: alone.outcome(),
            text: format!(
                "{}: rollback of {} written to {} ({note}); {}\n",
                alone.lead(),
                routes.join(", "),
                args.config.display(),
                alone.tail(runbook)
            ),
        })
    };
    if args.offline {
        return in_file(Alone::Offline);
    }
    let client = AdminClient::for_target(Some(&config), args.admin.as_deref(), args.timeout)
        .map_err(anyhow::Error::msg)?;
    // Counts from before the change, so that a new-side request finishing
    // while the change is being made is seen. This is also the first
    // contact: a proxy that does not answer is found before the change is
    // sent.
    let baseline = match new_side_counts(&client, &routes, client.answer_within()) {
        Ok(counts) => counts,
        Err(ClientError::Unreachable(addr)) => return in_file(Alone::NoProxy(addr)),
        // Only metrics were asked for: the change was not sent.
        Err(e) => return Err(no_contact(&e, false, runbook, &args.config)),
    };
    let body =
        json!({"routes": routes, "tenant": args.tenant, "reason": args.reason, "actor": actor()});
    let reply = match client.request("POST", "/rollback", Some(&body)) {
        Ok(reply) if reply.status == 200 => reply,
        Ok(reply) => return Err(refused(&reply, &client)),
        // It stopped between the two requests.
        Err(ClientError::Unreachable(addr)) => return in_file(Alone::NoProxy(addr)),
        Err(e) => return Err(no_contact(&e, e.request_sent(), runbook, &args.config)),
    };
    let o = reply.json();
    let what = match &args.tenant {
        Some(t) => format!("tenant {t} pinned to legacy"),
        None => "all traffic to legacy".into(),
    };
    let mut text = format!(
        "rolled back {} ({what}) live at version {} in {} ms; {}\n",
        routes.join(", "),
        o["version"],
        started.elapsed().as_millis(),
        describe_file(&o)
    );
    if args.tenant.is_some() {
        // The metrics count sides, not tenants.
        text.push_str("not verified on the metrics: they do not tell tenants apart\n");
        return Ok(Done {
            outcome: Outcome::Applied,
            text,
        });
    }
    if args.no_verify {
        text.push_str("not verified on the metrics (--no-verify)\n");
        return Ok(Done {
            outcome: Outcome::Applied,
            text,
        });
    }
    let (verified, report) = verify(&client, &routes, baseline, started, args.timeout);
    text.push_str(&report);
    if !verified {
        text.push_str(&format!(
            "the rollback is live, but NOT verified within {}: see {} (\"Exit codes\")\n",
            seconds(args.timeout),
            runbook.path()
        ));
    }
    Ok(Done {
        outcome: if verified {
            Outcome::Applied
        } else {
            Outcome::NotVerified
        },
        text,
    })
}

fn restore(args: &RollbackArgs, config: &Config, version: i64) -> Result<Done> {
    let runbook = Runbook::RollbackRoute;
    if args.offline {
        return restore_file(args, config, version, Alone::Offline, runbook);
    }
    let client = AdminClient::for_target(Some(config), args.admin.as_deref(), args.timeout)
        .map_err(anyhow::Error::msg)?;
    let body = json!({"to_version": version, "reason": args.reason, "actor": actor()});
    match client.request("POST", "/rollback", Some(&body)) {
        Ok(reply) if reply.status == 200 => {
            let o = reply.json();
            Ok(Done {
                outcome: Outcome::Applied,
                text: format!(
                    "version {version} restored live as version {}; {}\n",
                    o["version"],
                    describe_file(&o)
                ),
            })
        }
        Ok(reply) => Err(refused(&reply, &client)),
        Err(ClientError::Unreachable(addr)) => {
            restore_file(args, config, version, Alone::NoProxy(addr), runbook)
        }
        Err(e) => Err(no_contact(&e, e.request_sent(), runbook, &args.config)),
    }
}

/// A recorded version written to the file, without a proxy.
fn restore_file(
    args: &RollbackArgs,
    config: &Config,
    version: i64,
    alone: Alone,
    runbook: Runbook,
) -> Result<Done> {
    let text = with_recorder(config, |recorder| Ok(recorder.recorded_text(version)?))?;
    config::parse_in(&text, "restored", &config::config_dir(&args.config))
        .map_err(|e| anyhow::anyhow!("version {version} is not valid today: {e}"))?;
    write_atomically(&args.config, &text)?;
    Ok(Done {
        outcome: alone.outcome(),
        text: format!(
            "{}: version {version} written to {}; {}\n",
            alone.lead(),
            args.config.display(),
            alone.tail(runbook)
        ),
    })
}

/// Requests to the new side of each of `routes` so far, from one scrape of
/// the proxy's metrics, which must answer within `within`.
fn new_side_counts(
    client: &AdminClient,
    routes: &[String],
    within: Duration,
) -> Result<Vec<f64>, ClientError> {
    let reply = client.request_within("GET", "/metrics", None, within)?;
    let text = String::from_utf8_lossy(&reply.body);
    Ok(routes
        .iter()
        .map(|route| {
            let needle = format!("route=\"{route}\"");
            text.lines()
                .filter(|l| {
                    l.starts_with("strangler_requests_total{")
                        && l.contains(&needle)
                        && l.contains("side=\"new\"")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
        .collect())
}

/// Watches the new side of each route until it has been silent for
/// [`QUIET`], or `timeout` passes; reports when its last request came.
/// Returns whether every route went quiet.
fn verify(
    client: &AdminClient,
    routes: &[String],
    baseline: Vec<f64>,
    started: Instant,
    timeout: Duration,
) -> (bool, String) {
    struct Watch {
        count: f64,
        changed_at: Instant,
        last_request: Option<Duration>,
    }
    let mut watches: Vec<Watch> = baseline
        .into_iter()
        .map(|count| Watch {
            count,
            changed_at: started,
            last_request: None,
        })
        .collect();
    let deadline = Instant::now() + timeout;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        // A scrape that hangs must not carry the wait past the deadline
        // by much.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let counts = new_side_counts(client, routes, left).ok();
        let now = Instant::now();
        // Without a reading nothing is confirmed, but nothing is known to
        // have reached the new side either.
        let mut all_quiet = counts.is_some();
        for (i, w) in watches.iter_mut().enumerate() {
            if let Some(count) = counts.as_ref().map(|c| c[i]) {
                if count != w.count {
                    w.count = count;
                    w.changed_at = now;
                    w.last_request = Some(now.duration_since(started));
                }
            }
            if now.duration_since(w.changed_at) < QUIET {
                all_quiet = false;
            }
        }
        if !(all_quiet || now >= deadline) {
            continue;
        }
        let mut out = String::new();
        for (route, w) in routes.iter().zip(&watches) {
            let quiet = now.duration_since(w.changed_at) >= QUIET;
            let when = match w.last_request {
                Some(d) => format!(
                    "last request to the new side {} ms after the command",
                    d.as_millis()
                ),
                None => "no request reached the new side after the command".into(),
            };
            let verdict = if counts.is_none() {
                "NOT verified: the proxy's /metrics did not answer".to_string()
            } else if quiet {
                format!(
                    "verified: none since ({} ms of quiet)",
                    now.duration_since(w.changed_at).as_millis()
                )
            } else {
                "NOT verified: the new side still receives requests".to_string()
            };
            out.push_str(&format!("  {route}: {when}; {verdict}\n"));
        }
        out.push_str(&format!(
            "verification took {:.2} s\n",
            started.elapsed().as_secs_f64()
        ));
        return (all_quiet, out);
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
            let store = DiffAndHistoryStore::connect_existing(&store_url)
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
