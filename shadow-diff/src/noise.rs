//! Noise: values that differ even between two answers of the legacy side to
//! the same request (ids, timestamps, random tokens). Learned as Diffy does:
//! for a sample of safe requests the legacy side is asked twice, and each
//! field that differs between its two answers is counted as noise evidence.
//!
//! A field is noise when it differed between two legacy answers in at least
//! 1% of those pairs (and at least once); a field that differs between legacy
//! and new but never between two legacy answers is real. A comparison whose
//! differences are all noise is not a regression.
//!
//! Fields are counted by their key ([`Difference::field_key`]): JSON
//! Pointers with array indices generalized, text hunks by their normalized
//! content, so one noisy line of a page is noise and its other lines are not.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::compare::Difference;

/// The outcome of one comparison, the `verdict` label of
/// `strangler_shadow_diffs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Match,
    Diff,
    Noise,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Diff => "diff",
            Verdict::Noise => "noise",
        }
    }

    pub fn parse(text: &str) -> Option<Verdict> {
        match text {
            "match" => Some(Verdict::Match),
            "diff" => Some(Verdict::Diff),
            "noise" => Some(Verdict::Noise),
            _ => None,
        }
    }

    /// The verdict of a comparison whose differences are of `classes`:
    /// match when nothing differs, noise when every difference is noise,
    /// else diff.
    pub fn of_classes(classes: impl IntoIterator<Item = FieldClass>) -> Verdict {
        let mut verdict = Verdict::Match;
        for class in classes {
            match class {
                FieldClass::Real => return Verdict::Diff,
                FieldClass::Noise => verdict = Verdict::Noise,
            }
        }
        verdict
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldClass {
    Real,
    Noise,
}

impl FieldClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldClass::Real => "real",
            FieldClass::Noise => "noise",
        }
    }
}

/// Counts behind a field's class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldCounts {
    /// Legacy-vs-legacy pairs in which the field differed.
    pub legacy_differed: u64,
    /// Legacy-vs-new comparisons in which the field differed.
    pub new_differed: u64,
}

/// One route's noise knowledge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoiseModel {
    /// Legacy-vs-legacy pairs compared.
    pub legacy_pairs: u64,
    /// Legacy-vs-new comparisons made.
    pub comparisons: u64,
    pub fields: HashMap<String, FieldCounts>,
}

/// Minimum share of legacy pairs in which a field must differ to be noise.
const NOISE_SHARE: f64 = 0.01;

impl NoiseModel {
    /// Records a legacy-vs-legacy comparison.
    pub fn learn_legacy_pair(&mut self, differences: &[Difference]) {
        self.legacy_pairs += 1;
        for key in distinct_keys(differences) {
            self.fields.entry(key).or_default().legacy_differed += 1;
        }
    }

    /// Records a legacy-vs-new comparison.
    pub fn record_comparison(&mut self, differences: &[Difference]) {
        self.comparisons += 1;
        for key in distinct_keys(differences) {
            self.fields.entry(key).or_default().new_differed += 1;
        }
    }

    pub fn class_of(&self, field_key: &str) -> FieldClass {
        class_from_counts(self.legacy_differed(field_key), self.legacy_pairs)
    }

    /// The class a field would have if `learned` were merged into this
    /// model. A judgement reads the route's knowledge with what its own
    /// comparison taught, without copying that knowledge.
    pub fn class_with(&self, learned: &NoiseModel, field_key: &str) -> FieldClass {
        class_from_counts(
            self.legacy_differed(field_key) + learned.legacy_differed(field_key),
            self.legacy_pairs + learned.legacy_pairs,
        )
    }

    fn legacy_differed(&self, field_key: &str) -> u64 {
        self.fields.get(field_key).map_or(0, |c| c.legacy_differed)
    }

    /// Why a field is in its class, in words a release manager can check.
    pub fn evidence(&self, field_key: &str) -> String {
        let c = self.fields.get(field_key).copied().unwrap_or_default();
        match self.class_of(field_key) {
            FieldClass::Noise => format!(
                "differed between two legacy answers in {} of {} pairs",
                c.legacy_differed, self.legacy_pairs
            ),
            FieldClass::Real if self.legacy_pairs == 0 => format!(
                "differed in {} legacy-vs-new comparisons; no legacy-vs-legacy pairs yet, so noise is unknown",
                c.new_differed
            ),
            FieldClass::Real => format!(
                "differed in {} legacy-vs-new comparisons and in {} of {} legacy-vs-legacy pairs",
                c.new_differed, c.legacy_differed, self.legacy_pairs
            ),
        }
    }

    /// The verdict on `differences` with this model's knowledge
    /// ([`Verdict::of_classes`]).
    pub fn verdict(&self, differences: &[Difference]) -> Verdict {
        Verdict::of_classes(differences.iter().map(|d| self.class_of(&d.field_key())))
    }

