//! TLS for the gRPC listeners (rustls, ring).
//!
//! Client certificates are requested but judged after the handshake, not
//! during it: a handshake failure reaches the client as an opaque transport
//! error, while a judged certificate lets every call on the connection be
//! answered `UNAUTHENTICATED` with the reason (expired, unknown issuer, …).
//! The handshake still proves the client holds the certificate's key: the
//! signature check is never deferred.

use std::path::Path;
use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, ServerConnection, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::PeerCert;
use crate::auth::Authenticator;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("`{path}`: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Config(String),
}

/// A listener's TLS: the acceptor, and the verifier that judges client
/// certificates after the handshake.
pub struct TlsSetup {
    config: Arc<ServerConfig>,
    acceptor: TlsAcceptor,
    clients: Option<Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("client_certificates", &self.clients.is_some())
            .finish()
    }
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem<T>(path: &Path, what: &str) -> Result<Vec<T>, TlsError>
where
    T: PemObject,
{
    let bytes = std::fs::read(path).map_err(|e| TlsError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse_pem(&bytes, path, what)
}

/// Every `what` in `bytes` (read from `path`); at least one.
pub(crate) fn parse_pem<T>(bytes: &[u8], path: &Path, what: &str) -> Result<Vec<T>, TlsError>
where
    T: PemObject,
{
    let file_error = |message: String| TlsError::File {
        path: path.display().to_string(),
        message,
    };
    let items = T::pem_slice_iter(bytes)
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| file_error(format!("not PEM: {e}")))?;
    if items.is_empty() {
        return Err(file_error(format!("holds no {what}")));
    }
    Ok(items)
}

impl TlsSetup {
    /// The server's certificate chain and key, and the CA client
    /// certificates must chain to (none: client certificates are not asked
    /// for).
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        client_ca_file: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> = read_pem(cert_file, "certificate")?;
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::File {
            path: key_file.display().to_string(),
            message: format!("no private key: {e}"),
        })?;
        let clients = match client_ca_file {
            None => None,
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for ca in read_pem::<CertificateDer<'static>>(path, "CA certificate")? {
                    roots.add(ca).map_err(|e| TlsError::File {
                        path: path.display().to_string(),
                        message: format!("not a usable CA certificate: {e}"),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| TlsError::Config(format!("client CA: {e}")))?;
                Some(verifier)
            }
        };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &clients {
            Some(verifier) => builder.with_client_cert_verifier(Arc::new(Deferred {
                inner: verifier.clone(),
            })),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(format!("server certificate and key: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        let config = Arc::new(config);
        Ok(Self {
            acceptor: TlsAcceptor::from(config.clone()),
            config,
            clients,
        })
    }

    /// The same certificate and client verification, offering `protocols`
    /// in ALPN instead of gRPC's `h2` (the HTTP listener speaks HTTP/1.1).
    pub fn with_alpn(&self, protocols: &[&[u8]]) -> Self {
        let mut config = (*self.config).clone();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        let config = Arc::new(config);
        Self {
            acceptor: TlsAcceptor::from(config.clone()),
            config,
            clients: self.clients.clone(),
        }
    }

    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(stream).await
    }

    /// Judges the client certificate of a finished handshake and finds the
    /// caller it names.
    pub fn peer_cert(&self, conn: &ServerConnection, auth: &Authenticator) -> PeerCert {
        let (Some(verifier), Some(chain)) = (&self.clients, conn.peer_certificates()) else {
            return PeerCert::None;
        };
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return PeerCert::None;
        };
        if let Err(e) = verifier.verify_client_cert(end_entity, intermediates, UnixTime::now()) {
            return PeerCert::Rejected(e.to_string());
        }
        match names(end_entity) {
            Ok((common_names, sans)) => {
                PeerCert::Verified(auth.certificate_caller(&common_names, &sans))
            }
            Err(reason) => PeerCert::Rejected(reason),
        }
    }
}

/// The subject common names and the DNS, URI and email alternative names.
fn names(cert: &CertificateDer<'_>) -> Result<(Vec<String>, Vec<String>), String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("cannot read the certificate: {e}"))?;
    let common_names = parsed
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    let sans = match parsed.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(s) | GeneralName::URI(s) | GeneralName::RFC822Name(s) => {
                    Some((*s).to_owned())
                }
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(format!("cannot read the subject alternative names: {e}")),
    };
    Ok((common_names, sans))
}

/// Asks for a client certificate and checks the handshake signature made
/// with its key, but leaves the chain to `TlsSetup::peer_cert`.
#[derive(Debug)]
struct Deferred {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for Deferred {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
