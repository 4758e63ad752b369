//! `backends.NAME.tls` and `tls_verify`: the CA bundle, client certificate
//! and SNI name the proxy uses towards a backend.
//!
//! This is the one part of the compiler that reads files: a CA or key that
//! cannot be used must fail `strangler check` and a reload, with its place,
//! rather than every request later (Pingora would panic on a key it cannot
//! parse). Relative paths are taken from the configuration file's
//! directory, like the store's. Each file is checked with the same rustls
//! calls Pingora makes when it connects.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use pingora::tls::{CertificateDer, ClientConfig, PrivateKeyDer, RootCertStore, version};

use crate::config::error::{ErrorSink, Place};
use crate::config::model::{CertificateBundle, ClientIdentity, UpstreamTls};
use crate::config::raw::RawUpstreamTls;

/// `tls:` of one backend (absent: system roots, the URL's host as SNI).
/// `https` says whether any of its URLs is `https://`.
pub(super) fn compile_upstream_tls(
    sink: &mut ErrorSink,
    place: &Place,
    raw: Option<&RawUpstreamTls>,
    base: &Path,
    https: Option<bool>,
) -> UpstreamTls {
    let Some(raw) = raw else {
        return UpstreamTls::default();
    };
    let place = place.key("tls");
    // `None`: the URLs had errors of their own, already reported.
    if https == Some(false) {
        sink.push(
            place.clone(),
            "no url of this backend is https://, so these settings would never be used",
        );
    }
    let ca = raw.ca.as_deref().and_then(|path| {
        sink.check(&place.key("ca"), read_ca(base, path))
            .map(Arc::new)
    });
    let client = match (&raw.client_cert, &raw.client_key) {
        (Some(cert), Some(key)) => sink
            .check(&place.key("client_cert"), read_identity(base, cert, key))
            .map(Arc::new),
        (Some(_), None) => {
            sink.push(
                place.key("client_key"),
                "missing; client_cert needs its key",
            );
            None
        }
        (None, Some(_)) => {
            sink.push(
                place.key("client_cert"),
                "missing; client_key needs its certificate",
            );
            None
        }
        (None, None) => None,
    };
    let sni = raw
        .sni
        .as_deref()
        .and_then(|name| sink.check(&place.key("sni"), sni_name(name)));
    UpstreamTls { ca, client, sni }
}

/// A host name to send in SNI and check the certificate against.
fn sni_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !ok {
        return Err(format!("{name:?} is not a host name"));
    }
    Ok(name.to_ascii_lowercase())
}

/// Larger than any certificate bundle; a bound so that a path like
/// `/dev/zero` (or a fuzzer's choice) cannot hang a check or a reload.
const MAX_PEM_FILE: u64 = 4 << 20;

fn read(base: &Path, path: &str) -> Result<String, String> {
    let full = base.join(path);
    let cannot = |e: std::io::Error| format!("cannot read {path:?}: {e}");
    let meta = std::fs::metadata(&full).map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("{path:?} is not a file"));
    }
    if meta.len() > MAX_PEM_FILE {
        return Err(format!(
            "{path:?} is over {} MiB, too large for a PEM file",
            MAX_PEM_FILE >> 20
        ));
    }
    std::fs::read_to_string(&full).map_err(cannot)
}

/// One PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`, ...) and DER.
struct PemBlock {
    label: String,
    der: Vec<u8>,
}

impl std::fmt::Debug for PemBlock {
    /// The bytes may be a private key: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PemBlock({}, {} bytes)", self.label, self.der.len())
    }
}

/// The PEM blocks of a file, in order. Text around them (comments, the
/// "Bag Attributes" openssl writes) is ignored, as by every PEM reader.
fn pem_blocks(text: &str, path: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label.to_string(), String::new()));
        } else if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            let Some((begun, body)) = current.take() else {
                return Err(format!("{path:?}: END {label} without a BEGIN"));
            };
            if begun != label {
                return Err(format!("{path:?}: BEGIN {begun} ended by END {label}"));
            }
            let der = base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|e| format!("{path:?}: a {label} block is not valid base64 ({e})"))?;
            blocks.push(PemBlock {
                label: label.to_string(),
                der,
            });
        } else if let Some((_, body)) = current.as_mut() {
            // Headers of old-style encrypted keys contain ':'.
            if line.contains(':') {
                return Err(format!(
                    "{path:?}: encrypted PEM is not supported (decrypt the key first)"
                ));
            }
            body.push_str(line);
        }
    }
    if let Some((label, _)) = current {
        return Err(format!("{path:?}: BEGIN {label} is never ended"));
    }
    Ok(blocks)
}

fn certificates(blocks: &[PemBlock]) -> Vec<Vec<u8>> {
    blocks
        .iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der.clone())
        .collect()
}

/// `ca`: one or more CA certificates, each one a trust anchor rustls takes.
fn read_ca(base: &Path, path: &str) -> Result<CertificateBundle, String> {
    let blocks = pem_blocks(&read(base, path)?, path)?;
    let certs = certificates(&blocks);
    if certs.is_empty() {
        return Err(format!("{path:?} holds no PEM certificate"));
    }
    let mut store = RootCertStore::empty();
    for (i, der) in certs.iter().enumerate() {
        store
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| format!("{path:?}: certificate {} is not usable: {e}", i + 1))?;
    }
    Ok(CertificateBundle {
        path: path.to_string(),
        certificates: certs,
    })
}

