//! Judging one shadowed request: given the legacy and the new answer
//! (decoded), and for a sample of requests a second legacy answer (the
//! noise probe), under the route's compare rules and with what is known of
//! the route's noise, is this a match, a real diff or only noise; which
//! differences count and which are noise; and what the request taught about
//! noise. Pure: nothing is sent, stored, counted or locked here; the caller
//! (the proxy's shadow engine) adds [`Judgement::learned`] to its
//! knowledge, counts the verdict and keeps the record.
//!
//! A judgement reads the route's knowledge together with what its own
//! request taught: a field that differed between the two legacy answers of
//! this very request is already noise when this request is judged.
//!
//! The work comes in two steps so that the comparisons, the costly part,
//! can be made before the shared noise knowledge is read (the engine holds
//! a lock for the second step only): [`Compared::of`], then
//! [`Compared::judge`]. [`judge`] does both.

use crate::compare::{Comparison, Difference, compare};
use crate::exchange::Exchange;
use crate::noise::{FieldClass, NoiseModel, Verdict};
use crate::record::StoredDifference;
use crate::redact::Redactor;
use crate::rules::CompareRules;

/// The answers to one shadowed request, bodies decoded.
#[derive(Debug, Clone, Copy)]
pub struct Answers<'a> {
    pub legacy: &'a Exchange,
    pub new: &'a Exchange,
    /// A second answer of the legacy side to the same request (the noise
    /// probe), when the request was sampled for one.
    pub legacy_again: Option<&'a Exchange>,
}

/// The comparisons a judgement rests on, not yet judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    pub legacy_vs_new: Comparison,
    /// The two legacy answers compared, when there was a noise probe.
    pub legacy_vs_legacy: Option<Comparison>,
}

/// One difference between the legacy and the new answer, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedDifference {
    /// As compared, unredacted.
    pub difference: Difference,
    /// The generalized field ([`Difference::field_key`]) noise is known by.
    pub key: String,
    pub class: FieldClass,
}

/// The outcome of judging one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The differences kept by the comparison (at most
    /// [`crate::compare::MAX_DIFFERENCES`]), in its order, real and noise.
    pub differences: Vec<JudgedDifference>,
    /// Differences found beyond those kept.
    pub more_differences: usize,
    /// What this request taught about the route's noise: its comparison,
    /// and its legacy pair if there was a probe. To be added to the route's
    /// totals and to what is next written to the store.
    pub learned: NoiseModel,
}

impl Compared {
    /// Compares the legacy answer with the new one, and with the second
    /// legacy answer if there is one.
    pub fn of(rules: &CompareRules, answers: Answers<'_>) -> Compared {
        Compared {
            legacy_vs_new: compare(rules, answers.legacy, answers.new),
            legacy_vs_legacy: answers
                .legacy_again
                .map(|again| compare(rules, answers.legacy, again)),
        }
    }

    /// Judges the comparisons with `known`, the route's noise knowledge so
    /// far (empty for a route never seen).
    pub fn judge(self, known: &NoiseModel) -> Judgement {
        let mut learned = NoiseModel::default();
        if let Some(pair) = &self.legacy_vs_legacy {
            learned.learn_legacy_pair(&pair.differences);
        }
        learned.record_comparison(&self.legacy_vs_new.differences);
        let differences: Vec<JudgedDifference> = self
            .legacy_vs_new
            .differences
            .into_iter()
            .map(|difference| {
                let key = difference.field_key();
                JudgedDifference {
                    class: known.class_with(&learned, &key),
                    key,
                    difference,
                }
            })
            .collect();
        Judgement {
            verdict: Verdict::of_classes(differences.iter().map(|d| d.class)),
            differences,
            more_differences: self.legacy_vs_new.more,
            learned,
        }
    }
}

/// Judges one request: [`Compared::of`] then [`Compared::judge`].
pub fn judge(rules: &CompareRules, answers: Answers<'_>, known: &NoiseModel) -> Judgement {
    Compared::of(rules, answers).judge(known)
}

