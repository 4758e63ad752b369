//! The report in Markdown, to paste into a change ticket: the verdict per
//! route with its numbers (and its stage, when the proxy filled it in), the
//! fields that differ, and the lines to add to routes.yaml for noise.

use std::fmt::Write;

use super::Report;
use super::html::format_time;

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
    let _ = writeln!(out, "## Shadow diff report\n");
    let _ = writeln!(
        out,
        "Comparisons from {} to {}{}{}; generated {}.\n",
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
        format_time(report.generated_at_ms)
    );
    if report.routes.is_empty() {
        out.push_str("No shadow comparisons in this window.\n");
        return out;
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
            "| `{}` | **{}** |{} {} | {} ({}–{}) | {} | {} |",
            r.route,
            r.verdict.label(),
            stage,
            r.compared,
            pct(r.real_diff_rate),
            pct(r.real_diff_rate_ci95[0]),
            pct(r.real_diff_rate_ci95[1]),
            pct(r.noise_rate),
            r.config_versions
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for r in &report.routes {
        let _ = writeln!(out, "\n### `{}`: {}\n", r.route, r.verdict.label());
        let _ = writeln!(out, "{}.\n", r.verdict_reason);
        if r.fields.is_empty() {
            out.push_str("No differing fields.\n");
            continue;
        }
        out.push_str("| Field | Class | Count | Share | Example (legacy → new) | Why |\n|---|---|---:|---:|---|---|\n");
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_table_has_a_stage_column_when_stages_are_known() {
        let md = render(&crate::report::tests::sample_report([Some("canary"), None]));
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
        let md = render(&crate::report::tests::sample_report([None, None]));
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
        let md = render(&crate::report::tests::sample_report([Some("a|b"), None]));
        assert!(md.contains("| **ready** | a\\|b | 2000 |"), "{md}");
    }
}
