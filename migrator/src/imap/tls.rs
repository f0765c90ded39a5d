//! TLS for the IMAP client: certificates are always verified, against the
//! webpki roots plus the `ca` the configuration names. Only `allow_insecure`
//! (config or `--allow-insecure`) turns verification off; other migrators do it
//! by default, which hands the master password to whoever sits on the path.

use super::ImapError;
use relay::deliver::tls::AnyCertificate;
use rustls::pki_types::ServerName;
use std::path::Path;
use std::sync::Arc;

/// Builds the client configuration for one side.
pub fn client_config(
    ca: Option<&Path>,
    insecure: bool,
) -> Result<Arc<rustls::ClientConfig>, ImapError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Tls(e.to_string()))?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).map_err(|e| {
                ImapError::Tls(format!("{}: cannot read the CA file: {e}", ca.display()))
            })?;
            let mut found = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| {
                    ImapError::Tls(format!("{}: not a PEM certificate: {e}", ca.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    ImapError::Tls(format!("{}: unusable trust anchor: {e}", ca.display()))
                })?;
                found += 1;
            }
            if found == 0 {
                return Err(ImapError::Tls(format!(
                    "{}: no PEM certificate in the CA file",
                    ca.display()
                )));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The host as a TLS server name (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, ImapError> {
    ServerName::try_from(host.to_string())
        .map_err(|e| ImapError::Tls(format!("{host:?} is not a valid server name: {e}")))
}
