//! Helpers for tests that need a real PostgreSQL: a fresh schema per test in
//! the machine's test database (`$STRANGLER_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`). A missing server fails the
//! test; it is never skipped.

use sqlx::{AnyPool, Row};

pub fn postgres_base() -> String {
    std::env::var("STRANGLER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A URL to a fresh, empty schema of the test database.
pub async fn fresh_postgres_url(tag: &str) -> String {
    sqlx::any::install_default_drivers();
    let schema = format!("t_{tag}_{}_{}", std::process::id(), system_time_nanos());
    let base = postgres_base();
    let pool = AnyPool::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is needed for this test: {e}"));
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    // Schemas of earlier runs older than an hour are removed here, so failed
    // runs do not pile up in the shared test database.
    let old: Vec<String> = sqlx::query("SELECT CAST(schema_name AS TEXT) FROM information_schema.schemata WHERE schema_name LIKE 't\\_%'")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    let hour_ago = system_time_nanos().saturating_sub(3_600_000_000_000);
    for name in old {
        let born: u128 = name
            .rsplit('_')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(u128::MAX);
        if born < hour_ago {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&pool)
                .await;
        }
    }
    pool.close().await;
    format!("{base}?options=-c%20search_path%3D{schema}")
}

pub fn system_time_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
