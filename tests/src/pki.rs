//! A throwaway PKI for TLS tests: a CA, a server certificate for 127.0.0.1,
//! and client certificates (good, expired, from a stranger's CA).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pem {
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(&self.cert).expect("certificate file")
    }

    pub fn key_pem(&self) -> Vec<u8> {
        std::fs::read(&self.key).expect("key file")
    }
}

pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pub cert_file: PathBuf,
    dir: PathBuf,
}

impl Authority {
    pub fn new(dir: &Path, name: &str) -> Authority {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        let cert_file = dir.join(format!("{name}.pem"));
        std::fs::write(&cert_file, cert.pem()).expect("write CA");
        Authority {
            issuer: Issuer::new(params, key),
            cert_file,
            dir: dir.to_owned(),
        }
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.cert_file).expect("CA file")
    }

    fn issue(&self, file: &str, params: CertificateParams) -> Pem {
        let key = KeyPair::generate().expect("key");
        let cert: Certificate = params.signed_by(&key, &self.issuer).expect("sign");
        let pem = Pem {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&pem.cert, cert.pem()).expect("write cert");
        std::fs::write(&pem.key, key.serialize_pem()).expect("write key");
        pem
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, file: &str) -> Pem {
        self.server_named(file, &["127.0.0.1", "localhost"])
    }

    /// A server certificate for `names` only.
    pub fn server_named(&self, file: &str, names: &[&str]) -> Pem {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params.distinguished_name.push(DnType::CommonName, "warden");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(file, params)
    }

    /// A client certificate with common name `cn` and optional URI SAN,
    /// valid from `not_before` to `not_after` (relative to now).
    pub fn client(
        &self,
        file: &str,
        cn: &str,
        uri: Option<&str>,
        not_before: Duration,
        not_after: Duration,
    ) -> Pem {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(uri) = uri {
            params
                .subject_alt_names
                .push(SanType::URI(uri.try_into().expect("URI SAN")));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now + not_before;
        params.not_after = now + not_after;
        self.issue(file, params)
    }

    /// A client certificate valid for a day around now.
    pub fn valid_client(&self, file: &str, cn: &str, uri: Option<&str>) -> Pem {
        self.client(file, cn, uri, Duration::hours(-1), Duration::days(1))
    }
}
