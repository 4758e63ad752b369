//! HTTPS backends for upstream TLS tests: a private PKI made with the
//! `openssl` CLI in a temporary directory, and HAProxy (the Debian package)
//! terminating TLS in front of a harness [`Backend`], optionally requiring
//! a client certificate. HAProxy passes the SNI it received to the backend
//! as `x-seen-sni`, so a test sees what the proxy sent.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::backend::Backend;
use crate::proxy::free_port;

/// A certificate authority and the certificates it signed, as PEM files.
#[derive(Debug)]
pub struct Pki {
    pub dir: TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A new CA (`ca.pem`, `ca.key`) in a fresh temporary directory.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        Pki::ca_in(dir.path(), "ca", "Strangler Test CA");
        Pki { dir }
    }

    fn ca_in(dir: &Path, name: &str, subject: &str) {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "3650",
                "-subj",
                &format!("/CN={subject}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    /// Another CA in the same directory (`NAME.pem`), one the backend's
    /// certificate does not chain to.
    pub fn other_ca(&self, name: &str) -> PathBuf {
        Pki::ca_in(self.dir.path(), name, "Some Other CA");
        self.path(&format!("{name}.pem"))
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A certificate for `name` (`NAME.pem`, `NAME.key`) signed by the CA,
    /// valid for `san` (e.g. `IP:127.0.0.1,DNS:localhost`), for a server or
    /// a client (`usage` is `serverAuth` or `clientAuth`).
    pub fn issue(&self, name: &str, san: &str, usage: &str) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        let ext =
            format!("subjectAltName={san}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n");
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext file");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "365",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
        (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        )
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// HAProxy terminating TLS for a backend; stopped on drop.
#[derive(Debug)]
pub struct TlsFront {
    pub addr: SocketAddr,
    child: Child,
    _dir: TempDir,
}

impl TlsFront {
    /// Serves `cert`/`key` on a free port and forwards to `backend`. With
    /// `client_ca`, a client certificate signed by it is required.
    pub async fn start(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
        backend: &Backend,
    ) -> TlsFront {
        let dir = tempfile::tempdir().expect("tempdir");
        let crt = dir.path().join("server.pem");
        let pem = format!(
            "{}{}",
            std::fs::read_to_string(cert).expect("cert"),
            std::fs::read_to_string(key).expect("key")
        );
        std::fs::write(&crt, pem).expect("write crt");
        let verify = match client_ca {
            Some(ca) => format!(" ca-file {} verify required", ca.display()),
            None => String::new(),
        };
        for _ in 0..3 {
            let port = free_port();
            let config = format!(
                "global\n  maxconn 256\n\
                 defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
                 frontend tls\n  bind 127.0.0.1:{port} ssl crt {crt}{verify}\n\
                 \x20 http-request set-header x-seen-sni %[ssl_fc_sni]\n\
                 \x20 http-request set-header x-seen-client-cert %[ssl_c_used]\n\
                 \x20 default_backend plain\n\
                 backend plain\n  server b {backend}\n",
                crt = crt.display(),
                backend = backend.addr,
            );
            let cfg = dir.path().join("haproxy.cfg");
            std::fs::write(&cfg, config).expect("write haproxy.cfg");
            let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("log");
            let mut child = Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start haproxy (apt-get install haproxy)");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return TlsFront {
                        addr,
                        child,
                        _dir: dir,
                    };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("haproxy.log")).unwrap_or_default();
        panic!("haproxy did not start:\n{log}");
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
