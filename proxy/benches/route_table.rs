//! The route table at 10, 1,000 and 10,000 routes (one path prefix each,
//! every fifth with a method list, every tenth with a tenant pin): the
//! routing decision for a request to a route in the middle of the table and
//! for one that matches no route, and the work of a reload (parse, check and
//! compile the file, build the table).
//!
//!   cargo bench --bench route_table

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use strangler::config::parse;
use strangler::routing::table::{RequestInfo, RouteTable};

// The proxy's allocator (see `main.rs`), so that the bench measures what
// the proxy runs. (The 10,000-route reload took about the same under
// glibc's malloc, 59.4 against 58.6 ms in one run each, but spent a fifth
// of its samples in malloc and free.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// `n` routes, the measured one (`orders-read`) in the middle of the file.
fn table_text(n: usize) -> String {
    let mut text = String::from(
        "version: 1\nbackends:\n  monolith: { url: \"http://127.0.0.1:1\" }\n  orders: { url: \"http://127.0.0.1:2\" }\n  users: { url: \"http://127.0.0.1:3\" }\ntenant: [ { header: X-Tenant-Id } ]\ndefault: monolith\nroutes:\n",
    );
    for i in 0..n - 1 {
        if i == (n - 1) / 2 {
            text.push_str("  - { name: orders-read, match: { path: /api/orders, methods: [GET, HEAD] }, new: orders, canary: 50, sticky: tenant, tenants: { acme: new, initech: legacy } }\n");
        }
        let methods = if i % 5 == 0 {
            ", methods: [GET, HEAD]"
        } else {
            ""
        };
        let pin = if i % 10 == 0 {
            ", tenants: { acme: new }"
        } else {
            ""
        };
        let new = if i % 2 == 0 { "orders" } else { "users" };
        text.push_str(&format!(
            "  - {{ name: svc-{i}, match: {{ path: /api/svc-{i}{methods} }}, new: {new}, canary: {}{pin} }}\n",
            i % 100
        ));
    }
    text
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant-id", HeaderValue::from_static("umbrella-corp"));
    for n in SIZES {
        let table = RouteTable::new(parse(&table_text(n), "bench.yaml").expect("valid table"));
        for (name, path) in [
            ("matched", "/api/orders/12345"),
            ("unmatched", "/static/app.js"),
        ] {
            group.bench_with_input(BenchmarkId::new(name, n), &path, |b, path| {
                b.iter(|| {
                    let request = RequestInfo {
                        method: &Method::GET,
                        host: Some("shop.example.com"),
                        path: black_box(path),
                        headers: &headers,
                        client_ip: Some("192.0.2.7".parse().unwrap()),
                        entropy: 7,
                    };
                    black_box(table.decide(&request).backend)
                })
            });
        }
    }
    group.finish();
}

fn reload(c: &mut Criterion) {
    let mut group = c.benchmark_group("reload");
    group.sample_size(10);
    for n in SIZES {
        let text = table_text(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, text| {
            b.iter(|| RouteTable::new(parse(black_box(text), "bench.yaml").expect("valid table")))
        });
    }
    group.finish();
}

criterion_group!(benches, lookup, reload);
criterion_main!(benches);
