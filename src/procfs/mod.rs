//! procfs: pure parsers for the files oomwatch reads under `--path.procfs`, and the thin
//! readers that open them.
//!
//! `host` and `pid` hold the parsers: functions over bytes that never open a file, so they
//! are unit-, property- and fuzz-tested on their own. `reader` holds the only code in this
//! module that does I/O: the race-safe per-process reader with its one reused buffer.

pub mod host;
pub mod pid;
pub mod reader;

/// A procfs file whose content is not what the kernel writes there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{file}: the field `{field}` is missing")]
    MissingField {
        file: &'static str,
        field: &'static str,
    },
    #[error("{file}: the field `{field}` is not a number: {value:?}")]
    BadNumber {
        file: &'static str,
        field: &'static str,
        value: String,
    },
    #[error("{file}: malformed content: {reason}")]
    Malformed {
        file: &'static str,
        reason: &'static str,
    },
}

/// Parses an ASCII decimal unsigned number, with nothing else around it.
pub(crate) fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// Parses an ASCII decimal signed number, with nothing else around it.
pub(crate) fn parse_i64(bytes: &[u8]) -> Option<i64> {
    match bytes.split_first() {
        Some((b'-', rest)) => {
            let magnitude = parse_u64(rest)?;
            0i64.checked_sub_unsigned(magnitude)
        }
        _ => i64::try_from(parse_u64(bytes)?).ok(),
    }
}

/// Strips ASCII whitespace (the trailing newline of a one-value file) from both ends.
pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Shortens a value quoted in an error message, so a corrupt file cannot flood the log.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(64)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_strictly() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"12a"), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_i64(b"-1000"), Some(-1000));
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
    }
}
