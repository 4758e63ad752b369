//! The report's two small charts, as inline SVG (the page runs no script
//! and loads nothing): a route's real-diff rate with its 95% interval
//! against the threshold, on one horizontal scale, and a sparkline of the
//! rate per hour. Each carries its numbers in a `<title>` (what a screen
//! reader says, and the tooltip), and the page says them in text too: a
//! chart is a glance, not the only place a number is.

use std::fmt::Write;

use super::{escape, pct};
use crate::report::{RouteReport, RouteVerdict, Times, TrendPoint};

/// Scale ends a chart may have: a round number a reader takes in at once.
const SCALE_ENDS: [f64; 9] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];

/// The smallest round scale end with room above `top` (every value a
/// chart shows, the threshold included); at most 100%.
pub(super) fn scale_end(top: f64) -> f64 {
    let top = if top.is_finite() { top.max(0.0) } else { 1.0 };
    SCALE_ENDS
        .into_iter()
        .find(|&end| end >= top * 1.1)
        .unwrap_or(1.0)
}

/// Width, height and side margin of the interval chart.
const CI_W: f64 = 200.0;
const CI_H: f64 = 34.0;
const CI_PAD: f64 = 6.0;

/// Where `v` lies on a scale ending at `end`, `pad` in from each side.
fn x_of(v: f64, end: f64, width: f64, pad: f64) -> f64 {
    pad + (v / end).clamp(0.0, 1.0) * (width - 2.0 * pad)
}

fn verdict_class(v: RouteVerdict) -> &'static str {
    match v {
        RouteVerdict::Ready => "band-ready",
        RouteVerdict::NotReady => "band-not_ready",
        RouteVerdict::NotEnoughData => "band-not_enough_data",
    }
}

/// What the interval chart says, in words.
pub(super) fn interval_words(r: &RouteReport) -> String {
    let [low, high] = r.real_diff_rate_ci95;
    format!(
        "real-diff rate {}, 95% CI {}–{}, threshold {}",
        pct(r.real_diff_rate),
        pct(low),
        pct(high),
        pct(r.threshold.max_diff_rate)
    )
}

/// The interval as a band (coloured by verdict), the rate as a dot, the
/// threshold as a line across, on a scale from 0 to a round number.
pub(super) fn interval(r: &RouteReport) -> String {
    let [low, high] = r.real_diff_rate_ci95;
    let threshold = r.threshold.max_diff_rate;
    let end = scale_end(high.max(threshold).max(r.real_diff_rate));
    let x = |v: f64| x_of(v, end, CI_W, CI_PAD);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="ci" role="img" width="{CI_W}" height="{CI_H}" viewBox="0 0 {CI_W} {CI_H}" data-scale-end="{end}"><title>{title}</title>"#,
        title = escape(&capitalized(&interval_words(r))),
    );
    let _ = write!(
        out,
        r#"<rect class="ci-track" x="{CI_PAD}" y="9" width="{:.1}" height="6"/>"#,
        CI_W - 2.0 * CI_PAD
    );
    let _ = write!(
        out,
        r#"<rect class="ci-band {}" x="{:.1}" y="6" width="{:.1}" height="12"/>"#,
        verdict_class(r.verdict),
        x(low),
        (x(high) - x(low)).max(1.0)
    );
    let _ = write!(
        out,
        r#"<line class="ci-threshold" x1="{0:.1}" y1="2" x2="{0:.1}" y2="22"/>"#,
        x(threshold)
    );
    let _ = write!(
        out,
        r#"<circle class="ci-point" cx="{:.1}" cy="12" r="3"/>"#,
        x(r.real_diff_rate)
    );
    let _ = write!(
        out,
        r#"<text class="axis" x="{CI_PAD}" y="32">0%</text><text class="axis end" x="{:.1}" y="32">{}</text></svg>"#,
        CI_W - CI_PAD,
        scale_label(end)
    );
    out
}

/// `0.5%`, `10%`: a scale end without trailing zeros.
fn scale_label(end: f64) -> String {
    let s = format!("{:.1}", end * 100.0);
    format!("{}%", s.trim_end_matches(".0"))
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn rate(t: &TrendPoint) -> f64 {
    if t.compared == 0 {
        0.0
    } else {
        t.real_diffs as f64 / t.compared as f64
    }
}

/// What the sparkline shows, in words: first, last and peak hour.
pub(in crate::report) fn trend_words(trend: &[TrendPoint], times: Times) -> Option<String> {
    let (first, last) = (trend.first()?, trend.last()?);
    // The first of equal peaks: the earliest hour it was that bad.
    let peak = trend
        .iter()
        .fold(first, |p, t| if rate(t) > rate(p) { t } else { p });
    let at = |t: &TrendPoint| {
        format!(
            "{} ({} of {}) at {}",
            pct(rate(t)),
            t.real_diffs,
            t.compared,
            times.format_minute(t.start_ms)
        )
    };
    Some(format!(
        "real-diff rate per hour over {} hour{} with comparisons: first {}, last {}, peak {}",
        trend.len(),
        if trend.len() == 1 { "" } else { "s" },
        at(first),
        at(last),
        at(peak)
    ))
}

/// The size of a sparkline: small in a summary row, larger on a route's
/// section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spark {
    Row,
    Section,
}

