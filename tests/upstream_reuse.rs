//! Upstream connection reuse and retries, against the evil backend of
//! `harness/evil.rs` (raw TCP): a pooled connection that went bad while
//! idle is never used again; a non-idempotent request is never sent twice,
//! also on a stale pooled connection; an idempotent one may be retried once
//! on a fresh connection (Pingora's policy), and is then the same request:
//! its normalized path, its body counted against the limit and copied to the
//! shadow side once. Broken answers are in `upstream_faults.rs`.
//!
//! What Pingora does was checked in its source (pingora-proxy 0.9.1
//! `proxy_h1.rs`/`lib.rs`, pingora-core `protocols/http/v1/client.rs`,
//! `connectors/mod.rs`); the tests pin that behaviour down end to end.

use strangler_e2e::evil::{
    Evil, HANG, RawConn, RawResponse, assert_502, errors, get, listening,
    next_request_on_a_new_connection, only_copy, setup, with_body,
};
use strangler_e2e::{Backend, Proxy, eventually};

// ---------------------------------------------------------------------------
// Idle pooled connections
// ---------------------------------------------------------------------------

/// A pooled connection the backend closed, or on which it wrote an answer
/// nobody asked for, is never used again: the next request goes on a new
/// connection and gets its own answer, not the stale one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_that_went_bad_while_idle_is_not_reused() {
    let (proxy, evil) = setup().await;
    let mut c = RawConn::connect(&proxy).await;
    c.send(&get("/idle/junk")).await;
    assert_eq!(c.response().await.expect("answer").text(), "ok");
    let junk = only_copy(&evil, "GET", "/idle/junk").conn;
    evil.wait_junk_sent(junk).await;
    c.send(&with_body("POST", "/after/junk", b"x=1")).await;
    let r = c.response().await.expect("answer");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let post = only_copy(&evil, "POST", "/after/junk");
    assert_ne!(post.conn, junk, "{:?}", evil.reqs());

    c.send(&get("/idle/fin")).await;
    assert_eq!(c.response().await.expect("answer").text(), "ok");
    let closed = only_copy(&evil, "GET", "/idle/fin").conn;
    evil.wait_closed(closed).await;
    c.send(&with_body("POST", "/after/fin", b"x=2")).await;
    let r = c.response().await.expect("answer");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let post = only_copy(&evil, "POST", "/after/fin");
    assert_ne!(post.conn, closed);
    assert_eq!(post.nth, 0, "{:?}", evil.reqs());
    let m = proxy.metrics_settled().await;
    assert_eq!(m.sum("strangler_upstream_errors_total", &[]), 0.0);
}

// ---------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------

/// A POST or PATCH whose connection is closed (FIN or RST) once the backend
/// has read it, without an answer: a 502, and the backend saw exactly one
/// copy, whether the connection was fresh or taken from the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_idempotent_request_is_never_sent_twice() {
    let (proxy, evil) = setup().await;
    let mut failures = 0.0;
    for method in ["POST", "PATCH"] {
        for close in ["/close/after-read", "/close/after-read-rst"] {
            for reused in [true, false] {
                let path = format!("{close}?method={method}&reused={reused}");
                let mut c = RawConn::connect(&proxy).await;
                if reused {
                    c.send(&get(&format!("/ok/warm{path}"))).await;
                    assert_eq!(c.response().await.expect("warm").status, 200);
                }
                c.send(&with_body(method, &path, b"{\"order\": 42}")).await;
                let r = c.response().await.expect("an answer");
                assert_502(&r, &path);
                failures += 1.0;
                let sent = only_copy(&evil, method, &path);
                assert_eq!(sent.body, b"{\"order\": 42}");
                assert_eq!(sent.nth > 0, reused, "{path}: {sent:?}");
                next_request_on_a_new_connection(&proxy, &evil, &[sent.conn], &path).await;
            }
        }
    }
    let m = proxy.metrics_settled().await;
    assert_eq!(errors(&m, "reset"), failures, "{}", m.text);
}