/// `client_cert` (leaf first, then intermediates) and `client_key`, checked
/// to belong together.
fn read_identity(base: &Path, cert_path: &str, key_path: &str) -> Result<ClientIdentity, String> {
    let chain = certificates(&pem_blocks(&read(base, cert_path)?, cert_path)?);
    if chain.is_empty() {
        return Err(format!("{cert_path:?} holds no PEM certificate"));
    }
    let key_blocks = pem_blocks(&read(base, key_path)?, key_path)?;
    let keys: Vec<&PemBlock> = key_blocks
        .iter()
        .filter(|b| b.label.ends_with("PRIVATE KEY"))
        .collect();
    let key = match keys.as_slice() {
        [] => return Err(format!("client_key {key_path:?} holds no PEM private key")),
        [one] if one.label.starts_with("ENCRYPTED") => {
            return Err(format!(
                "client_key {key_path:?} is encrypted (decrypt the key first)"
            ));
        }
        [one] => one.der.clone(),
        _ => return Err(format!("client_key {key_path:?} holds several keys")),
    };
    // What Pingora does with the key when it connects (a failure there is
    // a panic).
    let parsed = PrivateKeyDer::try_from(key.clone())
        .map_err(|e| format!("client_key {key_path:?} is not a private key: {e}"))?;
    pingora::tls::install_default_crypto_provider();
    ClientConfig::builder_with_protocol_versions(&[&version::TLS12, &version::TLS13])
        .with_root_certificates(RootCertStore::empty())
        .with_client_auth_cert(
            chain
                .iter()
                .map(|c| CertificateDer::from(c.clone()))
                .collect(),
            parsed,
        )
        .map_err(|e| {
            format!("{cert_path:?} and client_key {key_path:?} cannot be used together: {e}")
        })?;
    Ok(ClientIdentity {
        cert_path: cert_path.to_string(),
        chain,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_names_are_host_names() {
        assert_eq!(sni_name("Orders.Internal").unwrap(), "orders.internal");
        assert!(sni_name("").is_err());
        assert!(sni_name("a..b").is_err());
        assert!(sni_name("a b").is_err());
        assert!(sni_name("host:443").is_err());
    }

    #[test]
    fn pem_blocks_are_read_in_order_and_broken_ones_named() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n\
                    -----BEGIN PRIVATE KEY-----\nAw==\n-----END PRIVATE KEY-----\n";
        let blocks = pem_blocks(text, "x.pem").unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].der, vec![0, 1, 2]);
        assert_eq!(blocks[1].label, "PRIVATE KEY");
        let open = pem_blocks("-----BEGIN CERTIFICATE-----\nAAEC\n", "x.pem");
        assert!(open.unwrap_err().contains("never ended"));
        let bad = pem_blocks(
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
            "x.pem",
        );
        assert!(bad.unwrap_err().contains("base64"));
    }

    #[test]
    fn a_missing_file_is_named_as_written() {
        let e = read_ca(Path::new("/nonexistent-dir"), "ca.pem").unwrap_err();
        assert!(e.starts_with("cannot read \"ca.pem\": "), "{e}");
    }

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/valid/tls")
    }

    #[test]
    fn a_ca_and_a_matching_client_identity_are_read() {
        let ca = read_ca(&fixtures(), "ca.pem").unwrap();
        assert_eq!(ca.certificates.len(), 1);
        let id = read_identity(&fixtures(), "client.pem", "client.key").unwrap();
        assert_eq!(id.chain.len(), 1);
        assert!(
            !format!("{id:?}").contains("key:"),
            "the key is not printed"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .output()
            .expect("openssl");
        assert!(out.status.success());
        std::fs::write(dir.path().join("other.key"), &out.stdout).unwrap();
        let cert = fixtures().join("client.pem");
        let e = read_identity(dir.path(), cert.to_str().unwrap(), "other.key").unwrap_err();
        assert!(e.contains("cannot be used together"), "{e}");
        // A certificate given as the key.
        let e = read_identity(&fixtures(), "client.pem", "client.pem").unwrap_err();
        assert_eq!(e, "client_key \"client.pem\" holds no PEM private key");
    }

    #[test]
    fn only_regular_files_are_read() {
        let e = read_ca(Path::new("/"), "dev/zero").unwrap_err();
        assert_eq!(e, "\"dev/zero\" is not a file");
        let e = read_ca(Path::new("/"), "tmp").unwrap_err();
        assert_eq!(e, "\"tmp\" is not a file");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty.pem"), "nothing here\n").unwrap();
        let e = read_ca(dir.path(), "empty.pem").unwrap_err();
        assert_eq!(e, "\"empty.pem\" holds no PEM certificate");
        let garbage = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("garbage.pem"), garbage).unwrap();
        let e = read_ca(dir.path(), "garbage.pem").unwrap_err();
        assert!(e.contains("certificate 1 is not usable"), "{e}");
    }
}
