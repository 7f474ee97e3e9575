//! Unit conversions for the sizes the kernel prints or exposes: kB in kernel log lines
//! and /proc/meminfo, pages in statm. Saturating, so a hostile or corrupt value can
//! never wrap into a small one. Pure; owns nothing else.

/// Bytes in `kib` kibibytes (the kernel's "kB"), saturating.
pub fn kib_to_bytes(kib: u64) -> u64 {
    kib.saturating_mul(1024)
}

/// Bytes of an optional kB value.
pub fn kib_opt_to_bytes(kib: Option<u64>) -> Option<u64> {
    kib.map(kib_to_bytes)
}

/// Bytes in `pages` pages of `page_size` bytes, saturating.
pub fn pages_to_bytes(pages: u64, page_size: u64) -> u64 {
    pages.saturating_mul(page_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_saturate() {
        assert_eq!(kib_to_bytes(2), 2048);
        assert_eq!(kib_to_bytes(u64::MAX), u64::MAX);
        assert_eq!(kib_opt_to_bytes(None), None);
        assert_eq!(pages_to_bytes(3, 4096), 12288);
        assert_eq!(pages_to_bytes(u64::MAX / 2, 4096), u64::MAX);
    }
}
