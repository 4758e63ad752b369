//! One source's part of a report, per route: the counts, the stored diffs'
//! fields classed with the route's noise model, the real diffs per trend
//! bucket and per signature, and a page of examples.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{
    FieldExample, FieldReport, ReportFilter, ReportLimits, RouteReport, SignatureGroup, Signatures,
    Threshold, TrendPoint, route_verdict, suggestion, wilson,
};
use crate::noise::{FieldClass, NoiseModel};
use crate::record::{ComparisonRecord, Source};
use crate::store::report_queries::{FieldCount, RouteWindow};
use crate::store::{DiffAndHistoryStore, DiffQuery, StoreError};

/// What every source's part of a report is built from.
pub(super) struct Sources<'a> {
    pub(super) store: &'a DiffAndHistoryStore,
    /// The filter widened to whole minutes.
    pub(super) window: &'a ReportFilter,
    pub(super) noise: &'a HashMap<String, NoiseModel>,
    pub(super) thresholds: &'a HashMap<String, Threshold>,
    pub(super) limits: ReportLimits,
}

impl Sources<'_> {
    /// One report per route with comparisons of `source` in the window, and
    /// per route of `also` (with none, its figures are zero), by name.
    pub(super) async fn reports(
        &self,
        source: Source,
        also: BTreeSet<String>,
    ) -> Result<Vec<RouteReport>, StoreError> {
        let w = self.window;
        let counts = self
            .store
            .counts(
                source,
                w.route.as_deref(),
                w.tenant.as_deref(),
                Some(w.since_ms),
            )
            .await?;
        let mut by_route: BTreeMap<String, Vec<&crate::store::CountRow>> =
            also.into_iter().map(|r| (r, Vec::new())).collect();
        for c in counts.iter().filter(|c| c.minute * 60_000 < w.until_ms) {
            by_route.entry(c.route.clone()).or_default().push(c);
        }
        let mut routes = Vec::new();
        for (route, rows) in by_route {
            let model = self.noise.get(&route).cloned().unwrap_or_default();
            let threshold = self.thresholds.get(&route).copied().unwrap_or_default();
            routes.push(
                route_report(
                    self.store,
                    RouteWindow {
                        route: &route,
                        source,
                        tenant: w.tenant.as_deref(),
                        since_ms: w.since_ms,
                        until_ms: w.until_ms,
                    },
                    &rows,
                    &model,
                    threshold,
                    self.limits,
                )
                .await?,
            );
        }
        Ok(routes)
    }
}

