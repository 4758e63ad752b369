//! A backend whose health a test switches: while silent it accepts
//! connections and never answers (a black hole: a hung process, a full
//! accept queue behind a load balancer); while answering it serves every
//! request with 200. It stays on one address, so the proxy sees one
//! address go bad and come back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Switchable {
    pub addr: SocketAddr,
    answering: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl Switchable {
    /// Starts silent (a black hole).
    pub async fn start_silent() -> Switchable {
        Switchable::start_at("127.0.0.1:0", false, "switchable").await
    }

    /// Starts on `addr` (`127.0.0.2:PORT` to share a port with another
    /// loopback address), answering `{"backend": NAME}` or silent.
    pub async fn start_at(addr: &str, answering: bool, name: &str) -> Switchable {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let body = Bytes::from(format!(r#"{{"backend":"{name}"}}"#));
        let answering = Arc::new(AtomicBool::new(answering));
        let requests = Arc::new(AtomicUsize::new(0));
        let (a, r) = (answering.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (a, r, body) = (a.clone(), r.clone(), body.clone());
                tokio::spawn(async move {
                    if !a.load(Ordering::SeqCst) {
                        // Held open, never read nor answered.
                        let _held = stream;
                        std::future::pending::<()>().await;
                        return;
                    }
                    let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        r.fetch_add(1, Ordering::SeqCst);
                        let body = body.clone();
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(200)
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
        Switchable {
            addr,
            answering,
            requests,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on, new connections are answered.
    pub fn answer(&self) {
        self.answering.store(true, Ordering::SeqCst);
    }

    /// Requests answered so far (health checks included).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
