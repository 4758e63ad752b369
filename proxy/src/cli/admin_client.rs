//! A minimal blocking HTTP/1.1 client for the admin API, as the CLI uses it:
//! one request per connection, JSON in and out, the bearer token from the
//! environment variable the config names.
//!
//! Every request has one deadline, from the connect to the last byte of the
//! answer, so that a proxy that accepts and never answers (hung, overloaded,
//! or something else on that port) costs a bounded wait, and the error says
//! which of those it was rather than an OS error number.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens (connection refused): no proxy is running with this
    /// config on this host.
    #[error("no proxy answered at {0} (nothing listens there)")]
    Unreachable(SocketAddr),
    /// The connection was not accepted in time: packets dropped by a
    /// firewall, a host that is down, or an accept queue that is full.
    #[error(
        "nothing at {addr} accepted the connection in {} (a firewall dropping packets, a host that is down, or a proxy too overloaded to accept)",
        seconds(*after)
    )]
    ConnectTimeout { addr: SocketAddr, after: Duration },
    /// Connected, but no complete answer in time.
    #[error(
        "the proxy at {addr} accepted the connection but did not answer in {} (a hung or overloaded process, or something else on that port)",
        seconds(*after)
    )]
    NoAnswer {
        addr: SocketAddr,
        after: Duration,
        /// Whether the whole request was written (so a change may have
        /// been applied).
        sent: bool,
    },
    #[error("admin API at {addr}: {message}")]
    Failed {
        addr: SocketAddr,
        message: String,
        /// Whether the whole request was written.
        sent: bool,
    },
}

impl ClientError {
    /// Whether the proxy may have received (and acted on) the request.
    pub fn request_sent(&self) -> bool {
        match self {
            ClientError::Unreachable(_) | ClientError::ConnectTimeout { .. } => false,
            ClientError::NoAnswer { sent, .. } | ClientError::Failed { sent, .. } => *sent,
        }
    }
}

/// "5 s", "1.5 s", "300 ms".
pub fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[derive(Debug, Clone)]
pub struct AdminClient {
    pub addr: SocketAddr,
    token: Option<String>,
    /// The deadline of each request (connect to last byte of the answer).
    answer_within: Duration,
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
    /// A client for the proxy the config names; each request must be
    /// answered within `answer_within`.
    pub fn for_config(config: &Config, answer_within: Duration) -> AdminClient {
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
        AdminClient {
            addr,
            token,
            // A zero timeout means "none" to the socket calls: keep a floor.
            answer_within: answer_within.max(Duration::from_millis(1)),
        }
    }

    /// A client for the proxy at `admin` (`http://HOST:PORT` or
    /// `HOST:PORT`, from `--admin` or `$STRANGLER_ADMIN`) when given, else
    /// for the one `config` names. The token comes from the variable the
    /// config names, or `$STRANGLER_ADMIN_TOKEN` without a config.
    pub fn for_target(
        config: Option<&Config>,
        admin: Option<&str>,
        answer_within: Duration,
    ) -> Result<AdminClient, String> {
        let mut client = match config {
            Some(c) => AdminClient::for_config(c, answer_within),
            None => AdminClient {
                addr: SocketAddr::from(([127, 0, 0, 1], 9901)),
                token: std::env::var("STRANGLER_ADMIN_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty()),
                answer_within: answer_within.max(Duration::from_millis(1)),
            },
        };
        if let Some(admin) = admin {
            client.addr = admin_addr(admin)?;
        }
        Ok(client)
    }

    /// What to add to the proxy's refusal: for a 401, where the token
    /// should have come from.
    pub fn refusal_hint(&self, status: u16) -> &'static str {
        match status {
            401 if !self.has_token() => {
                " (the token variable named by admin.token_env is not set here)"
            }
            401 => " (check the token in the variable named by admin.token_env)",
            _ => "",
        }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    pub fn answer_within(&self) -> Duration {
        self.answer_within
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, ClientError> {
        self.request_within(method, path, body, self.answer_within)
    }

    /// [`AdminClient::request`] with its own deadline (at most the client's).
    pub fn request_within(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        within: Duration,
    ) -> Result<Reply, ClientError> {
        let within = within.clamp(Duration::from_millis(1), self.answer_within);
        let deadline = Instant::now() + within;
        let addr = self.addr;
        let mut stream = match TcpStream::connect_timeout(&addr, within) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                return Err(ClientError::Unreachable(addr));
            }
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                return Err(ClientError::ConnectTimeout {
                    addr,
                    after: within,
                });
            }
            Err(e) => {
                return Err(ClientError::Failed {
                    addr,
                    message: format!("cannot connect: {e}"),
                    sent: false,
                });
            }
        };
        let mut sent = false;
        // Socket timeouts are per call; the time left before the deadline
        // is set before each one, so the sum is bounded too.
        let io_error = |e: std::io::Error, sent: bool| {
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                ClientError::NoAnswer {
                    addr,
                    after: within,
                    sent,
                }
            } else {
                ClientError::Failed {
                    addr,
                    message: e.to_string(),
                    sent,
                }
            }
        };
        let left = |sent: bool| {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or(ClientError::NoAnswer {
                    addr,
                    after: within,
                    sent,
                })
        };
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(&body);
        stream
            .set_write_timeout(Some(left(sent)?))
            .and_then(|_| stream.write_all(head.as_bytes()))
            .map_err(|e| io_error(e, sent))?;
        sent = true;
        let read = |stream: &mut TcpStream, chunk: &mut [u8]| loop {
            let result = stream
                .set_read_timeout(Some(left(sent)?))
                .and_then(|_| stream.read(chunk));
            match result {
                // A signal handled by the process (a replay's Ctrl-C, which
                // cancels the run) interrupts a read on a socket with a
                // timeout even under SA_RESTART: read again.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                other => return other.map_err(|e| io_error(e, sent)),
            }
        };
        // Read the head, then exactly Content-Length bytes of body.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let header_end = loop {
            let n = read(&mut stream, &mut chunk)?;
            if n == 0 {
                return Err(ClientError::Failed {
                    addr,
                    message: "the connection was closed before an answer (is this a strangler admin port?)".into(),
                    sent,
                });
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
            .ok_or_else(|| ClientError::Failed {
                addr,
                message: format!("not an HTTP answer: {head}"),
                sent,
            })?;
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
            let n = read(&mut stream, &mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
        Ok(Reply { status, body })
    }
}

/// The address of an admin server as a person writes it.
pub fn admin_addr(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let bare = text
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    if text.trim().starts_with("https://") || bare.contains('/') {
        return Err(format!(
            "--admin {text:?}: expected http://HOST:PORT or HOST:PORT (the admin server speaks plain HTTP on loopback)"
        ));
    }
    bare.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            format!("--admin {text:?}: not an address (expected http://HOST:PORT or HOST:PORT)")
        })
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
