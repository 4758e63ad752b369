//! Upstream faults: a backend that has accepted the connection and then
//! sends something broken, against the evil backend of
//! `harness/evil.rs`, which speaks raw TCP.
//!
//! `faults.rs` covers a refused connection (a quick 502) and a backend that
//! never answers (504 at `read_timeout`); `upstream_reuse.rs` covers
//! connections that go bad in the pool and retries. This file covers broken
//! answers:
//!
//! - a body cut short (FIN or RST) after the head was forwarded: the client
//!   never gets something that looks complete, and its connection is closed;
//! - garbage instead of a status line, or nothing at all: 502 naming the
//!   backend;
//! - a head the proxy cannot frame (bad or conflicting Content-Length): 502;
//! - after each, the broken upstream connection is never used again.
//!
//! What Pingora does was checked in its source (pingora-proxy 0.9.1
//! `proxy_h1.rs`/`lib.rs`, pingora-core `protocols/http/v1/client.rs`,
//! `connectors/mod.rs`); the tests pin that behaviour down end to end.

use strangler_e2e::Http;
use strangler_e2e::evil::{
    CUT_DECLARED, RawConn, assert_502, errors, get, next_request_on_a_new_connection, only_copy,
    setup,
};

// ---------------------------------------------------------------------------
// Bodies cut short
// ---------------------------------------------------------------------------

/// A body cut after the head was forwarded cannot become a 502 any more: the
/// client must see it incomplete (fewer than Content-Length bytes, or no
/// terminating zero chunk) and its connection closed, with a request
/// pipelined behind it never answered nor forwarded. If the cut comes before
/// the proxy forwarded the head (an RST can make the proxy lose the buffered
/// bytes), the answer is the proxy's 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_never_looks_complete_and_the_client_connection_closes() {
    let (proxy, evil) = setup().await;
    let cases = [
        ("/cut/cl", "reset"),
        ("/cut/cl-rst", "reset"),
        ("/cut/chunked", "reset"),
        ("/cut/chunked-rst", "reset"),
        // A malformed chunk size: the upstream connection stays open, but
        // what follows on it is not trusted.
        ("/cut/chunk-garbage", "protocol"),
    ];
    let mut expected = std::collections::BTreeMap::<&str, f64>::new();
    for (path, kind) in cases {
        // A keep-alive client that pipelines a second request behind it.
        let pipelined = format!("/ok/pipelined{path}");
        let mut c = RawConn::connect(&proxy).await;
        let mut both = get(path);
        both.extend_from_slice(&get(&pipelined));
        c.send(&both).await;
        let r = c
            .response()
            .await
            .unwrap_or_else(|| panic!("{path}: connection closed without a head"));
        if r.status == 502 {
            assert_502(&r, path);
        } else {
            assert_eq!(r.status, 200, "{path}: {r:?}");
            assert!(!r.complete, "{path}: a cut body looked complete: {r:?}");
            if let Some(cl) = r.header("content-length") {
                assert_eq!(cl, CUT_DECLARED.to_string(), "{path}");
                assert!(r.body.len() < CUT_DECLARED, "{path}: {}", r.body.len());
            } else {
                assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{path}");
            }
        }
        let rest = c.rest().await;
        assert!(
            rest.is_empty(),
            "{path}: the client connection went on after the fault: {}",
            String::from_utf8_lossy(&rest)
        );
        assert!(
            evil.copies("GET", &pipelined).is_empty(),
            "{path}: the pipelined request was forwarded"
        );

        // A client library sees an error (or the 502), never a whole body.
        match Http::new()
            .send(http::Method::GET, &proxy.url(path), &[], b"")
            .await
        {
            Err(_) => {}
            Ok(r) => assert_eq!(r.status, 502, "{path}: {} bytes", r.body.len()),
        }
        *expected.entry(kind).or_default() += 2.0;

        let broken: Vec<u64> = evil.copies("GET", path).iter().map(|r| r.conn).collect();
        assert!(!broken.is_empty(), "{path} never reached the backend");
        next_request_on_a_new_connection(&proxy, &evil, &broken, path).await;
    }
    let m = proxy.metrics_settled().await;
    for (kind, n) in expected {
        assert_eq!(errors(&m, kind), n, "kind {kind}:\n{}", m.text);
    }
}

// ---------------------------------------------------------------------------
// No usable response head
// ---------------------------------------------------------------------------

