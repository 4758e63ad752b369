//! The queries behind a diff report ([`crate::report`]), kept with the rest
//! of the store so that one module knows the schema: for one route's window
//! of stored diffs, the fields that differed and how often, how many diffs
//! there are, how many of them had a real difference, per trend bucket, and
//! which real fields differed together (signatures); and, for a route's verdict alone ([`crate::report::verdict()`]), two
//! aggregates over a [`VerdictScope`]: the comparisons made and the stored
//! diffs with a real difference. They return plain data; what it means for
//! a route is the report's to say.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::{DiffAndHistoryStore, Filter, StoreError};
use crate::record::Source;

/// One route's stored diffs of one source in `[since_ms, until_ms)`, of one
/// tenant or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteWindow<'a> {
    pub route: &'a str,
    pub source: Source,
    pub tenant: Option<&'a str>,
    pub since_ms: i64,
    pub until_ms: i64,
}

impl<'a> RouteWindow<'a> {
    /// The tenant condition, bound as `$5` after route, source and window.
    fn tenant_clause(&self) -> &'static str {
        if self.tenant.is_some() {
            " AND tenant = $5"
        } else {
            ""
        }
    }

    /// The first placeholder number after the window's own.
    fn next_placeholder(&self) -> usize {
        if self.tenant.is_some() { 6 } else { 5 }
    }

    /// Binds route, window, source and tenant as `$1` to `$5`.
    fn bind<'q>(
        self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>
    where
        'a: 'q,
    {
        let q = q
            .bind(self.route)
            .bind(self.since_ms)
            .bind(self.until_ms)
            .bind(self.source.as_str());
        match self.tenant {
            Some(t) => q.bind(t),
            None => q,
        }
    }
}

/// Which comparisons a verdict is read from: one route and source, optionally only
/// those made at or after `since_ms`, optionally only those made at config
/// versions `>= min_config_version`.
///
/// Comparisons are counted per minute, so `since_ms` is taken back to the
/// start of its minute for the counts and the diffs alike, as the report
/// does: otherwise the first minute's comparisons would be counted without
/// the diffs of its first part, and the rate would read better than the
/// data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerdictScope<'a> {
    pub route: &'a str,
    pub source: Source,
    pub since_ms: Option<i64>,
    pub min_config_version: Option<i64>,
}

impl VerdictScope<'_> {
    /// The minute `since_ms` falls in.
    fn since_minute(&self) -> Option<i64> {
        self.since_ms.map(|s| s.div_euclid(60_000))
    }
}

/// A generalized field and the number of stored diffs it differed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCount {
    pub field: String,
    pub count: u64,
}

/// The stored diffs of a window whose real fields are exactly `fields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCount {
    /// The differing fields not in the noise list, sorted.
    pub fields: Vec<String>,
    pub count: u64,
    /// The newest of them (ties: the smallest id).
    pub newest_id: String,
}

