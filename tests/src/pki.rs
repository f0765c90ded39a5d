//! A certificate authority made at test time, issuing server and client
//! certificates for chosen names, written as PEM files (never committed).

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::path::{Path, PathBuf};

/// What a certificate is for (its extended key usage).
#[derive(Clone, Copy)]
pub enum Purpose {
    /// serverAuth: an SMTP or HTTPS server.
    Server,
    /// clientAuth: a client presenting it on STARTTLS.
    Client,
}

/// A test CA.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// A certificate and key written to disk.
pub struct Issued {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// The certificate, DER (for DANE digests).
    pub der: Vec<u8>,
    /// The key pair's SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
}

impl Ca {
    /// A fresh CA whose subject CN is `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca certificate");
        Ca { cert, key }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// Writes the CA certificate to `path`.
    pub fn write_pem(&self, path: &Path) {
        std::fs::write(path, self.pem()).expect("write CA");
    }

    /// Issues a certificate for `names` (DNS names or IP addresses; the first
    /// is also the subject CN) and writes `dir/stem.crt` and `dir/stem.key`.
    pub fn issue(&self, dir: &Path, stem: &str, names: &[&str], purpose: Purpose) -> Issued {
        let key = KeyPair::generate().expect("leaf key");
        let issued = sign(&key, names, purpose, Some((&self.cert, &self.key)));
        write(dir, stem, &issued, &key)
    }
}

/// A self-signed certificate (no CA vouches for it), written like [`Ca::issue`].
pub fn self_signed(dir: &Path, stem: &str, names: &[&str], purpose: Purpose) -> Issued {
    let key = KeyPair::generate().expect("key");
    let cert = sign(&key, names, purpose, None);
    write(dir, stem, &cert, &key)
}

fn sign(
    key: &KeyPair,
    names: &[&str],
    purpose: Purpose,
    issuer: Option<(&Certificate, &KeyPair)>,
) -> Certificate {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
    if let Some(first) = names.first() {
        params.distinguished_name.push(DnType::CommonName, *first);
    }
    params.extended_key_usages = vec![match purpose {
        Purpose::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Purpose::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    match issuer {
        Some((ca, ca_key)) => params.signed_by(key, ca, ca_key).expect("sign"),
        None => params.self_signed(key).expect("self-sign"),
    }
}

fn write(dir: &Path, stem: &str, cert: &Certificate, key: &KeyPair) -> Issued {
    let issued = Issued {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
        der: cert.der().to_vec(),
        spki: key.public_key_der(),
    };
    std::fs::write(&issued.cert, cert.pem()).expect("write certificate");
    std::fs::write(&issued.key, key.serialize_pem()).expect("write key");
    issued
}
