//! `strangler rollout status|start|pause|resume|abort|promote`: a running
//! proxy's admin API does the work (a rollout is driven by a proxy, its
//! state kept in the store); this prints what it said.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::admin_client::{AdminClient, ClientError, Reply, actor};
use super::{RolloutAction, RolloutArgs, Target};
use crate::config;
use crate::rollout::commands::Command;

/// Exit code when no proxy answered (nothing was changed).
pub const NO_PROXY: i32 = 3;

/// What to print and the exit code.
#[derive(Debug)]
pub struct Printed {
    pub text: String,
    pub code: i32,
}

/// The client for `target`: the config's admin server, or `--admin`.
pub fn client(target: &Target) -> Result<AdminClient> {
    let loaded = config::load(&target.config);
    let config = match (&loaded, &target.admin) {
        (Ok((c, _)), _) => Some(c),
        (Err(_), Some(_)) => None,
        (Err(e), None) => bail!(
            "{e}\n(the config names the proxy's admin address; give --admin http://HOST:PORT or set STRANGLER_ADMIN to ask a proxy directly)"
        ),
    };
    AdminClient::for_target(config, target.admin.as_deref(), target.timeout)
        .map_err(anyhow::Error::msg)
}

/// A request to the admin API: the reply, or what to print when no proxy
/// answered.
pub fn ask(
    client: &AdminClient,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<std::result::Result<Reply, Printed>> {
    match client.request(method, path, body) {
        Ok(reply) => Ok(Ok(reply)),
        Err(ClientError::Unreachable(addr)) => Ok(Err(Printed {
            text: format!(
                "no proxy answered at {addr} (nothing listens there): nothing was changed. Rollouts are driven by a running proxy: start it, or name another with --admin.\n"
            ),
            code: NO_PROXY,
        })),
        Err(e) => bail!("{e}"),
    }
}

pub fn run(args: &RolloutArgs) -> Result<Printed> {
    match &args.action {
        RolloutAction::Status(a) => {
            let client = client(&a.target)?;
            let path = match &a.route {
                Some(r) => format!("/rollouts/{}", crate::report::encode(r)),
                None => "/rollouts".to_string(),
            };
            let reply = match ask(&client, "GET", &path, None)? {
                Ok(r) => r,
                Err(printed) => return Ok(printed),
            };
            if reply.status != 200 {
                bail!("the proxy said {}: {}", reply.status, reply.error());
            }
            let body = reply.json();
            if a.json {
                return Ok(Printed {
                    text: serde_json::to_string_pretty(&body)? + "\n",
                    code: 0,
                });
            }
            let views = match &a.route {
                Some(_) => vec![body.clone()],
                None => body["rollouts"].as_array().cloned().unwrap_or_default(),
            };
            let mut text = String::new();
            if views.is_empty() {
                text.push_str("no route has a rollout: block\n");
            }
            for v in &views {
                text.push_str(&describe(v));
            }
            if let Some(e) = body["store_error"].as_str() {
                text.push_str(&format!(
                    "the store could not be read ({e}): the states above may be old\n"
                ));
            }
            Ok(Printed { text, code: 0 })
        }
        RolloutAction::Start(a)
        | RolloutAction::Pause(a)
        | RolloutAction::Resume(a)
        | RolloutAction::Abort(a)
        | RolloutAction::Promote(a) => {
            let command = match &args.action {
                RolloutAction::Start(_) => Command::Start,
                RolloutAction::Pause(_) => Command::Pause,
                RolloutAction::Resume(_) => Command::Resume,
                RolloutAction::Abort(_) => Command::Abort,
                _ => Command::Promote,
            }
            .as_str();
            let client = client(&a.target)?;
            let path = format!("/rollouts/{}/{command}", crate::report::encode(&a.route));
            let body = json!({"reason": a.reason, "actor": actor()});
            let reply = match ask(&client, "POST", &path, Some(&body))? {
                Ok(r) => r,
                Err(printed) => return Ok(printed),
            };
            if reply.status != 200 {
                let hint = client.refusal_hint(reply.status);
                bail!(
                    "the proxy refused ({}): {}{hint}",
                    reply.status,
                    reply.error()
                );
            }
            let o = reply.json();
            let mut text = format!(
                "{}: {} at {}%: {}\n",
                a.route,
                o["state"].as_str().unwrap_or("?"),
                o["step"].as_str().unwrap_or("?"),
                o["message"].as_str().unwrap_or("")
            );
            if let Some(v) = o["version"].as_u64() {
                text.push_str(&format!("canary changed live at version {v}\n"));
            }
            Ok(Printed { text, code: 0 })
        }
    }
}

fn percent(v: &Value) -> String {
    v.as_f64()
        .map(|p| format!("{p}%"))
        .unwrap_or_else(|| "-".into())
}

/// One rollout in a few lines.
pub fn describe(v: &Value) -> String {
    let steps: Vec<String> = v["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let p = percent(s);
                    if s.as_f64() == v["step"].as_f64() {
                        format!("[{p}]")
                    } else {
                        p
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let since = v["since_ms"]
        .as_i64()
        .map(|ms| {
            let age = crate::rollout::driver::age(ms);
            format!(
                ", for {}",
                config::units::format_duration(std::time::Duration::from_secs(age.as_secs()))
            )
        })
        .unwrap_or_default();
    let mut out = format!(
        "{}: {} at {} (steps {}; next {}){since}\n",
        v["route"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?"),
        percent(&v["step"]),
        steps.join(", "),
        percent(&v["next"]),
    );
    let require: Vec<&str> = v["require"]
        .as_array()
        .map(|a| a.iter().filter_map(|g| g.as_str()).collect())
        .unwrap_or_default();
    out.push_str(&format!(
        "  pause {}, require {}, on failure {}, start {}\n",
        v["pause"].as_str().unwrap_or("?"),
        if require.is_empty() {
            "nothing (time alone)".to_string()
        } else {
            require.join(" and ")
        },
        v["on_failure"].as_str().unwrap_or("?"),
        v["start"].as_str().unwrap_or("?"),
    ));
    out.push_str(&format!("  why: {}\n", v["reason"].as_str().unwrap_or("")));
    if let Some(gates) = v["gates"].as_array().filter(|g| !g.is_empty()) {
        out.push_str("  gates now:\n");
        for g in gates {
            out.push_str(&format!(
                "    {}: {} ({})\n",
                g["gate"].as_str().unwrap_or("?"),
                g["reading"].as_str().unwrap_or("?"),
                g["figures"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(by) = v["written_by"].as_str() {
        out.push_str(&format!(
            "  last written by {by} ({})\n",
            v["actor"].as_str().unwrap_or("?")
        ));
    }
    out
}
