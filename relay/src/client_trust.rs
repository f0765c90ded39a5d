//! Trust by client certificate (`relay.trusted_tls_names`): how a cloud tenant
//! whose sending addresses change (Microsoft 365's connectors, Exchange Hybrid)
//! is allowed to relay like a client in `trusted_networks`.
//!
//! The handshake only *asks* for a certificate (as Postfix's
//! `smtpd_tls_ask_ccert`): a client without one, or with one nobody can verify,
//! still gets its encrypted session, because on an MX refusing the handshake
//! would push mail into cleartext. Whether the certificate is trusted is decided
//! after the handshake: its chain must verify against the webpki roots plus
//! `[tls] client_ca`, for client authentication (extended key usage), valid now,
//! and one of its names (subjectAltName dNSName entries, else the subject CN)
//! must be listed, compared exactly and case-insensitively.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConnection, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use x509_parser::extensions::GeneralName;

/// Why the client trust anchors could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientTrustError {
    /// `[tls] client_ca` could not be read or holds no usable certificate.
    #[error("{}: {detail}", path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused to build the verifier.
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

/// The names that may relay, and the verifier their certificates must pass.
#[derive(Debug)]
pub struct ClientTrust {
    verifier: Arc<dyn ClientCertVerifier>,
    names: Vec<String>,
}

impl ClientTrust {
    /// `names` (lower case) with the webpki roots and the PEM anchors of `client_ca`.
    pub fn new(
        names: &[String],
        client_ca: Option<&Path>,
    ) -> Result<ClientTrust, ClientTrustError> {
        let roots =
            crate::tls::trust_anchors(client_ca).map_err(|detail| ClientTrustError::Ca {
                path: client_ca.map(Path::to_path_buf).unwrap_or_default(),
                detail,
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| ClientTrustError::Verifier(e.to_string()))?;
        Ok(ClientTrust {
            verifier,
            names: names.to_vec(),
        })
    }

    /// The verifier for the handshake: asks for a certificate, takes any
    /// (checking only that the client holds its key), decides nothing.
    pub fn handshake_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(AskClientCert(self.verifier.clone()))
    }

    /// After the handshake: the listed name the client's certificate proves, if any.
    pub fn trusted_name(&self, conn: &ServerConnection) -> Option<String> {
        let chain = conn.peer_certificates()?;
        let (end_entity, intermediates) = chain.split_first()?;
        if let Err(e) = self
            .verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
        {
            tracing::info!(error = %e, "client certificate not verified; not trusted for relaying");
            return None;
        }
        let names = certificate_names(end_entity);
        let found = names.iter().find(|n| self.names.contains(n)).cloned();
        if found.is_none() {
            tracing::info!(names = ?names, "verified client certificate names none of relay.trusted_tls_names");
        }
        found
    }
}

/// The DNS names a certificate is for: its subjectAltName dNSName entries,
/// else (older certificates) its subject common names; lower case, no trailing dot.
pub fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let normalize = |n: &str| n.trim_end_matches('.').to_ascii_lowercase();
    let mut names: Vec<String> = match parsed.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|g| match g {
                GeneralName::DNSName(n) => Some(normalize(n)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names = parsed
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(normalize)
            .collect();
    }
    names
}

/// Offers client authentication without making it a condition of the session.
#[derive(Debug)]
struct AskClientCert(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for AskClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // An empty list lets the client send whichever certificate it has
        // (RFC 8446 §4.2.4 makes the list optional).
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Decided after the handshake by `ClientTrust::trusted_name`.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_dns_alt_names_else_the_common_name() {
        let key = rcgen::KeyPair::generate().unwrap();
        let with_san = rcgen::CertificateParams::new(vec![
            "Mail.Tenant.Cloud.Example".to_string(),
            "192.0.2.1".to_string(),
        ])
        .unwrap()
        .self_signed(&key)
        .unwrap();
        assert_eq!(
            certificate_names(&CertificateDer::from(with_san.der().to_vec())),
            ["mail.tenant.cloud.example"]
        );
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "legacy.example.");
        let cn_only = params.self_signed(&key).unwrap();
        assert_eq!(
            certificate_names(&CertificateDer::from(cn_only.der().to_vec())),
            ["legacy.example"]
        );
    }
}
