//! TLS for the web server: a rustls `ServerConfig` (ring provider) built from the web
//! config's `tls_server_config`, and rebuilt when the certificate, key or client-CA files
//! change on disk, so rotated certificates (cert-manager, certbot, a Kubernetes secret's
//! symlink swap) are served without a restart. Each new connection checks the files'
//! identity (device, inode, size, mtime: three stat calls); a file caught half-written
//! keeps the previous configuration and is logged once per change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use rustls::{SignatureScheme, SupportedCipherSuite};

use super::web_config::{CipherSuite, ClientAuth, Curve, Pem, TlsSettings, TlsVersion};

/// A TLS setting that cannot be loaded: the field, the file when there is one, and why.
#[derive(Debug, thiserror::Error)]
#[error("tls_server_config.{field}{}: {reason}", file.as_ref().map(|f| format!(" ({})", f.display())).unwrap_or_default())]
pub struct TlsError {
    pub field: &'static str,
    pub file: Option<PathBuf>,
    pub reason: String,
}

/// The current `ServerConfig`, rebuilt when its files change.
#[derive(Debug)]
pub struct TlsSource {
    settings: TlsSettings,
    current: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    identity: Vec<Option<FileIdentity>>,
    config: Arc<ServerConfig>,
    /// The identity whose rebuild failed, so the failure is logged once.
    failed: Option<Vec<Option<FileIdentity>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl TlsSource {
    /// Loads the certificate, key and client CAs; any problem fails the start.
    pub fn load(settings: TlsSettings) -> Result<Self, TlsError> {
        let identity = identity_of(&settings);
        let config = Arc::new(build(&settings)?);
        Ok(Self {
            settings,
            current: Mutex::new(Loaded {
                identity,
                config,
                failed: None,
            }),
        })
    }

    /// The configuration for a new connection, rebuilt first if a file changed.
    pub fn config(&self) -> Arc<ServerConfig> {
        let mut current = crate::sync::lock(&self.current);
        let identity = identity_of(&self.settings);
        if identity != current.identity && current.failed.as_ref() != Some(&identity) {
            match build(&self.settings) {
                Ok(config) => {
                    tracing::info!("TLS certificate files changed; reloaded");
                    current.config = Arc::new(config);
                    current.identity = identity;
                    current.failed = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TLS certificate files changed but cannot be loaded; serving the previous ones");
                    current.failed = Some(identity);
                }
            }
        }
        current.config.clone()
    }
}

fn identity_of(settings: &TlsSettings) -> Vec<Option<FileIdentity>> {
    fn file(pem: &Pem) -> Option<&Path> {
        match pem {
            Pem::File(path) => Some(path),
            Pem::Inline(_) => None,
        }
    }
    [
        file(&settings.cert),
        file(&settings.key),
        settings.client_ca_file.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| FileIdentity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    })
    .collect()
}

fn read_pem(field: &'static str, pem: &Pem) -> Result<(Vec<u8>, Option<PathBuf>), TlsError> {
    match pem {
        Pem::Inline(text) => Ok((text.as_bytes().to_vec(), None)),
        Pem::File(path) => std::fs::read(path)
            .map(|bytes| (bytes, Some(path.clone())))
            .map_err(|e| TlsError {
                field,
                file: Some(path.clone()),
                reason: e.to_string(),
            }),
    }
}

