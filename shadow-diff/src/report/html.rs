//! The report as a web page: self-contained (inline CSS, no scripts, no
//! network), readable without a manual. The summary lists routes with their
//! verdicts (and their stages, when the proxy filled them in) and links to
//! each route's detail: trend, differing fields (real or noise, why, what
//! to paste into routes.yaml) and examples side by side with the differing
//! places marked.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

use super::{FieldReport, Report, RouteReport, RouteVerdict};
use crate::noise::FieldClass;
use crate::record::ComparisonRecord;

/// Where links point: the admin server's pages, or anchors in one file.
#[derive(Debug, Clone)]
pub enum Links {
    /// `/report` and `/report/route/NAME`, carrying this query (filters).
    Server { query: String },
    /// One document with every route (`strangler report --format html`).
    Anchors,
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a route name for a URL path segment.
pub fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const STYLE: &str = r#"
:root { --fg:#1d2430; --muted:#5b6473; --line:#d9dee7; --bg:#fff; --soft:#f5f7fa;
        --ok:#146c2e; --okbg:#dff3e4; --bad:#a11d1d; --badbg:#fbe3e3; --wait:#7a5a00; --waitbg:#fff2c8; --mark:#ffe9a8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
header, main { max-width: 1200px; margin: 0 auto; padding: 16px 24px; }
header { border-bottom: 1px solid var(--line); }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; } h3 { font-size: 15px; margin: 20px 0 6px; }
.meta { color: var(--muted); margin: 0; }
a { color: #1450a3; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px; }
.ready { color: var(--ok); background: var(--okbg); } .not_ready { color: var(--bad); background: var(--badbg); }
.not_enough_data { color: var(--wait); background: var(--waitbg); }
.stage { color: var(--fg); background: var(--soft); border: 1px solid var(--line); font-weight: 500; }
.real { color: var(--bad); background: var(--badbg); } .noise { color: var(--muted); background: var(--soft); }
form.filters { display: flex; gap: 8px; align-items: end; flex-wrap: wrap; margin-top: 10px; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
input, select, button { font: inherit; padding: 4px 6px; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { margin: 0; white-space: pre-wrap; word-break: break-all; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
.pane { border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
.pane h4 { margin: 0; padding: 4px 8px; background: var(--soft); font-size: 12px; }
.pane pre { padding: 6px 8px; max-height: 420px; overflow: auto; }
mark { background: var(--mark); display: block; }
mark.noise { background: var(--soft); color: var(--muted); }
.bar { background: var(--badbg); height: 10px; border-radius: 2px; }
.example { border-top: 2px solid var(--line); padding-top: 8px; margin-top: 16px; }
.suggest code { background: var(--soft); padding: 1px 4px; }
.empty { color: var(--muted); font-style: italic; }
"#;

fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a calendar date (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

pub fn format_time(ms: i64) -> String {
    time(ms)
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn badge(v: RouteVerdict) -> String {
    let class = match v {
        RouteVerdict::Ready => "ready",
        RouteVerdict::NotReady => "not_ready",
        RouteVerdict::NotEnoughData => "not_enough_data",
    };
    format!(
        r#"<span class="badge {class}" data-verdict="{class}">{}</span>"#,
        v.label()
    )
}

/// The route's migration stage. It comes from configuration, not from a
/// fixed set, so it is escaped and kept out of the class attribute.
fn stage_badge(stage: &str) -> String {
    format!(
        r#"<span class="badge stage" data-stage="{0}" title="migration stage">{0}</span>"#,
        escape(stage)
    )
}

fn class_badge(c: FieldClass) -> String {
    format!(r#"<span class="badge {0}">{0}</span>"#, c.as_str())
}

fn route_href(links: &Links, route: &str) -> String {
    match links {
        Links::Server { query } => {
            let q = if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            };
            format!("/report/route/{}{q}", url_segment(route))
        }
        Links::Anchors => format!("#route-{}", url_segment(route)),
    }
}

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
}

fn filters_form(out: &mut String, report: &Report, routes: &[String], since_label: &str) {
    let f = &report.filter;
    let _ = write!(
        out,
        r#"<form class="filters" method="get" action="/report"><label>Route<select name="route"><option value="">all routes</option>"#
    );
    for r in routes {
        let sel = if f.route.as_deref() == Some(r.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, r#"<option value="{0}"{sel}>{0}</option>"#, escape(r));
    }
    let _ = write!(
        out,
        r#"</select></label><label>Tenant<input name="tenant" value="{}" placeholder="any tenant"></label><label>Window<select name="since">"#,
        escape(f.tenant.as_deref().unwrap_or(""))
    );
    for w in ["1h", "6h", "24h", "7d", "14d"] {
        let sel = if w == since_label { " selected" } else { "" };
        let _ = write!(out, r#"<option{sel}>{w}</option>"#);
    }
    out.push_str(r#"</select></label><button type="submit">Apply</button></form>"#);
}

/// The summary page (or, with [`Links::Anchors`], the whole report in one
/// document).
pub fn render(report: &Report, links: &Links, all_routes: &[String], since_label: &str) -> String {
    let mut out = String::new();
    head(&mut out, "Strangler diff report");
    let f = &report.filter;
    let _ = write!(
        out,
        "<header><h1>Diff report</h1><p class=\"meta\">Comparisons from {} to {}{}{} · generated {}</p>",
        time(f.since_ms),
        time(f.until_ms),
        f.route
            .as_ref()
            .map(|r| format!(" · route {}", escape(r)))
            .unwrap_or_default(),
        f.tenant
            .as_ref()
            .map(|t| format!(" · tenant {}", escape(t)))
            .unwrap_or_default(),
        time(report.generated_at_ms)
    );
    if matches!(links, Links::Server { .. }) {
        filters_form(&mut out, report, all_routes, since_label);
    }
    out.push_str("</header><main>");
    out.push_str("<h2>May each route move on?</h2>");
    if report.routes.is_empty() {
        out.push_str(r#"<p class="empty">No shadow comparisons in this window.</p>"#);
    } else {
        // The stage column only when the proxy filled stages in: a report
        // read straight from the store knows none.
        let stages = report.routes.iter().any(|r| r.stage.is_some());
        let _ = write!(
            out,
            r#"<table class="summary"><thead><tr><th>Route</th><th>Verdict</th>{}<th class="num">Compared</th><th class="num">Real-diff rate (95% CI)</th><th class="num">Noise-only</th><th>Config versions</th><th>Top real field</th></tr></thead><tbody>"#,
            if stages { "<th>Stage</th>" } else { "" }
        );
        for r in &report.routes {
            let stage = if stages {
                format!(
                    "<td>{}</td>",
                    r.stage
                        .as_deref()
                        .map(stage_badge)
                        .unwrap_or_else(|| "—".into())
                )
            } else {
                String::new()
            };
            let top = r
                .fields
                .iter()
                .find(|f| f.class == FieldClass::Real)
                .map(|f| format!("<code>{}</code> ({})", escape(&f.field), f.count))
                .unwrap_or_else(|| "—".into());
            let _ = write!(
                out,
                r#"<tr data-route="{0}"><td><a href="{1}">{0}</a></td><td>{2}<br><small>{3}</small></td>{11}<td class="num">{4}</td><td class="num">{5} ({6}–{7})</td><td class="num">{8}</td><td>{9}</td><td>{10}</td></tr>"#,
                escape(&r.route),
                escape(&route_href(links, &r.route)),
                badge(r.verdict),
                escape(&r.verdict_reason),
                r.compared,
                pct(r.real_diff_rate),
                pct(r.real_diff_rate_ci95[0]),
                pct(r.real_diff_rate_ci95[1]),
                pct(r.noise_rate),
                r.config_versions
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                top,
                stage
            );
        }
        out.push_str("</tbody></table>");
    }
    if let Links::Anchors = links {
        for r in &report.routes {
            route_section(&mut out, r, links, 0);
        }
    }
    out.push_str("</main></body></html>\n");
    out
}

/// One route's page on the admin server.
pub fn render_route(report: &Report, route: &RouteReport, page: i64, back_query: &str) -> String {
    let mut out = String::new();
    head(
        &mut out,
        &format!("{} · Strangler diff report", route.route),
    );
    let f = &report.filter;
    let back = if back_query.is_empty() {
        "/report".to_string()
    } else {
        format!("/report?{back_query}")
    };
    let _ = write!(
        out,
        "<header><p class=\"meta\"><a href=\"{}\">← all routes</a></p><h1>Route {}</h1><p class=\"meta\">Comparisons from {} to {}{} · generated {}</p></header><main>",
        escape(&back),
        escape(&route.route),
        time(f.since_ms),
        time(f.until_ms),
        f.tenant
            .as_ref()
            .map(|t| format!(" · tenant {}", escape(t)))
            .unwrap_or_default(),
        time(report.generated_at_ms)
    );
    route_section(
        &mut out,
        route,
        &Links::Server {
            query: back_query.to_string(),
        },
        page,
    );
    out.push_str("</main></body></html>\n");
    out
}

fn route_section(out: &mut String, r: &RouteReport, links: &Links, page: i64) {
    let _ = write!(
        out,
        r#"<section id="route-{}" class="route">"#,
        url_segment(&r.route)
    );
    if let Links::Anchors = links {
        let _ = write!(out, "<h2>Route {}</h2>", escape(&r.route));
    }
    let _ = write!(
        out,
        r#"<p class="verdict">{}{} {}</p><table class="numbers"><tbody>
<tr><th>Compared</th><td class="num">{}</td><th>Threshold</th><td>real-diff rate ≤ {} with at least {} comparisons</td></tr>
<tr><th>Real diffs</th><td class="num">{} ({}, 95% CI {}–{})</td><th>Config versions</th><td>{}</td></tr>
<tr><th>Noise only</th><td class="num">{} ({})</td><th>Seen</th><td>{} – {}</td></tr>
</tbody></table>"#,
        r.stage
            .as_deref()
            .map(|s| format!("stage {} · ", stage_badge(s)))
            .unwrap_or_default(),
        badge(r.verdict),
        escape(&r.verdict_reason),
        r.compared,
        pct(r.threshold.max_diff_rate),
        r.threshold.min_samples,
        r.real_diffs,
        pct(r.real_diff_rate),
        pct(r.real_diff_rate_ci95[0]),
        pct(r.real_diff_rate_ci95[1]),
        r.config_versions
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        r.noise_only,
        pct(r.noise_rate),
        r.first_ms.map(time).unwrap_or_default(),
        r.last_ms.map(time).unwrap_or_default(),
    );

    out.push_str("<h3>Trend</h3>");
    if r.trend.is_empty() {
        out.push_str(r#"<p class="empty">No comparisons.</p>"#);
    } else {
        out.push_str(r#"<table class="trend"><thead><tr><th>Hour</th><th class="num">Compared</th><th class="num">Real diffs</th><th class="num">Rate</th><th style="width:40%"></th></tr></thead><tbody>"#);
        for t in &r.trend {
            let rate = if t.compared == 0 {
                0.0
            } else {
                t.real_diffs as f64 / t.compared as f64
            };
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td><div class="bar" style="width:{:.1}%"></div></td></tr>"#,
                time(t.start_ms),
                t.compared,
                t.real_diffs,
                pct(rate),
                (rate * 100.0).min(100.0)
            );
        }
        out.push_str("</tbody></table>");
    }

    out.push_str("<h3>Fields that differ</h3>");
    if r.fields.is_empty() {
        out.push_str(r#"<p class="empty">No differing fields.</p>"#);
    } else {
        out.push_str(r#"<table class="fields"><thead><tr><th>Field</th><th>Class</th><th class="num">Count</th><th class="num">Share</th><th>Example (legacy → new)</th><th>Why</th></tr></thead><tbody>"#);
        for f in &r.fields {
            field_row(out, f);
        }
        out.push_str("</tbody></table>");
        let suggestions: Vec<&String> = r
            .fields
            .iter()
            .filter_map(|f| f.suggestion.as_ref())
            .collect();
        if !suggestions.is_empty() {
            out.push_str(r#"<div class="suggest"><p>To stop counting the noise fields, add to this route's <code>shadow.compare</code> in routes.yaml:</p><pre>"#);
            for s in &suggestions {
                out.push_str(&escape(s));
                out.push('\n');
            }
            out.push_str("</pre></div>");
        }
    }

    let _ = write!(
        out,
        "<h3>Examples</h3><p class=\"meta\">{} stored comparisons with differences; newest first.</p>",
        r.stored_diffs
    );
    if r.examples.is_empty() {
        out.push_str(r#"<p class="empty">No stored examples.</p>"#);
    }
    for e in &r.examples {
        example(out, e);
    }
    if let Links::Server { query } = links {
        let per_page = 10;
        let href = |p: i64| {
            let mut q = query.clone();
            if !q.is_empty() {
                q.push('&');
            }
            format!("/report/route/{}?{q}page={p}", url_segment(&r.route))
        };
        out.push_str(r#"<p class="pages">"#);
        if page > 0 {
            let _ = write!(out, r#"<a href="{}">← newer</a> "#, escape(&href(page - 1)));
        }
        if ((page + 1) * per_page) < r.stored_diffs as i64 {
            let _ = write!(out, r#"<a href="{}">older →</a>"#, escape(&href(page + 1)));
        }
        out.push_str("</p>");
    }
    out.push_str("</section>");
}

fn field_row(out: &mut String, f: &FieldReport) {
    let example = f
        .examples
        .first()
        .map(|e| {
            format!(
                "<code>{}</code> → <code>{}</code>",
                escape(e.legacy.as_deref().unwrap_or("(absent)")),
                escape(e.new.as_deref().unwrap_or("(absent)"))
            )
        })
        .unwrap_or_default();
    let _ = write!(
        out,
        r#"<tr data-field="{0}" data-class="{1}"><td><code>{0}</code></td><td>{2}</td><td class="num">{3}</td><td class="num">{4}</td><td>{5}</td><td>{6}{7}</td></tr>"#,
        escape(&f.field),
        f.class.as_str(),
        class_badge(f.class),
        f.count,
        pct(f.share),
        example,
        escape(&f.why),
        f.suggestion
            .as_ref()
            .map(|s| format!("<br>suggest: <code>{}</code>", escape(s)))
            .unwrap_or_default()
    );
}

fn example(out: &mut String, e: &ComparisonRecord) {
    let _ = write!(
        out,
        r#"<div class="example" id="diff-{0}"><p><strong>{1} {2}</strong> · {3} · tenant {4} · config version {5} · served by {6} · request id <code>{0}</code></p>"#,
        escape(&e.id),
        escape(&e.request.method),
        escape(&e.request.path),
        time(e.created_at_ms),
        escape(e.tenant.as_deref().unwrap_or("—")),
        e.config_version,
        escape(&e.primary_side)
    );
    out.push_str(r#"<table class="diffs"><thead><tr><th>Place</th><th>Class</th><th>Legacy</th><th>New</th></tr></thead><tbody>"#);
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
        r#"<div class="pair"><div class="pane"><h4>legacy · {}</h4><pre>{}</pre></div><div class="pane"><h4>new · {}</h4><pre>{}</pre></div></div></div>"#,
        e.legacy.status, left, e.new.status, right
    );
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

    fn summary_table(html: &str) -> &str {
        let start = html.find(r#"<table class="summary">"#).expect(html);
        let len = html[start..].find("</table>").unwrap();
        &html[start..start + len]
    }

    #[test]
    fn the_summary_shows_stages_when_known() {
        let report = crate::report::tests::sample_report([Some("canary"), None]);
        let html = render(&report, &Links::Anchors, &[], "24h");
        let table = summary_table(&html);
        assert!(table.contains("<th>Verdict</th><th>Stage</th>"), "{table}");
        assert!(
            table.contains(r#"<span class="badge stage" data-stage="canary" title="migration stage">canary</span>"#),
            "{table}"
        );
        // A route without a stage has a dash in its cell, so the columns line up.
        let users = &table[table.find(r#"data-route="users""#).unwrap()..];
        assert!(
            users.contains("</small></td><td>—</td><td class=\"num\">2000</td>"),
            "{users}"
        );
        // The route's own section says it too, next to the verdict.
        assert!(
            html.contains(
                r#"<p class="verdict">stage <span class="badge stage" data-stage="canary""#
            ),
            "{html}"
        );
        assert!(
            html.contains(".stage {"),
            "styled in the page's own stylesheet"
        );
    }

    #[test]
    fn without_stages_the_summary_has_no_stage_column() {
        let report = crate::report::tests::sample_report([None, None]);
        let html = render(&report, &Links::Anchors, &[], "24h");
        assert!(!html.contains("<th>Stage</th>"), "{html}");
        assert!(!html.contains("data-stage"), "{html}");
        assert!(summary_table(&html).contains("<th>Verdict</th><th class=\"num\">Compared</th>"));
        assert!(
            html.contains(r#"<p class="verdict"><span class="badge ready""#),
            "{html}"
        );
    }

    #[test]
    fn a_stage_is_escaped() {
        let report = crate::report::tests::sample_report([Some("<b>\"x\"</b>"), None]);
        let html = render(&report, &Links::Anchors, &[], "24h");
        assert!(!html.contains("<b>"), "{html}");
        assert!(
            html.contains("data-stage=\"&lt;b&gt;&quot;x&quot;&lt;/b&gt;\""),
            "{html}"
        );
        let page = render_route(&report, &report.routes[0], 0, "since=24h");
        assert!(!page.contains("<b>"), "{page}");
        assert!(
            page.contains(">&lt;b&gt;&quot;x&quot;&lt;/b&gt;</span>"),
            "{page}"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(1_795_321_829_000), "2026-11-22 04:30:29 UTC");
    }
}
