//! Structural JSON comparison: key order and formatting never count; ignored
//! fields are skipped; unordered arrays are compared as multisets; numbers
//! within the tolerance are equal.

use serde_json::Value;

use super::{Collector, DiffKind};
use crate::rules::{CompareRules, pointer};

pub(super) fn compare(rules: &CompareRules, a: &Value, b: &Value, out: &mut Collector) {
    let mut path = Vec::new();
    walk(rules, &mut path, a, b, out);
}

fn render(v: &Value) -> String {
    v.to_string()
}

fn walk(rules: &CompareRules, path: &mut Vec<String>, a: &Value, b: &Value, out: &mut Collector) {
    if rules.field_ignored(path) {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                path.push(key.clone());
                match (x.get(key), y.get(key)) {
                    (Some(va), Some(vb)) => walk(rules, path, va, vb, out),
                    (Some(va), None) if !rules.field_ignored(path) => {
                        out.push(pointer(path), DiffKind::Missing, Some(render(va)), None)
                    }
                    (None, Some(vb)) if !rules.field_ignored(path) => {
                        out.push(pointer(path), DiffKind::Added, None, Some(render(vb)))
                    }
                    _ => {}
                }
                path.pop();
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if rules.unordered(path) {
                let (sx, sy) = (sorted(rules, path, x), sorted(rules, path, y));
                walk_elements(rules, path, &sx, &sy, out);
            } else {
                let sx: Vec<&Value> = x.iter().collect();
                let sy: Vec<&Value> = y.iter().collect();
                walk_elements(rules, path, &sx, &sy, out);
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let equal = match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) => rules.numbers_equal(p, q),
                _ => x == y,
            };
            if !equal {
                out.push(
                    pointer(path),
                    DiffKind::Changed,
                    Some(render(a)),
                    Some(render(b)),
                );
            }
        }
        (x, y) if x == y => {}
        _ => out.push(
            pointer(path),
            DiffKind::Changed,
            Some(render(a)),
            Some(render(b)),
        ),
    }
}

fn walk_elements(
    rules: &CompareRules,
    path: &mut Vec<String>,
    x: &[&Value],
    y: &[&Value],
    out: &mut Collector,
) {
    for i in 0..x.len().max(y.len()) {
        path.push(i.to_string());
        match (x.get(i), y.get(i)) {
            (Some(a), Some(b)) => walk(rules, path, a, b, out),
            (Some(a), None) => out.push(pointer(path), DiffKind::Missing, Some(render(a)), None),
            (None, Some(b)) => out.push(pointer(path), DiffKind::Added, None, Some(render(b))),
            (None, None) => {}
        }
        path.pop();
    }
}

/// Elements in a canonical order: by their canonical text, which skips
/// ignored fields and sorts object keys, so equal multisets line up.
fn sorted<'a>(rules: &CompareRules, path: &mut Vec<String>, items: &'a [Value]) -> Vec<&'a Value> {
    let mut keyed: Vec<(String, &Value)> = items
        .iter()
        .map(|v| {
            path.push("*".to_string());
            let mut s = String::new();
            canonical(rules, path, v, &mut s);
            path.pop();
            (s, v)
        })
        .collect();
    keyed.sort_by(|p, q| p.0.cmp(&q.0));
    keyed.into_iter().map(|(_, v)| v).collect()
}

fn canonical(rules: &CompareRules, path: &mut Vec<String>, v: &Value, out: &mut String) {
    if rules.field_ignored(path) {
        out.push('_');
        return;
    }
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for k in keys {
                path.push(k.clone());
                if !rules.field_ignored(path) {
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push(':');
                    canonical(rules, path, &m[k], out);
                    out.push(',');
                }
                path.pop();
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                path.push("*".to_string());
                canonical(rules, path, item, out);
                path.pop();
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}
