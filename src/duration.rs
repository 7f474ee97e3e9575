//! Prometheus-style durations (`90s`, `5m`, `1h30m`, `2d`, `500ms`), as flags, the web
//! config file and event filters spell them. Pure; the error names the flag or field it
//! was given for, so every caller reports it the same way.

use std::time::Duration;

/// A duration that could not be read; `flag` is the flag, field or parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {value:?}: {reason}")]
pub struct DurationError {
    pub flag: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Parses a Prometheus-style duration: `90s`, `5m`, `1h30m`, `2d`, `500ms`.
pub fn parse_duration(flag: &'static str, value: &str) -> Result<Duration, DurationError> {
    let error = |reason| DurationError {
        flag,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(error("empty; use a number with a unit, such as 30s or 1h"));
    }
    let mut total = Duration::ZERO;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(error("expected a number, such as 30s or 1h"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| error("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => return Err(error("missing unit (ms, s, m, h, d or w)")),
            _ => return Err(error("unknown unit; use ms, s, m, h, d or w")),
        };
        rest = &rest[unit_len..];
        let millis = number
            .checked_mul(millis_per_unit)
            .ok_or_else(|| error("duration too large"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| error("duration too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("f", "90s").ok(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("f", "1h30m").ok(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("f", "250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert!(parse_duration("f", "").is_err());
        assert!(parse_duration("f", "s").is_err());
    }
}
