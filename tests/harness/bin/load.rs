//! An open-loop load generator for the benchmarks: sends requests at a fixed
//! rate over keep-alive connections and measures each latency from the time
//! the request was due (so a stall is not hidden by the generator waiting).
//!
//!   strangler-load URL RATE DURATION_S [CONNECTIONS] [Header: value]...
//!
//! Prints: requests, errors, p50, p99, p999 and max in milliseconds.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: strangler-load URL RATE DURATION_S [CONNECTIONS] [Header: value]...");
        std::process::exit(2);
    }
    let url: hyper::Uri = args[0].parse().expect("URL");
    let rate: f64 = args[1].parse().expect("RATE");
    let duration = Duration::from_secs_f64(args[2].parse().expect("DURATION_S"));
    let connections: usize = args.get(3).and_then(|c| c.parse().ok()).unwrap_or(16);
    let headers: Vec<(String, String)> = args
        .iter()
        .skip(4)
        .filter_map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (latencies, errors) = runtime.block_on(async move {
        let start = Instant::now() + Duration::from_millis(100);
        let per_worker = rate / connections as f64;
        let interval = Duration::from_secs_f64(1.0 / per_worker);
        let mut tasks = Vec::new();
        for w in 0..connections {
            let url = url.clone();
            let headers = headers.clone();
            tasks.push(tokio::spawn(async move {
                let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(1)
                    .build_http();
                let mut lat = Vec::new();
                let mut errors = 0u64;
                // Workers are staggered across the interval.
                let offset = interval.mul_f64(w as f64 / connections as f64);
                let mut k = 0u32;
                loop {
                    let due = start + offset + interval * k;
                    if due > start + duration {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    let mut req = hyper::Request::get(url.clone());
                    for (name, value) in &headers {
                        req = req.header(name.as_str(), value.as_str());
                    }
                    let req = req.body(Empty::new()).expect("request");
                    let ok =
                        match tokio::time::timeout(Duration::from_secs(30), client.request(req))
                            .await
                        {
                            Ok(Ok(resp)) => {
                                let status = resp.status();
                                let body = resp.into_body().collect().await;
                                status.is_success() && body.is_ok()
                            }
                            _ => false,
                        };
                    if ok {
                        lat.push(due.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                    k += 1;
                }
                (lat, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await.expect("worker");
            all.extend(lat);
            errors += e;
        }
        (all, errors)
    });
    let mut l = latencies;
    l.sort_unstable();
    let pct = |p: f64| -> f64 {
        if l.is_empty() {
            return 0.0;
        }
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        l[i] as f64 / 1000.0
    };
    println!(
        "requests {} errors {} p50 {:.3} p99 {:.3} p999 {:.3} max {:.3}",
        l.len(),
        errors,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        l.last().map(|v| *v as f64 / 1000.0).unwrap_or(0.0)
    );
}
