//! Stored comparisons on the report page: a list with one row per
//! comparison (when, source, request, statuses, differing places), linking
//! to the comparison in full where the page shows it (as its signature's
//! example, [`super::groups`]); and a comparison in full: its differences and both bodies side by side with
//! the differing places marked. A replayed comparison names its answers
//! "recorded" and "replayed" ([`Wording`]), a live one "legacy" and "new".

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

use super::{class_badge, escape};
use crate::noise::FieldClass;
use crate::record::{ComparisonRecord, Source};
use crate::report::{Times, Wording};

/// Where a comparison came from, as a badge.
pub(super) fn source_badge(source: Source) -> String {
    format!(
        r#"<span class="badge src-{0}" data-source="{0}">{1}</span>"#,
        source.as_str(),
        Wording::of(source).source
    )
}

/// One row per comparison; `shown` gives the anchor of those shown in full.
pub(super) fn list(
    out: &mut String,
    examples: &[ComparisonRecord],
    shown: &HashMap<&str, String>,
    times: Times,
) {
    if examples.is_empty() {
        return;
    }
    out.push_str(r#"<table class="example-list"><thead><tr><th>When</th><th>Source</th><th>Request</th><th>Status</th><th>Differs in</th></tr></thead><tbody>"#);
    for e in examples {
        let w = Wording::of(e.source);
        let places: Vec<String> = e
            .differences
            .iter()
            .map(|d| format!("<code>{}</code>", escape(&d.difference.field)))
            .collect();
        let more = if e.more_differences > 0 {
            format!(" and {} more", e.more_differences)
        } else {
            String::new()
        };
        let _ = write!(
            out,
            r##"<tr data-source="{src}"><td>{when}</td><td>{badge}</td><td><code>{method} {path}</code></td><td>{ll} {ls} → {nl} {ns}</td><td>{places}{more}</td></tr>"##,
            src = e.source.as_str(),
            when = match shown.get(e.id.as_str()) {
                Some(anchor) => format!(
                    r##"<a href="#{}">{}</a>"##,
                    escape(anchor),
                    times.format(e.created_at_ms)
                ),
                None => times.format(e.created_at_ms),
            },
            badge = source_badge(e.source),
            method = escape(&e.request.method),
            path = escape(&e.request.path),
            ll = w.legacy,
            ls = e.legacy.status,
            nl = w.new,
            ns = e.new.status,
            places = places.join(", "),
        );
    }
    out.push_str("</tbody></table>");
}

/// One comparison in full.
pub(super) fn example(out: &mut String, e: &ComparisonRecord, times: Times) {
    let w = Wording::of(e.source);
    let _ = write!(
        out,
        r#"<div class="example" id="diff-{0}" data-source="{7}"><p><strong>{1} {2}</strong> · {8} · {3} · tenant {4} · config version {5} · {9} {6} · {10} <code>{0}</code></p>"#,
        escape(&e.id),
        escape(&e.request.method),
        escape(&e.request.path),
        times.format(e.created_at_ms),
        escape(e.tenant.as_deref().unwrap_or("—")),
        e.config_version,
        escape(&e.primary_side),
        e.source.as_str(),
        source_badge(e.source),
        w.primary,
        match e.source {
            Source::Shadow => "request id",
            Source::Replay => "comparison id",
        }
    );
    let _ = write!(
        out,
        r#"<table class="diffs"><thead><tr><th>Place</th><th>Class</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        capitalized(w.legacy),
        capitalized(w.new)
    );
    for d in &e.differences {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            escape(&d.difference.field),
            class_badge(d.class),
            escape(d.difference.legacy.as_deref().unwrap_or("(absent)")),
            escape(d.difference.new.as_deref().unwrap_or("(absent)"))
        );
    }
    if e.more_differences > 0 {
        let _ = write!(
            out,
            r#"<tr><td colspan="4" class="empty">and {} more</td></tr>"#,
            e.more_differences
        );
    }
    out.push_str("</tbody></table>");
    let marked: HashMap<String, FieldClass> = e
        .differences
        .iter()
        .map(|d| (d.difference.field.clone(), d.class))
        .collect();
    let (left, right) = side_by_side(&e.legacy.body, &e.new.body, &marked);
    let _ = write!(
        out,
        r#"<div class="pair"><div class="pane"><h4>{} · {}</h4><pre>{}</pre></div><div class="pane"><h4>{} · {}</h4><pre>{}</pre></div></div></div>"#,
        w.legacy, e.legacy.status, left, w.new, e.new.status, right
    );
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Both bodies, escaped, with differing places marked: JSON pretty-printed
/// with the lines of differing fields marked, other text with changed lines
/// marked.
fn side_by_side(legacy: &str, new: &str, marked: &HashMap<String, FieldClass>) -> (String, String) {
    match (
        serde_json::from_str::<Value>(legacy),
        serde_json::from_str::<Value>(new),
    ) {
        (Ok(a), Ok(b)) => (json_marked(&a, marked), json_marked(&b, marked)),
        _ => {
            let diff = similar::TextDiff::from_lines(legacy, new);
            let mut l = String::new();
            let mut r = String::new();
            for change in diff.iter_all_changes() {
                let text = escape(change.value());
                match change.tag() {
                    similar::ChangeTag::Equal => {
                        l.push_str(&text);
                        r.push_str(&text);
                    }
                    similar::ChangeTag::Delete => {
                        let _ = write!(l, "<mark>{}</mark>", text.trim_end_matches('\n'));
                    }
                    similar::ChangeTag::Insert => {
                        let _ = write!(r, "<mark>{}</mark>", text.trim_end_matches('\n'));
                    }
                }
            }
            (l, r)
        }
    }
}

fn json_marked(v: &Value, marked: &HashMap<String, FieldClass>) -> String {
    let mut out = String::new();
    write_json(v, "", 0, marked, None, None, true, &mut out);
    out
}

#[allow(clippy::too_many_arguments)]
fn write_json(
    v: &Value,
    path: &str,
    indent: usize,
    marked: &HashMap<String, FieldClass>,
    inherited: Option<FieldClass>,
    key: Option<&str>,
    last: bool,
    out: &mut String,
) {
    let mark = inherited.or_else(|| marked.get(path).copied());
    let pad = "  ".repeat(indent);
    let prefix = match key {
        Some(k) => format!(
            "{pad}{}: ",
            escape(&serde_json::to_string(k).unwrap_or_default())
        ),
        None => pad.clone(),
    };
    let comma = if last { "" } else { "," };
    let line = |text: String, out: &mut String| match mark {
        Some(FieldClass::Real) => {
            let _ = write!(out, "<mark>{text}</mark>");
        }
        Some(FieldClass::Noise) => {
            let _ = write!(out, "<mark class=\"noise\">{text}</mark>");
        }
        None => {
            out.push_str(&text);
            out.push('\n');
        }
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            line(format!("{prefix}{{"), out);
            let n = m.len();
            for (i, (k, child)) in m.iter().enumerate() {
                let p = format!("{path}/{}", crate::rules::escape_segment(k));
                write_json(
                    child,
                    &p,
                    indent + 1,
                    marked,
                    mark,
                    Some(k),
                    i + 1 == n,
                    out,
                );
            }
            line(format!("{pad}}}{comma}"), out);
        }
        Value::Array(items) if !items.is_empty() => {
            line(format!("{prefix}["), out);
            let n = items.len();
            for (i, child) in items.iter().enumerate() {
                let p = format!("{path}/{i}");
                write_json(child, &p, indent + 1, marked, mark, None, i + 1 == n, out);
            }
            line(format!("{pad}]{comma}"), out);
        }
        other => line(
            format!("{prefix}{}{comma}", escape(&other.to_string())),
            out,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::samples::sample_example;

    #[test]
    fn a_replayed_comparison_names_its_answers_recorded_and_replayed() {
        let mut out = String::new();
        example(
            &mut out,
            &sample_example("r/1", "orders", Source::Replay),
            Times::Utc,
        );
        assert!(out.contains(r#"data-source="replay""#), "{out}");
        assert!(out.contains("<th>Recorded</th><th>Replayed</th>"), "{out}");
        assert!(out.contains("<h4>recorded · 200</h4>"), "{out}");
        assert!(out.contains("<h4>replayed · 200</h4>"), "{out}");
        assert!(out.contains("recorded from legacy"), "{out}");
        assert!(
            !out.contains("Legacy") && !out.contains("served by"),
            "{out}"
        );

        let mut live = String::new();
        example(
            &mut live,
            &sample_example("s1", "orders", Source::Shadow),
            Times::Utc,
        );
        assert!(live.contains("<th>Legacy</th><th>New</th>"), "{live}");
        assert!(live.contains("<h4>legacy · 200</h4>"), "{live}");
        assert!(live.contains("served by legacy · request id"), "{live}");
    }

    #[test]
    fn the_list_has_a_source_column() {
        let mut out = String::new();
        let shown: HashMap<&str, String> = [("s1", "sig-route-orders-1".to_string())].into();
        list(
            &mut out,
            &[
                sample_example("s1", "orders", Source::Shadow),
                sample_example("r1", "orders", Source::Replay),
            ],
            &shown,
            Times::Utc,
        );
        assert!(out.contains("<th>When</th><th>Source</th>"), "{out}");
        // Shown in full: a link to it; not shown: the time alone.
        assert!(
            out.contains(r##"<tr data-source="shadow"><td><a href="#sig-route-orders-1">2027-01-15 08:00:30 UTC</a>"##),
            "{out}"
        );
        assert!(
            out.contains(r#"<tr data-source="replay"><td>2027-01-15 08:00:30 UTC</td>"#),
            "{out}"
        );
        assert!(
            out.contains(r#"<span class="badge src-replay" data-source="replay">replay</span>"#),
            "{out}"
        );
        assert!(out.contains("recorded 200 → replayed 200"), "{out}");
        assert!(out.contains("legacy 200 → new 200"), "{out}");
        let mut none = String::new();
        list(&mut none, &[], &HashMap::new(), Times::Utc);
        assert!(none.is_empty());
    }

    #[test]
    fn json_lines_of_differing_places_are_marked() {
        let v: Value = serde_json::from_str(r#"{"a": 1, "b": {"c": [1, 2]}, "d": "<x>"}"#).unwrap();
        let marked: HashMap<String, FieldClass> = [
            ("/b/c/1".to_string(), FieldClass::Real),
            ("/d".to_string(), FieldClass::Noise),
        ]
        .into();
        let html = json_marked(&v, &marked);
        assert!(html.contains("<mark>      2</mark>"), "{html}");
        assert!(
            html.contains("<mark class=\"noise\">  &quot;d&quot;: &quot;&lt;x&gt;&quot;</mark>"),
            "{html}"
        );
        assert!(
            html.contains("  \"a\": 1,\n") || html.contains("  &quot;a&quot;: 1,\n"),
            "{html}"
        );
    }
}
