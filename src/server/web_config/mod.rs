//! The web configuration file (`--web.config.file`) in the Prometheus exporter-toolkit
//! format, so a file written for node_exporter works here unchanged: `tls_server_config`
//! (certificate and key as files or inline PEM, client certificates, TLS versions, cipher
//! suites, curves, allowed client SANs), `http_server_config.headers` and
//! `basic_auth_users` (bcrypt hashes). Parsing is pure: text in, a validated `WebConfig`
//! out, or an error that names the field. Unknown fields, a key given twice and nesting
//! deeper than any web config needs are errors, as in the toolkit's strict YAML; what is
//! accepted but worth a word comes back as warnings, for the caller to log once logging
//! is up. Relative paths are taken from the file's directory. Reading the certificates is `tls`'s
//! job, checking passwords `auth`'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hyper::header::{HeaderName, HeaderValue};
use rustls::pki_types::ServerName;
use serde::Deserialize;

use crate::yaml_nesting::{check_nesting, MAX_YAML_NESTING};
use entries::Entries;

mod entries;
mod http_fields;
mod tls_fields;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    tls_server_config: Option<TlsServerConfigFile>,
    http_server_config: Option<HttpServerConfigFile>,
    basic_auth_users: Option<Entries<String>>,
    rate_limit: Option<RateLimitFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    interval: Option<String>,
    burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfigFile {
    cert_file: Option<String>,
    key_file: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpServerConfigFile {
    http2: Option<bool>,
    headers: Option<Entries<String>>,
}

/// What the web server does beyond plain HTTP.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    pub tls: Option<TlsSettings>,
    /// User name to bcrypt hash. Empty: no authentication.
    pub basic_auth_users: BTreeMap<String, String>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `rate_limit`: one request per interval (never zero), bursts up to the count; None:
    /// unlimited.
    pub rate_limit: Option<(std::time::Duration, u32)>,
    /// Accepted, but worth a word in the log: each names its field.
    pub warnings: Vec<String>,
}

