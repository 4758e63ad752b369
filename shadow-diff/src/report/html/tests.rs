//! The page: summaries, stages, escaping, and replayed traffic apart.

use super::*;

fn summary_table(html: &str) -> &str {
    let start = html.find(r#"<table class="summary">"#).expect(html);
    let len = html[start..].find("</table>").unwrap();
    &html[start..start + len]
}

#[test]
fn the_summary_shows_stages_when_known() {
    let report = crate::report::samples::sample_report([Some("canary"), None]);
    let html = render(&report, &Links::Anchors, &[], "24h");
    let table = summary_table(&html);
    assert!(table.contains("<th>Verdict</th><th>Stage</th>"), "{table}");
    assert!(
        table.contains(
            r#"<span class="badge stage" data-stage="canary" title="migration stage">canary</span>"#
        ),
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
        html.contains(r#"<p class="verdict">stage <span class="badge stage" data-stage="canary""#),
        "{html}"
    );
    assert!(
        html.contains(".stage {"),
        "styled in the page's own stylesheet"
    );
}

#[test]
fn without_stages_the_summary_has_no_stage_column() {
    let report = crate::report::samples::sample_report([None, None]);
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
    let report = crate::report::samples::sample_report([Some("<b>\"x\"</b>"), None]);
    let html = render(&report, &Links::Anchors, &[], "24h");
    assert!(!html.contains("<b>"), "{html}");
    assert!(
        html.contains("data-stage=\"&lt;b&gt;&quot;x&quot;&lt;/b&gt;\""),
        "{html}"
    );
    let page = render_route(&report, "orders", 0, "since=24h").unwrap();
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

#[test]
fn replayed_traffic_is_shown_apart_with_its_runs() {
    let report = crate::report::samples::sample_with_replay();
    let html = render(&report, &Links::Anchors, &[], "24h");
    // The live summary is the live data alone; the replay summary
    // follows, with its own verdicts.
    let live = summary_table(&html);
    assert!(!live.contains("replay"), "{live}");
    let replay_at = html.find(r#"<table class="replay-summary">"#).expect(&html);
    assert!(html[..replay_at].contains("<h2>Replayed traffic</h2>"));
    let replay = &html[replay_at..];
    let replay = &replay[..replay.find("</table>").unwrap()];
    assert!(
        replay.contains(r##"<tr data-route="orders" data-source="replay"><td><a href="#replay-orders">orders</a></td><td><span class="badge not_ready""##),
        "{replay}"
    );
    assert!(
        replay.contains("last: done against <code>orders-v2</code>"),
        "{replay}"
    );
    // Each route's live section, then its replay section.
    let live_section = html
        .find(r#"<section id="route-orders" class="route live""#)
        .unwrap();
    let replay_section = html
        .find(r#"<section id="replay-orders" class="route replay" data-source="replay">"#)
        .unwrap();
    assert!(live_section < replay_section);
    let section = &html[replay_section..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(
        section.contains("<h2>Route orders · replayed traffic</h2>"),
        "{section}"
    );
    assert!(section.contains("never count toward the route's live verdict"));
    assert!(section.contains(r#"<table class="runs">"#), "{section}");
    assert!(
        section.contains("<th>Example (recorded → replayed)</th>"),
        "{section}"
    );
    assert!(section.contains("<h4>recorded · 200</h4>"), "{section}");
    assert!(!section.contains("<h4>legacy"), "{section}");
    assert!(
        section.contains(r#"<span class="badge src-replay" data-source="replay">replay</span>"#),
        "the examples show their source: {section}"
    );
    let live = &html[live_section..replay_section];
    assert!(live.contains("<h4>legacy · 200</h4>"), "{live}");
    assert!(
        live.contains(r#"data-source="shadow">live shadow</span>"#),
        "{live}"
    );
    assert!(!live.contains("runs"), "{live}");
    assert!(!html.contains("<script"), "still no scripts");
}

#[test]
fn a_route_page_shows_both_parts_and_a_replay_only_route_has_one() {
    let mut report = crate::report::samples::sample_with_replay();
    let page = render_route(&report, "orders", 0, "since=24h").unwrap();
    assert!(page.contains("<h2>Live shadow traffic</h2>"), "{page}");
    assert!(page.contains(r#"<section id="replay-orders""#), "{page}");
    assert!(page.contains("<h2>Replayed traffic</h2>"), "{page}");
    // Nothing at all for a route: no page.
    assert!(render_route(&report, "nope", 0, "").is_none());
    // A route replayed but never shadowed still has its page.
    report.routes.clear();
    let page = render_route(&report, "orders", 0, "").unwrap();
    assert!(!page.contains("Live shadow traffic"), "{page}");
    assert!(page.contains(r#"<section id="replay-orders""#), "{page}");
    // The summary links to the replay part of the route's page.
    let summary = render(
        &report,
        &Links::Server {
            query: "source=replay".into(),
        },
        &["orders".to_string()],
        "24h",
    );
    assert!(
        summary
            .contains(r##"<a href="/report/route/orders?source=replay#replay-orders">orders</a>"##),
        "{summary}"
    );
    assert!(
        summary.contains("No shadow comparisons in this window."),
        "{summary}"
    );
}

#[test]
fn the_filter_form_chooses_the_source() {
    let mut report = crate::report::samples::sample_report([None, None]);
    let links = Links::Server {
        query: String::new(),
    };
    let html = render(&report, &links, &[], "24h");
    assert!(
        html.contains(
            r#"<select name="source"><option value="" selected>live and replay</option>"#
        ),
        "{html}"
    );
    assert!(
        !html.contains("Replayed traffic"),
        "no replay data, no replay part"
    );
    report.filter.source = Some(Source::Replay);
    report.routes.clear();
    let html = render(&report, &links, &[], "24h");
    assert!(
        html.contains(r#"<option value="replay" selected>replay only</option>"#),
        "{html}"
    );
    assert!(html.contains("replayed traffic only"), "{html}");
    assert!(!html.contains("May each route move on?"), "{html}");
    assert!(
        html.contains("No replayed comparisons and no replay runs in this window."),
        "{html}"
    );
}
