//! DANE for SMTP (RFC 7672): with `tls = "dane"` and `[dns] dnssec = true`,
//! the DNSSEC-validated TLSA records of a next hop decide its certificate.
//!
//! Lookups go through a second, validating resolver (the `[dns]` name servers,
//! the IANA root or `trust_anchor`); every other lookup stays as it was. Only a
//! secure MX RRset makes its hosts' TLSA records count (§2.2.1), and only
//! secure TLSA records count at all. An insecure answer (an unsigned zone
//! under a signed delegation without DS) makes the route `opportunistic`
//! (§2.2); hickory reports a name no anchor covers as bogus. A *bogus* answer
//! or a failed lookup is never taken for "no records": an attacker could
//! otherwise strip DANE by breaking the signatures (§2.1.1). A bogus MX
//! RRset defers the group; a bogus or failed TLSA lookup makes that next hop
//! unusable (the next MX is tried, then the group is deferred), as Postfix
//! does with its `dane` level.
//!
//! Usable records: DANE-TA(2) and DANE-EE(3), selectors Cert(0) and SPKI(1),
//! matching Full(0), SHA2-256(1), SHA2-512(2) (§3.1). DANE-EE pins the server's
//! certificate or key, with no name or expiry check (§3.1.1); DANE-TA names a
//! certificate of the presented chain as the trust anchor, and the chain from
//! the leaf to it must verify for the MX host name (§3.1.2). With secure records
//! of which none is usable, TLS is still required, unauthenticated (§2.2).

use super::status::DeliverError;
use crate::config::DnsConfig;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;

/// One usable TLSA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// 2 (DANE-TA) or 3 (DANE-EE).
    pub usage: u8,
    /// 0 (whole certificate) or 1 (SubjectPublicKeyInfo).
    pub selector: u8,
    /// 0 (exact), 1 (SHA2-256), 2 (SHA2-512).
    pub matching: u8,
    /// The association data.
    pub data: Vec<u8>,
}

/// What DANE says about one next hop.
#[derive(Debug)]
pub enum HopDane {
    /// The lookup failed or did not validate: this next hop is not used.
    Failed(DeliverError),
    /// No secure TLSA records: opportunistic.
    NoRecords,
    /// Secure records, none usable: TLS required, any certificate.
    Unusable,
    /// Secure, usable records: the certificate must match one.
    Records(Vec<Tlsa>),
}

/// The validating resolver.
pub struct Dane {
    resolver: TokioResolver,
}

impl Dane {
    /// A validating resolver over `[dns] nameservers` (or the system's), trusting
    /// `trust_anchor` (DNSKEY records) or the IANA root keys.
    pub fn new(dns: &DnsConfig) -> Result<Dane, DeliverError> {
        let anchors = match &dns.trust_anchor {
            Some(path) => TrustAnchors::from_file(path).map_err(|e| DeliverError::Ca {
                path: path.display().to_string(),
                detail: format!("not a DNSKEY trust anchor file: {e}"),
            })?,
            None => TrustAnchors::default(),
        };
        let mut opts = ResolverOpts::default();
        opts.validate = true;
        opts.timeout = Duration::from_secs(5);
        opts.attempts = 2;
        let builder = if dns.nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| DeliverError::Resolver(e.to_string()))?
        } else {
            let servers = dns
                .nameservers
                .iter()
                .map(|sa| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = sa.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = sa.port();
                    NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let resolver = builder
            .with_options(opts)
            .with_trust_anchor(Arc::new(anchors))
            .build()
            .map_err(|e| DeliverError::Resolver(e.to_string()))?;
        Ok(Dane { resolver })
    }

    /// What DNSSEC says about the MX RRset of `domain` (RFC 7672 §2.2.1).
    pub async fn mx_proof(&self, domain: &str) -> MxProof {
        let name = format!("{}.", domain.trim_end_matches('.'));
        match self.resolver.lookup(name.as_str(), RecordType::MX).await {
            Ok(l) => {
                let mx: Vec<_> = l
                    .answers()
                    .iter()
                    .filter(|r| matches!(r.data, RData::MX(_)))
                    .collect();
                if !mx.is_empty() && mx.iter().all(|r| r.proof == Proof::Secure) {
                    MxProof::Secure
                } else {
                    MxProof::NotSecure
                }
            }
            Err(e) => match lookup_failure(&name, "MX", &e) {
                Some(failure) => MxProof::Failed(failure),
                None => MxProof::NotSecure,
            },
        }
    }

    /// The TLSA records of `host` at `port` (`_port._tcp.host`, RFC 7672 §2.2.3).
    pub async fn tlsa(&self, host: &str, port: u16) -> HopDane {
        let name = format!("_{port}._tcp.{}.", host.trim_end_matches('.'));
        let lookup = match self.resolver.lookup(name.as_str(), RecordType::TLSA).await {
            Ok(l) => l,
            Err(e) => {
                return match lookup_failure(&name, "TLSA", &e) {
                    Some(failure) => HopDane::Failed(failure),
                    None => {
                        tracing::debug!(name, error = %e, "no secure TLSA records");
                        HopDane::NoRecords
                    }
                }
            }
        };
        let secure: Vec<_> = lookup
            .answers()
            .iter()
            .filter(|r| r.proof == Proof::Secure)
            .filter_map(|r| match &r.data {
                RData::TLSA(t) => Some(Tlsa {
                    usage: u8::from(t.cert_usage),
                    selector: u8::from(t.selector),
                    matching: u8::from(t.matching),
                    data: t.cert_data.clone(),
                }),
                _ => None,
            })
            .collect();
        if secure.is_empty() {
            return HopDane::NoRecords;
        }
        let usable: Vec<Tlsa> = secure
            .into_iter()
            .filter(|t| matches!(t.usage, 2 | 3) && t.selector <= 1 && t.matching <= 2)
            .collect();
        if usable.is_empty() {
            HopDane::Unusable
        } else {
            HopDane::Records(usable)
        }
    }
}

