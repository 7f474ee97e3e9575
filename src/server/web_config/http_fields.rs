//! `basic_auth_users`, `http_server_config.headers` and `rate_limit` of the web config
//! file, validated field by field: bcrypt hashes of a bounded cost, each user once; the
//! security headers the toolkit allows, each once; a rate that refills. Each error names
//! its field. Pure; checking passwords is `server::auth`'s job.

use std::collections::BTreeMap;

use hyper::header::{HeaderName, HeaderValue};

use super::entries::Entries;
use super::{field_error, FieldError, RateLimitFile};

/// Highest bcrypt cost accepted: 2^16 rounds already take about a second a check.
const MAX_BCRYPT_COST: u32 = 16;

/// Headers a web config may set, as in the exporter toolkit: security headers only.
const ALLOWED_HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

/// `basic_auth_users`: user names and their bcrypt hashes, each checked; a user named
/// twice is an error (which password would count?).
pub(super) fn basic_auth_users(
    users: Entries<String>,
) -> Result<BTreeMap<String, String>, FieldError> {
    if let Some(user) = users.first_duplicate(|a, b| a == b) {
        return Err(field_error(
            format!("basic_auth_users.{user}"),
            "this user is listed more than once; keep one entry",
        ));
    }
    let mut basic_auth_users = BTreeMap::new();
    for (user, hash) in users.0 {
        let field = format!("basic_auth_users.{user}");
        if user.is_empty() || user.contains(':') {
            return Err(field_error(
                field,
                "a user name must be non-empty and have no `:`",
            ));
        }
        let parts = hash.parse::<bcrypt::HashParts>().map_err(|e| {
            field_error(
                &field,
                format!("not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 {user}`"),
            )
        })?;
        if parts.get_cost() > MAX_BCRYPT_COST {
            return Err(field_error(
                field,
                format!(
                    "bcrypt cost {} is above {MAX_BCRYPT_COST}: every check would take seconds",
                    parts.get_cost()
                ),
            ));
        }
        basic_auth_users.insert(user, hash);
    }
    Ok(basic_auth_users)
}

/// `http_server_config.headers`: the security headers to add to every response, each once.
pub(super) fn headers(
    entries: Entries<String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, FieldError> {
    if let Some(name) = entries.first_duplicate(|a, b| a.eq_ignore_ascii_case(b)) {
        return Err(field_error(
            format!("http_server_config.headers.{name}"),
            "this header is listed more than once (names are case-insensitive); keep one",
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in entries.0 {
        let field = format!("http_server_config.headers.{name}");
        if !ALLOWED_HEADERS
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(&name))
        {
            return Err(field_error(
                field,
                format!(
                    "this header cannot be configured; allowed: {}",
                    ALLOWED_HEADERS.join(", ")
                ),
            ));
        }
        let header_name =
            HeaderName::try_from(name.as_str()).map_err(|e| field_error(&field, e.to_string()))?;
        let header_value = HeaderValue::try_from(value.as_str())
            .map_err(|e| field_error(&field, e.to_string()))?;
        headers.push((header_name, header_value));
    }
    Ok(headers)
}

/// `rate_limit`: one request per interval, bursts up to the count; None: unlimited.
pub(super) fn rate_limit(
    rate_limit: Option<RateLimitFile>,
) -> Result<Option<(std::time::Duration, u32)>, FieldError> {
    Ok(match rate_limit {
        Some(RateLimitFile {
            burst: Some(burst @ 1..),
            interval,
        }) => {
            let interval = match interval.as_deref() {
                None | Some("") => std::time::Duration::ZERO,
                Some(value) => crate::duration::parse_duration("rate_limit.interval", value)
                    .map_err(|_| {
                        field_error(
                            "rate_limit.interval",
                            format!("{value:?} is not a duration such as 1s or 500ms"),
                        )
                    })?,
            };
            // A zero interval refills without end: no limit, as in the toolkit.
            (!interval.is_zero()).then_some((interval, burst))
        }
        _ => None,
    })
}
