//! Diff reports: may this route move on? Built from the store for a time
//! window (and optionally a route and a tenant): per route, the comparisons,
//! the real-diff rate with a 95% confidence interval, the noise rate, a
//! verdict against the route's threshold, the trend, the config versions
//! covered, the fields that differ most (real or noise, and why), the
//! comparisons with real differences grouped by signature (the set of real
//! fields that differ) with one example each, and a page of examples. Rendered as JSON (the [`Report`] itself, a stable shape), as
//! HTML ([`html`]) and as Markdown ([`markdown`]). A route's verdict alone,
//! without the rest, comes cheaper from [`verdict()`].
//!
//! Live shadow comparisons and replayed ones ([`Source`]) are never mixed:
//! [`Report::routes`] holds the live figures (the verdict a rollout reads),
//! [`Report::replay`] the same figures computed from replayed comparisons
//! alone, with the replay runs ([`replay`]). The filter's `source` narrows
//! a report to one of them.
//!
//! No SQL here (nor in [`build()`], which assembles a report): what is
//! stored is read through the store's queries
//! ([`crate::DiffAndHistoryStore::counts`], [`crate::DiffAndHistoryStore::diffs`],
//! [`crate::DiffAndHistoryStore::noise_models`],
//! [`crate::DiffAndHistoryStore::replay_runs`] and
//! [`crate::store::report_queries`]); this module turns those numbers into
//! rates, intervals and verdicts.

mod build;
pub mod html;
pub mod markdown;
pub mod replay;
#[cfg(test)]
pub(crate) mod samples;
mod sources;
mod times;
pub mod verdict;

pub use build::build;
pub use replay::ReplayReport;
pub use times::Times;
pub use verdict::{VerdictScope, VerdictSummary, verdict};

use serde::{Deserialize, Serialize};

use crate::noise::FieldClass;
use crate::record::{ComparisonRecord, Source};

/// Version of the JSON shape; bumped only on incompatible changes.
pub const REPORT_VERSION: u32 = 1;

/// When a route is ready to move on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Largest acceptable real-diff rate, as a fraction (0.01 = 1%).
    pub max_diff_rate: f64,
    /// Fewest comparisons a verdict is based on.
    pub min_samples: u64,
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold {
            max_diff_rate: 0.01,
            min_samples: 100,
        }
    }
}

/// What the report covers. The report reads whole minutes: the window is
/// widened to the minutes it touches (comparisons are counted per minute).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportFilter {
    pub route: Option<String>,
    /// Only live shadow comparisons (`shadow`) or only replayed ones
    /// (`replay`); both, each in its own part, when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    pub tenant: Option<String>,
    /// Unix milliseconds; the window is `[since, until)`.
    pub since_ms: i64,
    pub until_ms: i64,
}

impl ReportFilter {
    /// Whether the report shows comparisons of `source`.
    pub fn includes(&self, source: Source) -> bool {
        self.source.is_none_or(|s| s == source)
    }
}

/// What a report calls a source and the two answers it compares: legacy
/// and new for live shadow traffic; for a replay, the answer recorded then
/// (stored as `legacy`) and the one the replay target gave (stored as
/// `new`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wording {
    /// The source, as a reader knows it.
    pub source: &'static str,
    /// The answer stored as `legacy`.
    pub legacy: &'static str,
    /// The answer stored as `new`.
    pub new: &'static str,
    /// What `primary_side` means, before the side's name.
    pub primary: &'static str,
}

