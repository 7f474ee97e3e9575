//! Certificates made at test time with rcgen: a CA that signs server and client leaves,
//! and a web config file (exporter-toolkit format) serving TLS with basic auth.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};

/// A CA with its key, able to sign leaves.
pub struct Authority {
    pub certificate: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let certificate = params.self_signed(&key).expect("self-signed");
        Self { certificate, key }
    }

    /// A leaf for `name` (and 127.0.0.1) with the given usage: (certificate PEM, key PEM).
    pub fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .expect("signed");
        (certificate.pem(), key.serialize_pem())
    }

    pub fn pem(&self) -> String {
        self.certificate.pem()
    }
}

/// Writes into `dir` a server certificate for localhost and 127.0.0.1 signed by a new CA
/// (`ca.crt`), and `web.yml` serving TLS with it and basic auth for `user`:`password`
/// (bcrypt cost 4, to keep tests fast). Returns the web config's path.
pub fn tls_basic_auth_web_config(dir: &Path, user: &str, password: &str) -> std::path::PathBuf {
    let ca = Authority::new("oomwatch test CA");
    let (cert, key) = ca.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.join("ca.crt"), ca.pem()).expect("write");
    std::fs::write(dir.join("server.crt"), cert).expect("write");
    std::fs::write(dir.join("server.key"), key).expect("write");
    let hash = bcrypt::hash(password, 4).expect("hash");
    let web_config = dir.join("web.yml");
    std::fs::write(
        &web_config,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  {user}: '{hash}'\n"
        ),
    )
    .expect("write");
    web_config
}
