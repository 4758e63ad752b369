//! Replayed traffic on the report page: a summary table of its own, apart
//! from the live verdicts, and each route's replay runs, one row per run
//! (when, against what, how many read, compared, differing, skipped,
//! failed).

use std::fmt::Write;

use super::{Links, badge, charts, escape, pct, route_href, top_real_field, versions};
use crate::record::Source;
use crate::recording::{ReplayRun, RunState};
use crate::report::{Report, Times};

/// What a replay is, said where its figures are shown.
pub(super) const EXPLAINED: &str = r#"<p class="meta">Recorded requests sent again to a replay target, each answer compared with the one recorded. These figures are apart from live shadow traffic: they never count toward the route's live verdict.</p>"#;

/// The replay summary: one row per route with replayed comparisons or runs.
pub(super) fn summary(out: &mut String, report: &Report, links: &Links, times: Times) {
    out.push_str("<h2>Replayed traffic</h2>");
    out.push_str(EXPLAINED);
    if report.replay.is_empty() {
        out.push_str(
            r#"<p class="empty">No replayed comparisons and no replay runs in this window.</p>"#,
        );
        return;
    }
    let stages = report.replay.iter().any(|r| r.comparisons.stage.is_some());
    let _ = write!(
        out,
        r#"<table class="replay-summary"><thead><tr><th>Route</th><th>Verdict on replay</th>{}<th class="num">Compared</th><th class="num">Real-diff rate (95% CI)</th><th class="num">Noise-only</th><th>Config versions</th><th>Top real field</th><th>Runs</th><th>Trend</th></tr></thead><tbody>"#,
        if stages { "<th>Stage</th>" } else { "" }
    );
    for entry in &report.replay {
        let r = &entry.comparisons;
        let stage = super::stage_cell(r.stage.as_deref(), stages);
        let last = entry
            .runs
            .first()
            .map(|run| {
                format!(
                    "<br><small>last: {} against <code>{}</code>, {}</small>",
                    run.state.as_str(),
                    escape(&run.target),
                    times.format(run.started_at_ms)
                )
            })
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"<tr data-route="{0}" data-source="replay"><td><a href="{1}">{0}</a></td><td>{2}<br><small>{3}</small></td>{4}<td class="num">{5}</td><td class="num">{6} ({7}–{8}){14}</td><td class="num">{9}</td><td>{10}</td><td>{11}</td><td>{12}{13}</td><td>{15}</td></tr>"#,
            escape(&r.route),
            escape(&route_href(links, &r.route, Source::Replay)),
            badge(r.verdict),
            escape(&r.verdict_reason),
            stage,
            r.compared,
            pct(r.real_diff_rate),
            pct(r.real_diff_rate_ci95[0]),
            pct(r.real_diff_rate_ci95[1]),
            pct(r.noise_rate),
            versions(r),
            top_real_field(r),
            entry.runs.len(),
            last,
            charts::interval(r),
            super::trend_cell(r, times),
        );
    }
    out.push_str("</tbody></table>");
}

/// A route's replay runs, newest first.
pub(super) fn runs(out: &mut String, runs: &[ReplayRun], times: Times) {
    out.push_str("<h3>Replay runs</h3>");
    if runs.is_empty() {
        out.push_str(r#"<p class="empty">No replay run in this window.</p>"#);
        return;
    }
    out.push_str(r#"<table class="runs"><thead><tr><th>Started</th><th>Finished</th><th>State</th><th>Target</th><th>Recordings from</th><th class="num">Read</th><th class="num">Compared</th><th class="num">Matched</th><th class="num">Diff</th><th class="num">Noise</th><th class="num">Skipped</th><th class="num">Failed</th></tr></thead><tbody>"#);
    for run in runs {
        let c = &run.counts;
        let finished = match (run.finished_at_ms, run.state) {
            (Some(at), _) => times.format(at),
            (None, RunState::Running) => "still running".into(),
            (None, _) => "—".into(),
        };
        let message = run
            .message
            .as_deref()
            .map(|m| format!("<br><small>{}</small>", escape(m)))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"<tr data-run="{}" data-state="{}"><td>{}</td><td>{}</td><td>{}{}</td><td><code>{}</code></td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            escape(&run.id),
            run.state.as_str(),
            times.format(run.started_at_ms),
            finished,
            run.state.as_str(),
            message,
            escape(&run.target),
            times.format(run.since_ms),
            c.read,
            c.compared(),
            c.matched,
            c.diff,
            c.noise,
            c.skipped,
            c.failed
        );
    }
    out.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::samples::sample_run;

    #[test]
    fn a_run_is_one_row_with_its_counts() {
        let mut failed = sample_run(1_800_000_000_000, None);
        failed.state = RunState::Failed;
        failed.message = Some("the target <refused>".into());
        let mut out = String::new();
        runs(
            &mut out,
            &[
                sample_run(1_800_000_100_000, Some(1_800_000_160_000)),
                failed,
            ],
            Times::Utc,
        );
        assert!(
            out.contains(
                r#"<tr data-run="run-1800000100000" data-state="done"><td>2027-01-15 08:01:40 UTC</td><td>2027-01-15 08:02:40 UTC</td><td>done</td><td><code>orders-v2</code></td><td>2027-01-14 08:01:40 UTC</td><td class="num">12</td><td class="num">11</td><td class="num">7</td><td class="num">3</td><td class="num">1</td><td class="num">1</td><td class="num">0</td></tr>"#
            ),
            "{out}"
        );
        assert!(
            out.contains("<td>—</td><td>failed<br><small>the target &lt;refused&gt;</small>"),
            "{out}"
        );
        let mut none = String::new();
        runs(&mut none, &[], Times::Utc);
        assert!(none.contains("No replay run in this window."), "{none}");
    }
}