/// Garbage, half a head or nothing at all: a 502 naming the backend. A GET
/// that failed before any answer on a *reused* connection is sent again once,
/// on a fresh connection (Pingora retries idempotent requests on errors of a
/// reused connection: `RetryType::ReusedOnly`); on a fresh connection it is
/// not. A garbled head is never retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_response_is_a_502_naming_the_backend() {
    let (proxy, evil) = setup().await;
    let cases = [
        ("/garbage/status", "protocol", false),
        ("/garbage/binary", "protocol", false),
        ("/garbage/partial-head", "reset", true),
        ("/garbage/empty", "reset", true),
        ("/garbage/rst", "reset", true),
    ];
    let mut expected = std::collections::BTreeMap::<&str, f64>::new();
    for (path, kind, retried_on_reuse) in cases {
        for reused in [true, false] {
            let tag = format!("{path}?reused={reused}");
            let mut c = RawConn::connect(&proxy).await;
            if reused {
                // Leaves exactly one idle upstream connection in the pool; the
                // next request on this client connection is only read once the
                // previous one is finished, pool included.
                c.send(&get(&format!("/ok/warm{tag}"))).await;
                assert_eq!(c.response().await.expect("warm").status, 200);
            }
            c.send(&get(&tag)).await;
            let r = c.response().await.expect("an answer");
            assert_502(&r, &tag);
            assert!(c.rest().await.is_empty(), "{tag}: connection went on");
            *expected.entry(kind).or_default() += 1.0;

            let copies = evil.copies("GET", &tag);
            assert!(!copies.is_empty(), "{tag}");
            assert_eq!(copies[0].nth > 0, reused, "{tag}: {copies:?}");
            if reused && retried_on_reuse {
                assert_eq!(copies.len(), 2, "{tag}: {copies:?}");
                assert_eq!(copies[1].nth, 0, "{tag}: retried on a fresh connection");
            } else {
                assert_eq!(copies.len(), 1, "{tag}: {copies:?}");
            }
            let broken: Vec<u64> = copies.iter().map(|r| r.conn).collect();
            next_request_on_a_new_connection(&proxy, &evil, &broken, &tag).await;
        }
    }
    let m = proxy.metrics_settled().await;
    for (kind, n) in expected {
        assert_eq!(errors(&m, kind), n, "kind {kind}:\n{}", m.text);
    }
    assert_eq!(
        m.sum(
            "strangler_requests_total",
            &[("route", "default"), ("status_class", "5xx")]
        ),
        10.0
    );
}

// ---------------------------------------------------------------------------
// Heads that cannot be framed
// ---------------------------------------------------------------------------

/// A Content-Length that is not a number, or two that disagree: the proxy
/// cannot know where the body ends, so it answers 502 and drops the
/// connection (the backend would happily serve the next request on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_the_proxy_cannot_frame_is_a_502() {
    let (proxy, evil) = setup().await;
    let cases = [
        "/framing/cl-abc",
        "/framing/cl-twice",
        "/framing/cl-list",
        "/framing/cl-negative",
    ];
    for path in cases {
        let mut c = RawConn::connect(&proxy).await;
        c.send(&get(path)).await;
        let r = c.response().await.expect("an answer");
        assert_502(&r, path);
        assert!(
            r.text().contains("sent an invalid response"),
            "{path}: {}",
            r.text()
        );
        let first = only_copy(&evil, "GET", path);
        next_request_on_a_new_connection(&proxy, &evil, &[first.conn], path).await;
    }
    let m = proxy.metrics_settled().await;
    assert_eq!(errors(&m, "protocol"), cases.len() as f64, "{}", m.text);
}

/// Content-Length and Transfer-Encoding together: Pingora follows RFC 9112
/// section 6.3 (Transfer-Encoding wins, Content-Length is removed before
/// forwarding), so this is framed safely and passed on, not a 502. The
/// client gets one framing only; bytes after the last chunk are never taken
/// for the next answer. Likewise for a body longer than its Content-Length:
/// the extra bytes are dropped with the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doubly_framed_or_overlong_answers_never_desynchronize_the_connection() {
    let (proxy, evil) = setup().await;
    for path in ["/framing/cl-te", "/framing/overflow"] {
        let mut c = RawConn::connect(&proxy).await;
        c.send(&get(path)).await;
        let r = c.response().await.expect("an answer");
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert!(r.complete, "{path}: {r:?}");
        assert_eq!(r.text(), "ok", "{path}");
        if path == "/framing/cl-te" {
            assert!(r.header("content-length").is_none(), "{:?}", r.headers);
        }
        let first = only_copy(&evil, "GET", path);
        next_request_on_a_new_connection(&proxy, &evil, &[first.conn], path).await;
        // And the client connection carries on normally.
        c.send(&get(&format!("/ok/same-client{path}"))).await;
        let again = c.response().await.expect("keep-alive answer");
        assert_eq!((again.status, again.text().as_str()), (200, "ok"), "{path}");
    }
    let m = proxy.metrics_settled().await;
    assert_eq!(m.sum("strangler_upstream_errors_total", &[]), 0.0);
}
