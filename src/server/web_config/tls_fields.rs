//! `tls_server_config` of the web config file, validated field by field into
//! `TlsSettings`: certificate and key (file or inline PEM), client certificates and their
//! CAs and SANs, TLS versions, cipher suites and curves, each error naming its field.
//! Pure; loading the certificates is `server::tls`'s job.

use std::path::{Path, PathBuf};

use rustls::pki_types::ServerName;

use super::{
    field_error, CipherSuite, ClientAuth, Curve, FieldError, Pem, TlsServerConfigFile, TlsSettings,
    TlsVersion,
};

const AT: &str = "tls_server_config";

pub(super) fn tls_settings(
    file: TlsServerConfigFile,
    dir: &Path,
) -> Result<TlsSettings, FieldError> {
    let cert = pem(dir, ("cert_file", "cert"), (file.cert_file, file.cert))?;
    let key = pem(dir, ("key_file", "key"), (file.key_file, file.key))?;
    let (client_auth, client_ca_file) = client_auth(
        file.client_auth_type.unwrap_or_default(),
        file.client_ca_file,
        dir,
    )?;
    let client_allowed_sans =
        allowed_sans(file.client_allowed_sans.unwrap_or_default(), client_auth)?;
    let min_version = version("min_version", file.min_version, TlsVersion::Tls12)?;
    let max_version = version("max_version", file.max_version, TlsVersion::Tls13)?;
    if min_version > max_version {
        return Err(field_error(
            format!("{AT}.max_version"),
            "is lower than min_version",
        ));
    }
    let cipher_suites = file
        .cipher_suites
        .map(|names| cipher_suites(&names, min_version))
        .transpose()?;
    let curves = file
        .curve_preferences
        .map(|names| curves(&names))
        .transpose()?;
    // Accepted for compatibility: Go ignores it too since 1.18.
    let _ = file.prefer_server_cipher_suites;
    Ok(TlsSettings {
        cert,
        key,
        client_auth,
        client_ca_file,
        client_allowed_sans,
        min_version,
        max_version,
        cipher_suites,
        curves,
    })
}

/// PEM material given as a file (relative to the config file) or inline, not both.
fn pem(
    dir: &Path,
    (file_field, inline_field): (&str, &str),
    (path, inline): (Option<String>, Option<String>),
) -> Result<Pem, FieldError> {
    match (path, inline) {
        (Some(p), None) if !p.is_empty() => Ok(Pem::File(dir.join(p))),
        (None, Some(text)) if !text.is_empty() => Ok(Pem::Inline(text)),
        (Some(_), Some(_)) => Err(field_error(
            format!("{AT}.{file_field}"),
            format!("give `{file_field}` or `{inline_field}`, not both"),
        )),
        _ => Err(field_error(
            format!("{AT}.{file_field}"),
            format!("required (or `{inline_field}` with the PEM inline)"),
        )),
    }
}