    /// Adds another model's counts (e.g. totals read from the store).
    pub fn merge(&mut self, other: &NoiseModel) {
        self.legacy_pairs += other.legacy_pairs;
        self.comparisons += other.comparisons;
        for (k, c) in &other.fields {
            let e = self.fields.entry(k.clone()).or_default();
            e.legacy_differed += c.legacy_differed;
            e.new_differed += c.new_differed;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.legacy_pairs == 0 && self.comparisons == 0 && self.fields.is_empty()
    }
}

/// Noise when the field differed in at least [`NOISE_SHARE`] of the legacy
/// pairs, and at least once.
fn class_from_counts(legacy_differed: u64, legacy_pairs: u64) -> FieldClass {
    if legacy_differed > 0 && legacy_differed as f64 >= NOISE_SHARE * legacy_pairs as f64 {
        FieldClass::Noise
    } else {
        FieldClass::Real
    }
}

fn distinct_keys(differences: &[Difference]) -> Vec<String> {
    let mut keys: Vec<String> = differences.iter().map(|d| d.field_key()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::DiffKind;

    fn diff(field: &str) -> Difference {
        Difference {
            field: field.into(),
            kind: DiffKind::Changed,
            legacy: Some("1".into()),
            new: Some("2".into()),
        }
    }

    #[test]
    fn a_field_that_differs_between_two_legacy_answers_is_noise() {
        let mut m = NoiseModel::default();
        m.learn_legacy_pair(&[diff("/id"), diff("/items/0/etag"), diff("/items/1/etag")]);
        m.learn_legacy_pair(&[diff("/id")]);
        assert_eq!(
            m.fields["/items/*/etag"].legacy_differed, 1,
            "counted once per pair"
        );
        assert_eq!(m.class_of("/id"), FieldClass::Noise);
        assert_eq!(m.class_of("/items/*/etag"), FieldClass::Noise);
        assert_eq!(m.class_of("/name"), FieldClass::Real);
        assert_eq!(
            m.verdict(&[diff("/id"), diff("/items/4/etag")]),
            Verdict::Noise
        );
        assert_eq!(m.verdict(&[diff("/id"), diff("/name")]), Verdict::Diff);
        assert_eq!(m.verdict(&[]), Verdict::Match);
        assert!(m.evidence("/id").contains("in 2 of 2 pairs"));
    }

    #[test]
    fn a_rare_coincidence_is_not_noise() {
        let mut m = NoiseModel::default();
        m.learn_legacy_pair(&[diff("/price")]);
        for _ in 0..199 {
            m.learn_legacy_pair(&[]);
        }
        // 1 in 200 pairs is under 1%.
        assert_eq!(m.class_of("/price"), FieldClass::Real);
        m.record_comparison(&[diff("/price")]);
        assert!(
            m.evidence("/price")
                .contains("1 of 200 legacy-vs-legacy pairs")
        );
    }

    /// An order page as text/html: its items, a total, and a footer with
    /// the time it was rendered.
    fn page(items: &[&str], total: &str, rendered: &str) -> crate::Exchange {
        let items: String = items.iter().map(|i| format!("<li>{i}</li>\n")).collect();
        let body = format!(
            "<html>\n<body>\n<h1>Your order</h1>\n<ul>\n{items}</ul>\n<p>Total: {total} EUR</p>\n\
             <p>Thank you for shopping with us.</p>\n<footer>Rendered {rendered}</footer>\n</body>\n</html>\n"
        );
        crate::Exchange {
            status: 200,
            headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
            body: body.into_bytes(),
        }
    }

    #[test]
    fn a_noisy_text_line_hides_no_other_line() {
        use crate::judge::{Answers, Compared};
        let rules = crate::CompareRules::default();
        let mut m = NoiseModel::default();
        // Judged as the shadow engine judges, the route's knowledge growing
        // by what each judgement learned.
        let mut judge =
            |legacy: &crate::Exchange, probe: Option<&crate::Exchange>, new: &crate::Exchange| {
                let compared = Compared::of(
                    &rules,
                    Answers {
                        legacy,
                        new,
                        legacy_again: probe,
                    },
                );
                let c = compared.legacy_vs_new.clone();
                let j = compared.judge(&m);
                m.merge(&j.learned);
                (j.verdict, c)
            };

        // The two legacy answers differ in the footer's time only; the new
        // one in that time and in the total.
        let legacy = page(&["book"], "10.00", "2026-11-22 10:00:01");
        let (verdict, c) = judge(
            &legacy,
            Some(&page(&["book"], "10.00", "2026-11-22 10:00:02")),
            &page(&["book"], "12.00", "2026-11-22 10:00:03"),
        );
        assert_eq!(verdict, Verdict::Diff, "{c:?}");
        let fields: Vec<&str> = c.differences.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["body:line 7", "body:line 9"],
            "places unchanged"
        );

        // Only the time differs: noise.
        let (verdict, c) = judge(
            &legacy,
            None,
            &page(&["book"], "10.00", "2026-11-22 10:00:09"),
        );
        assert_eq!(verdict, Verdict::Noise, "{c:?}");

        // Another order: the footer is a line further down, still noise; a
        // changed total there is still a real difference.
        let longer = page(&["book", "pen"], "14.50", "2026-11-22 11:30:00");
        let (verdict, c) = judge(
            &longer,
            None,
            &page(&["book", "pen"], "14.50", "2026-11-22 11:30:04"),
        );
        assert_eq!(verdict, Verdict::Noise, "{c:?}");
        assert_eq!(c.differences[0].field, "body:line 10");
        let (verdict, c) = judge(
            &longer,
            None,
            &page(&["book", "pen"], "14.05", "2026-11-22 11:30:04"),
        );
        assert_eq!(verdict, Verdict::Diff, "{c:?}");
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = NoiseModel::default();
        a.learn_legacy_pair(&[diff("/id")]);
        let mut b = NoiseModel::default();
        b.record_comparison(&[diff("/id")]);
        a.merge(&b);
        assert_eq!((a.legacy_pairs, a.comparisons), (1, 1));
        assert_eq!(
            a.fields["/id"],
            FieldCounts {
                legacy_differed: 1,
                new_differed: 1
            }
        );
    }
}
