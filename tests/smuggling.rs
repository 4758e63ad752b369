//! Request smuggling: raw HTTP/1.1 byte sequences that parsers disagree on,
//! each followed by a normal request on the same connection. The backend
//! must see exactly one request per request the proxy accepted, never the
//! request hidden in a body, and a request the proxy refuses is answered
//! with 4xx and the connection closed.

use std::time::Duration;

use strangler_e2e::{Backend, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

/// (name, bytes). Every vector hides `SMUGGLED` where a lenient or
/// disagreeing parser would take it for the next request.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let s = SMUGGLED;
    let n = s.len();
    let chunked_with =
        |te: &str| format!("POST /a HTTP/1.1\r\nHost: x\r\n{te}\r\n\r\n0\r\n\r\n{s}");
    let mut v: Vec<(String, String)> = vec![
        // Content-Length and Transfer-Encoding together (CL.TE and TE.CL).
        (
            "cl.te".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{s}"
            ),
        ),
        (
            "te.cl".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n{s}\r\n0\r\n\r\n"
            ),
        ),
        (
            "cl.te lower case".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\ncontent-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{s}"
            ),
        ),
        (
            "cl 0 te".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{s}"
            ),
        ),
        (
            "te then cl with space".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length : 3\r\n\r\n0\r\n\r\n{s}"
            ),
        ),
        // Duplicate or invalid Content-Length.
        (
            "two different cl".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: {n}\r\n\r\n{s}"
            ),
        ),
        (
            "two different cl reversed".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\nContent-Length: 0\r\n\r\n{s}"
            ),
        ),
        (
            "cl list".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0, {n}\r\n\r\n{s}"),
        ),
        (
            "cl plus sign".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +{n}\r\n\r\n{s}"),
        ),
        (
            "cl negative".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{s}"),
        ),
        (
            "cl hex".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0x{n:x}\r\n\r\n{s}"),
        ),
        (
            "cl with letters".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {n}abc\r\n\r\n{s}"),
        ),
        (
            "cl two numbers".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0 {n}\r\n\r\n{s}"),
        ),
        (
            "cl empty".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n{s}"),
        ),
        (
            "cl huge".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n{s}"
            ),
        ),
        (
            "cl space before colon".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length : {n}\r\n\r\n{s}"),
        ),
        (
            "cl tab value".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length:\t0\r\n\r\n{s}"),
        ),
        (
            "cl leading zeros".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 000\r\n\r\n{s}"),
        ),
        (
            "cl on GET".into(),
            format!("GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n\r\n{s}"),
        ),
        (
            "cl short body".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc{s}"),
        ),
        // Obfuscated Transfer-Encoding.
        (
            "te xchunked".into(),
            chunked_with("Transfer-Encoding: xchunked"),
        ),
        (
            "te chunked space".into(),
            chunked_with("Transfer-Encoding : chunked"),
        ),
        (
            "te leading space".into(),
            chunked_with("Transfer-Encoding:  chunked"),
        ),
        ("te tab".into(), chunked_with("Transfer-Encoding:\tchunked")),
        (
            "te trailing junk".into(),
            chunked_with("Transfer-Encoding: chunked, x"),
        ),
        (
            "te identity then chunked".into(),
            chunked_with("Transfer-Encoding: identity, chunked"),
        ),
        (
            "te chunked then identity".into(),
            chunked_with("Transfer-Encoding: chunked, identity"),
        ),
        (
            "te two headers".into(),
            chunked_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: x"),
        ),
        (
            "te two headers reversed".into(),
            chunked_with("Transfer-Encoding: x\r\nTransfer-Encoding: chunked"),
        ),
        (
            "te quoted".into(),
            chunked_with("Transfer-Encoding: \"chunked\""),
        ),
        (
            "te upper case value".into(),
            chunked_with("Transfer-Encoding: CHUNKED"),
        ),
        (
            "te mixed case name".into(),
            chunked_with("TrAnSfEr-EnCoDiNg: chunked"),
        ),
        (
            "te obs-fold".into(),
            chunked_with("Transfer-Encoding:\r\n chunked"),
        ),
        (
            "te underscore".into(),
            chunked_with("Transfer_Encoding: chunked"),
        ),
        (
            "te vertical tab".into(),
            chunked_with("Transfer-Encoding:\x0bchunked"),
        ),
        (
            "te null byte".into(),
            chunked_with("Transfer-Encoding: chunked\x00"),
        ),
        (
            "te comma only".into(),
            chunked_with("Transfer-Encoding: ,chunked"),
        ),
        (
            "te gzip only".into(),
            chunked_with("Transfer-Encoding: gzip"),
        ),
        // Bad chunk sizes and framing.
        (
            "chunk size hex prefix".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x0\r\n\r\n{s}"
            ),
        ),
        (
            "chunk size negative".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n{s}"
            ),
        ),
        (
            "chunk size overflow".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\n{s}\r\n0\r\n\r\n"
            ),
        ),
        (
            "chunk size with space".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0 \r\n\r\n{s}"
            ),
        ),
        (
            "chunk extension".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0;ext=\"x\r\n\r\n{s}"
            ),
        ),
        (
            "chunk missing crlf".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n{s}"
            ),
        ),
        (
            "chunk data longer".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n{s}"
            ),
        ),
        (
            "chunk lf only".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n{s}"
            ),
        ),
        (
            "chunk size non hex".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n{s}"
            ),
        ),
        (
            "chunked trailer smuggle".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n{s}"
            ),
        ),
        (
            "chunk size underscore".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n\r\n{s}"
            ),
        ),
        // Bare LF and line-ending tricks.
        (
            "bare lf request".into(),
            format!("POST /a HTTP/1.1\nHost: x\nContent-Length: {n}\n\n{s}"),
        ),
        (
            "bare lf te".into(),
            format!("POST /a HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n0\n\n{s}"),
        ),
        (
            "bare cr".into(),
            format!("POST /a HTTP/1.1\rHost: x\r\nContent-Length: 0\r\n\r\n{s}"),
        ),
        (
            "cr in header value".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nX: a\rContent-Length: {n}\r\n\r\n{s}"),
        ),
        (
            "lf in header name".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-\nLength: {n}\r\n\r\n{s}"),
        ),
        (
            "space before header name".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\n Content-Length: {n}\r\n\r\n{s}"),
        ),
        // HTTP/1.0 bodies.
        (
            "http/1.0 keep-alive with body".into(),
            format!(
                "POST /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: {n}\r\n\r\n{s}"
            ),
        ),
        (
            "http/1.0 te".into(),
            format!(
                "POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{s}"
            ),
        ),
        (
            "http/1.0 no length".into(),
            format!("POST /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n{s}"),
        ),
        ("http/0.9 style".into(), format!("GET /a\r\n\r\n{s}")),
        (
            "http/1.2".into(),
            format!("GET /a HTTP/1.2\r\nHost: x\r\n\r\n{s}"),
        ),
        // Upgrades and CONNECT.
        (
            "upgrade h2c with body".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: {n}\r\n\r\n{s}"
            ),
        ),
        (
            "upgrade websocket no key".into(),
            format!(
                "GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n{s}"
            ),
        ),
        (
            "connection upgrade without upgrade".into(),
            format!("GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\r\n{s}"),
        ),
        (
            "upgrade garbage".into(),
            format!(
                "GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: \x01\x02\r\n\r\n{s}"
            ),
        ),
        (
            "connect method".into(),
            format!("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n{s}"),
        ),
        (
            "connection nominates content-length".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: {n}\r\n\r\n{s}"
            ),
        ),
        // Request-line and header oddities.
        (
            "absolute form".into(),
            format!("POST http://x/a HTTP/1.1\r\nHost: y\r\nContent-Length: {n}\r\n\r\n{s}"),
        ),
        (
            "two hosts".into(),
            format!("POST /a HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Length: {n}\r\n\r\n{s}"),
        ),
        (
            "space in target".into(),
            format!("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n{s}"),
        ),
        (
            "no host".into(),
            format!("POST /a HTTP/1.1\r\nContent-Length: {n}\r\n\r\n{s}"),
        ),
        (
            "expect 100 then body".into(),
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {n}\r\n\r\n{s}"
            ),
        ),
        (
            "te on GET".into(),
            format!("GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{s}"),
        ),
    ];
    v.retain(|(_, b)| !b.is_empty());
    v.into_iter().map(|(n, b)| (n, b.into_bytes())).collect()
}

