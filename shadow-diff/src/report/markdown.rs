//! The report in Markdown, to paste into a change ticket: the verdict per
//! route with its numbers (and its stage, when the proxy filled it in), the
//! trend in words, the fields that differ, the real differences grouped by
//! signature, the stored examples (each with its source), and the lines to
//! add to routes.yaml for noise. Times as [`Times`] says. Replayed traffic follows under a
//! heading of its own, with each route's replay runs, and names its answers
//! "recorded" and "replayed".

use std::fmt::Write;

use super::{Report, RouteReport, Times, Wording};
use crate::record::{ComparisonRecord, Source};
use crate::recording::ReplayRun;

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// Escapes what would break a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render(report: &Report, times: Times) -> String {
    let f = &report.filter;
    let mut out = String::new();
    let _ = writeln!(out, "## Diff report\n");
    let _ = writeln!(
        out,
        "Comparisons from {} to {}{}{}{}; generated {}.\n",
        times.format(f.since_ms),
        times.format(f.until_ms),
        f.route
            .as_ref()
            .map(|r| format!(", route `{r}`"))
            .unwrap_or_default(),
        f.tenant
            .as_ref()
            .map(|t| format!(", tenant `{t}`"))
            .unwrap_or_default(),
        match f.source {
            None => "",
            Some(Source::Shadow) => ", live shadow traffic only",
            Some(Source::Replay) => ", replayed traffic only",
        },
        times.format(report.generated_at_ms)
    );
    if f.includes(Source::Shadow) {
        live(&mut out, report, times);
    }
    if f.includes(Source::Replay) && (!report.replay.is_empty() || f.source == Some(Source::Replay))
    {
        replayed(&mut out, report, times);
    }
    out
}