/// DNSSEC's verdict on a domain's MX RRset.
#[derive(Debug)]
pub enum MxProof {
    /// Every MX record validated: its hosts' TLSA records count.
    Secure,
    /// Insecure, indeterminate or no MX records: DANE does not apply.
    NotSecure,
    /// A bogus answer or a failed lookup: the group is deferred.
    Failed(DeliverError),
}

/// A failed validating lookup of `rtype` at `name`: `None` when the answer
/// proves there is nothing secure to use (NXDOMAIN or NODATA, secure or
/// not), else the error that keeps the message from going out unprotected.
fn lookup_failure(name: &str, rtype: &str, e: &NetError) -> Option<DeliverError> {
    if matches!(e, NetError::Dns(DnsError::DnssecBogus)) {
        return Some(DeliverError::TlsPolicy(format!(
            "DANE: the {rtype} records of {name} fail DNSSEC validation (bogus)"
        )));
    }
    // hickory turns a bogus denial into DnssecBogus; an Nsec error left is an
    // insecure or indeterminate denial.
    if e.is_nx_domain()
        || e.is_no_records_found()
        || matches!(e, NetError::Dns(DnsError::Nsec { .. }))
    {
        return None;
    }
    Some(DeliverError::DnsTemporary {
        name: format!("{name} {rtype}"),
        detail: e.to_string(),
    })
}

/// Checks the presented chain against TLSA records instead of the webpki roots.
#[derive(Debug)]
pub struct DaneVerifier {
    records: Vec<Tlsa>,
    provider: Arc<CryptoProvider>,
}

impl DaneVerifier {
    /// A verifier for `records`.
    pub fn new(records: Vec<Tlsa>) -> DaneVerifier {
        DaneVerifier {
            records,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    fn ta_verifies(
        &self,
        anchor: &CertificateDer<'_>,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> bool {
        let mut roots = RootCertStore::empty();
        if roots.add(anchor.clone().into_owned()).is_err() {
            return false;
        }
        let Ok(verifier) = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build() else {
            return false;
        };
        verifier
            .verify_server_cert(end_entity, intermediates, name, &[], now)
            .is_ok()
    }
}

/// The bytes a record's selector picks from `cert`.
fn selected(cert: &CertificateDer<'_>, selector: u8) -> Option<Vec<u8>> {
    match selector {
        0 => Some(cert.as_ref().to_vec()),
        1 => {
            let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
            Some(parsed.tbs_certificate.subject_pki.raw.to_vec())
        }
        _ => None,
    }
}

/// Whether `cert` matches `t` (selector and matching type; usage aside).
pub fn matches(t: &Tlsa, cert: &CertificateDer<'_>) -> bool {
    let Some(bytes) = selected(cert, t.selector) else {
        return false;
    };
    match t.matching {
        0 => bytes == t.data,
        1 => ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref() == t.data.as_slice(),
        2 => ring::digest::digest(&ring::digest::SHA512, &bytes).as_ref() == t.data.as_slice(),
        _ => false,
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        for t in &self.records {
            let ok = match t.usage {
                // §3.1.1: the leaf itself; no name or validity check.
                3 => matches(t, end_entity),
                // §3.1.2: a certificate of the chain is the anchor; the chain
                // must verify to it for the host name.
                2 => intermediates.iter().any(|ta| {
                    matches(t, ta)
                        && self.ta_verifies(ta, end_entity, intermediates, server_name, now)
                }),
                _ => false,
            };
            if ok {
                return Ok(ServerCertVerified::assertion());
            }
        }
        Err(rustls::Error::General(
            "DANE: the certificate matches none of the TLSA records".into(),
        ))
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_matching_types() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        let spki = key.public_key_der();
        let sha256 = |b: &[u8]| {
            ring::digest::digest(&ring::digest::SHA256, b)
                .as_ref()
                .to_vec()
        };
        let sha512 = |b: &[u8]| {
            ring::digest::digest(&ring::digest::SHA512, b)
                .as_ref()
                .to_vec()
        };
        let t = |selector, matching, data| Tlsa {
            usage: 3,
            selector,
            matching,
            data,
        };
        assert!(matches(&t(0, 0, der.to_vec()), &der));
        assert!(matches(&t(0, 1, sha256(&der)), &der));
        assert!(matches(&t(1, 1, sha256(&spki)), &der));
        assert!(matches(&t(1, 2, sha512(&spki)), &der));
        assert!(matches(&t(1, 0, spki.clone()), &der));
        assert!(!matches(&t(1, 1, sha256(&der)), &der));
        let v = DaneVerifier::new(vec![t(1, 1, vec![0; 32])]);
        let name = ServerName::try_from("mx.example.test").unwrap();
        assert!(v
            .verify_server_cert(&der, &[], &name, &[], UnixTime::now())
            .is_err());
    }
}
