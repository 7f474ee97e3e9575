//! `--web.config.file` made live: the file read and parsed (`web_config`), its certificates
//! loaded (`tls`), its users' checker built (`auth`). Everything that can be wrong with the
//! file is found here, at start, and named by field; what is only worth a warning is
//! handed back, for `main` to log once logging is up (nothing here logs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};

use super::auth::BasicAuth;
use super::rate_limit::RateLimiter;
use super::tls::TlsSource;
use super::web_config;

/// What the server applies to every connection and request. The default: plain HTTP, no
/// authentication, no extra headers.
#[derive(Debug, Clone, Default)]
pub struct WebSecurity {
    pub tls: Option<Arc<TlsSource>>,
    pub auth: Option<Arc<BasicAuth>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub rate_limit: Option<Arc<RateLimiter>>,
}

#[derive(Debug, thiserror::Error)]
#[error("--web.config.file {}: {reason}", path.display())]
pub struct WebConfigError {
    pub path: PathBuf,
    pub reason: String,
}

impl WebSecurity {
    /// Reads the web config file and loads what it names; with it, the warnings to log,
    /// each naming the file and the field.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), WebConfigError> {
        let error = |reason: String| WebConfigError {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let config = web_config::parse(&text, dir).map_err(|e| error(e.to_string()))?;
        let tls = match config.tls {
            Some(settings) => Some(Arc::new(
                TlsSource::load(settings).map_err(|e| error(e.to_string()))?,
            )),
            None => None,
        };
        let auth = if config.basic_auth_users.is_empty() {
            None
        } else {
            let auth = BasicAuth::new(config.basic_auth_users)
                .map_err(|e| error(format!("basic_auth_users: {e}")))?;
            Some(Arc::new(auth))
        };
        let warnings = config
            .warnings
            .iter()
            .map(|warning| format!("--web.config.file {}: {warning}", path.display()))
            .collect();
        let security = Self {
            tls,
            auth,
            headers: config.headers,
            rate_limit: config
                .rate_limit
                .map(|(interval, burst)| Arc::new(RateLimiter::new(interval, burst))),
        };
        Ok((security, warnings))
    }
}
