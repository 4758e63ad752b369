//! `strangler replay`: asks a running proxy to replay a route's recordings
//! (`POST /routes/{name}/replay`), prints the run's progress while it goes (Ctrl-C
//! cancels it) and a summary at the end; exit 0 when the run went through,
//! 1 when it could not run or stopped.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::ReplayArgs;
use super::admin_client::{AdminClient, ClientError};
use crate::config::units::format_duration;
use crate::replay::RunView;
use shadow_diff::RunState;

/// How often the run's progress is asked for.
const POLL: Duration = Duration::from_millis(500);

pub fn run(args: &ReplayArgs) -> Result<i32> {
    let client = super::rollout::client(&args.target)?;
    let body = json!({
        "since": format_duration(args.since),
        "to": args.to,
        "rate": args.rate,
        "limit": args.limit,
        "concurrency": args.concurrency,
    });
    let path = format!("/routes/{}/replay", crate::report::encode(&args.route));
    let reply = match client.request("POST", &path, Some(&body)) {
        Ok(r) => r,
        Err(ClientError::Unreachable(addr)) => bail!(
            "no proxy answered at {addr} (nothing listens there): a replay is run by a proxy that can reach the target; start one (strangler serve) or name another with --admin"
        ),
        Err(e) => bail!("{e}"),
    };
    if reply.status != 202 {
        let hint = client.refusal_hint(reply.status);
        bail!(
            "the proxy refused ({}): {}{hint}",
            reply.status,
            reply.error()
        );
    }
    let started: RunView = serde_json::from_value(reply.json())?;
    let id = started.run.id.clone();
    eprintln!(
        "replaying {} recordings of {} (since {} ago) to {} at {}: run {id}",
        started.total,
        args.route,
        format_duration(args.since),
        started.run.target,
        if args.rate > 0.0 {
            format!("{} req/s", args.rate)
        } else {
            "full speed".to_string()
        }
    );
    let finished = follow(&client, &id)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&finished)?);
    } else {
        print!("{}", summary(&finished, &args.route));
    }
    Ok(if finished.run.state == RunState::Done {
        0
    } else {
        1
    })
}

/// Polls the run until it ends; the first Ctrl-C asks the proxy to cancel it.
fn follow(client: &AdminClient, id: &str) -> Result<RunView> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let tty = std::io::stderr().is_terminal();
    runtime.block_on(async {
        let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
        let mut cancelled = false;
        loop {
            tokio::select! {
                _ = &mut interrupted, if !cancelled => {
                    cancelled = true;
                    eprintln!("\ncancelling run {id} (the requests in flight finish first)");
                    let path = format!("/replays/{}/cancel", crate::report::encode(id));
                    if let Err(e) = client.request("POST", &path, Some(&Value::Null)) {
                        eprintln!("could not cancel: {e}");
                    }
                }
                _ = tokio::time::sleep(POLL) => {}
            }
            let path = format!("/replays/{}", crate::report::encode(id));
            let reply = client.request("GET", &path, None)?;
            if reply.status != 200 {
                bail!("the proxy said {}: {}", reply.status, reply.error());
            }
            let view: RunView = serde_json::from_value(reply.json())?;
            let line = progress(&view);
            if tty {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
            let _ = std::io::stderr().flush();
            if view.run.state != RunState::Running {
                if tty {
                    eprintln!();
                }
                return Ok(view);
            }
        }
    })
}

fn progress(v: &RunView) -> String {
    let c = &v.run.counts;
    format!(
        "{}/{} read, {} compared ({} diff, {} noise), {} skipped, {} failed, {:.1} req/s",
        c.read,
        v.total,
        c.compared(),
        c.diff,
        c.noise,
        c.skipped,
        c.failed,
        v.rate
    )
}

fn summary(v: &RunView, route: &str) -> String {
    let c = &v.run.counts;
    let mut text = format!(
        "replay of {route} to {}: {} in {:.1} s\n  {} recordings read: {} compared ({} match, {} diff, {} noise), {} skipped, {} failed\n",
        v.run.target,
        v.run.state.as_str(),
        v.elapsed_s,
        c.read,
        c.compared(),
        c.matched,
        c.diff,
        c.noise,
        c.skipped,
        c.failed,
    );
    if let Some(m) = &v.run.message {
        text.push_str(&format!("  {m}\n"));
    }
    if c.skipped > 0 {
        text.push_str("  skipped: methods with side effects (replay.allow_writes), or secrets redacted when recorded with no replay.headers value\n");
    }
    text.push_str(&format!(
        "  the report shows them apart from live traffic: strangler report --route {route} --source replay\n"
    ));
    text
}