impl Wording {
    pub fn of(source: Source) -> Wording {
        match source {
            Source::Shadow => Wording {
                source: "live shadow",
                legacy: "legacy",
                new: "new",
                primary: "served by",
            },
            Source::Replay => Wording {
                source: "replay",
                legacy: "recorded",
                new: "replayed",
                primary: "recorded from",
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteVerdict {
    Ready,
    NotReady,
    NotEnoughData,
}

impl RouteVerdict {
    pub fn label(self) -> &'static str {
        match self {
            RouteVerdict::Ready => "ready",
            RouteVerdict::NotReady => "not ready",
            RouteVerdict::NotEnoughData => "not enough data",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub report_version: u32,
    pub generated_at_ms: i64,
    pub filter: ReportFilter,
    /// Live shadow comparisons, per route with any in the window (none when
    /// the filter asks for replays only). A route's verdict here never
    /// counts a replayed comparison.
    pub routes: Vec<RouteReport>,
    /// Replayed comparisons and replay runs, per route with either in the
    /// window (none when the filter asks for live traffic only).
    #[serde(default)]
    pub replay: Vec<ReplayReport>,
}

impl Report {
    /// The route's live figures, if it has any in the report.
    pub fn live(&self, route: &str) -> Option<&RouteReport> {
        self.routes.iter().find(|r| r.route == route)
    }

    /// The route's replay figures and runs, if it has any in the report.
    pub fn replayed(&self, route: &str) -> Option<&ReplayReport> {
        self.replay.iter().find(|r| r.comparisons.route == route)
    }
}

/// One route's figures from the comparisons of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteReport {
    pub route: String,
    /// Which comparisons these figures come from.
    #[serde(default)]
    pub source: Source,
    /// Comparisons made in the window.
    pub compared: u64,
    /// Comparisons with at least one real difference.
    pub real_diffs: u64,
    /// Comparisons whose differences are all noise.
    pub noise_only: u64,
    pub real_diff_rate: f64,
    /// Wilson score interval, 95%.
    pub real_diff_rate_ci95: [f64; 2],
    pub noise_rate: f64,
    pub threshold: Threshold,
    pub verdict: RouteVerdict,
    pub verdict_reason: String,
    /// The route's migration stage ("legacy", "shadow", "canary",
    /// "migrated"): not in the store, so [`build`] leaves it empty and the
    /// proxy fills it in from its configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub config_versions: Vec<i64>,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub trend: Vec<TrendPoint>,
    pub fields: Vec<FieldReport>,
    /// The comparisons with real differences, grouped by signature.
    /// Absent from documents written before it existed.
    #[serde(default)]
    pub signatures: Signatures,
    /// Newest comparisons that differed (a page of them).
    pub examples: Vec<ComparisonRecord>,
    /// All stored differing comparisons in the window (for paging).
    pub stored_diffs: u64,
}

/// A route's comparisons with real differences, grouped by signature: the
/// sorted set of the fields that differed for real (by today's noise
/// knowledge) in a comparison. Counted over every stored comparison of the
/// window; the largest groups are kept, the rest only counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signatures {
    /// Most comparisons first (ties by fields).
    pub groups: Vec<SignatureGroup>,
    /// Signatures left out of `groups`...
    pub more_groups: u64,
    /// ...and the comparisons they count.
    pub more_comparisons: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureGroup {
    /// The real fields that differed, sorted (generalized, as in
    /// [`FieldReport::field`]).
    pub fields: Vec<String>,
    /// Stored comparisons whose real fields are exactly these.
    pub count: u64,
    /// The newest of them; `None` if it was pruned while the report was
    /// being read.
    pub example: Option<ComparisonRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// Start of the bucket, unix milliseconds.
    pub start_ms: i64,
    pub compared: u64,
    pub real_diffs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldReport {
    /// Generalized field: `/items/*/price`, `header:etag`, `status`.
    pub field: String,
    pub class: FieldClass,
    /// Why it is in its class (noise evidence counts).
    pub why: String,
    /// Stored comparisons in which it differed.
    pub count: u64,
    /// `count` over all comparisons in the window.
    pub share: f64,
    pub examples: Vec<FieldExample>,
    /// For noise: the line to paste into the route's `shadow.compare`.
    pub suggestion: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldExample {
    pub id: String,
    pub legacy: Option<String>,
    pub new: Option<String>,
}

/// 95% Wilson score interval for `x` successes in `n` trials.
pub fn wilson(x: u64, n: u64) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let (x, n) = (x as f64, n as f64);
    let z = 1.959_963_984_540_054_f64;
    let p = x / n;
    let denom = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    let low = if x == 0.0 {
        0.0
    } else {
        (center - half).max(0.0)
    };
    let high = if x == n {
        1.0
    } else {
        (center + half).min(1.0)
    };
    [low, high]
}

/// The verdict never reads better than the data: not ready as soon as the
/// whole interval lies above the threshold, whatever the sample size (40
/// real diffs in 40 comparisons is proof enough); ready only when the whole
/// interval lies under it and there are at least `min_samples` comparisons;
/// not enough data otherwise (too few comparisons, or an interval that
/// straddles the threshold).
pub fn route_verdict(compared: u64, real: u64, t: &Threshold) -> (RouteVerdict, String) {
    let [low, high] = wilson(real, compared);
    let pct = |x: f64| format!("{:.2}%", x * 100.0);
    let rate = if compared == 0 {
        0.0
    } else {
        real as f64 / compared as f64
    };
    let numbers = format!(
        "real-diff rate {} (95% CI {}–{})",
        pct(rate),
        pct(low),
        pct(high)
    );
    let threshold = pct(t.max_diff_rate);
    if compared > 0 && low > t.max_diff_rate {
        (
            RouteVerdict::NotReady,
            format!("{numbers} is over the {threshold} threshold"),
        )
    } else if compared < t.min_samples {
        (
            RouteVerdict::NotEnoughData,
            format!(
                "{compared} comparisons; at least {} are needed ({} more) before it can read ready; \
                 {numbers} against the {threshold} threshold",
                t.min_samples,
                t.min_samples - compared
            ),
        )
    } else if high <= t.max_diff_rate {
        (
            RouteVerdict::Ready,
            format!("{numbers} is under the {threshold} threshold"),
        )
    } else {
        (
            RouteVerdict::NotEnoughData,
            format!("{numbers} straddles the {threshold} threshold; more comparisons will decide"),
        )
    }
}

/// The `shadow.compare` line that would silence a noise field.
pub fn suggestion(field: &str) -> Option<String> {
    if let Some(h) = field.strip_prefix("header:") {
        Some(format!("ignore_headers: [{h}]"))
    } else if field.starts_with('/') {
        Some(format!("ignore_fields: [{field}]"))
    } else {
        None
    }
}

/// The noise fields' suggestions merged into one line per key, ready to
/// paste: `ignore_fields: [/a, /b]`, `ignore_headers: [etag]`.
pub fn merged_suggestions(fields: &[FieldReport]) -> Vec<String> {
    let mut pointers = Vec::new();
    let mut headers = Vec::new();
    for f in fields.iter().filter(|f| f.class == FieldClass::Noise) {
        if let Some(h) = f.field.strip_prefix("header:") {
            headers.push(h.to_string());
        } else if f.field.starts_with('/') {
            pointers.push(f.field.clone());
        }
    }
    let mut out = Vec::new();
    if !pointers.is_empty() {
        out.push(format!("ignore_fields: [{}]", pointers.join(", ")));
    }
    if !headers.is_empty() {
        out.push(format!("ignore_headers: [{}]", headers.join(", ")));
    }
    out
}

/// How many examples per route and per field a report carries.
#[derive(Debug, Clone, Copy)]
pub struct ReportLimits {
    pub fields: usize,
    pub examples_per_field: usize,
    pub examples: i64,
    pub examples_offset: i64,
    /// Signature groups per route (each with one example).
    pub signatures: usize,
    /// Trend bucket width.
    pub bucket_ms: i64,
}

impl Default for ReportLimits {
    fn default() -> Self {
        ReportLimits {
            fields: 25,
            examples_per_field: 3,
            examples: 10,
            examples_offset: 0,
            signatures: 10,
            bucket_ms: 3_600_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;

    #[test]
    fn the_stage_is_in_the_json_only_when_known() {
        let without = serde_json::to_value(sample_report([None, None])).unwrap();
        assert!(without["routes"][0].get("stage").is_none(), "{without}");
        let with = serde_json::to_value(sample_report([Some("canary"), None])).unwrap();
        assert_eq!(with["routes"][0]["stage"], "canary");
        assert!(with["routes"][1].get("stage").is_none());
        // Documents written before the field existed still read.
        let back: Report = serde_json::from_value(without).unwrap();
        assert_eq!(back, sample_report([None, None]));
        let back: Report = serde_json::from_value(with).unwrap();
        assert_eq!(back.routes[0].stage.as_deref(), Some("canary"));
    }

    #[test]
    fn the_replay_part_and_the_source_are_in_the_json_and_older_documents_still_read() {
        let report = sample_with_replay();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["routes"][0]["source"], "shadow");
        assert_eq!(json["replay"][0]["route"], "orders");
        assert_eq!(json["replay"][0]["source"], "replay");
        assert_eq!(json["replay"][0]["examples"][0]["source"], "replay");
        assert_eq!(json["replay"][0]["runs"][0]["counts"]["read"], 12);
        // Both sources: no `source` in the filter.
        assert!(json["filter"].get("source").is_none(), "{json}");
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
        // A document from before replays: no `replay`, no `source`.
        let mut old = serde_json::to_value(sample_report([None, None])).unwrap();
        old.as_object_mut().unwrap().remove("replay");
        old["routes"][0].as_object_mut().unwrap().remove("source");
        let back: Report = serde_json::from_value(old).unwrap();
        assert_eq!(back, sample_report([None, None]));
        let mut filter = ReportFilter::default();
        assert!(filter.includes(Source::Shadow) && filter.includes(Source::Replay));
        filter.source = Some(Source::Replay);
        assert!(!filter.includes(Source::Shadow) && filter.includes(Source::Replay));
    }

    #[test]
    fn signatures_are_in_the_json_and_older_documents_still_read() {
        let report = sample_with_replay();
        let json = serde_json::to_value(&report).unwrap();
        let group = &json["routes"][0]["signatures"]["groups"][0];
        assert_eq!(group["fields"], serde_json::json!(["/total"]));
        assert_eq!(group["count"], 2);
        assert_eq!(group["example"]["id"], "live-1");
        assert_eq!(json["replay"][0]["signatures"]["groups"][0]["count"], 3);
        assert_eq!(json["routes"][0]["signatures"]["more_groups"], 0);
        assert_eq!(json["routes"][0]["signatures"]["more_comparisons"], 0);
        let back: Report = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, report);
        // A document from before signatures: none.
        let mut old = json;
        old["routes"][0]
            .as_object_mut()
            .unwrap()
            .remove("signatures");
        old["replay"][0]
            .as_object_mut()
            .unwrap()
            .remove("signatures");
        let back: Report = serde_json::from_value(old).unwrap();
        assert_eq!(back.routes[0].signatures, Signatures::default());
        assert_eq!(back.replay[0].comparisons.signatures, Signatures::default());
    }

    #[test]
    fn the_interval_reflects_the_sample_size() {
        let small = wilson(3, 10);
        let large = wilson(3_000, 10_000);
        assert!(small[1] - small[0] > 0.4, "{small:?}");
        assert!(large[1] - large[0] < 0.02, "{large:?}");
        assert!(small[0] < 0.3 && 0.3 < small[1]);
        assert_eq!(wilson(0, 0), [0.0, 1.0]);
        let zero = wilson(0, 1000);
        assert_eq!(zero[0], 0.0);
        assert!(zero[1] < 0.004);
    }

    #[test]
    fn verdicts() {
        let t = Threshold {
            max_diff_rate: 0.01,
            min_samples: 100,
        };
        assert_eq!(route_verdict(2000, 2, &t).0, RouteVerdict::Ready);
        assert_eq!(route_verdict(2000, 100, &t).0, RouteVerdict::NotReady);
        // 1 in 100 is consistent with both sides of 1%.
        let (v, why) = route_verdict(100, 1, &t);
        assert_eq!(v, RouteVerdict::NotEnoughData);
        assert!(why.contains("straddles"), "{why}");
    }

    #[test]
    fn a_route_provably_over_its_threshold_is_not_ready_at_any_sample_size() {
        let t = Threshold {
            max_diff_rate: 0.01,
            min_samples: 100,
        };
        let (v, why) = route_verdict(40, 40, &t);
        assert_eq!(v, RouteVerdict::NotReady, "{why}");
        assert!(
            why.contains("95% CI") && why.contains("over the 1.00% threshold"),
            "{why}"
        );
        // 3 in 10: the interval (about 10.8%–60.3%) lies wholly above 1%.
        let [low, _] = wilson(3, 10);
        assert!(low > 0.10, "{low}");
        let (v, why) = route_verdict(10, 3, &t);
        assert_eq!(v, RouteVerdict::NotReady, "{why}");
        assert!(why.contains("10.78%"), "the interval is shown: {why}");
    }

    #[test]
    fn min_samples_only_gates_ready() {
        let t = Threshold {
            max_diff_rate: 0.01,
            min_samples: 100,
        };
        // 0 in 50: the interval (0%–7.1%) reaches over 1%, and 50 is too few.
        let (v, why) = route_verdict(50, 0, &t);
        assert_eq!(v, RouteVerdict::NotEnoughData);
        assert!(
            why.contains("at least 100 are needed") && why.contains("50 more"),
            "{why}"
        );
        assert!(why.contains("95% CI 0.00%–7.13%"), "{why}");
        // Under a lax threshold the interval is clear of it, yet 50 are
        // still too few to read ready.
        let lax = Threshold {
            max_diff_rate: 0.5,
            min_samples: 100,
        };
        let (v, why) = route_verdict(50, 0, &lax);
        assert_eq!(v, RouteVerdict::NotEnoughData, "{why}");
        assert!(why.contains("50 more"), "{why}");
        assert_eq!(route_verdict(100, 0, &lax).0, RouteVerdict::Ready);
        // Nothing compared: no rate to show, and no NaN.
        let (v, why) = route_verdict(0, 0, &t);
        assert_eq!(v, RouteVerdict::NotEnoughData);
        assert!(!why.contains("NaN") && why.contains("100 more"), "{why}");
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggestion("/meta/*/id").as_deref(),
            Some("ignore_fields: [/meta/*/id]")
        );
        assert_eq!(
            suggestion("header:etag").as_deref(),
            Some("ignore_headers: [etag]")
        );
        assert_eq!(suggestion("status"), None);
    }

    #[test]
    fn a_noisy_text_line_is_not_offered_as_a_json_pointer() {
        // A text/plain body whose changing line starts like a pointer.
        let text = |body: &str| crate::Exchange {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
        };
        let c = crate::compare(
            &crate::CompareRules::default(),
            &text("/orders/42 shipped\n"),
            &text("/orders/42 pending\n"),
        );
        let key = c.differences[0].field_key();
        assert!(key.starts_with("body:text:"), "{key}");
        assert!(key.contains("/orders/# shipped"), "{key}");
        assert_eq!(suggestion(&key), None);
        let field = FieldReport {
            field: key,
            class: FieldClass::Noise,
            why: String::new(),
            count: 1,
            share: 1.0,
            examples: vec![],
            suggestion: None,
        };
        assert!(merged_suggestions(&[field]).is_empty());
    }
}
