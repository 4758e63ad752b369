//! `strangler explain`: the routing decision for one request, with its
//! reasons, from the same code the proxy runs.

use std::fmt::Write;

use anyhow::{Context, Result, bail};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::json;

use crate::cli::ExplainArgs;
use crate::config::{self, Side, units::format_duration};
use crate::routing::canary::bucket_of;
use crate::routing::forwarded::{Forwarded, forwarded};
use crate::routing::rewrite::{upstream_host, upstream_path, with_query};
use crate::routing::{Decision, Reason, RequestInfo, RouteTable, ShadowDecision, normalize_path};

pub fn run(args: &ExplainArgs) -> Result<String> {
    let (config, _) = config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let table = RouteTable::new(config);
    let method = Method::from_bytes(args.method.as_bytes())
        .with_context(|| format!("{:?} is not an HTTP method", args.method))?;
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} is not \"Name: value\""))?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("bad header name in {h:?}"))?,
            HeaderValue::from_str(value.trim())
                .with_context(|| format!("bad header value in {h:?}"))?,
        );
    }
    let (url_host, raw_path) = split_url(&args.url)?;
    let host = url_host.or_else(|| {
        headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    });
    let (path_only, query) = match raw_path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw_path.as_str(), None),
    };
    let path = match normalize_path(path_only) {
        Ok(p) => p.into_owned(),
        Err(e) => {
            let text = format!(
                "request:  {} {}\nverdict:  400 Bad Request: the path {e}; the proxy refuses it before routing\n",
                method, args.url
            );
            return Ok(if args.json {
                json!({"rejected": true, "status": 400, "reason": e.to_string()}).to_string()
            } else {
                text
            });
        }
    };
    let route_on = crate::routing::routing_path(&path).into_owned();
    // `--client-ip` is the connection's peer, as the proxy would see it.
    let who = args
        .client_ip
        .map(|peer| forwarded(peer, &headers, &table.config().trusted_proxies));
    let info = RequestInfo {
        method: &method,
        host: host.as_deref(),
        path: &route_on,
        headers: &headers,
        client_ip: who.as_ref().map(|w| w.client),
        entropy: 0,
    };
    let decision = table.decide(&info);
    let sent = Sent::of(&table, &decision, &path, query, host.as_deref());
    Ok(if args.json {
        let mut value = as_json(&table, &decision, &path, host.as_deref());
        value["client"] = json!(who.as_ref().map(|w| w.client.to_string()));
        value["upstream_path"] = json!(sent.path);
        value["upstream_host"] = json!(sent.host);
        serde_json::to_string_pretty(&value)?
    } else {
        let mut out = as_text(&table, &decision, &method, &path, host.as_deref(), args);
        if let (Some(w), Some(peer)) = (&who, args.client_ip) {
            out.insert_str(out.find("route:").unwrap_or(0), &client_line(w, peer));
        }
        out.push_str(&sent.describe(&table, &decision));
        out
    })
}

/// What the chosen backend is sent: the path after the route's rewrite
/// (new side only) and its Host.
struct Sent {
    /// `None`: the rewrite made no valid path (the proxy answers 400).
    path: Option<String>,
    host: Option<String>,
}

impl Sent {
    fn of(
        table: &RouteTable,
        d: &Decision<'_>,
        path: &str,
        query: Option<&str>,
        client_host: Option<&str>,
    ) -> Sent {
        let config = table.config();
        let sent = match d.route {
            Some(i) => upstream_path(&config.routes[i], d.side, path),
            None => Some(std::borrow::Cow::Borrowed(path)),
        };
        Sent {
            path: sent.map(|p| with_query(&p, query)),
            host: upstream_host(&config.backend(d.backend).host, client_host).map(str::to_string),
        }
    }