/// `client_auth_type` and the client CAs it needs (or must not have).
fn client_auth(
    value: String,
    ca_file: Option<String>,
    dir: &Path,
) -> Result<(ClientAuth, Option<PathBuf>), FieldError> {
    let client_auth = ClientAuth::parse(&value).ok_or_else(|| {
        field_error(
            format!("{AT}.client_auth_type"),
            format!(
                "{value:?} is not one of NoClientCert, RequestClientCert, \
                 RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            ),
        )
    })?;
    let ca_file = ca_file.filter(|p| !p.is_empty()).map(|p| dir.join(p));
    match (client_auth.verifies(), &ca_file) {
        (true, None) => Err(field_error(
            format!("{AT}.client_ca_file"),
            format!("required with client_auth_type {value}"),
        )),
        (false, Some(_)) if client_auth == ClientAuth::NoClientCert => Err(field_error(
            format!("{AT}.client_ca_file"),
            "client CAs are configured with client_auth_type NoClientCert",
        )),
        _ => Ok((client_auth, ca_file)),
    }
}

/// `client_allowed_sans`: DNS names or IP addresses, only with verified client certificates.
fn allowed_sans(
    sans: Vec<String>,
    client_auth: ClientAuth,
) -> Result<Vec<ServerName<'static>>, FieldError> {
    let names = sans
        .into_iter()
        .map(|san| {
            ServerName::try_from(san.clone()).map_err(|_| {
                field_error(
                    format!("{AT}.client_allowed_sans"),
                    format!("{san:?} is not a DNS name or IP address"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !names.is_empty() && client_auth != ClientAuth::RequireAndVerifyClientCert {
        return Err(field_error(
            format!("{AT}.client_allowed_sans"),
            "needs client_auth_type RequireAndVerifyClientCert (a client without a \
             certificate has no SAN to check)",
        ));
    }
    Ok(names)
}

/// `min_version` or `max_version`; `default` when unset.
fn version(
    field: &str,
    value: Option<String>,
    default: TlsVersion,
) -> Result<TlsVersion, FieldError> {
    match value.as_deref() {
        None | Some("") => Ok(default),
        Some("TLS12") => Ok(TlsVersion::Tls12),
        Some("TLS13") => Ok(TlsVersion::Tls13),
        Some("TLS10" | "TLS11") => Err(field_error(
            format!("{AT}.{field}"),
            "TLS 1.0 and 1.1 are not supported; use TLS12 or TLS13",
        )),
        Some(other) => Err(field_error(
            format!("{AT}.{field}"),
            format!("{other:?} is not one of TLS12, TLS13"),
        )),
    }
}

/// `cipher_suites`: the TLS 1.2 suites to offer (TLS 1.3 suites are always on, as in Go).
fn cipher_suites(
    names: &[String],
    min_version: TlsVersion,
) -> Result<Vec<CipherSuite>, FieldError> {
    let mut suites = Vec::new();
    for name in names {
        match cipher_suite(name) {
            Some(Some(suite)) => suites.push(suite),
            Some(None) => {}
            None => {
                return Err(field_error(
                    format!("{AT}.cipher_suites"),
                    format!(
                        "{name:?} is not supported; use ECDHE suites with AES-GCM or \
                         ChaCha20-Poly1305"
                    ),
                ))
            }
        }
    }
    if suites.is_empty() && min_version == TlsVersion::Tls12 {
        return Err(field_error(
            format!("{AT}.cipher_suites"),
            "names no TLS 1.2 suite; list one or set min_version: TLS13",
        ));
    }
    Ok(suites)
}

/// `curve_preferences`, in order.
fn curves(names: &[String]) -> Result<Vec<Curve>, FieldError> {
    if names.is_empty() {
        return Err(field_error(
            format!("{AT}.curve_preferences"),
            "is empty; omit it for the defaults",
        ));
    }
    names
        .iter()
        .map(|name| match name.as_str() {
            "X25519" => Ok(Curve::X25519),
            "CurveP256" => Ok(Curve::P256),
            "CurveP384" => Ok(Curve::P384),
            other => Err(field_error(
                format!("{AT}.curve_preferences"),
                format!("{other:?} is not one of X25519, CurveP256, CurveP384"),
            )),
        })
        .collect()
}

/// Some(Some(suite)) for a supported TLS 1.2 suite, Some(None) for a TLS 1.3 suite (always
/// enabled), None for anything else.
fn cipher_suite(name: &str) -> Option<Option<CipherSuite>> {
    Some(Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => CipherSuite::EcdheEcdsaAes128GcmSha256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => CipherSuite::EcdheEcdsaAes256GcmSha384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            CipherSuite::EcdheEcdsaChacha20Poly1305
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => CipherSuite::EcdheRsaAes128GcmSha256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => CipherSuite::EcdheRsaAes256GcmSha384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            CipherSuite::EcdheRsaChacha20Poly1305
        }
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            return Some(None)
        }
        _ => return None,
    }))
}