/// PEM material: a file (re-read when it changes) or inline text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified.
    RequireAnyClientCert,
    /// Verified against the client CAs when given.
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "" | "NoClientCert" => Self::NoClientCert,
            "RequestClientCert" => Self::RequestClientCert,
            // `RequireClientCert`: the toolkit's older name, kept for its users.
            "RequireAnyClientCert" | "RequireClientCert" => Self::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => Self::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => Self::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    pub fn verifies(self) -> bool {
        matches!(
            self,
            Self::VerifyClientCertIfGiven | Self::RequireAndVerifyClientCert
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// TLS 1.2 cipher suites, by their Go names (TLS 1.3 suites are not configurable, as in Go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherSuite {
    EcdheEcdsaAes128GcmSha256,
    EcdheEcdsaAes256GcmSha384,
    EcdheEcdsaChacha20Poly1305,
    EcdheRsaAes128GcmSha256,
    EcdheRsaAes256GcmSha384,
    EcdheRsaChacha20Poly1305,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    X25519,
    P256,
    P384,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert: Pem,
    pub key: Pem,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    /// DNS names or IP addresses; a verified client certificate must carry one of them.
    pub client_allowed_sans: Vec<ServerName<'static>>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// None: every suite the TLS library offers.
    pub cipher_suites: Option<Vec<CipherSuite>>,
    /// None: the library's preference.
    pub curves: Option<Vec<Curve>>,
}

/// A web config error: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parses a web config file's text; `dir` is the file's directory, for relative paths.
pub fn parse(text: &str, dir: &Path) -> Result<WebConfig, FieldError> {
    check_nesting(text, MAX_YAML_NESTING).map_err(|e| {
        let field = e.field.clone().unwrap_or_else(|| "yaml".to_owned());
        field_error(field, e.to_string())
    })?;
    let file: WebConfigFile = if text.trim().is_empty() {
        WebConfigFile::default()
    } else {
        serde_norway::from_str(text).map_err(|e| field_error("yaml", e.to_string()))?
    };
    let tls = file
        .tls_server_config
        .map(|tls| tls_fields::tls_settings(tls, dir))
        .transpose()?;
    let basic_auth_users =
        http_fields::basic_auth_users(file.basic_auth_users.unwrap_or_default())?;
    let mut warnings = Vec::new();
    let http = file.http_server_config.unwrap_or_default();
    if http.http2 == Some(true) {
        warnings.push(
            "http_server_config.http2: true is ignored; oomwatch serves HTTP/1.1, which every \
             scraper speaks"
                .to_owned(),
        );
    }
    let headers = http_fields::headers(http.headers.unwrap_or_default())?;
    let rate_limit = http_fields::rate_limit(file.rate_limit)?;
    if !basic_auth_users.is_empty() && tls.is_none() {
        warnings.push(
            "basic_auth_users without tls_server_config: passwords cross the network in \
             clear text"
                .to_owned(),
        );
    }
    Ok(WebConfig {
        tls,
        basic_auth_users,
        headers,
        rate_limit,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

    fn parse_ok(text: &str) -> WebConfig {
        parse(text, Path::new("/etc/oomwatch")).expect("parses")
    }

    fn parse_err(text: &str) -> FieldError {
        parse(text, Path::new("/etc/oomwatch")).expect_err("rejected")
    }

    #[test]
    fn an_empty_file_is_plain_http_without_auth() {
        let config = parse_ok("");
        assert!(config.tls.is_none());
        assert!(config.basic_auth_users.is_empty());
        assert!(config.headers.is_empty());
    }

    #[test]
    fn a_node_exporter_file_parses_with_relative_paths_from_its_directory() {
        let config = parse_ok(&format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: /abs/server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
             min_version: TLS13\n  client_allowed_sans: [scraper.example.com, 10.0.0.1]\n  \
             cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n  \
             curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: true\n\
             http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  prometheus: {HASH}\n"
        ));
        let tls = config.tls.expect("tls");
        assert_eq!(
            tls.cert,
            Pem::File(PathBuf::from("/etc/oomwatch/server.crt"))
        );
        assert_eq!(tls.key, Pem::File(PathBuf::from("/abs/server.key")));
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(
            tls.client_ca_file,
            Some(PathBuf::from("/etc/oomwatch/ca.crt"))
        );
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert_eq!(tls.max_version, TlsVersion::Tls13);
        assert_eq!(tls.client_allowed_sans.len(), 2);
        assert_eq!(
            tls.cipher_suites,
            Some(vec![CipherSuite::EcdheRsaAes128GcmSha256])
        );
        assert_eq!(tls.curves, Some(vec![Curve::X25519, Curve::P256]));
        assert_eq!(config.basic_auth_users["prometheus"], HASH);
        assert_eq!(config.headers[0].0.as_str(), "x-frame-options");
        assert_eq!(config.headers[0].1, "deny");
        assert!(config.rate_limit.is_none());
        let limited = parse_ok("rate_limit:\n  interval: 2s\n  burst: 5\n");
        assert_eq!(
            limited.rate_limit,
            Some((std::time::Duration::from_secs(2), 5))
        );
        assert!(parse_ok("rate_limit:\n  burst: 0\n").rate_limit.is_none());
        assert!(parse_ok("rate_limit:\n  burst: 5\n").rate_limit.is_none());
    }

    #[test]
    fn inline_pem_is_accepted() {
        let config =
            parse_ok("tls_server_config:\n  cert: \"-----BEGIN X\"\n  key: \"-----BEGIN Y\"\n");
        let tls = config.tls.expect("tls");
        assert_eq!(tls.cert, Pem::Inline("-----BEGIN X".into()));
        assert_eq!(tls.client_auth, ClientAuth::NoClientCert);
    }

    #[test]
    fn every_error_names_its_field() {
        let cases = [
            ("tls_server_config:\n  key_file: k\n", "tls_server_config.cert_file"),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  key: inline\n",
                "tls_server_config.key_file",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Sometimes\n",
                "tls_server_config.client_auth_type",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerifyClientCert\n",
                "tls_server_config.client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n",
                "tls_server_config.client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS10\n",
                "tls_server_config.min_version",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  max_version: TLS12\n",
                "tls_server_config.max_version",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
                "tls_server_config.cipher_suites",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  curve_preferences: [CurveP521]\n",
                "tls_server_config.curve_preferences",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_allowed_sans: [\"not a name!\"]\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca\n",
                "tls_server_config.client_allowed_sans",
            ),
            ("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice"),
            (
                "http_server_config:\n  headers:\n    Content-Type: text/html\n",
                "http_server_config.headers.Content-Type",
            ),
            ("tls_server_config:\n  cert_fil: c\n", "yaml"),
            ("rate_limits: {}\n", "yaml"),
            (
                "rate_limit:\n  interval: soon\n  burst: 3\n",
                "rate_limit.interval",
            ),
        ];
        for (text, field) in cases {
            let error = parse_err(text);
            assert_eq!(error.field, field, "{text}: {error}");
            assert!(!error.reason.is_empty());
        }
        // Unknown fields are named in the reason.
        assert!(parse_err("tls_server_config:\n  cert_fil: c\n")
            .reason
            .contains("cert_fil"));
    }

    #[test]
    fn a_user_or_a_header_given_twice_is_refused_by_name() {
        let twice = format!("basic_auth_users:\n  alice: {HASH}\n  bob: {HASH}\n  alice: {HASH}\n");
        let error = parse_err(&twice);
        assert_eq!(error.field, "basic_auth_users.alice");
        assert!(error.reason.contains("more than once"), "{error}");
        // Through an alias too: the parser expands it into the same key.
        let aliased = format!("basic_auth_users:\n  &u alice: {HASH}\n  *u : {HASH}\n");
        assert_eq!(parse_err(&aliased).field, "basic_auth_users.alice");
        let headers = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    x-frame-options: sameorigin\n";
        assert_eq!(
            parse_err(headers).field,
            "http_server_config.headers.x-frame-options"
        );
    }

    #[test]
    fn deep_nesting_is_refused_before_the_parser_runs() {
        let deep = format!(
            "basic_auth_users: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let error = parse_err(&deep);
        assert_eq!(error.field, "basic_auth_users");
        assert_eq!(error.reason, "nested deeper than 64 levels at line 1");
        let error = parse_err(&format!("{}x\n", "- ".repeat(100_000)));
        assert_eq!(error.field, "yaml");
    }

    #[test]
    fn malformed_values_name_their_field() {
        for (text, field) in [
            ("basic_auth_users: [alice]\n", "basic_auth_users"),
            (
                "basic_auth_users:\n  alice: [1]\n",
                "basic_auth_users.alice",
            ),
            ("basic_auth_users:\n  alice:\n", "basic_auth_users.alice"),
            (
                "http_server_config:\n  headers: 3\n",
                "http_server_config.headers",
            ),
            ("rate_limit:\n  burst: -1\n", "rate_limit.burst"),
            ("tls_server_config: yes\n", "tls_server_config"),
        ] {
            let error = parse_err(text);
            let named = error.field == field || error.reason.starts_with(&format!("{field}:"));
            assert!(named, "{text:?}: {error}");
        }
    }

    #[test]
    fn warnings_come_back_for_the_caller_to_log() {
        let config = parse_ok(&format!(
            "basic_auth_users:\n  alice: {HASH}\nhttp_server_config:\n  http2: true\n"
        ));
        assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
        assert!(config
            .warnings
            .iter()
            .any(|w| w.starts_with("basic_auth_users without tls_server_config")));
        assert!(config
            .warnings
            .iter()
            .any(|w| w.starts_with("http_server_config.http2")));
        assert!(parse_ok("").warnings.is_empty());
    }
}