fn certificates(
    field: &'static str,
    bytes: &[u8],
    file: Option<&Path>,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError {
        field,
        file: file.map(Path::to_path_buf),
        reason,
    };
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(format!("bad PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(error("no CERTIFICATE block in PEM".into()));
    }
    Ok(certificates)
}

/// Builds a `ServerConfig` from the settings, reading their files now.
pub fn build(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let cert_field = match settings.cert {
        Pem::File(_) => "cert_file",
        Pem::Inline(_) => "cert",
    };
    let key_field = match settings.key {
        Pem::File(_) => "key_file",
        Pem::Inline(_) => "key",
    };
    let (cert_bytes, cert_file) = read_pem(cert_field, &settings.cert)?;
    let chain = certificates(cert_field, &cert_bytes, cert_file.as_deref())?;
    let (key_bytes, key_file) = read_pem(key_field, &settings.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError {
        field: key_field,
        file: key_file.clone(),
        reason: format!("no usable private key in PEM (PKCS#8, PKCS#1 or SEC1): {e}"),
    })?;

    let provider = Arc::new(provider(settings));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (settings.min_version..=settings.max_version).contains(v))
    .map(|(_, version)| version)
    .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError {
            field: "cipher_suites",
            file: None,
            reason: format!("no cipher suite for the TLS versions allowed: {e}"),
        })?;
    let verifier = client_verifier(settings, &provider)?;
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError {
            field: key_field,
            file: key_file,
            reason: format!("the key does not fit the certificate: {e}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn provider(settings: &TlsSettings) -> CryptoProvider {
    use rustls::crypto::ring::{cipher_suite as cs, default_provider, kx_group};
    let mut provider = default_provider();
    if let Some(suites) = &settings.cipher_suites {
        let tls12: Vec<SupportedCipherSuite> = suites
            .iter()
            .map(|suite| match suite {
                CipherSuite::EcdheEcdsaAes128GcmSha256 => {
                    cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                }
                CipherSuite::EcdheEcdsaAes256GcmSha384 => {
                    cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                }
                CipherSuite::EcdheEcdsaChacha20Poly1305 => {
                    cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                }
                CipherSuite::EcdheRsaAes128GcmSha256 => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::EcdheRsaAes256GcmSha384 => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::EcdheRsaChacha20Poly1305 => {
                    cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
                }
            })
            .collect();
        // TLS 1.3 suites are not configurable (as in Go); the TLS 1.2 ones are as listed.
        provider
            .cipher_suites
            .retain(|suite| suite.version() == &rustls::version::TLS13);
        provider.cipher_suites.extend(tls12);
    }
    if let Some(curves) = &settings.curves {
        provider.kx_groups = curves
            .iter()
            .map(|curve| match curve {
                Curve::X25519 => kx_group::X25519,
                Curve::P256 => kx_group::SECP256R1,
                Curve::P384 => kx_group::SECP384R1,
            })
            .collect();
    }
    provider
}

fn client_verifier(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let algorithms = provider.signature_verification_algorithms;
    let unverified = |mandatory| -> Arc<dyn ClientCertVerifier> {
        Arc::new(AnyClientCert {
            mandatory,
            algorithms,
        })
    };
    let verified = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let path = settings.client_ca_file.clone();
        let error = |reason: String| TlsError {
            field: "client_ca_file",
            file: path.clone(),
            reason,
        };
        let bytes = match &path {
            Some(path) => std::fs::read(path).map_err(|e| error(e.to_string()))?,
            None => return Err(error("required to verify client certificates".into())),
        };
        let mut roots = RootCertStore::empty();
        for certificate in certificates("client_ca_file", &bytes, path.as_deref())? {
            roots
                .add(certificate)
                .map_err(|e| error(format!("not a usable CA certificate: {e}")))?;
        }
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        if optional {
            builder = builder.allow_unauthenticated();
        }
        let inner = builder
            .build()
            .map_err(|e| error(format!("cannot verify client certificates with it: {e}")))?;
        if settings.client_allowed_sans.is_empty() {
            return Ok(inner);
        }
        Ok(Arc::new(AllowedSans {
            inner,
            allowed: settings.client_allowed_sans.clone(),
        }))
    };
    match settings.client_auth {
        ClientAuth::NoClientCert => Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuth::RequestClientCert => Ok(unverified(false)),
        ClientAuth::RequireAnyClientCert => Ok(unverified(true)),
        ClientAuth::VerifyClientCertIfGiven => verified(true),
        ClientAuth::RequireAndVerifyClientCert => verified(false),
    }
}

/// RequestClientCert and RequireAnyClientCert: the certificate is asked for, and the
/// client must prove it holds its key, but nothing checks who issued it (as in Go).
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: a verified client certificate must also name one of these.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<ServerName<'static>>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        // Without a certificate there is no SAN to check: never optional.
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let certificate = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        // Exact matches, as the exporter toolkit compares: a wildcard certificate
        // (`*.example.com`) does not stand in for an allowed `prometheus.example.com`.
        let allowed = self.allowed.iter().any(|name| match name {
            ServerName::DnsName(dns) => certificate
                .valid_dns_names()
                .any(|presented| presented == dns.as_ref()),
            ServerName::IpAddress(_) => certificate.verify_is_valid_for_subject_name(name).is_ok(),
            _ => false,
        });
        if allowed {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
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