fn live(out: &mut String, report: &Report, times: Times) {
    if report.routes.is_empty() {
        out.push_str("No shadow comparisons in this window.\n");
        return;
    }
    // The stage column only when the proxy filled stages in: a report read
    // straight from the store knows none.
    let stages = report.routes.iter().any(|r| r.stage.is_some());
    let _ = writeln!(
        out,
        "| Route | Verdict |{} Compared | Real-diff rate (95% CI) | Noise only | Config versions |",
        if stages { " Stage |" } else { "" }
    );
    let _ = writeln!(
        out,
        "|---|---|{}---:|---:|---:|---|",
        if stages { "---|" } else { "" }
    );
    for r in &report.routes {
        let stage = if stages {
            format!(
                " {} |",
                r.stage.as_deref().map(cell).unwrap_or_else(|| "-".into())
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| `{}` | **{}** |{} {} | {} |",
            r.route,
            r.verdict.label(),
            stage,
            r.compared,
            numbers(r)
        );
    }
    for r in &report.routes {
        let _ = writeln!(out, "\n### `{}`: {}\n", r.route, r.verdict.label());
        details(out, r, times);
    }
}

fn replayed(out: &mut String, report: &Report, times: Times) {
    out.push_str(
        "\n## Replayed traffic\n\nRecorded requests sent again to a replay target, each answer \
         compared with the one recorded; apart from live shadow traffic, and never part of a \
         route's live verdict.\n\n",
    );
    if report.replay.is_empty() {
        out.push_str("No replayed comparisons and no replay runs in this window.\n");
        return;
    }
    out.push_str(
        "| Route | Verdict on replay | Compared | Real-diff rate (95% CI) | Noise only | Config versions | Runs |\n\
         |---|---|---:|---:|---:|---|---:|\n",
    );
    for entry in &report.replay {
        let r = &entry.comparisons;
        let _ = writeln!(
            out,
            "| `{}` | **{}** | {} | {} | {} |",
            r.route,
            r.verdict.label(),
            r.compared,
            numbers(r),
            entry.runs.len()
        );
    }
    for entry in &report.replay {
        let r = &entry.comparisons;
        let _ = writeln!(out, "\n### `{}` (replay): {}\n", r.route, r.verdict.label());
        runs(out, &entry.runs, times);
        details(out, r, times);
    }
}

/// Rate, interval, noise rate and config versions, as table cells.
fn numbers(r: &RouteReport) -> String {
    format!(
        "{} ({}–{}) | {} | {}",
        pct(r.real_diff_rate),
        pct(r.real_diff_rate_ci95[0]),
        pct(r.real_diff_rate_ci95[1]),
        pct(r.noise_rate),
        r.config_versions
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn runs(out: &mut String, runs: &[ReplayRun], times: Times) {
    if runs.is_empty() {
        out.push_str("No replay run in this window.\n\n");
        return;
    }
    out.push_str(
        "| Run started | Finished | State | Target | Recordings from | Read | Compared | Diff | Noise | Skipped | Failed |\n\
         |---|---|---|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for run in runs {
        let c = &run.counts;
        let _ = writeln!(
            out,
            "| {} | {} | {}{} | `{}` | {} | {} | {} | {} | {} | {} | {} |",
            times.format(run.started_at_ms),
            run.finished_at_ms
                .map(|t| times.format(t))
                .unwrap_or_else(|| "-".into()),
            run.state.as_str(),
            run.message
                .as_deref()
                .map(|m| format!(": {}", cell(m)))
                .unwrap_or_default(),
            cell(&run.target),
            times.format(run.since_ms),
            c.read,
            c.compared(),
            c.diff,
            c.noise,
            c.skipped,
            c.failed
        );
    }
    out.push('\n');
}

/// The verdict's reason, the fields that differ, the noise to ignore and
/// the examples of one route and source.
fn details(out: &mut String, r: &RouteReport, times: Times) {
    let w = Wording::of(r.source);
    let _ = writeln!(out, "{}.\n", r.verdict_reason);
    if let Some(trend) = super::html::trend_words(&r.trend, times) {
        let _ = writeln!(out, "Trend: {trend}.\n");
    }
    if r.fields.is_empty() {
        out.push_str("No differing fields.\n");
    } else {
        let _ = writeln!(
            out,
            "| Field | Class | Count | Share | Example ({} → {}) | Why |\n|---|---|---:|---:|---|---|",
            w.legacy, w.new
        );
        for field in &r.fields {
            let example = field
                .examples
                .first()
                .map(|e| {
                    format!(
                        "`{}` → `{}`",
                        cell(e.legacy.as_deref().unwrap_or("(absent)")),
                        cell(e.new.as_deref().unwrap_or("(absent)"))
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                cell(&field.field),
                field.class.as_str(),
                field.count,
                pct(field.share),
                example,
                cell(&field.why)
            );
        }
        let noise = super::merged_suggestions(&r.fields);
        if !noise.is_empty() {
            out.push_str("\nNoise to ignore (add to the route's `shadow.compare`):\n\n```yaml\n");
            for s in noise {
                let _ = writeln!(out, "{s}");
            }
            out.push_str("```\n");
        }
    }
    signatures(out, r);
    examples(out, &r.examples, times);
}

/// The real differences by signature, one row per group.
fn signatures(out: &mut String, r: &RouteReport) {
    let s = &r.signatures;
    if s.groups.is_empty() {
        return;
    }
    out.push_str(
        "\nReal differences by signature (the real fields that differed together):\n\n\
         | Real fields that differ | Comparisons | Newest example |\n|---|---:|---|\n",
    );
    for g in &s.groups {
        let fields: Vec<String> = g.fields.iter().map(|f| format!("`{}`", cell(f))).collect();
        let example = g
            .example
            .as_ref()
            .map(|e| {
                format!(
                    "`{} {}` (`{}`)",
                    cell(&e.request.method),
                    cell(&e.request.path),
                    cell(&e.id)
                )
            })
            .unwrap_or_else(|| "pruned".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            fields.join(" + "),
            g.count,
            example
        );
    }
    if s.more_groups > 0 {
        let _ = writeln!(
            out,
            "\nAnd {} more {} ({} comparison{}), not shown.",
            s.more_groups,
            if s.more_groups == 1 {
                "signature"
            } else {
                "signatures"
            },
            s.more_comparisons,
            if s.more_comparisons == 1 { "" } else { "s" }
        );
    }
}

/// The stored examples, one row each, with their source.
fn examples(out: &mut String, examples: &[ComparisonRecord], times: Times) {
    if examples.is_empty() {
        return;
    }
    out.push_str(
        "\nExamples, newest first:\n\n| When | Source | Request | Status | Differs in | Id |\n\
         |---|---|---|---|---|---|\n",
    );
    for e in examples {
        let w = Wording::of(e.source);
        let mut places: Vec<String> = e
            .differences
            .iter()
            .map(|d| format!("`{}`", cell(&d.difference.field)))
            .collect();
        if e.more_differences > 0 {
            places.push(format!("{} more", e.more_differences));
        }
        let _ = writeln!(
            out,
            "| {} | {} | `{} {}` | {} {} → {} {} | {} | `{}` |",
            times.format(e.created_at_ms),
            w.source,
            cell(&e.request.method),
            cell(&e.request.path),
            w.legacy,
            e.legacy.status,
            w.new,
            e.new.status,
            places.join(", "),
            cell(&e.id)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_table_has_a_stage_column_when_stages_are_known() {
        let md = render(
            &crate::report::samples::sample_report([Some("canary"), None]),
            Times::Utc,
        );
        assert!(
            md.contains(
                "| Route | Verdict | Stage | Compared | Real-diff rate (95% CI) | Noise only | Config versions |\n\
                 |---|---|---|---:|---:|---:|---|\n"
            ),
            "{md}"
        );
        assert!(
            md.contains("| `orders` | **ready** | canary | 2000 |"),
            "{md}"
        );
        assert!(
            md.contains("| `users` | **not ready** | - | 2000 |"),
            "{md}"
        );
    }

    #[test]
    fn without_stages_the_summary_table_is_unchanged() {
        let md = render(
            &crate::report::samples::sample_report([None, None]),
            Times::Utc,
        );
        assert!(
            md.contains(
                "| Route | Verdict | Compared | Real-diff rate (95% CI) | Noise only | Config versions |\n\
                 |---|---|---:|---:|---:|---|\n"
            ),
            "{md}"
        );
        assert!(md.contains("| `orders` | **ready** | 2000 |"), "{md}");
        assert!(!md.contains("Stage"), "{md}");
    }

    #[test]
    fn a_stage_cannot_break_the_table() {
        let md = render(
            &crate::report::samples::sample_report([Some("a|b"), None]),
            Times::Utc,
        );
        assert!(md.contains("| **ready** | a\\|b | 2000 |"), "{md}");
    }

    #[test]
    fn replayed_traffic_has_its_own_section_with_runs_and_recorded_answers() {
        let report = crate::report::samples::sample_with_replay();
        let md = render(&report, Times::Utc);
        let (live, replay) = md.split_at(md.find("\n## Replayed traffic\n").expect(&md));
        // The live part is the live data alone.
        assert!(live.contains("| `orders` | **ready** | 2000 |"), "{live}");
        assert!(
            !live.contains("replayed") && !live.contains("Run started"),
            "{live}"
        );
        assert!(
            live.contains("| When | Source | Request | Status | Differs in | Id |"),
            "{live}"
        );
        assert!(
            live.contains(
                "| 2027-01-15 08:00:30 UTC | live shadow | `GET /api/orders/7` | legacy 200 → new 200 | `/total` | `live-1` |"
            ),
            "{live}"
        );
        assert!(
            replay.contains(
                "| Route | Verdict on replay | Compared | Real-diff rate (95% CI) | Noise only | Config versions | Runs |"
            ),
            "{replay}"
        );
        assert!(
            replay.contains("| `orders` | **not ready** | 12 | 25.00% ("),
            "{replay}"
        );
        assert!(
            replay.contains("### `orders` (replay): not ready"),
            "{replay}"
        );
        assert!(
            replay.contains(
                "| 2027-01-15 08:00:00 UTC | 2027-01-15 08:00:50 UTC | done | `orders-v2` | 2027-01-14 08:00:00 UTC | 12 | 11 | 3 | 1 | 1 | 0 |"
            ),
            "{replay}"
        );
        assert!(
            replay.contains("| Example (recorded → replayed) | Why |"),
            "{replay}"
        );
        assert!(
            replay.contains("| `/total` | real | 3 | 25.00% | `10` → `12` |"),
            "{replay}"
        );
        assert!(
            replay.contains("| replay | `GET /api/orders/7` | recorded 200 → replayed 200 | `/total` | `replayed-1` |"),
            "{replay}"
        );
        assert!(!replay.contains("live shadow |"), "{replay}");
    }

    #[test]
    fn a_source_filter_shows_one_part() {
        let mut report = crate::report::samples::sample_with_replay();
        report.filter.source = Some(Source::Shadow);
        report.replay.clear();
        let md = render(&report, Times::Utc);
        assert!(md.contains("live shadow traffic only"), "{md}");
        assert!(!md.contains("Replayed traffic"), "{md}");

        let mut report = crate::report::samples::sample_with_replay();
        report.filter.source = Some(Source::Replay);
        report.routes.clear();
        let md = render(&report, Times::Utc);
        assert!(md.contains("replayed traffic only"), "{md}");
        assert!(!md.contains("No shadow comparisons"), "{md}");
        assert!(md.contains("### `orders` (replay)"), "{md}");
        // Asked for replays, and there are none: said so.
        report.replay.clear();
        let md = render(&report, Times::Utc);
        assert!(
            md.contains("No replayed comparisons and no replay runs in this window."),
            "{md}"
        );
    }

    #[test]
    fn without_replays_there_is_no_replay_section() {
        let md = render(
            &crate::report::samples::sample_report([None, None]),
            Times::Utc,
        );
        assert!(!md.contains("Replayed traffic"), "{md}");
    }

    #[test]
    fn signatures_and_the_trend_are_in_the_text_and_times_say_their_zone() {
        let mut report = crate::report::samples::sample_with_replay();
        report.routes[0].trend = vec![crate::report::TrendPoint {
            start_ms: 1_800_000_000_000,
            compared: 2000,
            real_diffs: 2,
        }];
        report.routes[0].signatures.more_groups = 1;
        report.routes[0].signatures.more_comparisons = 4;
        let md = render(&report, Times::Utc);
        assert!(
            md.contains("| Real fields that differ | Comparisons | Newest example |"),
            "{md}"
        );
        assert!(
            md.contains("| `/total` | 2 | `GET /api/orders/7` (`live-1`) |"),
            "{md}"
        );
        assert!(
            md.contains("| `/total` | 3 | `GET /api/orders/7` (`replayed-1`) |"),
            "{md}"
        );
        assert!(
            md.contains("And 1 more signature (4 comparisons), not shown."),
            "{md}"
        );
        assert!(
            md.contains("Trend: real-diff rate per hour over 1 hour with comparisons: first 0.10% (2 of 2000) at 2027-01-15 08:00 UTC"),
            "{md}"
        );
        let local = render(&report, Times::Local);
        assert!(
            local.contains(&Times::Local.format(report.generated_at_ms)),
            "{local}"
        );
        assert!(!local.contains(" UTC"), "{local}");
    }
}
