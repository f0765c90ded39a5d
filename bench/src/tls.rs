//! TLS for the benchmark tools: the generator trusts any server certificate (the
//! targets use self-signed ones; we measure cost, not trust), the sink presents a
//! self-signed certificate generated at start.

use relay::deliver::tls::AnyCertificate;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// A client configuration that accepts every certificate.
pub fn insecure_client() -> Arc<ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(AnyCertificate(Arc::clone(&provider)));
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

/// A server configuration with a fresh self-signed certificate for `name`.
pub fn self_signed_server(name: &str) -> Result<Arc<ServerConfig>, String> {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()])
        .map_err(|e| format!("generate certificate: {e}"))?;
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| format!("server config: {e}"))?;
    Ok(Arc::new(config))
}