    fn describe(&self, table: &RouteTable, d: &Decision<'_>) -> String {
        let config = table.config();
        let backend = config.backend(d.backend);
        let route = d.route.map(|i| &config.routes[i]);
        let mut notes = Vec::new();
        if let Some(r) = route.and_then(|r| r.rewrite.as_ref().filter(|_| d.side == Side::New)) {
            notes.push(format!("rewrite: {r}"));
        }
        notes.push(format!("Host: {}", backend.host));
        let timeout = route
            .and_then(|r| r.timeout)
            .unwrap_or(backend.read_timeout);
        notes.push(format!("read timeout {}", format_duration(timeout)));
        match route.map_or(0, |r| r.retries) {
            0 => {}
            1 => notes.push("1 retry for idempotent methods".to_string()),
            n => notes.push(format!("{n} retries for idempotent methods")),
        }
        let line = match &self.path {
            Some(p) => format!(
                "upstream: {p}, Host: {}",
                self.host.as_deref().unwrap_or("(none)")
            ),
            None => {
                "upstream: none: the rewrite makes no valid path, so the proxy answers 400".into()
            }
        };
        format!("{line}\n          ({})\n", notes.join("; "))
    }
}

fn client_line(w: &Forwarded, peer: std::net::IpAddr) -> String {
    let how = if !w.trusted_peer {
        format!(
            "the connection's peer {peer}; it is not in trusted_proxies, so its X-Forwarded-For is not believed"
        )
    } else if w.client == crate::config::canonical(peer) {
        format!("the trusted proxy {peer} itself (no untrusted hop in X-Forwarded-For)")
    } else {
        format!("from X-Forwarded-For: the peer {peer} is a trusted proxy")
    };
    format!(
        "client:   {} ({how})\nforwarded: {} (the X-Forwarded-For a backend receives)\n",
        w.client, w.forwarded_for
    )
}

fn split_url(url: &str) -> Result<(Option<String>, String)> {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], rest[i..].to_string()),
                None => (rest, "/".to_string()),
            };
            return Ok((Some(authority.to_string()), path));
        }
    }
    if url.starts_with('/') {
        return Ok((None, url.to_string()));
    }
    bail!("{url:?} is neither a URL (http://host/path) nor a path (/path)")
}

fn side_word(side: Side) -> &'static str {
    side.as_str()
}

