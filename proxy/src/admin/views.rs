//! JSON views of the live table for `GET /routes`.

use serde_json::{Value, json};

use crate::config::units::format_duration;
use crate::config::{Config, PathMatch, Route};
use crate::live::LiveTable;

pub fn routes(table: &LiveTable, config_file: &str) -> Value {
    let config = table.config();
    let loaded_at: chrono::DateTime<chrono::Utc> = table.loaded_at.into();
    let priority: Vec<usize> = {
        let mut p = vec![0; config.routes.len()];
        for (rank, &i) in table.routes.order().iter().enumerate() {
            p[i] = rank + 1;
        }
        p
    };
    json!({
        "version": table.version,
        "digest": table.digest,
        "loaded_at": loaded_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "config_file": config_file,
        "default": config.backend(config.default_backend).name.as_str(),
        "routes": config.routes.iter().zip(priority).map(|(r, p)| route(config, r, p)).collect::<Vec<_>>(),
        "backends": config.backends.iter().map(|b| json!({
            "name": b.name.as_str(),
            "urls": b.endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "connect_timeout": format_duration(b.connect_timeout),
            "read_timeout": format_duration(b.read_timeout),
        })).collect::<Vec<_>>(),
    })
}

pub fn route(config: &Config, r: &Route, priority: usize) -> Value {
    let m = &r.matcher;
    let mut matcher = serde_json::Map::new();
    match &m.path {
        PathMatch::Any => {}
        PathMatch::Exact(p) => {
            matcher.insert("path_exact".into(), json!(p));
        }
        PathMatch::Prefix(p) => {
            matcher.insert("path".into(), json!(p));
        }
        PathMatch::Regex(re) => {
            matcher.insert("path_regex".into(), json!(re.as_str()));
        }
    }
    if let Some(methods) = &m.methods {
        matcher.insert(
            "methods".into(),
            json!(methods.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
        );
    }
    if let Some(h) = &m.host {
        matcher.insert("host".into(), json!(h.to_string()));
    }
    if !m.headers.is_empty() {
        let headers: serde_json::Map<String, Value> = m
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), json!(v)))
            .collect();
        matcher.insert("headers".into(), Value::Object(headers));
    }
    let tenants: serde_json::Map<String, Value> = r
        .pins
        .iter()
        .map(|(t, side)| (t.clone(), json!(side.as_str())))
        .collect();
    json!({
        "name": r.name.as_str(),
        "priority": priority,
        "match": matcher,
        "legacy": config.backend(r.legacy).name.as_str(),
        "new": config.backend(r.new).name.as_str(),
        "canary": r.canary.get(),
        "sticky": r.sticky.to_string(),
        "tenants": tenants,
        "shadow": r.shadow.as_ref().map(|s| json!({
            "percent": s.percent.get(),
            "methods": s.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "max_body": s.max_body.to_string(),
            "timeout": format_duration(s.timeout),
        })),
    })
}
