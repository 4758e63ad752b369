//! Fills a diff store with realistic synthetic comparisons, for the report
//! benchmark: `strangler-fill-store URL ROWS [ROUTES]`. Rows spread over the
//! last 24 hours; 40% are real diffs, the rest noise, on top of twice as
//! many matching comparisons counted per minute.

use std::time::{SystemTime, UNIX_EPOCH};

use shadow_diff::{
    ComparisonRecord, DiffAndHistoryStore, DiffKind, Difference, FieldClass, NoiseDelta,
    NoiseModel, StoreItem, StoredDifference, StoredRequest, StoredResponse, Verdict,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .expect("usage: strangler-fill-store URL ROWS [ROUTES]")
        .clone();
    let rows: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(100_000);
    let routes: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = DiffAndHistoryStore::connect(&url).await.expect("store");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        let mut noise = NoiseModel::default();
        let noise_diff = |f: &str| Difference { field: f.into(), kind: DiffKind::Changed, legacy: None, new: None };
        for _ in 0..100 {
            noise.learn_legacy_pair(&[noise_diff("/meta/request_id"), noise_diff("/generated_at")]);
        }
        for r in 0..routes {
            store
                .write(&[StoreItem::Noise(NoiseDelta { route: format!("route-{r}"), model: noise.clone() })])
                .await
                .unwrap();
        }
        let body = |side: &str, i: usize| {
            format!(
                r#"{{"id":"ord_{i:08x}","status":"{side}","items":[{{"sku":"SKU-{i}","qty":1,"price":9.99}}],"meta":{{"request_id":"{i}-{side}"}},"generated_at":{i}}}"#
            )
        };
        let mut batch = Vec::with_capacity(1000);
        for i in 0..rows {
            let route = format!("route-{}", i % routes);
            let real = i % 5 < 2;
            let mut differences = vec![StoredDifference {
                difference: Difference {
                    field: "/meta/request_id".into(),
                    kind: DiffKind::Changed,
                    legacy: Some(format!("\"{i}-legacy\"")),
                    new: Some(format!("\"{i}-new\"")),
                },
                key: "/meta/request_id".into(),
                class: FieldClass::Noise,
            }];
            if real {
                differences.push(StoredDifference {
                    difference: Difference {
                        field: "/status".into(),
                        kind: DiffKind::Changed,
                        legacy: Some("\"legacy\"".into()),
                        new: Some("\"new\"".into()),
                    },
                    key: "/status".into(),
                    class: FieldClass::Real,
                });
                differences.push(StoredDifference {
                    difference: Difference {
                        field: format!("/items/{}/price", i % 3),
                        kind: DiffKind::Changed,
                        legacy: Some("9.99".into()),
                        new: Some("10.49".into()),
                    },
                    key: "/items/*/price".into(),
                    class: FieldClass::Real,
                });
            }
            let record = ComparisonRecord {
                id: format!("{i:032x}"),
                created_at_ms: now - ((rows - i) as i64 * 86_000_000 / rows as i64),
                route: route.clone(),
                config_version: 1 + (i * 3 / rows) as i64,
                tenant: Some(format!("tenant-{}", i % 50)),
                instance: "bench".into(),
                request: StoredRequest {
                    method: "GET".into(),
                    path: format!("/api/orders/{i}"),
                    headers: vec![("accept".into(), "application/json".into())],
                    body: String::new(),
                },
                primary_side: "legacy".into(),
                verdict: if real { Verdict::Diff } else { Verdict::Noise },
                legacy: StoredResponse { status: 200, headers: vec![], body: body("legacy", i), latency_ms: 3.0 },
                new: StoredResponse { status: 200, headers: vec![], body: body("new", i), latency_ms: 4.0 },
                differences,
                more_differences: 0,
                source: shadow_diff::Source::Shadow,
            };
            batch.push(StoreItem::Comparison(Box::new(record.clone())));
            // Two matching comparisons per stored one (counted, not kept).
            for k in 0..2 {
                let mut m = record.clone();
                m.id = format!("{i:030x}m{k}");
                m.verdict = Verdict::Match;
                m.differences.clear();
                batch.push(StoreItem::Comparison(Box::new(m)));
            }
            if batch.len() >= 3000 {
                store.write(&batch).await.unwrap();
                batch.clear();
            }
        }
        store.write(&batch).await.unwrap();
        println!("{rows} diff rows stored in {url}");
    });
}
