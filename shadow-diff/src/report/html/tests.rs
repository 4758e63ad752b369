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
    let html = render(&report, &Links::Anchors, &[], "24h", Times::Utc);
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
    let html = render(&report, &Links::Anchors, &[], "24h", Times::Utc);
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
    let html = render(&report, &Links::Anchors, &[], "24h", Times::Utc);
    assert!(!html.contains("<b>"), "{html}");
    assert!(
        html.contains("data-stage=\"&lt;b&gt;&quot;x&quot;&lt;/b&gt;\""),
        "{html}"
    );
    let page = render_route(&report, "orders", 0, "since=24h", Times::Utc).unwrap();
    assert!(!page.contains("<b>"), "{page}");
    assert!(
        page.contains(">&lt;b&gt;&quot;x&quot;&lt;/b&gt;</span>"),
        "{page}"
    );
}

#[test]
fn dates() {
    assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(format_time(1_795_321_829_000), "2026-11-22 04:30:29 UTC");
}

#[test]
fn replayed_traffic_is_shown_apart_with_its_runs() {
    let report = crate::report::samples::sample_with_replay();
    let html = render(&report, &Links::Anchors, &[], "24h", Times::Utc);
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
    let page = render_route(&report, "orders", 0, "since=24h", Times::Utc).unwrap();
    assert!(page.contains("<h2>Live shadow traffic</h2>"), "{page}");
    assert!(page.contains(r#"<section id="replay-orders""#), "{page}");
    assert!(page.contains("<h2>Replayed traffic</h2>"), "{page}");
    // Nothing at all for a route: no page.
    assert!(render_route(&report, "nope", 0, "", Times::Utc).is_none());
    // A route replayed but never shadowed still has its page.
    report.routes.clear();
    let page = render_route(&report, "orders", 0, "", Times::Utc).unwrap();
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
        Times::Utc,
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
    let html = render(&report, &links, &[], "24h", Times::Utc);
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
    let html = render(&report, &links, &[], "24h", Times::Utc);
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

#[test]
fn every_page_carries_the_served_policy_and_styles_by_class() {
    let report = crate::report::samples::sample_with_replay();
    let meta = r#"<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; style-src &#39;unsafe-inline&#39;; form-action &#39;self&#39;">"#;
    let summary = render(&report, &Links::Anchors, &[], "24h", Times::Utc);
    let page = render_route(&report, "orders", 0, "", Times::Utc).unwrap();
    for html in [&summary, &page] {
        assert!(html.contains(meta), "{html}");
        // In the head, before anything the policy governs.
        assert!(html.find(meta) < html.find("<style>"));
        assert!(!html.contains(" style="), "no style attributes: {html}");
        assert!(!html.contains("<script"), "{html}");
    }
}

#[test]
fn real_differences_are_grouped_by_signature_with_one_example_each() {
    use crate::report::samples::sample_example;
    use crate::report::{SignatureGroup, Signatures};
    let mut report = crate::report::samples::sample_report([None, None]);
    let newest = sample_example("s-9", "orders", Source::Shadow);
    let other = sample_example("s-2", "orders", Source::Shadow);
    let r = &mut report.routes[0];
    r.real_diffs = 20;
    r.signatures = Signatures {
        groups: vec![
            SignatureGroup {
                fields: vec!["/total".into()],
                count: 12,
                example: Some(newest.clone()),
            },
            SignatureGroup {
                fields: vec!["/a<b>".into(), "status".into()],
                count: 5,
                example: Some(other.clone()),
            },
            SignatureGroup {
                fields: vec!["/gone".into()],
                count: 1,
                example: None,
            },
        ],
        more_groups: 2,
        more_comparisons: 2,
    };
    // The page of examples: both shown comparisons and one that is not.
    r.examples = vec![
        newest,
        sample_example("s-5", "orders", Source::Shadow),
        other,
    ];
    let page = render_route(&report, "orders", 0, "", Times::Utc).unwrap();
    assert!(
        page.contains("20 comparisons with real differences, in 5 signatures"),
        "{page}"
    );
    assert!(
        page.contains(r##"<tr data-signature="/total" data-count="12"><td><code>/total</code></td><td class="num">12</td><td class="num">60.00%</td><td><a href="#sig-route-orders-1"><code>GET /api/orders/7</code></a></td></tr>"##),
        "{page}"
    );
    assert!(
        page.contains(r#"<tr data-signature="/a&lt;b&gt; + status" data-count="5"><td><code>/a&lt;b&gt;</code> + <code>status</code></td>"#),
        "escaped: {page}"
    );
    assert!(
        page.contains(r#"data-count="1"><td><code>/gone</code></td><td class="num">1</td><td class="num">5.00%</td><td><span class="empty">pruned</span></td>"#),
        "{page}"
    );
    assert!(
        page.contains("And 2 more signatures (2 comparisons), not shown."),
        "{page}"
    );
    // One comparison in full per group that has one, under its anchor.
    assert_eq!(page.matches(r#"<div class="example""#).count(), 2, "{page}");
    assert!(page.contains(r#"<div class="signature" id="sig-route-orders-2"><h4>Signature 2: <code>/a&lt;b&gt;</code> + <code>status</code> · 5 comparisons, the newest:</h4><div class="example" id="diff-s-2""#), "{page}");
    // The list links the comparisons shown in full, and only those.
    assert!(
        page.contains(r##"<tr data-source="shadow"><td><a href="#sig-route-orders-1">"##),
        "{page}"
    );
    assert!(
        page.contains(r#"<tr data-source="shadow"><td>2027-01-15 08:00:30 UTC</td>"#),
        "{page}"
    );
    // Without real differences: no table, a line saying so.
    let users = render_route(&report, "users", 0, "", Times::Utc).unwrap();
    assert!(
        users.contains("No comparison with a real difference."),
        "{users}"
    );
    assert!(!users.contains(r#"<table class="signatures">"#));
}

#[test]
fn the_summary_and_the_route_show_the_charts_and_say_their_numbers() {
    use crate::report::TrendPoint;
    let mut report = crate::report::samples::sample_report([None, None]);
    report.routes[0].trend = vec![TrendPoint {
        start_ms: 1_800_000_000_000,
        compared: 2000,
        real_diffs: 2,
    }];
    let html = render(&report, &Links::Anchors, &[], "24h", Times::Utc);
    let table = summary_table(&html);
    assert!(table.contains("<th>Trend</th>"), "{table}");
    let orders = &table[table.find(r#"data-route="orders""#).unwrap()..];
    let orders = &orders[..orders.find("</tr>").unwrap()];
    assert!(
        orders.contains(r#"<svg class="ci" role="img""#)
            && orders.contains(r#"<svg class="spark""#),
        "{orders}"
    );
    // users has no trend: a dash, not an empty chart.
    let users = &table[table.find(r#"data-route="users""#).unwrap()..];
    assert!(users.contains("<td>—</td></tr>"), "{users}");
    // The route's section: the charts, each with its numbers as text.
    let section = &html[html.find(r#"<section id="route-orders""#).unwrap()..];
    assert!(
        !section.contains(r#"<table class="trend">"#),
        "no table of hours"
    );
    assert!(
        section.contains("<figcaption>real-diff rate 0.10%, 95% CI "),
        "{section}"
    );
    assert!(
        section.contains("<figcaption>real-diff rate per hour over 1 hour with comparisons: first 0.10% (2 of 2000) at 2027-01-15 08:00 UTC"),
        "{section}"
    );
}

#[test]
fn local_times_are_written_with_their_offset_everywhere() {
    let report = crate::report::samples::sample_with_replay();
    let links = Links::Server {
        query: "time=local".into(),
    };
    let html = render(&report, &links, &[], "24h", Times::Local);
    assert!(
        html.contains(&Times::Local.format(report.generated_at_ms)),
        "{html}"
    );
    assert!(
        html.contains(r#"<option value="local" selected>server's local time</option>"#),
        "{html}"
    );
    let page = render_route(&report, "orders", 0, "time=local", Times::Local).unwrap();
    // Every time on the page: the example's, the run's, the window's.
    for ms in [1_800_000_030_000, 1_800_000_000_000, report.filter.until_ms] {
        assert!(page.contains(&Times::Local.format(ms)), "{ms}: {page}");
    }
    assert!(!page.contains(" UTC<") && !page.contains(" UTC "), "{page}");
    assert!(page.contains(r#"href="/report?time=local""#), "{page}");
}
