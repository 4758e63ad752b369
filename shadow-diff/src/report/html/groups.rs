//! A route's real differences grouped by signature (the set of real fields
//! that differed in a comparison): a table of the groups, largest first,
//! with how many comparisons each holds, then one comparison of each in
//! full. A thousand comparisons that differ the same way read as one line,
//! not as a thousand examples.

use std::collections::HashMap;
use std::fmt::Write;

use super::{escape, examples, pct, section_id};
use crate::report::{RouteReport, Times};

/// The anchor of group `i` of the route's section.
pub(super) fn group_id(r: &RouteReport, i: usize) -> String {
    format!("sig-{}-{}", section_id(r.source, &r.route), i + 1)
}

/// The comparisons the groups show in full, with their anchors.
pub(super) fn shown(r: &RouteReport) -> HashMap<&str, String> {
    r.signatures
        .groups
        .iter()
        .enumerate()
        .filter_map(|(i, g)| Some((g.example.as_ref()?.id.as_str(), group_id(r, i))))
        .collect()
}

/// `1 comparison`, `2 comparisons`.
fn counted(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The signature as the table shows it: the fields, each as code.
fn fields_cell(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("<code>{}</code>", escape(f)))
        .collect::<Vec<_>>()
        .join(" + ")
}

pub(super) fn section(out: &mut String, r: &RouteReport, times: Times) {
    out.push_str("<h3>Differences by signature</h3>");
    let s = &r.signatures;
    if s.groups.is_empty() {
        out.push_str(r#"<p class="empty">No comparison with a real difference.</p>"#);
        return;
    }
    let total = s.groups.len() as u64 + s.more_groups;
    let _ = write!(
        out,
        r#"<p class="meta">{} with real differences, in {} (the real fields that differed together); noise-only comparisons are not grouped.</p>"#,
        counted(r.real_diffs, "comparison"),
        counted(total, "signature"),
    );
    out.push_str(r#"<table class="signatures"><thead><tr><th>Real fields that differ</th><th class="num">Comparisons</th><th class="num">Share of real diffs</th><th>Example</th></tr></thead><tbody>"#);
    for (i, g) in s.groups.iter().enumerate() {
        let example = match &g.example {
            Some(e) => format!(
                r##"<a href="#{}"><code>{} {}</code></a>"##,
                group_id(r, i),
                escape(&e.request.method),
                escape(&e.request.path)
            ),
            None => r#"<span class="empty">pruned</span>"#.into(),
        };
        let _ = write!(
            out,
            r#"<tr data-signature="{}" data-count="{}"><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            escape(&g.fields.join(" + ")),
            g.count,
            fields_cell(&g.fields),
            g.count,
            pct(g.count as f64 / r.real_diffs.max(1) as f64),
            example
        );
    }
    out.push_str("</tbody></table>");
    if s.more_groups > 0 {
        let _ = write!(
            out,
            r#"<p class="meta more-signatures">And {} more {} ({}), not shown.</p>"#,
            s.more_groups,
            if s.more_groups == 1 {
                "signature"
            } else {
                "signatures"
            },
            counted(s.more_comparisons, "comparison")
        );
    }
    for (i, g) in s.groups.iter().enumerate() {
        let Some(e) = &g.example else { continue };
        let _ = write!(
            out,
            r#"<div class="signature" id="{}"><h4>Signature {}: {} · {}, the newest:</h4>"#,
            group_id(r, i),
            i + 1,
            fields_cell(&g.fields),
            counted(g.count, "comparison")
        );
        examples::example(out, e, times);
        out.push_str("</div>");
    }
}
