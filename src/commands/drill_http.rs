//! The drill's HTTP client: one GET of an exporter's metrics over http or https, with basic
//! auth, as Prometheus would scrape it. Settings come from `oomwatch drill`'s flags and from
//! a client config file in Prometheus's format (the `http_config` that promtool's
//! `--http.config.file` takes: `basic_auth` and `tls_config`); flags override the file.
//! It is blocking and small on purpose: the drill makes a handful of requests, one at a
//! time. It never follows redirects and reads at most `MAX_BODY` bytes.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;

/// The largest response body read (an exposition of the top-K series is far smaller).
const MAX_BODY: u64 = 64 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// CA bundles tried, in order, when no CA file is given: Debian and Ubuntu, then Fedora
/// and RHEL, then openSUSE.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

/// Why the exporter could not be asked; each message names the flag or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--exporter.http-config.file {path}: {message}")]
    ConfigFile { path: PathBuf, message: String },
    #[error("{what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path}: {message}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("no CA bundle found at {}: give --exporter.tls.ca-file", SYSTEM_CA_BUNDLES.join(", "))]
    NoCaBundle,
    #[error("basic auth needs both a username and a password (--exporter.basic-auth.username, --exporter.basic-auth.password-file)")]
    HalfBasicAuth,
    #[error("TLS settings: {0}")]
    Tls(rustls::Error),
    #[error("{url}: {message}")]
    Url { url: String, message: String },
    #[error("{url}: {message}")]
    Request { url: String, message: String },
}

/// Prometheus's HTTP client config, the part the drill needs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpConfigFile {
    #[serde(default)]
    basic_auth: Option<BasicAuthFile>,
    #[serde(default)]
    tls_config: Option<TlsConfigFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicAuthFile {
    username: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsConfigFile {
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    server_name: Option<String>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

/// What the flags say; any of it overrides the file.
#[derive(Debug, Default, Clone)]
pub struct ClientFlags {
    pub config_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// The merged, checked settings.
#[derive(Debug, Default)]
struct Settings {
    ca_file: Option<PathBuf>,
    client_identity: Option<(PathBuf, PathBuf)>,
    server_name: Option<String>,
    insecure_skip_verify: bool,
    username: Option<String>,
    password: Option<String>,
}

impl Settings {
    fn from_flags(flags: &ClientFlags) -> Result<Self, ClientError> {
        let mut settings = match &flags.config_file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        if let Some(ca) = &flags.ca_file {
            settings.ca_file = Some(ca.clone());
        }
        settings.insecure_skip_verify |= flags.insecure_skip_verify;
        if let Some(user) = &flags.username {
            settings.username = Some(user.clone());
        }
        if let Some(path) = &flags.password_file {
            settings.password = Some(read_password(path, "--exporter.basic-auth.password-file")?);
        }
        if settings.username.is_some() != settings.password.is_some() {
            return Err(ClientError::HalfBasicAuth);
        }
        Ok(settings)
    }

    fn from_file(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClientError::Read {
            what: "--exporter.http-config.file",
            path: path.to_owned(),
            source,
        })?;
        let bad = |message: String| ClientError::ConfigFile {
            path: path.to_owned(),
            message,
        };
        crate::yaml_nesting::check_nesting(&text, crate::yaml_nesting::MAX_YAML_NESTING)
            .map_err(|e| bad(e.to_string()))?;
        let file: HttpConfigFile = if text.trim().is_empty() {
            HttpConfigFile::default()
        } else {
            serde_norway::from_str(&text).map_err(|e| bad(e.to_string()))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let mut settings = Self::default();
        if let Some(auth) = file.basic_auth {
            settings.password = match (auth.password, auth.password_file) {
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "basic_auth: give password or password_file, not both".to_owned()
                    ))
                }
                (Some(password), None) => Some(password),
                (None, Some(file)) => Some(read_password(
                    &base.join(file),
                    "--exporter.http-config.file basic_auth.password_file",
                )?),
                (None, None) => {
                    return Err(bad(
                        "basic_auth: a password or password_file is required".to_owned()
                    ))
                }
            };
            settings.username = Some(auth.username);
        }
        if let Some(tls) = file.tls_config {
            settings.ca_file = tls.ca_file.map(|f| base.join(f));
            settings.client_identity = match (tls.cert_file, tls.key_file) {
                (Some(cert), Some(key)) => Some((base.join(cert), base.join(key))),
                (None, None) => None,
                _ => {
                    return Err(bad(
                        "tls_config: cert_file and key_file go together".to_owned()
                    ))
                }
            };
            settings.server_name = tls.server_name;
            settings.insecure_skip_verify = tls.insecure_skip_verify;
        }
        Ok(settings)
    }
}

