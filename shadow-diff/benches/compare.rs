//! Diff engine throughput on realistic JSON: an order document of about
//! 1 KB and an order list of about 100 KB, legacy vs new with a few real
//! differences and an ignored field. Throughput counts the bytes of both
//! answers; the run is single-threaded, so it reads as MB/s per core.
//!
//!   cargo bench -p shadow-diff

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use serde_json::{Value, json};
use shadow_diff::{CompareRules, Exchange, FieldPattern, compare};

fn order(i: usize, variant: u8, items: usize) -> Value {
    json!({
        "id": format!("ord_{i:08x}"),
        "status": if variant == 1 && i % 7 == 0 { "dispatched" } else { "shipped" },
        "customer": {"id": 1000 + i, "name": format!("Customer {i}"), "tier": "gold"},
        "items": (0..items).map(|k| json!({
            "sku": format!("SKU-{:05}", i * 3 + k),
            "qty": k + 1,
            "price": 9.99 + k as f64,
            "etag": format!("{variant}-{i}-{k}"),
        })).collect::<Vec<_>>(),
        "tags": ["express", "gift"],
        "total": 59.94,
        "meta": {"generated_at": 1_700_000_000 + variant as u64, "region": "eu-west-1"}
    })
}

fn exchange(doc: &Value) -> Exchange {
    Exchange {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: serde_json::to_vec(doc).unwrap(),
    }
}

fn rules() -> CompareRules {
    CompareRules {
        ignore_headers: vec![],
        ignore_fields: vec![
            FieldPattern::parse("/meta/generated_at").unwrap(),
            FieldPattern::parse("/orders/*/meta/generated_at").unwrap(),
            FieldPattern::parse("/items/*/etag").unwrap(),
            FieldPattern::parse("/orders/*/items/*/etag").unwrap(),
        ],
        unordered_arrays: vec![FieldPattern::parse("/tags").unwrap()],
        numeric_tolerance: 0.001,
    }
}

fn bench(c: &mut Criterion) {
    let small = (exchange(&order(7, 0, 13)), exchange(&order(7, 1, 13)));
    let list = |variant| json!({"orders": (0..264).map(|i| order(i, variant, 3)).collect::<Vec<_>>(), "page": 1});
    let large = (exchange(&list(0)), exchange(&list(1)));
    let rules = rules();
    let mut group = c.benchmark_group("compare_json");
    for (name, (a, b)) in [("1KB", &small), ("100KB", &large)] {
        group.throughput(Throughput::Bytes((a.body.len() + b.body.len()) as u64));
        group.bench_function(
            format!("{name} ({} + {} bytes)", a.body.len(), b.body.len()),
            |bench| bench.iter(|| compare(black_box(&rules), black_box(a), black_box(b))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
