//! Server certificates: loading, checking, and the development certificate.
//!
//! When `[tls]` names files that do not exist yet, a self-signed certificate for
//! `server.hostname` (plus `localhost` and the loopback addresses) is generated on
//! first start, so the shipped loopback config works without an operator step. A
//! certificate that does not match its key is refused at start with a clear message.

use crate::client_trust::ClientTrust;
use crate::config::TlsConfig;
use crate::metrics::metrics;
use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Why the server's TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file has no usable PEM item.
    #[error("{path}: {what}: {detail}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
        /// Parser detail.
        detail: String,
    },
    /// rustls refused the pair (most often: the key does not match the certificate).
    #[error("{cert} with {key}: {detail} (does the key belong to this certificate?)")]
    Rejected {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// rustls' reason.
        detail: String,
    },
    /// Generating the development certificate failed.
    #[error("generating a development certificate: {0}")]
    Generate(String),
    /// The certificate's notAfter has passed (refused on reload: the one in
    /// force is better than an expired one).
    #[error("{}: the certificate expired on {not_after}", cert.display())]
    Expired {
        /// Certificate file.
        cert: PathBuf,
        /// Its notAfter, RFC 3339.
        not_after: String,
    },
    /// `[tls] client_ca` (for `relay.trusted_tls_names`) cannot be used.
    #[error("tls.client_ca: {0}")]
    ClientTrust(#[from] crate::client_trust::ClientTrustError),
    /// Only one of the two files exists.
    #[error("{present} exists but {missing} does not: provide both, or remove both to get a generated development certificate")]
    HalfPresent {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
}

/// Writes a self-signed certificate and key for `hostname` when neither file exists.
/// Returns true when it generated them.
pub fn ensure_dev_certificate(tls: &TlsConfig, hostname: &str) -> Result<bool, TlsError> {
    match (tls.cert.exists(), tls.key.exists()) {
        (true, true) => return Ok(false),
        (true, false) => {
            return Err(TlsError::HalfPresent {
                present: tls.cert.clone(),
                missing: tls.key.clone(),
            })
        }
        (false, true) => {
            return Err(TlsError::HalfPresent {
                present: tls.key.clone(),
                missing: tls.cert.clone(),
            })
        }
        (false, false) => {}
    }
    let names = vec![
        hostname.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    for dir in [tls.cert.parent(), tls.key.parent()].into_iter().flatten() {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    // The key first, private to the owner; then the certificate.
    write_new(
        &tls.key,
        generated.key_pair.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_new(&tls.cert, generated.cert.pem().as_bytes(), 0o644)?;
    Ok(true)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    crate::safeio::create_new(path, bytes, mode).map_err(|e| TlsError::Io {
        path: e.path,
        source: e.source,
    })
}

/// Reads a PEM certificate chain.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, "certificate", e))?
        .collect();
    let certs = certs.map_err(|e| pem_error(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "certificate",
            detail: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn pem_error(path: &Path, what: &'static str, e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_path_buf(),
            what,
            detail: format!("{other:?}"),
        },
    }
}

/// Builds the inbound TLS configuration: TLS 1.2 and 1.3 only (rustls has no older
/// versions and no renegotiation), the ring provider's modern cipher suites.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    Ok(load_pair(tls, None)?.0)
}

/// The configuration and the certificate's notAfter, from one reading of the
/// files (a pair replaced between two readings could mix).
fn load_pair(
    tls: &TlsConfig,
    trust: Option<&ClientTrust>,
) -> Result<(Arc<rustls::ServerConfig>, i64), TlsError> {
    let certs = load_certs(&tls.cert)?;
    let expiry = expiry_of(&tls.cert, &certs[0])?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| pem_error(&tls.key, "private key", e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let builder = match trust {
        Some(trust) => builder.with_client_cert_verifier(trust.handshake_verifier()),
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rejected {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            detail: e.to_string(),
        })?;
    Ok((Arc::new(config), expiry))
}

/// Expiry (`notAfter`, Unix seconds) of the first certificate in a PEM chain.
pub fn not_after(path: &Path) -> Result<i64, TlsError> {
    let certs = load_certs(path)?;
    expiry_of(path, &certs[0])
}

fn expiry_of(path: &Path, cert: &CertificateDer<'_>) -> Result<i64, TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: "certificate",
            detail: e.to_string(),
        })?;
    Ok(cert.validity().not_after.timestamp())
}

/// The inbound certificate in force. A reload (SIGHUP, `systemctl reload`)
/// replaces it with the files as they are now when they make a usable pair;
/// sessions in flight keep the one they shook hands with, new ones get the new.
pub struct ServerTls {
    files: TlsConfig,
    current: ArcSwap<rustls::ServerConfig>,
    trust: Option<ClientTrust>,
}

impl ServerTls {
    /// Loads `[tls] cert` and `key`; the expiry metric follows them. With
    /// `trust` (from `relay.trusted_tls_names`), clients are asked for a certificate.
    pub fn load(files: &TlsConfig, trust: Option<ClientTrust>) -> Result<ServerTls, TlsError> {
        let (config, expiry) = load_pair(files, trust.as_ref())?;
        metrics().tls_certificate_expiry.set(expiry);
        Ok(ServerTls {
            files: files.clone(),
            current: ArcSwap::new(config),
            trust,
        })
    }

    /// The `relay.trusted_tls_names` entry the client's verified certificate
    /// proves, when trust by certificate is configured.
    pub fn trusted_name(&self, conn: &rustls::ServerConnection) -> Option<String> {
        self.trust.as_ref()?.trusted_name(conn)
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Reads the files again and swaps the new pair in, or keeps the one in
    /// force when they are unreadable, mismatched (a half-replaced pair is
    /// one) or expired. Returns the new notAfter.
    pub fn reload(&self) -> Result<i64, TlsError> {
        let (config, expiry) = load_pair(&self.files, self.trust.as_ref())?;
        if expiry <= chrono::Utc::now().timestamp() {
            return Err(TlsError::Expired {
                cert: self.files.cert.clone(),
                not_after: chrono::DateTime::from_timestamp(expiry, 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| expiry.to_string()),
            });
        }
        self.current.store(config);
        metrics().tls_certificate_expiry.set(expiry);
        Ok(expiry)
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.files.cert
    }
}

/// The webpki roots plus the PEM certificates in `ca`: the trust both for next
/// hops (a route's `ca`) and for clients (`[tls] client_ca`). The error is the
/// detail only, so each caller names the file in its own error type.
pub fn trust_anchors(ca: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let Some(path) = ca else {
        return Ok(roots);
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE in the file".into());
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("not a usable trust anchor: {e}"))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsConfig {
            cert: dir.path().join("certs/relay.crt"),
            key: dir.path().join("certs/relay.key"),
            client_ca: None,
        };
        assert!(ensure_dev_certificate(&tls, "relay.test").unwrap());
        assert!(!ensure_dev_certificate(&tls, "relay.test").unwrap());
        let expiry = not_after(&tls.cert).unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!(
            expiry > now + 86400,
            "generated certificate is valid for a while"
        );
        let mode = std::fs::metadata(&tls.key).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
        server_config(&tls).unwrap();
    }

    #[test]
    fn mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = TlsConfig {
            cert: dir.path().join("a.crt"),
            key: dir.path().join("a.key"),
            client_ca: None,
        };
        let b = TlsConfig {
            cert: dir.path().join("b.crt"),
            key: dir.path().join("b.key"),
            client_ca: None,
        };
        ensure_dev_certificate(&a, "a.test").unwrap();
        ensure_dev_certificate(&b, "b.test").unwrap();
        let mixed = TlsConfig {
            cert: a.cert.clone(),
            key: b.key.clone(),
            client_ca: None,
        };
        let err = server_config(&mixed).unwrap_err();
        assert!(matches!(err, TlsError::Rejected { .. }), "{err}");
        assert!(err.to_string().contains("does the key belong"), "{err}");
    }

    #[test]
    fn half_present_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsConfig {
            cert: dir.path().join("x.crt"),
            key: dir.path().join("x.key"),
            client_ca: None,
        };
        std::fs::write(&tls.cert, "junk").unwrap();
        assert!(matches!(
            ensure_dev_certificate(&tls, "x"),
            Err(TlsError::HalfPresent { .. })
        ));
    }

    /// A pair for `name` written to `dir/name.{crt,key}`, expired or valid for long.
    fn pair(dir: &Path, name: &str, expired: bool) -> TlsConfig {
        let mut params = rcgen::CertificateParams::new(vec![format!("{name}.test")]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = if expired {
            rcgen::date_time_ymd(2021, 1, 1)
        } else {
            rcgen::date_time_ymd(2099, 1, 1)
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let files = TlsConfig {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            client_ca: None,
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    fn copy_pair(from: &TlsConfig, to: &TlsConfig) {
        std::fs::copy(&from.cert, &to.cert).unwrap();
        std::fs::copy(&from.key, &to.key).unwrap();
    }

    #[test]
    fn reload_swaps_a_good_pair_and_keeps_the_old_on_any_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a", false);
        let b = pair(dir.path(), "b", false);
        let expired = pair(dir.path(), "old", true);
        let live = TlsConfig {
            cert: dir.path().join("relay.crt"),
            key: dir.path().join("relay.key"),
            client_ca: None,
        };
        copy_pair(&a, &live);
        let tls = ServerTls::load(&live, None).unwrap();
        let first = tls.current.load_full();

        copy_pair(&b, &live);
        let expiry = tls.reload().expect("a good pair");
        assert_eq!(expiry, not_after(&b.cert).unwrap());
        let second = tls.current.load_full();
        assert!(
            !Arc::ptr_eq(&first, &second),
            "new sessions get the new pair"
        );

        // Half replaced: a's certificate with b's key.
        std::fs::copy(&a.cert, &live.cert).unwrap();
        let err = tls.reload().unwrap_err();
        assert!(matches!(err, TlsError::Rejected { .. }), "{err}");
        assert!(Arc::ptr_eq(&second, &tls.current.load_full()), "kept");

        copy_pair(&expired, &live);
        let err = tls.reload().unwrap_err();
        assert!(matches!(err, TlsError::Expired { .. }), "{err}");
        assert!(err.to_string().contains("relay.crt"), "{err}");

        std::fs::write(&live.cert, "not a certificate").unwrap();
        let err = tls.reload().unwrap_err();
        assert!(err.to_string().contains("relay.crt"), "{err}");
        assert!(Arc::ptr_eq(&second, &tls.current.load_full()), "still kept");
    }
}