impl Spark {
    fn size(self) -> (f64, f64) {
        match self {
            Spark::Row => (160.0, 28.0),
            Spark::Section => (480.0, 64.0),
        }
    }
}

/// Polyline points of the rate per hour: one line per run of consecutive
/// hours (an hour without comparisons has no rate, so the line breaks
/// there instead of drawing one), as `x,y` lists.
pub(super) fn spark_runs(
    trend: &[TrendPoint],
    end: f64,
    (w, h): (f64, f64),
) -> Vec<Vec<(f64, f64)>> {
    const PAD: f64 = 3.0;
    let (Some(first), Some(last)) = (trend.first(), trend.last()) else {
        return Vec::new();
    };
    let span = (last.start_ms - first.start_ms) as f64;
    // The bucket width is the smallest step between points.
    let step = trend
        .windows(2)
        .map(|p| p[1].start_ms - p[0].start_ms)
        .min()
        .unwrap_or(i64::MAX);
    let x = |t: &TrendPoint| {
        if span <= 0.0 {
            w / 2.0
        } else {
            PAD + (t.start_ms - first.start_ms) as f64 / span * (w - 2.0 * PAD)
        }
    };
    let y = |t: &TrendPoint| h - PAD - (rate(t) / end).clamp(0.0, 1.0) * (h - 2.0 * PAD);
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut previous: Option<i64> = None;
    for t in trend {
        let point = (x(t), y(t));
        match (previous, runs.last_mut()) {
            (Some(p), Some(run)) if t.start_ms - p <= step => run.push(point),
            _ => runs.push(vec![point]),
        }
        previous = Some(t.start_ms);
    }
    runs
}

