//! The store: SQLite (a file, the default) or PostgreSQL (for a fleet),
//! chosen by the URL, through one sqlx code path (`Any`) and one set of
//! portable migrations. It holds the diffs and the noise knowledge, whose
//! every query is in this module (writes in batches from
//! [`writer::StoreWriter`]; reads for reports and the admin API, the
//! report's aggregates in [`report_queries`]), and, in the same database,
//! the configuration history, audit log and fleet changes, whose tables and
//! queries belong to `rollback::history` (it migrates them on this pool).

pub mod recordings;
pub mod report_queries;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::noise::{FieldCounts, NoiseModel, Verdict};
use crate::record::{ComparisonRecord, Source, StoreItem, StoredDifference};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {0:?} is not sqlite:// or postgres://")]
    BadUrl(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored document: {0}")]
    Document(#[from] serde_json::Error),
    #[error("there is no store at {0} (nothing has been recorded there yet, or the path is wrong)")]
    Missing(std::path::PathBuf),
}

impl StoreError {
    /// The database answered with an error (as opposed to a connection lost
    /// or a protocol failure): whatever was asked did not happen. A failed
    /// `COMMIT` answered this way rolled the transaction back.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(_)))
    }
}

/// How long a batch marker (`store_batches`) is kept: far longer than any
/// writer needs to settle a batch in doubt.
pub const BATCH_MARKER_AGE_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection pool to the store of diffs and of configuration history,
/// migrated.
#[derive(Debug, Clone)]
pub struct DiffAndHistoryStore {
    pool: AnyPool,
    pub dialect: Dialect,
}

/// Adds what a bare `sqlite://file` URL needs: create the file if missing.
/// The file a `sqlite:` URL names (`sqlite://FILE`, `sqlite:FILE`, with
/// or without `?options`): `None` for other URLs and in-memory databases.
pub fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let file = rest.split('?').next().unwrap_or("");
    let file = file.strip_prefix("//").unwrap_or(file);
    (!file.is_empty() && !file.starts_with(":memory:")).then_some(file)
}

pub fn normalize_url(url: &str) -> Result<(String, Dialect), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_string(), Dialect::Postgres));
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let mut url = format!("sqlite:{rest}");
        if !rest.contains("mode=") && !rest.contains(":memory:") {
            url.push(if rest.contains('?') { '&' } else { '?' });
            url.push_str("mode=rwc");
        }
        return Ok((url, Dialect::Sqlite));
    }
    Err(StoreError::BadUrl(url.to_string()))
}

/// Numbered placeholders and their values, for queries with optional filters.
#[derive(Debug, Default)]
struct Filter {
    clauses: Vec<String>,
    texts: Vec<(usize, String)>,
    ints: Vec<(usize, i64)>,
    next: usize,
}

impl Filter {
    fn text(&mut self, clause: &str, value: &str) {
        self.next += 1;
        self.clauses
            .push(clause.replace('?', &format!("${}", self.next)));
        self.texts.push((self.next, value.to_string()));
    }

    fn int(&mut self, clause: &str, value: i64) {
        self.next += 1;
        self.clauses
            .push(clause.replace('?', &format!("${}", self.next)));
        self.ints.push((self.next, value));
    }

    /// `column NOT IN (values...)`; no clause when `values` is empty.
    fn not_in(&mut self, column: &str, values: &[&str]) {
        if values.is_empty() {
            return;
        }
        let mut marks = Vec::with_capacity(values.len());
        for v in values {
            self.next += 1;
            marks.push(format!("${}", self.next));
            self.texts.push((self.next, v.to_string()));
        }
        self.clauses
            .push(format!("{column} NOT IN ({})", marks.join(", ")));
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn bind<'q>(
        &'q self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for n in 1..=self.next {
            if let Some((_, t)) = self.texts.iter().find(|(i, _)| *i == n) {
                q = q.bind(t.as_str());
            } else if let Some((_, v)) = self.ints.iter().find(|(i, _)| *i == n) {
                q = q.bind(*v);
            }
        }
        q
    }
}

