//! A fast HTTP/1.1 backend for benchmarks: answers every request with the
//! same 1 KB JSON document, optionally after a delay.
//! Usage: strangler-bench-backend PORT [THREADS] [DELAY_MS]

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn document() -> Bytes {
    let mut items = String::new();
    for i in 0..12 {
        if i > 0 {
            items.push(',');
        }
        items.push_str(&format!(
            r#"{{"id":{i},"sku":"SKU-{:06}","qty":{},"price":{}.99}}"#,
            i * 7919,
            i % 5 + 1,
            i * 3 + 4
        ));
    }
    let mut doc =
        format!(r#"{{"order":"ord_8f14e45fceea167a","status":"shipped","items":[{items}],"pad":""#);
    while doc.len() < 1022 {
        doc.push('x');
    }
    doc.push_str("\"}");
    Bytes::from(doc)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: PORT [THREADS]");
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let delay =
        std::time::Duration::from_millis(args.next().and_then(|d| d.parse().ok()).unwrap_or(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let body = document();
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