/// The backend's keep-alive timeout fires just as the proxy reuses the
/// pooled connection. Two ways it goes, both simulated deterministically by
/// arming the pooled connection:
///
/// - the backend read the request, then closed: a GET (or PUT) is sent once
///   more on a fresh connection and succeeds (so the backend sees it twice,
///   as RFC 9110 section 9.2.2 allows for idempotent methods); a POST or
///   PATCH is not sent again: 502, one copy;
/// - the connection was reset before the backend read anything: the GET is
///   retried and succeeds; the POST is still not retried (the proxy cannot
///   know that none of it was processed): 502, and the backend saw it at
///   most once (here: never).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_pooled_connection_never_duplicates_a_post() {
    let (proxy, evil) = setup().await;
    // Each case: arm the one pooled connection, then send on it.
    async fn armed(proxy: &Proxy, arm: &str, request: &[u8]) -> RawResponse {
        let mut c = RawConn::connect(proxy).await;
        c.send(&get(arm)).await;
        let r = c.response().await.expect("armed");
        assert_eq!(r.text(), "armed");
        c.send(request).await;
        c.response().await.expect("an answer")
    }
    let conn_of = |path: &str| {
        evil.copies("GET", path)
            .last()
            .map(|r| r.conn)
            .expect("armed request seen")
    };

    // Read, then closed.
    let r = armed(&proxy, "/arm/close-after-read", &get("/stale/get")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let armed_conn = conn_of("/arm/close-after-read");
    let copies = evil.copies("GET", "/stale/get");
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert_eq!((copies[0].conn, copies[0].nth), (armed_conn, 1));
    assert_eq!(copies[1].nth, 0, "the retry goes on a fresh connection");

    for method in ["POST", "PATCH"] {
        let path = format!("/stale/{method}");
        let r = armed(
            &proxy,
            "/arm/close-after-read",
            &with_body(method, &path, b"pay=1"),
        )
        .await;
        assert_502(&r, &path);
        let sent = only_copy(&evil, method, &path);
        assert_eq!(sent.conn, conn_of("/arm/close-after-read"));
        assert_eq!(sent.body, b"pay=1");
    }

    // Reset before anything was read.
    let r = armed(&proxy, "/arm/rst-unread", &get("/stale/get-unread")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let retried = only_copy(&evil, "GET", "/stale/get-unread");
    assert_eq!(retried.nth, 0);
    assert_eq!(evil.killed_unread().len(), 1);

    let r = armed(
        &proxy,
        "/arm/rst-unread",
        &with_body("POST", "/stale/post-unread", b"pay=2"),
    )
    .await;
    assert_502(&r, "/stale/post-unread");
    assert_eq!(evil.killed_unread().len(), 2);
    assert!(
        evil.copies("POST", "/stale/post-unread").len() <= 1,
        "{:?}",
        evil.reqs()
    );
    assert!(evil.copies("POST", "/stale/post-unread").is_empty());

    let m = proxy.metrics_settled().await;
    // Only the requests that failed count; a retry that succeeded does not.
    assert_eq!(errors(&m, "reset"), 3.0, "{}", m.text);
    next_request_on_a_new_connection(&proxy, &evil, &[], "stale").await;
}

// An idempotent request retried after a stale pooled connection must be the
// same request the second time. Pingora re-runs `upstream_request_filter` and
// replays the body read so far through `request_body_filter` on every attempt.

/// A proxy whose default backend is the evil one, with a route limited to
/// 1 KiB of request body and a route whose PUTs are shadowed.
async fn retry_setup() -> (Proxy, Evil, Backend) {
    retry_setup_with("false").await
}

/// `retry_setup` with `STRANGLER_FAST_PATH` set to `fast_path`. The shadowed
/// route's tests need the engine: with the fast path, the arming request
/// would leave its connection in the fast path's pool, and the shadowed
/// route's request (which always takes the engine) would find none of it in
/// the engine's own.
async fn retry_setup_with(fast_path: &str) -> (Proxy, Evil, Backend) {
    let evil = Evil::start().await;
    let shadow = Backend::start("shadow").await;
    let proxy = Proxy::start_with_env(
        &format!(
            r#"
backends:
  evil: {{ url: "{}", read_timeout: 10s }}
  shadow: {{ url: "{}" }}
default: evil
routes:
  - name: limited
    match: {{ path: /limited }}
    new: shadow
    canary: 0
    max_request_body: 1KiB
  - name: shadowed
    match: {{ path: /shadowed }}
    new: shadow
    canary: 0
    shadow: {{ percent: 100, methods: [PUT], allow_writes: true, timeout: 5s }}
"#,
            evil.url(),
            shadow.url()
        ),
        "sqlite://{dir}/strangler.db",
        &[("STRANGLER_FAST_PATH", fast_path)],
    )
    .await;
    listening(&proxy).await;
    (proxy, evil, shadow)
}

/// Sends `request` on the one pooled connection, armed to be closed once the
/// backend has read it: the request is answered by its retry.
async fn retried(proxy: &Proxy, request: &[u8]) -> RawResponse {
    let mut c = RawConn::connect(proxy).await;
    c.send(&get("/arm/close-after-read")).await;
    assert_eq!(c.response().await.expect("armed").text(), "armed");
    c.send(request).await;
    c.response().await.expect("an answer")
}

/// The retry is sent to the path that was routed on (normalized), not the
/// raw path of the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_keeps_its_normalized_path() {
    a_retried_request_keeps_its_normalized_path_on("false").await;
}