/// `n` numbered placeholders from `$from`.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl DiffAndHistoryStore {
    /// Every field that differed in the window's stored diffs, most frequent
    /// first (ties by name).
    pub async fn field_counts(
        &self,
        window: RouteWindow<'_>,
    ) -> Result<Vec<FieldCount>, StoreError> {
        let sql = format!(
            "SELECT field, CAST(COUNT(*) AS BIGINT) FROM diff_fields WHERE route = $1 AND created_at >= $2 AND created_at < $3 AND source = $4{} \
             GROUP BY field ORDER BY COUNT(*) DESC, field",
            window.tenant_clause()
        );
        let rows = window
            .bind(sqlx::query(&sql))
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(FieldCount {
                    field: r.try_get(0)?,
                    count: r.try_get::<i64, _>(1)? as u64,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// How many diffs are stored in the window.
    pub async fn stored_diff_count(&self, window: RouteWindow<'_>) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM diffs WHERE route = $1 AND created_at >= $2 AND created_at < $3 AND source = $4{}",
            window.tenant_clause()
        );
        let row = window
            .bind(sqlx::query(&sql))
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    /// How many comparisons were made in the scope (0 when none).
    pub async fn compared_count(&self, scope: VerdictScope<'_>) -> Result<u64, StoreError> {
        let mut f = Filter::default();
        f.text("route = ?", scope.route);
        f.text("source = ?", scope.source.as_str());
        if let Some(minute) = scope.since_minute() {
            f.int("minute >= ?", minute);
        }
        if let Some(v) = scope.min_config_version {
            f.int("config_version >= ?", v);
        }
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM comparison_counts{}",
            f.sql()
        );
        let row = f.bind(sqlx::query(&sql)).fetch_one(self.pool()).await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    /// Stored diffs in the scope with at least one field not in
    /// `noise_fields`: the real diffs, counted the way
    /// [`DiffAndHistoryStore::real_diffs_by_bucket`] counts them for the
    /// report, without the buckets. `diff_fields` has no config version, so
    /// a scope by version joins each field to its diff.
    pub async fn real_diff_count(
        &self,
        scope: VerdictScope<'_>,
        noise_fields: &[&str],
    ) -> Result<u64, StoreError> {
        let mut f = Filter::default();
        f.text("f.route = ?", scope.route);
        f.text("f.source = ?", scope.source.as_str());
        if let Some(minute) = scope.since_minute() {
            f.int("f.created_at >= ?", minute * 60_000);
        }
        let join = match scope.min_config_version {
            Some(v) => {
                f.int("d.config_version >= ?", v);
                " JOIN diffs d ON d.id = f.diff_id"
            }
            None => "",
        };
        f.not_in("f.field", noise_fields);
        let sql = format!(
            "SELECT CAST(COUNT(DISTINCT f.diff_id) AS BIGINT) FROM diff_fields f{join}{}",
            f.sql()
        );
        let row = f.bind(sqlx::query(&sql)).fetch_one(self.pool()).await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    /// The window's stored diffs with at least one field not in
    /// `noise_fields`, grouped by the set of those fields: every signature,
    /// most frequent first (ties by fields). Their counts add up to the
    /// diffs [`DiffAndHistoryStore::real_diffs_by_bucket`] counts.
    ///
    /// The sets are made here rather than in SQL: SQLite and PostgreSQL
    /// aggregate strings differently, and neither orders them portably.
    /// Rows come sorted by diff, so that one diff's fields are consecutive.
    pub async fn signature_counts(
        &self,
        window: RouteWindow<'_>,
        noise_fields: &[&str],
    ) -> Result<Vec<SignatureCount>, StoreError> {
        let not_noise = excluding_fields(window.next_placeholder(), noise_fields.len());
        let sql = format!(
            "SELECT diff_id, created_at, field FROM diff_fields \
             WHERE route = $1 AND created_at >= $2 AND created_at < $3 AND source = $4{}{not_noise} ORDER BY diff_id, field",
            window.tenant_clause()
        );
        let mut q = window.bind(sqlx::query(&sql));
        for f in noise_fields {
            q = q.bind(*f);
        }
        // Per signature: how many, and the newest diff as (created_at, id).
        let mut groups: HashMap<Vec<String>, (u64, (i64, String))> = HashMap::new();
        let mut add = |mut fields: Vec<String>, at: i64, id: String| {
            // By bytes: a database's collation may order text otherwise.
            fields.sort_unstable();
            let entry = groups.entry(fields).or_insert((0, (at, id.clone())));
            entry.0 += 1;
            let (newest_at, newest_id) = &entry.1;
            if at > *newest_at || (at == *newest_at && id < *newest_id) {
                entry.1 = (at, id);
            }
        };
        let mut current: Option<(String, i64, Vec<String>)> = None;
        for r in q.fetch_all(self.pool()).await? {
            let (id, at, field): (String, i64, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            match &mut current {
                Some((cid, _, fields)) if *cid == id => fields.push(field),
                _ => {
                    if let Some((cid, cat, fields)) = current.replace((id, at, vec![field])) {
                        add(fields, cat, cid);
                    }
                }
            }
        }
        if let Some((cid, cat, fields)) = current {
            add(fields, cat, cid);
        }
        let mut out: Vec<SignatureCount> = groups
            .into_iter()
            .map(|(fields, (count, (_, newest_id)))| SignatureCount {
                fields,
                count,
                newest_id,
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.fields.cmp(&b.fields)));
        Ok(out)
    }

    /// Stored diffs with at least one field not in `noise_fields`, counted
    /// per bucket of `bucket_ms` (a whole number of minutes, so that a
    /// minute's diffs never straddle two buckets); keyed by the bucket's
    /// start. Buckets without such a diff are absent.
    pub async fn real_diffs_by_bucket(
        &self,
        window: RouteWindow<'_>,
        noise_fields: &[&str],
        bucket_ms: i64,
    ) -> Result<BTreeMap<i64, u64>, StoreError> {
        let not_noise = excluding_fields(window.next_placeholder(), noise_fields.len());
        let sql = format!(
            "SELECT (created_at / {bucket_ms}) * {bucket_ms} AS b, CAST(COUNT(DISTINCT diff_id) AS BIGINT) FROM diff_fields \
             WHERE route = $1 AND created_at >= $2 AND created_at < $3 AND source = $4{}{not_noise} GROUP BY b ORDER BY b",
            window.tenant_clause()
        );
        let mut q = window.bind(sqlx::query(&sql));
        for f in noise_fields {
            q = q.bind(*f);
        }
        let mut by_bucket = BTreeMap::new();
        for r in q.fetch_all(self.pool()).await? {
            by_bucket.insert(r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)? as u64);
        }
        Ok(by_bucket)
    }
}

/// `AND field NOT IN (...)` with `count` placeholders from `first` on, or
/// nothing when no field is left out.
fn excluding_fields(first: usize, count: usize) -> String {
    if count == 0 {
        String::new()
    } else {
        format!(" AND field NOT IN ({})", placeholders(first, count))
    }
}