async fn route_report(
    store: &DiffAndHistoryStore,
    window: RouteWindow<'_>,
    rows: &[&crate::store::CountRow],
    model: &NoiseModel,
    threshold: Threshold,
    limits: ReportLimits,
) -> Result<RouteReport, StoreError> {
    let compared: u64 = rows.iter().map(|r| r.n as u64).sum();
    let mut versions: Vec<i64> = rows.iter().map(|r| r.config_version).collect();
    versions.sort_unstable();
    versions.dedup();
    let first_ms = rows.iter().map(|r| r.minute * 60_000).min();
    let last_ms = rows.iter().map(|r| r.minute * 60_000 + 59_999).max();

    let route = window.route;
    // Fields of stored diffs in the window, classed with today's knowledge.
    let fields_all = store.field_counts(window).await?;
    let noise_fields: Vec<&str> = fields_all
        .iter()
        .filter(|f| model.class_of(&f.field) == FieldClass::Noise)
        .map(|f| f.field.as_str())
        .collect();

    let stored_diffs = store.stored_diff_count(window).await?;

    // Whole minutes, so that a minute's comparisons and its diffs always
    // fall in the same bucket. A stored comparison is a real diff if any of
    // its fields is real now.
    let bucket = limits.bucket_ms.max(60_000) / 60_000 * 60_000;
    let real_by_bucket = store
        .real_diffs_by_bucket(window, &noise_fields, bucket)
        .await?;
    let real_diffs: u64 = real_by_bucket.values().sum();
    let noise_only = stored_diffs.saturating_sub(real_diffs);

    let mut compared_by_bucket: BTreeMap<i64, u64> = BTreeMap::new();
    for r in rows {
        *compared_by_bucket
            .entry((r.minute * 60_000) / bucket * bucket)
            .or_default() += r.n as u64;
    }
    let trend = compared_by_bucket
        .iter()
        .map(|(start, n)| TrendPoint {
            start_ms: *start,
            compared: *n,
            real_diffs: real_by_bucket.get(start).copied().unwrap_or(0),
        })
        .collect();

    let mut fields = Vec::new();
    for FieldCount { field, count } in fields_all.iter().take(limits.fields) {
        let examples = field_examples(store, window, field, limits.examples_per_field).await?;
        let class = model.class_of(field);
        fields.push(FieldReport {
            field: field.clone(),
            class,
            why: model.evidence(field),
            count: *count,
            share: if compared == 0 {
                0.0
            } else {
                *count as f64 / compared as f64
            },
            examples,
            suggestion: (class == FieldClass::Noise)
                .then(|| suggestion(field))
                .flatten(),
        });
    }

    let signatures = signatures(store, window, &noise_fields, limits.signatures).await?;

    let examples = store
        .diffs(&DiffQuery {
            route: Some(route.to_string()),
            source: Some(window.source),
            tenant: window.tenant.map(str::to_string),
            since_ms: Some(window.since_ms),
            until_ms: Some(window.until_ms),
            limit: limits.examples,
            offset: limits.examples_offset,
            ..Default::default()
        })
        .await?;

    let (verdict, verdict_reason) = route_verdict(compared, real_diffs.min(compared), &threshold);
    let rate = |x: u64| {
        if compared == 0 {
            0.0
        } else {
            x as f64 / compared as f64
        }
    };
    Ok(RouteReport {
        route: route.to_string(),
        source: window.source,
        compared,
        real_diffs,
        noise_only,
        real_diff_rate: rate(real_diffs),
        real_diff_rate_ci95: wilson(real_diffs.min(compared), compared),
        noise_rate: rate(noise_only),
        threshold,
        verdict,
        verdict_reason,
        stage: None,
        config_versions: versions,
        first_ms,
        last_ms,
        trend,
        fields,
        signatures,
        examples,
        stored_diffs,
    })
}

async fn field_examples(
    store: &DiffAndHistoryStore,
    window: RouteWindow<'_>,
    field: &str,
    limit: usize,
) -> Result<Vec<FieldExample>, StoreError> {
    let rows = store
        .diffs(&DiffQuery {
            route: Some(window.route.to_string()),
            source: Some(window.source),
            tenant: window.tenant.map(str::to_string),
            since_ms: Some(window.since_ms),
            until_ms: Some(window.until_ms),
            field: Some(field.to_string()),
            limit: limit as i64,
            ..Default::default()
        })
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let d = r.differences.iter().find(|d| d.key == field)?;
            Some(FieldExample {
                id: r.id.clone(),
                legacy: d.difference.legacy.clone(),
                new: d.difference.new.clone(),
            })
        })
        .collect())
}

/// The `limit` largest signature groups, each with its newest comparison,
/// and what is left out.
async fn signatures(
    store: &DiffAndHistoryStore,
    window: RouteWindow<'_>,
    noise_fields: &[&str],
    limit: usize,
) -> Result<Signatures, StoreError> {
    let all = store.signature_counts(window, noise_fields).await?;
    let (kept, rest) = all.split_at(limit.min(all.len()));
    let ids: Vec<&str> = kept.iter().map(|s| s.newest_id.as_str()).collect();
    let mut examples: HashMap<String, ComparisonRecord> = store
        .diffs_by_id(&ids)
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    Ok(Signatures {
        groups: kept
            .iter()
            .map(|s| SignatureGroup {
                fields: s.fields.clone(),
                count: s.count,
                example: examples.remove(&s.newest_id),
            })
            .collect(),
        more_groups: rest.len() as u64,
        more_comparisons: rest.iter().map(|s| s.count).sum(),
    })
}