/// Prometheus trims the password file's surrounding whitespace (a trailing newline).
fn read_password(path: &Path, what: &'static str) -> Result<String, ClientError> {
    std::fs::read_to_string(path)
        .map(|p| p.trim().to_owned())
        .map_err(|source| ClientError::Read {
            what,
            path: path.to_owned(),
            source,
        })
}

/// The parts of a metrics URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    https: bool,
    /// `host:port` as written (the Host header), with the default port added.
    authority: String,
    /// The host alone, brackets of an IPv6 address removed.
    host: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, ClientError> {
    let bad = |message: &str| ClientError::Url {
        url: url.to_owned(),
        message: message.to_owned(),
    };
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad("--exporter.url must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad(
            "give host:port only (credentials go in --exporter.basic-auth.*)",
        ));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let authority = match port {
        Some(port) if port.parse::<u16>().is_ok() => authority.to_owned(),
        Some(_) => return Err(bad("the port is not a number")),
        None if host.contains(':') => format!("[{host}]:{}", if https { 443 } else { 80 }),
        None => format!("{host}:{}", if https { 443 } else { 80 }),
    };
    Ok(Target {
        https,
        authority,
        host: host.to_owned(),
        path: path.to_owned(),
    })
}

/// An exporter to ask, with its TLS and credentials ready.
pub struct Client {
    target: Target,
    url: String,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    authorization: Option<String>,
}

impl Client {
    pub fn new(url: &str, flags: &ClientFlags) -> Result<Self, ClientError> {
        let settings = Settings::from_flags(flags)?;
        let target = parse_url(url)?;
        let tls = if target.https {
            let name = settings.server_name.as_deref().unwrap_or(&target.host);
            let name = ServerName::try_from(name.to_owned()).map_err(|e| ClientError::Url {
                url: url.to_owned(),
                message: format!("{name} is not a valid TLS server name: {e}"),
            })?;
            Some((tls_config(&settings)?, name))
        } else {
            None
        };
        let authorization = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => {
                if !target.https {
                    eprintln!(
                        "oomwatch drill: warning: sending basic auth credentials over plain http to {url}"
                    );
                }
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {token}"))
            }
            _ => None,
        };
        Ok(Self {
            target,
            url: url.to_owned(),
            tls,
            authorization,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// GETs the URL; the body of a 200, or an error saying what came back instead.
    pub fn get(&self) -> Result<String, ClientError> {
        let fail = |message: String| ClientError::Request {
            url: self.url.clone(),
            message,
        };
        let socket = connect(&self.target.authority).map_err(fail)?;
        let auth = self
            .authorization
            .as_ref()
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: oomwatch-drill\r\nAccept: text/plain;version=0.0.4\r\n{auth}Connection: close\r\n\r\n",
            self.target.path, self.target.authority
        );
        let raw = match &self.tls {
            Some((config, name)) => {
                let connection = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| fail(format!("TLS: {e}")))?;
                exchange(rustls::StreamOwned::new(connection, socket), &request)
            }
            None => exchange(socket, &request),
        }
        .map_err(|e| fail(e.to_string()))?;
        parse_response(&raw).map_err(fail)
    }
}

fn connect(authority: &str) -> Result<TcpStream, String> {
    let addrs = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?;
    let mut last = format!("{authority} resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(stream) => {
                stream
                    .set_read_timeout(Some(IO_TIMEOUT))
                    .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
                    .map_err(|e| e.to_string())?;
                return Ok(stream);
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// Writes the request, reads the response to the connection's end (or `MAX_BODY`). A
/// TLS peer that closes without close_notify ends the response as well: its length is
/// checked by `parse_response`.
fn exchange(mut stream: impl Read + Write, request: &str) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut raw = Vec::new();
    match stream.take(MAX_BODY).read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) => Err(e),
    }
}

/// The body of a whole 200 response; Content-Length and chunked bodies are checked whole.
fn parse_response(raw: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("the answer is not an HTTP response")?;
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        let hint = match code {
            "401" => " (basic auth: check --exporter.basic-auth.*)",
            "400" if body.contains("HTTPS") => " (the exporter serves https)",
            _ => "",
        };
        return Err(format!("{status}{hint}"));
    }
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return dechunk(body).ok_or_else(|| "the chunked body ended early".to_owned());
    }
    if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if body.len() < length {
            return Err(format!(
                "the body ended after {} of {length} bytes",
                body.len()
            ));
        }
        return Ok(body[..length].to_owned());
    }
    Ok(body.to_owned())
}

