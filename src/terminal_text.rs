//! Text for a terminal: what came from elsewhere (a victim's comm, a group or cgroup
//! name, a log's words) is printed with its control characters escaped as `\xHH`: C0
//! (0x00-0x1f), DEL (0x7f) and C1 (U+0080-U+009F, which some terminals obey as escape
//! sequences too). So a process named `\e[2J` cannot clear the operator's screen, and a
//! `\r` or `\n` in a name cannot fake a row. Used by the table and prose outputs only:
//! JSON and HTML escape as their formats require. A backslash is left as it is (systemd
//! unit names carry `\x2d` of their own). Pure; owns nothing else.

use std::borrow::Cow;

/// `text` with every control character written `\xHH` (lower-case hex, as the kernel
/// writes them in its log).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_control(c) {
            escaped.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

fn is_control(c: char) -> bool {
    matches!(u32::from(c), 0x00..=0x1f | 0x7f | 0x80..=0x9f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape_controls("\u{1b}[2J\u{1b}[31mRED\r\nx\ty\u{7f}\u{9b}z"),
            "\\x1b[2J\\x1b[31mRED\\x0d\\x0ax\\x09y\\x7f\\x9bz"
        );
        assert_eq!(escape_controls("\0"), "\\x00");
        for kept in [
            "nginx.service",
            "zürich λ",
            "dev-disk-by\\x2duuid.device",
            "",
        ] {
            assert!(matches!(escape_controls(kept), Cow::Borrowed(_)), "{kept}");
        }
        // U+00A0 (no-break space) is just past C1: kept.
        assert_eq!(escape_controls("a\u{a0}b"), "a\u{a0}b");
    }
}