/// Which stored diffs to read.
#[derive(Debug, Clone, Default)]
pub struct DiffQuery {
    pub route: Option<String>,
    /// Only diffs of this source (`None`: every source).
    pub source: Option<Source>,
    pub tenant: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub verdict: Option<Verdict>,
    /// Only diffs with this generalized field.
    pub field: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Comparisons counted by route, verdict and minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRow {
    pub route: String,
    pub minute: i64,
    pub config_version: i64,
    pub verdict: Verdict,
    pub n: i64,
}

impl DiffAndHistoryStore {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<DiffAndHistoryStore, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, dialect) = normalize_url(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 1 } else { 4 })
            .acquire_timeout(Duration::from_secs(3))
            .connect(&url)
            .await?;
        if dialect == Dialect::Sqlite {
            // Readers (reports) do not block the writer, and vice versa.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA busy_timeout = 3000")
                .execute(&pool)
                .await?;
        }
        // The history tables (rollback crate) share the bookkeeping table.
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
        Ok(DiffAndHistoryStore { pool, dialect })
    }

    /// Connects to a store that must already exist: for readers (reports,
    /// history), which must never leave an empty database behind where a
    /// mistyped path pointed. A SQLite file that is not there is
    /// [`StoreError::Missing`], naming the path looked at.
    pub async fn connect_existing(url: &str) -> Result<DiffAndHistoryStore, StoreError> {
        if let Some(file) = sqlite_file(url) {
            let path = std::path::Path::new(file);
            if !path.is_file() {
                return Err(StoreError::Missing(
                    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
                ));
            }
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            if !rest.contains("mode=") {
                let sep = if rest.contains('?') { '&' } else { '?' };
                return DiffAndHistoryStore::connect(&format!("sqlite:{rest}{sep}mode=rw")).await;
            }
        }
        DiffAndHistoryStore::connect(url).await
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Whether the database answers a trivial query (for health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Writes a batch in one transaction: per-minute counts for every
    /// comparison, a row (and its fields) for each one that differed, and
    /// noise evidence added to the totals.
    pub async fn write(&self, items: &[StoreItem]) -> Result<(), StoreError> {
        self.write_batch(None, items, &AtomicBool::new(false)).await
    }

    /// [`DiffAndHistoryStore::write`], with a marker: `batch` (an id never used before)
    /// is recorded in the same transaction, so that if the answer to its
    /// `COMMIT` is lost, [`DiffAndHistoryStore::settle_batch`] can find out whether it
    /// was committed. `committing` is set just before the `COMMIT` is sent:
    /// a failure before that point never leaves anything in the store.
    pub async fn write_batch(
        &self,
        batch: Option<(&str, i64)>,
        items: &[StoreItem],
        committing: &AtomicBool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some((id, now_ms)) = batch {
            // First, so that a tombstone of the same id (settle_batch) waits
            // for this transaction, or makes it fail.
            sqlx::query("INSERT INTO store_batches (id, written_at, committed) VALUES ($1, $2, 1)")
                .bind(id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        write_items(&mut tx, items).await?;
        committing.store(true, Ordering::SeqCst);
        tx.commit().await?;
        Ok(())
    }

    /// Whether the batch written as `batch` by [`DiffAndHistoryStore::write_batch`] is
    /// in the store; if it is not, it never will be (a tombstone takes its
    /// id; a transaction still holding it is waited for). Idempotent.
    pub async fn settle_batch(&self, batch: &str, now_ms: i64) -> Result<bool, StoreError> {
        sqlx::query(
            "INSERT INTO store_batches (id, written_at, committed) VALUES ($1, $2, 0) ON CONFLICT (id) DO NOTHING",
        )
        .bind(batch)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT committed FROM store_batches WHERE id = $1")
            .bind(batch)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? == 1)
    }

    /// Deletes diffs older than `max_age_ms` and beyond the newest
    /// `max_rows`, and the comparison counts of the same minutes; returns
    /// how many diff rows went.
    ///
    /// A report divides the real diffs it finds (`diffs`, `diff_fields`) by
    /// the comparisons counted per minute (`comparison_counts`), so both must
    /// cover the same span: were diffs deleted while their minutes stayed
    /// counted, the rate would fall and the verdict read better than the
    /// data. The cutoff is therefore a minute boundary and everything before
    /// it goes from all three tables, so every minute still counted has all
    /// its diffs. By age the cutoff is rounded down (up to a minute more is
    /// kept); by row count it is rounded up past the minute of the oldest
    /// row over the cap, so that minute goes whole (up to a minute's diffs
    /// fewer than `max_rows` remain, all of them if the cap is reached
    /// within the current minute; the cap still holds). The noise-only and
    /// per-field counts and the trend buckets (whole minutes) come from the
    /// same rows and minutes, so they stay consistent too. The deletes are
    /// one transaction, so no reader sees the tables half pruned.
    /// Recordings go by the same age and row cap (their own rows counted).
    pub async fn prune(
        &self,
        now_ms: i64,
        max_age_ms: i64,
        max_rows: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut cutoff_minute = (now_ms - max_age_ms).div_euclid(60_000);
        let row =
            sqlx::query("SELECT created_at FROM diffs ORDER BY created_at DESC LIMIT 1 OFFSET $1")
                .bind(max_rows.max(0))
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = row {
            let nth: i64 = row.try_get(0)?;
            cutoff_minute = cutoff_minute.max(nth.div_euclid(60_000) + 1);
        }
        let cutoff = cutoff_minute * 60_000;
        let deleted = sqlx::query("DELETE FROM diffs WHERE created_at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM diff_fields WHERE created_at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM comparison_counts WHERE minute < $1")
            .bind(cutoff_minute)
            .execute(&mut *tx)
            .await?;
        recordings::prune(&mut tx, now_ms - max_age_ms, max_rows).await?;
        sqlx::query("DELETE FROM store_batches WHERE written_at < $1")
            .bind(now_ms - BATCH_MARKER_AGE_MS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Noise totals of every route.
    pub async fn noise_models(&self) -> Result<HashMap<String, NoiseModel>, StoreError> {
        self.read_noise(None).await
    }

    /// Noise totals of one route (an empty model when nothing is known of
    /// it): what [`DiffAndHistoryStore::noise_models`] holds for the route,
    /// without reading every other route's fields.
    pub async fn noise_model(&self, route: &str) -> Result<NoiseModel, StoreError> {
        Ok(self
            .read_noise(Some(route))
            .await?
            .remove(route)
            .unwrap_or_default())
    }

    /// The noise tables, of one route or of all.
    async fn read_noise(
        &self,
        route: Option<&str>,
    ) -> Result<HashMap<String, NoiseModel>, StoreError> {
        let mut f = Filter::default();
        if let Some(r) = route {
            f.text("route = ?", r);
        }
        let mut models: HashMap<String, NoiseModel> = HashMap::new();
        let sql = format!(
            "SELECT route, legacy_pairs, comparisons FROM noise_routes{}",
            f.sql()
        );
        for row in f.bind(sqlx::query(&sql)).fetch_all(&self.pool).await? {
            let m = models.entry(row.try_get::<String, _>(0)?).or_default();
            m.legacy_pairs = row.try_get::<i64, _>(1)? as u64;
            m.comparisons = row.try_get::<i64, _>(2)? as u64;
        }
        let sql = format!(
            "SELECT route, field, legacy_differed, new_differed FROM noise_fields{}",
            f.sql()
        );
        for row in f.bind(sqlx::query(&sql)).fetch_all(&self.pool).await? {
            let m = models.entry(row.try_get::<String, _>(0)?).or_default();
            m.fields.insert(
                row.try_get(1)?,
                FieldCounts {
                    legacy_differed: row.try_get::<i64, _>(2)? as u64,
                    new_differed: row.try_get::<i64, _>(3)? as u64,
                },
            );
        }
        Ok(models)
    }

    /// Stored diffs, newest first.
    pub async fn diffs(&self, q: &DiffQuery) -> Result<Vec<ComparisonRecord>, StoreError> {
        let mut f = Filter::default();
        if let Some(r) = &q.route {
            f.text("d.route = ?", r);
        }
        if let Some(source) = q.source {
            f.text("d.source = ?", source.as_str());
        }
        if let Some(t) = &q.tenant {
            f.text("d.tenant = ?", t);
        }
        if let Some(s) = q.since_ms {
            f.int("d.created_at >= ?", s);
        }
        if let Some(u) = q.until_ms {
            f.int("d.created_at < ?", u);
        }
        if let Some(v) = q.verdict {
            f.text("d.verdict = ?", v.as_str());
        }
        if let Some(field) = &q.field {
            f.text(
                "EXISTS (SELECT 1 FROM diff_fields x WHERE x.diff_id = d.id AND x.field = ?)",
                field,
            );
        }
        let sql = format!(
            "SELECT {DIFF_COLUMNS} FROM diffs d{} ORDER BY created_at DESC, id LIMIT {} OFFSET {}",
            f.sql(),
            q.limit.max(0),
            q.offset.max(0)
        );
        let rows = f.bind(sqlx::query(&sql)).fetch_all(&self.pool).await?;
        rows.iter().map(row_to_record).collect()
    }

    /// The stored diffs with these ids, newest first; an id not stored (or
    /// pruned meanwhile) is left out.
    pub async fn diffs_by_id(&self, ids: &[&str]) -> Result<Vec<ComparisonRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {DIFF_COLUMNS} FROM diffs d WHERE id IN ({marks}) ORDER BY created_at DESC, id"
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(row_to_record).collect()
    }

    /// Comparison counts of one source per route, minute, version and
    /// verdict.
    pub async fn counts(
        &self,
        source: Source,
        route: Option<&str>,
        tenant: Option<&str>,
        since_ms: Option<i64>,
    ) -> Result<Vec<CountRow>, StoreError> {
        let mut f = Filter::default();
        f.text("source = ?", source.as_str());
        if let Some(r) = route {
            f.text("route = ?", r);
        }
        if let Some(t) = tenant {
            f.text("tenant = ?", t);
        }
        if let Some(s) = since_ms {
            f.int("minute >= ?", s.div_euclid(60_000));
        }
        let sql = format!(
            "SELECT route, minute, config_version, verdict, CAST(SUM(n) AS BIGINT) FROM comparison_counts{} \
             GROUP BY route, minute, config_version, verdict ORDER BY route, minute",
            f.sql()
        );
        let rows = f.bind(sqlx::query(&sql)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(CountRow {
                    route: r.try_get(0)?,
                    minute: r.try_get(1)?,
                    config_version: r.try_get(2)?,
                    verdict: Verdict::parse(&r.try_get::<String, _>(3)?).unwrap_or(Verdict::Diff),
                    n: r.try_get(4)?,
                })
            })
            .collect()
    }
}

/// The statements of one batch, inside its transaction.
async fn write_items(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    items: &[StoreItem],
) -> Result<(), StoreError> {
    type CountKey = (String, i64, i64, String, &'static str, &'static str);
    let mut counts: HashMap<CountKey, i64> = HashMap::new();
    for item in items {
        match item {
            StoreItem::Recording(r) => recordings::insert(tx, r).await?,
            StoreItem::Comparison(c) => {
                let key = (
                    c.route.clone(),
                    c.created_at_ms.div_euclid(60_000),
                    c.config_version,
                    c.tenant.clone().unwrap_or_default(),
                    c.source.as_str(),
                    c.verdict.as_str(),
                );
                *counts.entry(key).or_default() += 1;
                if c.verdict != Verdict::Match {
                    insert_diff(tx, c).await?;
                }
            }
            StoreItem::Noise(delta) => {
                sqlx::query(
                    "INSERT INTO noise_routes (route, legacy_pairs, comparisons) VALUES ($1, $2, $3) \
                     ON CONFLICT (route) DO UPDATE SET legacy_pairs = noise_routes.legacy_pairs + excluded.legacy_pairs, \
                     comparisons = noise_routes.comparisons + excluded.comparisons",
                )
                .bind(delta.route.as_str())
                .bind(delta.model.legacy_pairs as i64)
                .bind(delta.model.comparisons as i64)
                .execute(&mut **tx)
                .await?;
                for (field, c) in &delta.model.fields {
                    sqlx::query(
                        "INSERT INTO noise_fields (route, field, legacy_differed, new_differed) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (route, field) DO UPDATE SET legacy_differed = noise_fields.legacy_differed + excluded.legacy_differed, \
                         new_differed = noise_fields.new_differed + excluded.new_differed",
                    )
                    .bind(delta.route.as_str())
                    .bind(field.as_str())
                    .bind(c.legacy_differed as i64)
                    .bind(c.new_differed as i64)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
    }
    for ((route, minute, version, tenant, source, verdict), n) in counts {
        sqlx::query(
            "INSERT INTO comparison_counts (route, minute, config_version, tenant, source, verdict, n) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (route, minute, config_version, tenant, source, verdict) DO UPDATE SET n = comparison_counts.n + excluded.n",
        )
        .bind(route)
        .bind(minute)
        .bind(version)
        .bind(tenant)
        .bind(source)
        .bind(verdict)
        .bind(n)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_diff(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    c: &ComparisonRecord,
) -> Result<(), StoreError> {
    let tenant = c.tenant.clone().unwrap_or_default();
    let inserted = sqlx::query(
        "INSERT INTO diffs (id, created_at, route, config_version, tenant, instance, method, path, primary_side, verdict, \
         legacy_status, new_status, legacy_ms, new_ms, request, legacy_response, new_response, differences, more_differences, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) ON CONFLICT (id) DO NOTHING",
    )
    .bind(c.id.as_str())
    .bind(c.created_at_ms)
    .bind(c.route.as_str())
    .bind(c.config_version)
    .bind(tenant.as_str())
    .bind(c.instance.as_str())
    .bind(c.request.method.as_str())
    .bind(c.request.path.as_str())
    .bind(c.primary_side.as_str())
    .bind(c.verdict.as_str())
    .bind(c.legacy.status as i64)
    .bind(c.new.status as i64)
    .bind(c.legacy.latency_ms)
    .bind(c.new.latency_ms)
    .bind(serde_json::to_string(&c.request)?)
    .bind(serde_json::to_string(&c.legacy)?)
    .bind(serde_json::to_string(&c.new)?)
    .bind(serde_json::to_string(&c.differences)?)
    .bind(c.more_differences as i64)
    .bind(c.source.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(());
    }
    let mut seen: Vec<&str> = Vec::new();
    for d in &c.differences {
        if seen.contains(&d.key.as_str()) {
            continue;
        }
        seen.push(&d.key);
        sqlx::query(
            "INSERT INTO diff_fields (diff_id, route, created_at, tenant, field, class, source) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (diff_id, field) DO NOTHING",
        )
        .bind(c.id.as_str())
        .bind(c.route.as_str())
        .bind(c.created_at_ms)
        .bind(tenant.as_str())
        .bind(d.key.as_str())
        .bind(d.class.as_str())
        .bind(c.source.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The columns [`row_to_record`] reads, in its order.
const DIFF_COLUMNS: &str = "id, created_at, route, config_version, tenant, instance, method, path, primary_side, verdict, \
     legacy_status, new_status, legacy_ms, new_ms, request, legacy_response, new_response, differences, more_differences, source";

fn row_to_record(r: &AnyRow) -> Result<ComparisonRecord, StoreError> {
    let tenant: String = r.try_get(4)?;
    let differences: Vec<StoredDifference> = serde_json::from_str(&r.try_get::<String, _>(17)?)?;
    let mut legacy: crate::record::StoredResponse =
        serde_json::from_str(&r.try_get::<String, _>(15)?)?;
    let mut new: crate::record::StoredResponse =
        serde_json::from_str(&r.try_get::<String, _>(16)?)?;
    legacy.status = r.try_get::<i64, _>(10)? as u16;
    new.status = r.try_get::<i64, _>(11)? as u16;
    legacy.latency_ms = r.try_get(12)?;
    new.latency_ms = r.try_get(13)?;
    Ok(ComparisonRecord {
        id: r.try_get(0)?,
        created_at_ms: r.try_get(1)?,
        route: r.try_get(2)?,
        config_version: r.try_get(3)?,
        tenant: (!tenant.is_empty()).then_some(tenant),
        instance: r.try_get(5)?,
        request: serde_json::from_str(&r.try_get::<String, _>(14)?)?,
        primary_side: r.try_get(8)?,
        verdict: Verdict::parse(&r.try_get::<String, _>(9)?).unwrap_or(Verdict::Diff),
        legacy,
        new,
        differences,
        more_differences: r.try_get::<i64, _>(18)? as usize,
        source: Source::parse(&r.try_get::<String, _>(19)?).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests;