fn as_text(
    table: &RouteTable,
    d: &Decision<'_>,
    method: &Method,
    path: &str,
    host: Option<&str>,
    args: &ExplainArgs,
) -> String {
    let config = table.config();
    let backend = config.backend(d.backend);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "request:  {method} {}{}",
        host.map(|h| format!("http://{h}")).unwrap_or_default(),
        path
    );
    if args.url.split('?').next() != Some(path) && !args.url.ends_with(path) {
        let _ = writeln!(
            out,
            "          (normalized path {path}; routed on this path)"
        );
    }
    match d.route {
        None => {
            let _ = writeln!(out, "route:    none matched; `default` applies");
        }
        Some(i) => {
            let r = &config.routes[i];
            let rank = table.order().iter().position(|&x| x == i).unwrap_or(0) + 1;
            let mut cond = vec![r.matcher.path.describe()];
            if let Some(m) = &r.matcher.methods {
                cond.push(format!(
                    "methods {}",
                    m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(" ")
                ));
            }
            if let Some(h) = &r.matcher.host {
                cond.push(format!("host {h}"));
            }
            for (k, v) in &r.matcher.headers {
                cond.push(format!("header {k}: {v}"));
            }
            let _ = writeln!(
                out,
                "route:    {} (routes[{i}], tried {rank} of {}: {})",
                r.name,
                config.routes.len(),
                cond.join(", ")
            );
        }
    }
    match &d.tenant {
        Some(t) => {
            let _ = writeln!(out, "tenant:   {} (from {})", t.id, config.tenant[t.source]);
        }
        None if d.route.is_some() && !config.tenant.is_empty() => {
            let _ = writeln!(out, "tenant:   none found");
        }
        None => {}
    }
    let endpoints: Vec<String> = backend.endpoints.iter().map(|e| e.to_string()).collect();
    let _ = writeln!(
        out,
        "backend:  {} ({}), side {}",
        backend.name,
        endpoints.join(", "),
        side_word(d.side)
    );
    let why = match d.reason {
        Reason::NoRouteMatched => "no route matched, so the default backend serves it".to_string(),
        Reason::TenantPinned => {
            let t = d
                .tenant
                .as_ref()
                .map(|t| t.id.to_string())
                .unwrap_or_default();
            format!(
                "tenant {t} is pinned to {} (tenants: in the route); pins beat the percentage",
                side_word(d.side)
            )
        }
        Reason::Canary {
            key,
            fallback,
            hash,
            percent,
        } => {
            let r = &config.routes[d.route.unwrap_or(0)];
            let bucket = bucket_of(hash);
            let cmp = if d.side == Side::New { "<" } else { ">=" };
            let key_text = if fallback {
                format!(
                    "{} (the route is sticky by {}, which this request lacks)",
                    key.as_str(),
                    r.sticky
                )
            } else {
                key.as_str().to_string()
            };
            format!(
                "canary {percent}%: {key_text} hashes to bucket {bucket:.2} {cmp} {percent}, so {}",
                side_word(d.side)
            )
        }
    };
    let _ = writeln!(out, "why:      {why}");
    let shadow = match d.shadow {
        ShadowDecision::Off => "off".to_string(),
        ShadowDecision::MethodNotShadowed => {
            "not copied: the method is not in shadow.methods".into()
        }
        ShadowDecision::NotSampled => "not copied: outside shadow.percent for this key".into(),
        ShadowDecision::Copy { side, backend } => {
            let policy = d
                .route
                .and_then(|i| config.routes[i].shadow.as_ref())
                .map(|s| {
                    format!(
                        " (timeout {}, bodies up to {})",
                        format_duration(s.timeout),
                        s.max_body
                    )
                })
                .unwrap_or_default();
            format!(
                "a copy goes to {} ({}){policy}; the client gets the {} answer",
                side_word(side),
                config.backend(backend).name,
                side_word(d.side)
            )
        }
    };
    let _ = writeln!(out, "shadow:   {shadow}");
    out
}

fn as_json(
    table: &RouteTable,
    d: &Decision<'_>,
    path: &str,
    host: Option<&str>,
) -> serde_json::Value {
    let config = table.config();
    let (reason, bucket, key, fallback) = match d.reason {
        Reason::NoRouteMatched => ("no_route_matched", None, None, None),
        Reason::TenantPinned => ("tenant_pinned", None, None, None),
        Reason::Canary {
            key,
            fallback,
            hash,
            ..
        } => (
            "canary",
            Some(bucket_of(hash)),
            Some(key.as_str()),
            Some(fallback),
        ),
    };
    json!({
        "path": path,
        "host": host,
        "route": d.route.map(|i| config.routes[i].name.as_str()),
        "backend": config.backend(d.backend).name.as_str(),
        "side": d.side.as_str(),
        "reason": reason,
        "bucket": bucket,
        "sticky_key": key,
        "sticky_fallback": fallback,
        "canary": d.route.map(|i| config.routes[i].canary.get()),
        "tenant": d.tenant.as_ref().map(|t| t.id.to_string()),
        "tenant_source": d.tenant.as_ref().map(|t| config.tenant[t.source].to_string()),
        "shadow": match d.shadow {
            ShadowDecision::Copy { side, backend } => json!({"to": side.as_str(), "backend": config.backend(backend).name.as_str()}),
            ShadowDecision::Off => json!(null),
            ShadowDecision::MethodNotShadowed => json!({"skipped": "method"}),
            ShadowDecision::NotSampled => json!({"skipped": "not_sampled"}),
        },
    })
}
