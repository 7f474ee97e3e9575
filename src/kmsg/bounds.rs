//! Size caps on what the kernel-log parsers keep of untrusted text, and the one function
//! that applies them. Every string a parser returns goes through `bounded`, so no record
//! can make oomwatch hold more than these.

/// Longest command name kept (the kernel's is 15 bytes; escaped or vendor forms are longer).
pub const MAX_COMM: usize = 64;
/// Longest cgroup path kept.
pub const MAX_PATH: usize = 4096;
/// Longest printed time kept.
pub const MAX_TIME: usize = 64;
/// Longest other short value kept (constraint names, panic reasons).
pub const MAX_WORD: usize = 256;

/// `s` as an owned string of at most `max` bytes, cut at a character boundary.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn bounded_cuts_at_char_boundary() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("abcdef", 3), "abc");
        assert_eq!(bounded("a\u{4e2d}b", 2), "a");
        assert_eq!(bounded("", 0), "");
    }
}