/// The same on the owned fast path (`--fast-path`): its own pool, its own
/// retry, the same request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_keeps_its_normalized_path_on_the_fast_path() {
    a_retried_request_keeps_its_normalized_path_on("true").await;
}

async fn a_retried_request_keeps_its_normalized_path_on(fast_path: &str) {
    let (proxy, evil, _) = retry_setup_with(fast_path).await;
    let r = retried(&proxy, &get("/skip/../norm//get?q=1")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let sent: Vec<(String, usize)> = evil
        .reqs()
        .into_iter()
        .filter(|r| r.path.contains("get?q=1"))
        .map(|r| (r.path, r.nth))
        .collect();
    assert_eq!(
        sent,
        [
            ("/norm/get?q=1".to_string(), 1),
            ("/norm/get?q=1".to_string(), 0)
        ]
    );
}

/// The replayed body counts once against the route's limit: 700 bytes under
/// a 1 KiB limit pass on the retry as on the first attempt, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_body_counts_once_against_the_limit() {
    a_retried_request_body_counts_once_against_the_limit_on("false").await;
}

/// The same on the owned fast path (`--fast-path`): its own pool, its own
/// retry, the same request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_body_counts_once_against_the_limit_on_the_fast_path() {
    a_retried_request_body_counts_once_against_the_limit_on("true").await;
}

async fn a_retried_request_body_counts_once_against_the_limit_on(fast_path: &str) {
    let (proxy, evil, _) = retry_setup_with(fast_path).await;
    let body = vec![b'p'; 700];
    let r = retried(&proxy, &with_body("PUT", "/limited/doc", &body)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    let copies = evil.copies("PUT", "/limited/doc");
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(copies.iter().all(|c| c.body == body));
    // Over the limit is still refused.
    let mut c = RawConn::connect(&proxy).await;
    c.send(&with_body("PUT", "/limited/big", &[b'p'; 1100]))
        .await;
    assert_eq!(c.response().await.expect("an answer").status, 413);
}

/// The shadow side gets the body once, not once per attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_body_is_shadowed_once() {
    let (proxy, evil, shadow) = retry_setup().await;
    let body = vec![b's'; 700];
    let r = retried(&proxy, &with_body("PUT", "/shadowed/doc", &body)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
    assert_eq!(evil.copies("PUT", "/shadowed/doc").len(), 2);
    let copy = eventually(HANG, || async {
        shadow
            .seen()
            .into_iter()
            .find(|s| s.path == "/shadowed/doc")
    })
    .await
    .unwrap_or_else(|| panic!("no shadow copy; logs:\n{}", proxy.logs()));
    assert_eq!(copy.method, "PUT");
    assert_eq!(copy.body.len(), body.len(), "shadow copy body");
    assert_eq!(shadow.seen().len(), 1);
}
