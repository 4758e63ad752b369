//! A minimal blocking HTTP/1.1 client for the admin API, as the CLI uses it:
//! one request per connection, JSON in and out, the bearer token from the
//! environment variable the config names.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens: no proxy is running with this config.
    #[error("no proxy answered at {0}")]
    Unreachable(SocketAddr),
    #[error("admin API at {addr}: {message}")]
    Failed { addr: SocketAddr, message: String },
}

#[derive(Debug, Clone)]
pub struct AdminClient {
    pub addr: SocketAddr,
    token: Option<String>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The `error` of a JSON error reply, or the body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }
}

impl AdminClient {
    pub fn for_config(config: &Config) -> AdminClient {
        let mut addr = config.admin.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let token = config
            .admin
            .token_env
            .as_ref()
            .and_then(|name| std::env::var(name).ok())
            .filter(|t| !t.is_empty());
        AdminClient { addr, token }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, ClientError> {
        let failed = |message: String| ClientError::Failed {
            addr: self.addr,
            message,
        };
        let mut stream = match TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(ClientError::Unreachable(self.addr));
            }
            Err(e) => return Err(failed(e.to_string())),
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .and_then(|_| stream.write_all(body.as_bytes()))
            .map_err(|e| failed(e.to_string()))?;
        // Read the head, then exactly Content-Length bytes of body.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let header_end = loop {
            let n = stream.read(&mut chunk).map_err(|e| failed(e.to_string()))?;
            if n == 0 {
                return Err(failed("connection closed before the answer".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| failed(format!("bad status line: {head}")))?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = buf[header_end..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).map_err(|e| failed(e.to_string()))?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
        Ok(Reply { status, body })
    }
}

/// Who is making a change: `$STRANGLER_ACTOR`, else the (sudo) user at the
/// host.
pub fn actor() -> String {
    if let Ok(a) = std::env::var("STRANGLER_ACTOR") {
        if !a.is_empty() {
            return a;
        }
    }
    let user = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}
