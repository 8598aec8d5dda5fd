//! TLS to etcd: the CA etcd's serving certificate must chain to, and the
//! client certificate etcd's `--client-cert-auth` asks for.
//!
//! The files are read and checked when the configuration loads: a wrong
//! path or a key that is not its certificate's stops the replica from
//! starting, where a lazily failing connection would only leave it degraded.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::transport::tls::{TlsError, parse_pem, provider};

/// Checked PEM files, kept as bytes for tonic's TLS connector.
#[derive(Clone, PartialEq)]
pub struct EtcdTls {
    ca: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("EtcdTls")
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

/// Which of the files a problem is with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdFile {
    Ca,
    Cert,
    Key,
}

impl EtcdTls {
    /// `identity`: the client certificate chain and its key. Each file is
    /// read once: what was checked is what tonic is given.
    pub fn load(
        ca_file: &Path,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Self, (EtcdFile, TlsError)> {
        let read = |file: EtcdFile, path: &Path| {
            std::fs::read(path).map_err(|e| {
                (
                    file,
                    TlsError::File {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    },
                )
            })
        };
        let ca = read(EtcdFile::Ca, ca_file)?;
        let mut roots = RootCertStore::empty();
        for cert in parse_pem::<CertificateDer<'static>>(&ca, ca_file, "CA certificate")
            .map_err(|e| (EtcdFile::Ca, e))?
        {
            roots.add(cert).map_err(|e| {
                (
                    EtcdFile::Ca,
                    TlsError::File {
                        path: ca_file.display().to_string(),
                        message: format!("not a usable CA certificate: {e}"),
                    },
                )
            })?;
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| (EtcdFile::Ca, TlsError::Config(e.to_string())))?
            .with_root_certificates(roots);
        let identity = match identity {
            None => None,
            Some((cert_file, key_file)) => {
                let cert = read(EtcdFile::Cert, cert_file)?;
                let key = read(EtcdFile::Key, key_file)?;
                let chain = parse_pem::<CertificateDer<'static>>(&cert, cert_file, "certificate")
                    .map_err(|e| (EtcdFile::Cert, e))?;
                let private = PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
                    (
                        EtcdFile::Key,
                        TlsError::File {
                            path: key_file.display().to_string(),
                            message: format!("no private key: {e}"),
                        },
                    )
                })?;
                // The same check the handshake would make, made now.
                builder.with_client_auth_cert(chain, private).map_err(|e| {
                    (
                        EtcdFile::Key,
                        TlsError::File {
                            path: key_file.display().to_string(),
                            message: format!("not the key of `{}`: {e}", cert_file.display()),
                        },
                    )
                })?;
                Some((cert, key))
            }
        };
        Ok(Self { ca, identity })
    }

    pub fn has_client_certificate(&self) -> bool {
        self.identity.is_some()
    }

    /// tonic's connector for these files; `domain`: the name etcd's
    /// certificate must carry (the endpoint's host).
    pub fn client_config(&self, domain: &str) -> ClientTlsConfig {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .domain_name(domain);
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

/// A CA's certificate, and a client certificate it issued with its key, as
/// PEM: for tests of the files' checks.
#[cfg(test)]
pub(crate) fn issued() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["replica".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn write(&self, name: &str, contents: &str) -> std::path::PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    #[test]
    fn a_client_certificate_must_match_its_key_and_files_must_hold_pem() {
        let files = Files {
            dir: tempfile::tempdir().unwrap(),
        };
        let (ca, cert, key) = issued();
        let ca_file = files.write("ca.pem", &ca);
        let cert_file = files.write("client.pem", &cert);
        let key_file = files.write("client.key", &key);
        let tls = EtcdTls::load(&ca_file, Some((&cert_file, &key_file))).unwrap();
        assert!(tls.has_client_certificate());
        assert!(!format!("{tls:?}").contains("PRIVATE"));
        assert!(
            !EtcdTls::load(&ca_file, None)
                .unwrap()
                .has_client_certificate()
        );

        let other_key = files.write(
            "other.key",
            &rcgen::KeyPair::generate().unwrap().serialize_pem(),
        );
        let refusal = |ca: &Path, identity: Option<(&Path, &Path)>| {
            let (file, err) = EtcdTls::load(ca, identity).unwrap_err();
            (file, err.to_string())
        };
        let (file, err) = refusal(&ca_file, Some((&cert_file, &other_key)));
        assert_eq!(file, EtcdFile::Key);
        assert!(err.contains("not the key of"), "{err}");

        let garbage = files.write("garbage.pem", "not a certificate");
        let (file, err) = refusal(&garbage, None);
        assert_eq!(file, EtcdFile::Ca);
        assert!(err.contains("garbage.pem"), "{err}");
        let (file, err) = refusal(&ca_file, Some((&garbage, &key_file)));
        assert_eq!(file, EtcdFile::Cert);
        assert!(err.contains("holds no certificate"), "{err}");
        let (file, err) = refusal(&ca_file, Some((&cert_file, &garbage)));
        assert_eq!(file, EtcdFile::Key);
        assert!(err.contains("no private key"), "{err}");
        let missing = files.dir.path().join("missing.pem");
        let (file, err) = refusal(&missing, None);
        assert_eq!(file, EtcdFile::Ca);
        assert!(err.contains("missing.pem"), "{err}");
    }
}
