//! The report in Markdown, to paste into a change ticket: the verdict per
//! route with its numbers (and its stage, when the proxy filled it in), the
//! fields that differ, the stored examples (each with its source), and the
//! lines to add to routes.yaml for noise. Replayed traffic follows under a
//! heading of its own, with each route's replay runs, and names its answers
//! "recorded" and "replayed".

use std::fmt::Write;

use super::html::format_time;
use super::{Report, RouteReport, Wording};
use crate::record::{ComparisonRecord, Source};
use crate::recording::ReplayRun;

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// Escapes what would break a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render(report: &Report) -> String {
    let f = &report.filter;
    let mut out = String::new();
    let _ = writeln!(out, "## Diff report\n");
    let _ = writeln!(
        out,
        "Comparisons from {} to {}{}{}{}; generated {}.\n",
        format_time(f.since_ms),
        format_time(f.until_ms),
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
        format_time(report.generated_at_ms)
    );
    if f.includes(Source::Shadow) {
        live(&mut out, report);
    }
    if f.includes(Source::Replay) && (!report.replay.is_empty() || f.source == Some(Source::Replay))
    {
        replayed(&mut out, report);
    }
    out
}

fn live(out: &mut String, report: &Report) {
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
        details(out, r);
    }
}

fn replayed(out: &mut String, report: &Report) {
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
        runs(out, &entry.runs);
        details(out, r);
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

fn runs(out: &mut String, runs: &[ReplayRun]) {
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
            format_time(run.started_at_ms),
            run.finished_at_ms
                .map(format_time)
                .unwrap_or_else(|| "-".into()),
            run.state.as_str(),
            run.message
                .as_deref()
                .map(|m| format!(": {}", cell(m)))
                .unwrap_or_default(),
            cell(&run.target),
            format_time(run.since_ms),
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
fn details(out: &mut String, r: &RouteReport) {
    let w = Wording::of(r.source);
    let _ = writeln!(out, "{}.\n", r.verdict_reason);
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
    examples(out, &r.examples);
}

/// The stored examples, one row each, with their source.
fn examples(out: &mut String, examples: &[ComparisonRecord]) {
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
            format_time(e.created_at_ms),
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
        let md = render(&crate::report::samples::sample_report([
            Some("canary"),
            None,
        ]));
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
        let md = render(&crate::report::samples::sample_report([None, None]));
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
        let md = render(&crate::report::samples::sample_report([Some("a|b"), None]));
        assert!(md.contains("| **ready** | a\\|b | 2000 |"), "{md}");
    }

    #[test]
    fn replayed_traffic_has_its_own_section_with_runs_and_recorded_answers() {
        let report = crate::report::samples::sample_with_replay();
        let md = render(&report);
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
        let md = render(&report);
        assert!(md.contains("live shadow traffic only"), "{md}");
        assert!(!md.contains("Replayed traffic"), "{md}");

        let mut report = crate::report::samples::sample_with_replay();
        report.filter.source = Some(Source::Replay);
        report.routes.clear();
        let md = render(&report);
        assert!(md.contains("replayed traffic only"), "{md}");
        assert!(!md.contains("No shadow comparisons"), "{md}");
        assert!(md.contains("### `orders` (replay)"), "{md}");
        // Asked for replays, and there are none: said so.
        report.replay.clear();
        let md = render(&report);
        assert!(
            md.contains("No replayed comparisons and no replay runs in this window."),
            "{md}"
        );
    }

    #[test]
    fn without_replays_there_is_no_replay_section() {
        let md = render(&crate::report::samples::sample_report([None, None]));
        assert!(!md.contains("Replayed traffic"), "{md}");
    }
}