impl Judgement {
    /// The differences that count against the new side.
    pub fn real(&self) -> impl Iterator<Item = &JudgedDifference> {
        self.of_class(FieldClass::Real)
    }

    /// The differences that are noise.
    pub fn noise(&self) -> impl Iterator<Item = &JudgedDifference> {
        self.of_class(FieldClass::Noise)
    }

    fn of_class(&self, class: FieldClass) -> impl Iterator<Item = &JudgedDifference> {
        self.differences.iter().filter(move |d| d.class == class)
    }

    /// The differences as the store keeps them: values in secret places
    /// replaced by `redactor`, with their key and class.
    pub fn stored_differences(&self, redactor: &Redactor) -> Vec<StoredDifference> {
        self.differences
            .iter()
            .map(|d| StoredDifference {
                difference: redactor.difference(&d.difference),
                key: d.key.clone(),
                class: d.class,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{DiffKind, MAX_DIFFERENCES};
    use crate::redact::REDACTED;
    use crate::rules::FieldPattern;

    fn json(status: u16, body: &str) -> Exchange {
        Exchange {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    fn answers<'a>(legacy: &'a Exchange, new: &'a Exchange) -> Answers<'a> {
        Answers {
            legacy,
            new,
            legacy_again: None,
        }
    }

    /// A model in which `/id` differed between the two legacy answers of
    /// every one of ten pairs.
    fn id_is_noise() -> NoiseModel {
        let mut m = NoiseModel::default();
        for _ in 0..10 {
            m.learn_legacy_pair(&[Difference {
                field: "/id".into(),
                kind: DiffKind::Changed,
                legacy: Some("1".into()),
                new: Some("2".into()),
            }]);
        }
        m
    }

    fn keys<'a>(ds: impl Iterator<Item = &'a JudgedDifference>) -> Vec<&'a str> {
        ds.map(|d| d.key.as_str()).collect()
    }

    #[test]
    fn identical_answers_match() {
        let a = json(200, r#"{"id": 1, "name": "A"}"#);
        let j = judge(
            &CompareRules::default(),
            answers(&a, &a.clone()),
            &NoiseModel::default(),
        );
        assert_eq!(j.verdict, Verdict::Match);
        assert!(j.differences.is_empty());
        assert_eq!(j.more_differences, 0);
        assert_eq!((j.learned.comparisons, j.learned.legacy_pairs), (1, 0));
        assert!(j.learned.fields.is_empty());
    }

    #[test]
    fn a_real_difference_is_a_diff() {
        let j = judge(
            &CompareRules::default(),
            answers(
                &json(200, r#"{"id": 1, "name": "A"}"#),
                &json(200, r#"{"id": 1, "name": "B"}"#),
            ),
            &id_is_noise(),
        );
        assert_eq!(j.verdict, Verdict::Diff);
        assert_eq!(keys(j.real()), ["/name"]);
        assert_eq!(keys(j.noise()), Vec::<&str>::new());
        let d = &j.differences[0].difference;
        assert_eq!(
            (d.legacy.as_deref(), d.new.as_deref()),
            (Some("\"A\""), Some("\"B\""))
        );
        assert_eq!(j.learned.comparisons, 1);
        assert_eq!(j.learned.fields["/name"].new_differed, 1);
    }

    #[test]
    fn a_known_noisy_field_is_noise_not_a_diff() {
        let j = judge(
            &CompareRules::default(),
            answers(
                &json(200, r#"{"id": 1, "name": "A"}"#),
                &json(200, r#"{"id": 2, "name": "A"}"#),
            ),
            &id_is_noise(),
        );
        assert_eq!(j.verdict, Verdict::Noise);
        assert_eq!(keys(j.noise()), ["/id"]);
        assert_eq!(j.real().count(), 0);
    }

    #[test]
    fn noise_beside_a_real_difference_is_still_a_diff() {
        let j = judge(
            &CompareRules::default(),
            answers(
                &json(200, r#"{"id": 1, "name": "A"}"#),
                &json(200, r#"{"id": 2, "name": "B"}"#),
            ),
            &id_is_noise(),
        );
        assert_eq!(j.verdict, Verdict::Diff);
        assert_eq!(keys(j.noise()), ["/id"]);
        assert_eq!(keys(j.real()), ["/name"]);
        assert_eq!(
            keys(j.differences.iter()),
            ["/id", "/name"],
            "compared order"
        );
    }

    #[test]
    fn a_status_mismatch_is_a_diff() {
        let j = judge(
            &CompareRules::default(),
            answers(&json(200, "{}"), &json(500, "{}")),
            &id_is_noise(),
        );
        assert_eq!(j.verdict, Verdict::Diff);
        assert_eq!(keys(j.real()), ["status"]);
        let d = &j.differences[0].difference;
        assert_eq!(
            (d.legacy.as_deref(), d.new.as_deref()),
            (Some("200"), Some("500"))
        );
    }

    #[test]
    fn array_positions_share_one_noise_key() {
        let mut known = NoiseModel::default();
        known.learn_legacy_pair(&[Difference {
            field: "/items/0/etag".into(),
            kind: DiffKind::Changed,
            legacy: Some("a".into()),
            new: Some("b".into()),
        }]);
        let j = judge(
            &CompareRules::default(),
            answers(
                &json(200, r#"{"items": [{"etag": "x"}, {"etag": "y"}]}"#),
                &json(200, r#"{"items": [{"etag": "x"}, {"etag": "z"}]}"#),
            ),
            &known,
        );
        assert_eq!(j.verdict, Verdict::Noise);
        assert_eq!(j.differences[0].difference.field, "/items/1/etag");
        assert_eq!(j.differences[0].key, "/items/*/etag");
    }

    #[test]
    fn the_noise_probe_teaches_the_judgement_it_belongs_to() {
        let legacy = json(200, r#"{"id": 1, "name": "A"}"#);
        let again = json(200, r#"{"id": 2, "name": "A"}"#);
        let new = json(200, r#"{"id": 3, "name": "A"}"#);
        let unknown = NoiseModel::default();
        let without_probe = judge(&CompareRules::default(), answers(&legacy, &new), &unknown);
        assert_eq!(without_probe.verdict, Verdict::Diff, "nothing known yet");
        assert_eq!(without_probe.learned.legacy_pairs, 0);

        let j = judge(
            &CompareRules::default(),
            Answers {
                legacy_again: Some(&again),
                ..answers(&legacy, &new)
            },
            &unknown,
        );
        assert_eq!(j.verdict, Verdict::Noise);
        assert_eq!((j.learned.legacy_pairs, j.learned.comparisons), (1, 1));
        assert_eq!(
            j.learned.fields["/id"],
            crate::noise::FieldCounts {
                legacy_differed: 1,
                new_differed: 1
            }
        );
        assert!(unknown.is_empty(), "the knowledge passed in is not changed");
    }

    #[test]
    fn a_probe_that_agrees_with_legacy_makes_a_rare_field_real() {
        // One pair in a hundred differed in /price: noise at exactly 1%.
        let mut known = NoiseModel::default();
        known.learn_legacy_pair(&[Difference {
            field: "/price".into(),
            kind: DiffKind::Changed,
            legacy: Some("1".into()),
            new: Some("2".into()),
        }]);
        for _ in 0..99 {
            known.learn_legacy_pair(&[]);
        }
        let legacy = json(200, r#"{"price": 1}"#);
        let new = json(200, r#"{"price": 2}"#);
        let rules = CompareRules::default();
        assert_eq!(
            judge(&rules, answers(&legacy, &new), &known).verdict,
            Verdict::Noise
        );
        // The probe's pair, which agrees, is counted first: 1 in 101.
        let j = judge(
            &rules,
            Answers {
                legacy_again: Some(&legacy),
                ..answers(&legacy, &new)
            },
            &known,
        );
        assert_eq!(j.verdict, Verdict::Diff);
        assert_eq!(j.learned.legacy_pairs, 1);
        assert_eq!(j.learned.fields["/price"].legacy_differed, 0);
    }

    #[test]
    fn the_route_rules_decide_what_is_compared() {
        let legacy = Exchange {
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-build".into(), "1".into()),
            ],
            ..json(200, r#"{"meta": {"at": 1}, "items": [1, 2], "n": 1000.0}"#)
        };
        let new = Exchange {
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-build".into(), "2".into()),
            ],
            ..json(200, r#"{"meta": {"at": 2}, "items": [2, 1], "n": 1000.5}"#)
        };
        let unknown = NoiseModel::default();
        let loose = judge(&CompareRules::default(), answers(&legacy, &new), &unknown);
        assert_eq!(loose.verdict, Verdict::Diff);
        let rules = CompareRules {
            ignore_headers: vec!["x-build".into()],
            ignore_fields: vec![FieldPattern::parse("/meta").unwrap()],
            unordered_arrays: vec![FieldPattern::parse("/items").unwrap()],
            numeric_tolerance: 0.001,
        };
        let j = judge(&rules, answers(&legacy, &new), &unknown);
        assert_eq!(j.verdict, Verdict::Match, "{:?}", j.differences);
    }

    #[test]
    fn differences_beyond_the_cap_are_counted_not_judged() {
        let body = |v: u32| {
            let fields: Vec<String> = (0..MAX_DIFFERENCES + 5)
                .map(|i| format!("\"f{i}\": {v}"))
                .collect();
            format!("{{{}}}", fields.join(", "))
        };
        let j = judge(
            &CompareRules::default(),
            answers(&json(200, &body(1)), &json(200, &body(2))),
            &NoiseModel::default(),
        );
        assert_eq!(j.verdict, Verdict::Diff);
        assert_eq!(j.differences.len(), MAX_DIFFERENCES);
        assert_eq!(j.more_differences, 5);
        assert_eq!(j.learned.fields.len(), MAX_DIFFERENCES);
    }

    #[test]
    fn stored_differences_keep_key_and_class_and_no_secret() {
        let j = judge(
            &CompareRules::default(),
            answers(
                &json(200, r#"{"id": 1, "token": "old-secret", "name": "A"}"#),
                &json(200, r#"{"id": 2, "token": "new-secret", "name": "A"}"#),
            ),
            &id_is_noise(),
        );
        let stored = j.stored_differences(&Redactor::default());
        assert_eq!(stored.len(), 2);
        assert_eq!(
            (stored[0].key.as_str(), stored[0].class),
            ("/id", FieldClass::Noise)
        );
        assert_eq!(stored[0].difference, j.differences[0].difference);
        assert_eq!(
            (stored[1].key.as_str(), stored[1].class),
            ("/token", FieldClass::Real)
        );
        assert_eq!(stored[1].difference.new.as_deref(), Some(REDACTED));
        assert!(
            j.differences[1].difference.new.as_deref() != Some(REDACTED),
            "judged on the real values"
        );
    }

    #[test]
    fn judging_in_two_steps_is_judging_at_once() {
        let legacy = json(200, r#"{"id": 1, "name": "A"}"#);
        let again = json(200, r#"{"id": 5, "name": "A"}"#);
        let new = json(404, r#"{"id": 2, "name": "B"}"#);
        let a = Answers {
            legacy_again: Some(&again),
            ..answers(&legacy, &new)
        };
        let rules = CompareRules::default();
        let compared = Compared::of(&rules, a);
        assert!(compared.legacy_vs_legacy.is_some());
        assert_eq!(
            compared.judge(&id_is_noise()),
            judge(&rules, a, &id_is_noise())
        );
    }
}