/// The body of a chunked response; None when it ends before its last chunk.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(tail.get(..size)?);
        rest = tail.get(size..)?.strip_prefix("\r\n")?;
    }
}

fn tls_config(settings: &Settings) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(ClientError::Tls)?;
    let builder = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
    } else {
        let (what, path) = match &settings.ca_file {
            Some(path) => ("--exporter.tls.ca-file", path.clone()),
            None => (
                "the system CA bundle",
                SYSTEM_CA_BUNDLES
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.exists())
                    .ok_or(ClientError::NoCaBundle)?,
            ),
        };
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certificates(what, &path)?);
        if added == 0 {
            return Err(ClientError::Pem {
                what,
                path,
                message: "no usable CA certificate in it".to_owned(),
            });
        }
        builder.with_root_certificates(roots)
    };
    let config = match &settings.client_identity {
        Some((cert, key)) => {
            let what = "tls_config.key_file";
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| ClientError::Pem {
                what,
                path: key.clone(),
                message: e.to_string(),
            })?;
            builder
                .with_client_auth_cert(certificates("tls_config.cert_file", cert)?, key)
                .map_err(ClientError::Tls)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let pem = |message: String| ClientError::Pem {
        what,
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

/// `insecure_skip_verify`: any certificate is accepted, but the handshake's signatures are
/// still checked (the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_with_default_ports_and_paths() {
        let t = parse_url("https://127.0.0.1:9721/metrics").expect("url");
        assert_eq!(
            t,
            Target {
                https: true,
                authority: "127.0.0.1:9721".into(),
                host: "127.0.0.1".into(),
                path: "/metrics".into()
            }
        );
        let t = parse_url("http://exporter.example").expect("url");
        assert_eq!(t.authority, "exporter.example:80");
        assert_eq!(t.path, "/metrics");
        let t = parse_url("https://[::1]:9721/m").expect("url");
        assert_eq!(
            (t.host.as_str(), t.authority.as_str()),
            ("::1", "[::1]:9721")
        );
        for bad in [
            "ftp://x/metrics",
            "127.0.0.1:9721",
            "http://user:pw@h:1/",
            "http://h:port/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_are_read_whole_or_refused() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(parse_response(ok).as_deref(), Ok("abc"));
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc";
        assert!(parse_response(short).is_err());
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).as_deref(), Ok("abcde"));
        let cut = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n";
        assert!(parse_response(cut).is_err());
        let denied = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
        let err = parse_response(denied).expect_err("401");
        assert!(err.contains("401") && err.contains("basic-auth"), "{err}");
    }

    #[test]
    fn the_config_file_is_prometheus_http_config_and_flags_override_it() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::write(dir.path().join("pw"), "from-file\n").expect("write");
        std::fs::write(dir.path().join("pw2"), " from-flag \n").expect("write");
        let file = dir.path().join("http.yml");
        std::fs::write(
            &file,
            "basic_auth:\n  username: prometheus\n  password_file: pw\n\
             tls_config:\n  ca_file: ca.crt\n  server_name: oomwatch.example\n",
        )
        .expect("write");
        let mut flags = ClientFlags {
            config_file: Some(file.clone()),
            ..ClientFlags::default()
        };
        let s = Settings::from_flags(&flags).expect("settings");
        assert_eq!(s.username.as_deref(), Some("prometheus"));
        assert_eq!(s.password.as_deref(), Some("from-file"));
        assert_eq!(s.ca_file, Some(dir.path().join("ca.crt")));
        assert_eq!(s.server_name.as_deref(), Some("oomwatch.example"));
        flags.password_file = Some(dir.path().join("pw2"));
        flags.insecure_skip_verify = true;
        let s = Settings::from_flags(&flags).expect("settings");
        assert_eq!(s.password.as_deref(), Some("from-flag"));
        assert!(s.insecure_skip_verify);

        std::fs::write(&file, "bearer_token: x\n").expect("write");
        let err = Settings::from_flags(&flags)
            .expect_err("unknown key")
            .to_string();
        assert!(
            err.contains("--exporter.http-config.file") && err.contains("bearer_token"),
            "{err}"
        );
        let half = ClientFlags {
            username: Some("u".into()),
            ..ClientFlags::default()
        };
        assert!(matches!(
            Settings::from_flags(&half),
            Err(ClientError::HalfBasicAuth)
        ));
    }
}