/// The rate per hour as a line, with the threshold dashed across and the
/// peak marked; `None` without any hour to draw.
pub(super) fn sparkline(r: &RouteReport, times: Times, size: Spark) -> Option<String> {
    let words = trend_words(&r.trend, times)?;
    let (w, h) = size.size();
    let peak = r.trend.iter().map(rate).fold(0.0, f64::max);
    let threshold = r.threshold.max_diff_rate;
    let end = scale_end(peak.max(threshold));
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="spark" role="img" width="{w}" height="{h}" viewBox="0 0 {w} {h}" data-points="{}"><title>{}</title>"#,
        r.trend.len(),
        escape(&format!(
            "{}; threshold {}",
            capitalized(&words),
            pct(threshold)
        ))
    );
    let ty = h - 3.0 - (threshold / end).clamp(0.0, 1.0) * (h - 6.0);
    let _ = write!(
        out,
        r#"<line class="spark-threshold" x1="0" y1="{ty:.1}" x2="{w}" y2="{ty:.1}"/>"#
    );
    let runs = spark_runs(&r.trend, end, (w, h));
    for run in &runs {
        if let [(x, y)] = run.as_slice() {
            let _ = write!(
                out,
                r#"<circle class="spark-dot" cx="{x:.1}" cy="{y:.1}" r="2"/>"#
            );
        } else {
            let points: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                out,
                r#"<polyline class="spark-line" points="{}"/>"#,
                points.join(" ")
            );
        }
    }
    // The peak: the first point at the highest rate.
    if let Some((x, y)) =
        runs.iter()
            .flatten()
            .copied()
            .fold(None, |best: Option<(f64, f64)>, p| match best {
                Some(b) if b.1 <= p.1 => Some(b),
                _ => Some(p),
            })
    {
        let _ = write!(
            out,
            r#"<circle class="spark-peak" cx="{x:.1}" cy="{y:.1}" r="2.5"/>"#
        );
    }
    out.push_str("</svg>");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::samples::sample_report;

    #[test]
    fn scales_end_at_a_round_number_with_room_above_the_top() {
        assert_eq!(scale_end(0.0), 0.001);
        assert_eq!(scale_end(0.004), 0.005);
        assert_eq!(scale_end(0.01), 0.02, "the threshold is never on the edge");
        assert_eq!(scale_end(0.3776), 0.5);
        assert_eq!(scale_end(0.5), 1.0);
        assert_eq!(scale_end(1.0), 1.0);
        assert_eq!(scale_end(f64::NAN), 1.0);
        assert_eq!(scale_label(0.005), "0.5%");
        assert_eq!(scale_label(0.5), "50%");
    }

    #[test]
    fn the_interval_chart_puts_band_dot_and_threshold_where_the_numbers_are() {
        let mut r = sample_report([None, None]).routes.remove(0);
        r.real_diff_rate = 0.3;
        r.real_diff_rate_ci95 = [0.2324, 0.3776];
        r.threshold.max_diff_rate = 0.5;
        r.verdict = RouteVerdict::Ready;
        let svg = interval(&r);
        // Scale 0 to 100%: x = 6 + v × 188.
        assert!(svg.contains(r#"data-scale-end="1""#), "{svg}");
        assert!(
            svg.contains(
                "<title>Real-diff rate 30.00%, 95% CI 23.24%–37.76%, threshold 50.00%</title>"
            ),
            "{svg}"
        );
        assert!(
            svg.contains(
                r#"<rect class="ci-band band-ready" x="49.7" y="6" width="27.3" height="12"/>"#
            ),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<line class="ci-threshold" x1="100.0" y1="2" x2="100.0" y2="22"/>"#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<circle class="ci-point" cx="62.4""#),
            "{svg}"
        );
        assert!(svg.contains(r#">100%</text></svg>"#), "{svg}");
        // A tiny rate gets a scale of its own, and an empty interval still
        // shows as a sliver.
        r.real_diff_rate = 0.0;
        r.real_diff_rate_ci95 = [0.0, 0.0];
        r.threshold.max_diff_rate = 0.001;
        r.verdict = RouteVerdict::NotEnoughData;
        let svg = interval(&r);
        assert!(svg.contains(r#"data-scale-end="0.002""#), "{svg}");
        assert!(
            svg.contains(r#"class="ci-band band-not_enough_data" x="6.0" y="6" width="1.0""#),
            "{svg}"
        );
        assert!(svg.contains(r#"x1="100.0""#), "halfway: {svg}");
    }

    fn point(hour: i64, compared: u64, real_diffs: u64) -> TrendPoint {
        TrendPoint {
            start_ms: 1_800_000_000_000 / 3_600_000 * 3_600_000 + hour * 3_600_000,
            compared,
            real_diffs,
        }
    }

    #[test]
    fn the_sparkline_breaks_where_an_hour_had_no_comparisons() {
        let trend = [
            point(0, 100, 10),
            point(1, 100, 20),
            point(2, 100, 0),
            point(4, 50, 5),
        ];
        // 160 × 28, 3 in from each side; the scale ends at 20% × 1.1 → 50%.
        let runs = spark_runs(&trend, 0.5, (160.0, 28.0));
        assert_eq!(runs.len(), 2, "{runs:?}");
        let xs: Vec<f64> = runs.iter().flatten().map(|p| p.0).collect();
        assert_eq!(xs, [3.0, 41.5, 80.0, 157.0]);
        let ys: Vec<String> = runs
            .iter()
            .flatten()
            .map(|p| format!("{:.1}", p.1))
            .collect();
        // y = 25 - rate / 50% × 22.
        assert_eq!(ys, ["20.6", "16.2", "25.0", "20.6"]);

        let mut r = sample_report([None, None]).routes.remove(0);
        r.trend = trend.to_vec();
        r.threshold.max_diff_rate = 0.05;
        let svg = sparkline(&r, Times::Utc, Spark::Row).unwrap();
        assert!(svg.contains(r#"data-points="4""#), "{svg}");
        assert!(
            svg.contains(r#"<polyline class="spark-line" points="3.0,20.6 41.5,16.2 80.0,25.0"/>"#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<circle class="spark-dot" cx="157.0" cy="20.6" r="2"/>"#),
            "the lone hour is a dot: {svg}"
        );
        assert!(
            svg.contains(r#"<circle class="spark-peak" cx="41.5" cy="16.2""#),
            "{svg}"
        );
        // Threshold 5% on a 50% scale: y = 25 - 2.2.
        assert!(svg.contains(r#"y1="22.8""#), "{svg}");
        let words = trend_words(&r.trend, Times::Utc).unwrap();
        assert_eq!(
            words,
            "real-diff rate per hour over 4 hours with comparisons: \
             first 10.00% (10 of 100) at 2027-01-15 08:00 UTC, \
             last 10.00% (5 of 50) at 2027-01-15 12:00 UTC, \
             peak 20.00% (20 of 100) at 2027-01-15 09:00 UTC"
        );
        assert!(svg.contains(&format!("<title>R{}; threshold 5.00%</title>", &words[1..])));

        // One hour: a dot in the middle. None: no chart.
        r.trend = vec![point(0, 10, 1)];
        let svg = sparkline(&r, Times::Utc, Spark::Section).unwrap();
        assert!(
            svg.contains(r#"<circle class="spark-dot" cx="240.0""#),
            "{svg}"
        );
        r.trend.clear();
        assert!(sparkline(&r, Times::Utc, Spark::Row).is_none());
        assert!(trend_words(&r.trend, Times::Utc).is_none());
    }
}
