//! The report as a web page: self-contained (inline CSS and SVG, no
//! scripts, no network; the page says so itself in a content-security
//! policy, [`CONTENT_SECURITY_POLICY`], the same whether served or saved),
//! readable without a manual. The summary lists routes with their verdicts
//! (and their stages, when the proxy filled them in), each rate's interval
//! against its threshold and its trend as small charts ([`charts`]), and
//! links to each route's detail: trend, differing fields (real or noise,
//! why, what to paste into routes.yaml), the real differences grouped by
//! signature with one example each ([`groups`]), shown side by side with
//! the differing places marked ([`examples`]). Times are in UTC, or in the
//! renderer's local time on request ([`Times`]).
//!
//! Replayed traffic has its own summary table and, per route, its own
//! section next to the live one ([`replay`]): the same figures, the replay
//! runs, and the answers named "recorded" and "replayed". Every example
//! shows its source.

mod charts;
mod examples;
mod groups;
mod replay;

use std::fmt::Write;

pub(super) use charts::trend_words;

use super::{FieldReport, Report, RouteReport, RouteVerdict, Times, Wording};
use crate::noise::FieldClass;
use crate::record::Source;
use crate::recording::ReplayRun;

/// What the page may do: show its own inline styles and SVG, submit its
/// filter form to the server that served it, and nothing else (no script,
/// nothing loaded). Sent as a header with the served page and written into
/// every page as a `<meta>`, so that an exported file keeps it.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'";

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
.src-shadow { color: var(--fg); background: var(--soft); border: 1px solid var(--line); font-weight: 500; }
.src-replay { color: #4b2a8a; background: #ece4fb; font-weight: 500; }
section.replay { border-left: 4px solid #ece4fb; padding-left: 12px; }
svg { display: block; overflow: visible; }
.ci-track { fill: var(--soft); stroke: var(--line); }
.band-ready { fill: #8fd19e; } .band-not_ready { fill: #e59a9a; } .band-not_enough_data { fill: #f0d27a; }
.ci-threshold, .spark-threshold { stroke: var(--bad); stroke-width: 1.5; stroke-dasharray: 3 2; }
.ci-point { fill: var(--fg); }
.axis { font-size: 9px; fill: var(--muted); } .axis.end { text-anchor: end; }
.spark-line { fill: none; stroke: #1450a3; stroke-width: 1.5; } .spark-dot { fill: #1450a3; }
.spark-peak { fill: var(--bad); }
.charts { display: flex; gap: 32px; align-items: flex-start; flex-wrap: wrap; margin: 8px 0; }
.charts figure { margin: 0; } .charts figcaption { color: var(--muted); font-size: 12px; max-width: 480px; }
"#;

/// A time in UTC, as the report writes it by default.
pub fn format_time(ms: i64) -> String {
    Times::Utc.format(ms)
}

pub(super) fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

pub(super) fn badge(v: RouteVerdict) -> String {
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

/// The Stage cell of a summary row (nothing when the table has no Stage
/// column).
fn stage_cell(stage: Option<&str>, stages: bool) -> String {
    if !stages {
        return String::new();
    }
    format!(
        "<td>{}</td>",
        stage.map(stage_badge).unwrap_or_else(|| "—".into())
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

pub(super) fn class_badge(c: FieldClass) -> String {
    format!(r#"<span class="badge {0}">{0}</span>"#, c.as_str())
}

/// The anchor of a route's section of one source.
pub(super) fn section_id(source: Source, route: &str) -> String {
    let prefix = match source {
        Source::Shadow => "route",
        Source::Replay => "replay",
    };
    format!("{prefix}-{}", url_segment(route))
}

/// Where a route's section of `source` is: its page on the admin server
/// (the replay part further down it), or its anchor in the document.
pub(super) fn route_href(links: &Links, route: &str, source: Source) -> String {
    match links {
        Links::Server { query } => {
            let q = if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            };
            let fragment = match source {
                Source::Shadow => String::new(),
                Source::Replay => format!("#{}", section_id(source, route)),
            };
            format!("/report/route/{}{q}{fragment}", url_segment(route))
        }
        Links::Anchors => format!("#{}", section_id(source, route)),
    }
}

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\"><title>{}</title><style>{STYLE}</style></head><body>",
        escape(CONTENT_SECURITY_POLICY),
        escape(title)
    );
}

fn filters_form(
    out: &mut String,
    report: &Report,
    routes: &[String],
    since_label: &str,
    times: Times,
) {
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
    out.push_str(r#"</select></label><label>Source<select name="source">"#);
    for (value, label, chosen) in [
        ("", "live and replay", f.source.is_none()),
        (
            "shadow",
            "live shadow only",
            f.source == Some(Source::Shadow),
        ),
        ("replay", "replay only", f.source == Some(Source::Replay)),
    ] {
        let sel = if chosen { " selected" } else { "" };
        let _ = write!(out, r#"<option value="{value}"{sel}>{label}</option>"#);
    }
    out.push_str(r#"</select></label><label>Times<select name="time">"#);
    for t in Times::ALL {
        let sel = if t == times { " selected" } else { "" };
        let label = match t {
            Times::Utc => "UTC",
            Times::Local => "server's local time",
        };
        let _ = write!(
            out,
            r#"<option value="{}"{sel}>{label}</option>"#,
            t.as_str()
        );
    }
    out.push_str(r#"</select></label><button type="submit">Apply</button></form>"#);
}

/// What the page's header says the report covers (the route too, unless
/// the page is the route's own).
fn covers(report: &Report, with_route: bool, times: Times) -> String {
    let f = &report.filter;
    format!(
        "{} to {}{}{}{}",
        times.format(f.since_ms),
        times.format(f.until_ms),
        f.route
            .as_ref()
            .filter(|_| with_route)
            .map(|r| format!(" · route {}", escape(r)))
            .unwrap_or_default(),
        f.tenant
            .as_ref()
            .map(|t| format!(" · tenant {}", escape(t)))
            .unwrap_or_default(),
        match f.source {
            None => "",
            Some(Source::Shadow) => " · live shadow traffic only",
            Some(Source::Replay) => " · replayed traffic only",
        }
    )
}

/// The summary page (or, with [`Links::Anchors`], the whole report in one
/// document).
/// Times are written as `times` says.
pub fn render(
    report: &Report,
    links: &Links,
    all_routes: &[String],
    since_label: &str,
    times: Times,
) -> String {
    let mut out = String::new();
    head(&mut out, "Strangler diff report");
    let _ = write!(
        out,
        "<header><h1>Diff report</h1><p class=\"meta\">Comparisons from {} · generated {}</p>",
        covers(report, true, times),
        times.format(report.generated_at_ms)
    );
    if matches!(links, Links::Server { .. }) {
        filters_form(&mut out, report, all_routes, since_label, times);
    }
    out.push_str("</header><main>");
    if report.filter.includes(Source::Shadow) {
        live_summary(&mut out, report, links, times);
    }
    if report.filter.includes(Source::Replay)
        && (!report.replay.is_empty() || report.filter.source == Some(Source::Replay))
    {
        replay::summary(&mut out, report, links, times);
    }
    if let Links::Anchors = links {
        for route in report_routes(report) {
            if let Some(r) = report.live(route) {
                route_section(&mut out, r, None, links, 0, times);
            }
            if let Some(r) = report.replayed(route) {
                route_section(&mut out, &r.comparisons, Some(&r.runs), links, 0, times);
            }
        }
    }
    out.push_str("</main></body></html>\n");
    out
}

/// Every route of the report, live or replayed, by name.
fn report_routes(report: &Report) -> std::collections::BTreeSet<&str> {
    report
        .routes
        .iter()
        .map(|r| r.route.as_str())
        .chain(report.replay.iter().map(|r| r.comparisons.route.as_str()))
        .collect()
}

/// The live verdicts: may each route move on?
fn live_summary(out: &mut String, report: &Report, links: &Links, times: Times) {
    out.push_str("<h2>May each route move on?</h2>");
    if report.routes.is_empty() {
        out.push_str(r#"<p class="empty">No shadow comparisons in this window.</p>"#);
        return;
    }
    // The stage column only when the proxy filled stages in: a report read
    // straight from the store knows none.
    let stages = report.routes.iter().any(|r| r.stage.is_some());
    let _ = write!(
        out,
        r#"<table class="summary"><thead><tr><th>Route</th><th>Verdict</th>{}<th class="num">Compared</th><th class="num">Real-diff rate (95% CI)</th><th class="num">Noise-only</th><th>Config versions</th><th>Top real field</th><th>Trend</th></tr></thead><tbody>"#,
        if stages { "<th>Stage</th>" } else { "" }
    );
    for r in &report.routes {
        let stage = stage_cell(r.stage.as_deref(), stages);
        let _ = write!(
            out,
            r#"<tr data-route="{0}"><td><a href="{1}">{0}</a></td><td>{2}<br><small>{3}</small></td>{11}<td class="num">{4}</td><td class="num">{5} ({6}–{7}){12}</td><td class="num">{8}</td><td>{9}</td><td>{10}</td><td>{13}</td></tr>"#,
            escape(&r.route),
            escape(&route_href(links, &r.route, Source::Shadow)),
            badge(r.verdict),
            escape(&r.verdict_reason),
            r.compared,
            pct(r.real_diff_rate),
            pct(r.real_diff_rate_ci95[0]),
            pct(r.real_diff_rate_ci95[1]),
            pct(r.noise_rate),
            versions(r),
            top_real_field(r),
            stage,
            charts::interval(r),
            trend_cell(r, times),
        );
    }
    out.push_str("</tbody></table>");
}

/// A summary row's trend: the small sparkline, or a dash.
pub(super) fn trend_cell(r: &RouteReport, times: Times) -> String {
    charts::sparkline(r, times, charts::Spark::Row).unwrap_or_else(|| "—".into())
}

pub(super) fn versions(r: &RouteReport) -> String {
    r.config_versions
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn top_real_field(r: &RouteReport) -> String {
    r.fields
        .iter()
        .find(|f| f.class == FieldClass::Real)
        .map(|f| format!("<code>{}</code> ({})", escape(&f.field), f.count))
        .unwrap_or_else(|| "—".into())
}

/// One route's page on the admin server: its live section, and its replay
/// section when it has replayed comparisons or runs. `None` when the report
/// has neither for the route.
pub fn render_route(
    report: &Report,
    route: &str,
    page: i64,
    back_query: &str,
    times: Times,
) -> Option<String> {
    let live = report.live(route);
    let replayed = report.replayed(route);
    if live.is_none() && replayed.is_none() {
        return None;
    }
    let mut out = String::new();
    head(&mut out, &format!("{route} · Strangler diff report"));
    let back = if back_query.is_empty() {
        "/report".to_string()
    } else {
        format!("/report?{back_query}")
    };
    let _ = write!(
        out,
        "<header><p class=\"meta\"><a href=\"{}\">← all routes</a></p><h1>Route {}</h1><p class=\"meta\">Comparisons from {} · generated {}</p></header><main>",
        escape(&back),
        escape(route),
        covers(report, false, times),
        times.format(report.generated_at_ms)
    );
    let links = Links::Server {
        query: back_query.to_string(),
    };
    if let Some(r) = live {
        if replayed.is_some() {
            out.push_str("<h2>Live shadow traffic</h2>");
        }
        route_section(&mut out, r, None, &links, page, times);
    }
    if let Some(r) = replayed {
        route_section(&mut out, &r.comparisons, Some(&r.runs), &links, page, times);
    }
    out.push_str("</main></body></html>\n");
    Some(out)
}

/// A route's figures from one source: for replayed traffic (`runs` given),
/// with its runs and the answers named as [`Wording`] names them.
fn route_section(
    out: &mut String,
    r: &RouteReport,
    runs: Option<&[ReplayRun]>,
    links: &Links,
    page: i64,
    times: Times,
) {
    let w = Wording::of(r.source);
    let _ = write!(
        out,
        r#"<section id="{}" class="route {}" data-source="{}">"#,
        section_id(r.source, &r.route),
        match r.source {
            Source::Shadow => "live",
            Source::Replay => "replay",
        },
        r.source.as_str()
    );
    match (links, r.source) {
        (Links::Anchors, Source::Shadow) => {
            let _ = write!(out, "<h2>Route {}</h2>", escape(&r.route));
        }
        (Links::Anchors, Source::Replay) => {
            let _ = write!(
                out,
                "<h2>Route {} · replayed traffic</h2>",
                escape(&r.route)
            );
        }
        (Links::Server { .. }, Source::Replay) => out.push_str("<h2>Replayed traffic</h2>"),
        (Links::Server { .. }, Source::Shadow) => {}
    }
    if r.source == Source::Replay {
        out.push_str(replay::EXPLAINED);
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
        versions(r),
        r.noise_only,
        pct(r.noise_rate),
        r.first_ms.map(|t| times.format(t)).unwrap_or_default(),
        r.last_ms.map(|t| times.format(t)).unwrap_or_default(),
    );
    if let Some(runs) = runs {
        replay::runs(out, runs, times);
    }

    out.push_str("<h3>Trend</h3>");
    let _ = write!(
        out,
        r#"<div class="charts"><figure>{}<figcaption>{}</figcaption></figure>"#,
        charts::interval(r),
        escape(&charts::interval_words(r))
    );
    match (
        charts::sparkline(r, times, charts::Spark::Section),
        charts::trend_words(&r.trend, times),
    ) {
        (Some(svg), Some(words)) => {
            let _ = write!(
                out,
                "<figure>{svg}<figcaption>{}</figcaption></figure></div>",
                escape(&words)
            );
        }
        _ => out.push_str(r#"</div><p class="empty">No comparisons.</p>"#),
    }

    out.push_str("<h3>Fields that differ</h3>");
    if r.fields.is_empty() {
        out.push_str(r#"<p class="empty">No differing fields.</p>"#);
    } else {
        let _ = write!(
            out,
            r#"<table class="fields"><thead><tr><th>Field</th><th>Class</th><th class="num">Count</th><th class="num">Share</th><th>Example ({} → {})</th><th>Why</th></tr></thead><tbody>"#,
            w.legacy, w.new
        );
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

    groups::section(out, r, times);

    let _ = write!(
        out,
        "<h3>Stored comparisons</h3><p class=\"meta\">{} stored comparisons with differences (real or noise only); newest first.</p>",
        r.stored_diffs
    );
    if r.examples.is_empty() {
        out.push_str(r#"<p class="empty">No stored examples.</p>"#);
    }
    examples::list(out, &r.examples, &groups::shown(r), times);
    if let Links::Server { query } = links {
        let per_page = 10;
        let fragment = match r.source {
            Source::Shadow => String::new(),
            Source::Replay => format!("#{}", section_id(r.source, &r.route)),
        };
        let href = |p: i64| {
            let mut q = query.clone();
            if !q.is_empty() {
                q.push('&');
            }
            format!(
                "/report/route/{}?{q}page={p}{fragment}",
                url_segment(&r.route)
            )
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

#[cfg(test)]
mod tests;