/// `bytes` with the request target `/a` renamed to `/a{tag}`. Only request lines change, so body lengths stay right.
fn tagged(bytes: &[u8], tag: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    text.replace(" /a ", &format!(" /a{tag} "))
        .replace(" /a\r", &format!(" /a{tag}\r"))
        .into_bytes()
}

/// Status codes of the responses read until the connection closes or is quiet.
/// The vector's own requests are tagged with `tag` so that what the backend
/// sees late (after the client's answer) is still attributed to it.
async fn exchange(addr: &str, bytes: &[u8], tag: &str) -> (Vec<u16>, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(&tagged(bytes, tag)).await;
    let normal = format!("GET /normal{tag} HTTP/1.1\r\nHost: x\r\n\r\n");
    let _ = s.write_all(normal.as_bytes()).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let mut closed = false;
    loop {
        match tokio::time::timeout(Duration::from_millis(1500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&out);
    let statuses = text
        .match_indices("HTTP/1.")
        .filter_map(|(i, _)| text[i..].split_whitespace().nth(1)?.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c))
        .collect();
    (statuses, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_smuggled_past_the_proxy() {
    let backend = Backend::start("legacy").await;
    let proxy = Proxy::start(&format!(
        "backends:\n  legacy: {{ url: \"{}\" }}\ndefault: legacy\n",
        backend.url()
    ))
    .await;
    let corpus = corpus();
    assert!(corpus.len() >= 60, "{} vectors", corpus.len());
    let mut answers = Vec::new();
    for (i, (_, bytes)) in corpus.iter().enumerate() {
        answers.push(exchange(&proxy.addr(), bytes, &format!("-{i}-")).await);
    }
    // The backend records a request once its body ends, which for a request
    // the proxy cut short can be after the client's answer: wait for quiet.
    let mut count = backend.seen().len();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = backend.seen().len();
        if now == count {
            break;
        }
        count = now;
    }
    let all_seen = backend.seen();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let untagged: Vec<&str> = all_seen
        .iter()
        .map(|s| s.path.as_str())
        .filter(|p| !p.contains('-'))
        .collect();
    if !untagged.is_empty() {
        failures.push(format!("requests no vector sent: {untagged:?}"));
    }
    for (i, ((name, _), (statuses, closed))) in corpus.iter().zip(answers).enumerate() {
        let tag = format!("-{i}-");
        let seen: Vec<&str> = all_seen
            .iter()
            .map(|s| s.path.as_str())
            .filter(|p| p.contains(&tag))
            .collect();
        // Every request the backend saw got exactly one answer to the client;
        // an answer other than the backend's 200 (the proxy refusing, or an
        // upgrade to a tunnel) ends the HTTP exchange: nothing is answered
        // after it, and a refusal closes the connection. The request hidden
        // in a body is untagged, so it fails the check above.
        let finals: Vec<u16> = statuses.iter().copied().filter(|s| *s != 100).collect();
        let one_answer_each = seen.len() <= finals.len() && seen.len() <= 2;
        let refusal_ends = match finals.iter().position(|s| *s != 200) {
            Some(i) => i == finals.len() - 1 && (finals[i] == 101 || closed),
            None => true,
        };
        report.push(format!(
            "{name:40} -> {statuses:?} closed={closed} backend saw {seen:?}"
        ));
        if !(one_answer_each && refusal_ends) {
            failures.push(format!(
                "{name}: statuses {statuses:?}, closed {closed}, backend saw {seen:?}"
            ));
        }
    }
    println!("{}", report.join("\n"));
    println!("{} vectors tried, {} failed", corpus.len(), failures.len());
    println!(
        "suite: request smuggling: {} vectors, lost {}",
        corpus.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "smuggling or framing problems:\n{}",
        failures.join("\n")
    );
}
