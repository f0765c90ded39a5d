//! Outbound TLS: the client configurations behind a route's `tls` policy.
//!
//! `opportunistic` and `required` encrypt without authenticating the next hop
//! (RFC 7435 opportunistic security: an unverified channel still beats
//! cleartext, and most MX certificates do not match the MX name anyway).
//! `verify` checks the chain against the webpki roots plus the route's `ca`,
//! and the certificate against the next hop's host name. A route with
//! `client_cert` presents it in every handshake, whatever the policy.

use super::status::DeliverError;
use crate::config::{OutboundTls, RouteConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WantsClientCert;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate a route presents on STARTTLS (`client_cert`, `client_key`):
/// how Microsoft 365 and Exchange Hybrid connectors recognise each other.
#[derive(Debug)]
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ClientIdentity {
    /// Reads the PEM chain and key; a pair that does not belong together is refused here,
    /// at start, not at the first delivery.
    pub fn load(cert: &Path, key: &Path) -> Result<ClientIdentity, DeliverError> {
        let file_error = |path: &Path, detail: String| DeliverError::Ca {
            path: path.display().to_string(),
            detail,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| file_error(cert, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(file_error(cert, "no CERTIFICATE in the file".into()));
        }
        let key_der =
            PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e.to_string()))?;
        let identity = ClientIdentity {
            chain,
            key: key_der,
        };
        // Building a configuration checks that the key matches the certificate.
        identity
            .apply(base())
            .map_err(|e| file_error(cert, format!("with {}: {e}", key.display())))?;
        Ok(identity)
    }

    fn apply(
        &self,
        builder: ConfigBuilder<ClientConfig, WantsClientCert>,
    ) -> Result<ClientConfig, rustls::Error> {
        builder.with_client_auth_cert(self.chain.clone(), self.key.clone_key())
    }
}

fn base() -> ConfigBuilder<ClientConfig, WantsClientCert> {
    let provider = provider();
    ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
}

fn finish(
    builder: ConfigBuilder<ClientConfig, WantsClientCert>,
    identity: Option<&ClientIdentity>,
) -> Arc<ClientConfig> {
    let config = match identity {
        // The pair was checked by `ClientIdentity::load`.
        Some(id) => id
            .apply(builder)
            .expect("client certificate checked at load"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// The client configurations of one route: one that accepts any certificate
/// (`opportunistic`, `required`, DANE's fallback), one that verifies
/// (`verify`, MTA-STS `enforce`), both presenting the route's client
/// certificate when it has one.
pub struct RouteTls {
    any: Arc<ClientConfig>,
    verifying: Arc<ClientConfig>,
    roots: Arc<RootCertStore>,
    identity: Option<ClientIdentity>,
}

impl RouteTls {
    /// Reads the route's `ca`, `client_cert` and `client_key`.
    pub fn new(route: &RouteConfig) -> Result<RouteTls, DeliverError> {
        let identity = match (&route.client_cert, &route.client_key) {
            (Some(cert), Some(key)) => Some(ClientIdentity::load(cert, key)?),
            _ => None,
        };
        let roots = Arc::new(roots(route.ca.as_deref())?);
        let verifying = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots.clone());
        Ok(RouteTls {
            any: finish(base(), identity.as_ref()),
            verifying: finish(verifying, identity.as_ref()),
            roots,
            identity,
        })
    }

    /// The configuration for a handshake under `policy`: verifying for `verify`,
    /// any certificate otherwise (DANE builds its own per next hop).
    pub fn config(&self, policy: OutboundTls) -> Arc<ClientConfig> {
        match policy {
            OutboundTls::Verify => self.verifying.clone(),
            _ => self.any.clone(),
        }
    }

    /// The trust anchors of `verify`: the webpki roots and the route's `ca`.
    pub fn roots(&self) -> Arc<RootCertStore> {
        self.roots.clone()
    }

    /// A configuration with `verifier` deciding and the route's client certificate.
    pub fn with_verifier(&self, verifier: Arc<dyn ServerCertVerifier>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        finish(builder, self.identity.as_ref())
    }

    /// A verifier of the route's `verify` trust, for checking a certificate
    /// after a handshake that did not depend on it (MTA-STS `testing`).
    pub fn audit_verifier(&self) -> Arc<dyn ServerCertVerifier> {
        rustls::client::WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .expect("the webpki roots are never empty")
    }

    /// A configuration with `verifier` deciding and no client certificate.
    pub fn bare_with_verifier(verifier: Arc<dyn ServerCertVerifier>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        finish(builder, None)
    }

    /// Whether the route presents a client certificate.
    pub fn has_client_certificate(&self) -> bool {
        self.identity.is_some()
    }
}

/// A configuration that accepts any certificate (still checks the handshake
/// signatures, so the session key is bound to the presented certificate).
pub fn any_certificate() -> Arc<ClientConfig> {
    finish(base(), None)
}

/// The webpki roots plus the PEM certificates in `ca`.
pub fn roots(ca: Option<&Path>) -> Result<RootCertStore, DeliverError> {
    crate::tls::trust_anchors(ca).map_err(|detail| DeliverError::Ca {
        path: ca.map(|p| p.display().to_string()).unwrap_or_default(),
        detail,
    })
}

/// A verifying configuration: webpki roots plus the PEM certificates in `ca`.
pub fn verifying(ca: Option<&Path>) -> Result<Arc<ClientConfig>, DeliverError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots(ca)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts every certificate but still checks the handshake signatures: the session
/// is encrypted to whoever answered. Used for the unauthenticated policies here, and by
/// the migrator (`--allow-insecure`) and the bench client.
#[derive(Debug)]
pub struct AnyCertificate(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
