//! A real HAProxy (Debian's package) in front of the proxy, as the load
//! balancer of a real deployment, and a client that connects from a chosen
//! loopback address (127.0.0.x), so that tests have many distinct clients on
//! one machine.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::free_port;

/// How HAProxy hands connections to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// HTTP mode with `option forwardfor`: the client's address in
    /// `X-Forwarded-For`.
    ForwardFor,
    /// TCP mode with `send-proxy-v2`: a PROXY protocol version 2 header.
    ProxyV2,
}

#[derive(Debug)]
pub struct HaProxy {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl HaProxy {
    /// Starts HAProxy on a free loopback port, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr, handoff: Handoff) -> HaProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let (mode, option, server_option) = match handoff {
            Handoff::ForwardFor => ("http", "option forwardfor", ""),
            Handoff::ProxyV2 => ("tcp", "", " send-proxy-v2"),
        };
        let config = format!(
            "global\n  maxconn 256\n\
             defaults\n  mode {mode}\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             frontend fe\n  bind 127.0.0.1:{port}\n  {option}\n  default_backend be\n\
             backend be\n  server s1 {upstream}{server_option}\n"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let mut child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy is installed by scripts/setup");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return HaProxy {
                    child,
                    port,
                    _dir: dir,
                };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("haproxy did not start listening on {addr}");
    }

    pub fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer read by [`request_from`].
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawAnswer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.head, self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Sends `request` (a whole HTTP/1.1 request with `Connection: close`) from
/// `source`, preceded by `preamble` (a PROXY header, say), and reads the
/// answer until the server closes. `None` when the server closed without an
/// answer.
pub async fn request_from(
    source: IpAddr,
    to: SocketAddr,
    preamble: &[u8],
    request: &str,
) -> Option<RawAnswer> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind a loopback source address");
    let mut stream = socket.connect(to).await.expect("connect");
    let _ = stream.write_all(preamble).await;
    let _ = stream.write_all(request.as_bytes()).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "no answer and no close within 15 s");
    if out.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Some(RawAnswer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// `GET path` with `Host` and extra header lines, closing after the answer.
pub fn get_request(path: &str, host: &str, headers: &[(&str, &str)]) -> String {
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r
}
