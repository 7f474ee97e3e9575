//! Parsers for host-wide procfs files: `meminfo`, `vmstat`, `pressure/memory`, `stat`,
//! `uptime` and `sys/kernel/random/boot_id`.
//!
//! Each function takes the whole file as bytes and returns typed values in base units
//! (bytes, seconds). None of them opens a file; the collectors read and hand them the bytes.

use super::{excerpt, parse_u64, trim, ParseError};

/// The host memory figures from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total_bytes: u64,
    /// Absent on kernels before 3.14, which do not print `MemAvailable`.
    pub available_bytes: Option<u64>,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

/// Parses `/proc/meminfo` (`Key:   value kB` lines).
pub fn parse_meminfo(bytes: &[u8]) -> Result<MemInfo, ParseError> {
    const FILE: &str = "meminfo";
    const KEYS: [&str; 4] = ["MemTotal", "MemAvailable", "SwapTotal", "SwapFree"];
    let mut values: [Option<u64>; 4] = [None; 4];
    for line in bytes.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (key, rest) = (&line[..colon], &line[colon + 1..]);
        let Some(index) = KEYS.iter().position(|k| k.as_bytes() == key) else {
            continue;
        };
        let field = KEYS[index];
        let mut words = rest
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty());
        let number = words.next().unwrap_or_default();
        let kib = parse_u64(number).ok_or_else(|| ParseError::BadNumber {
            file: FILE,
            field,
            value: excerpt(number),
        })?;
        let multiplier = match words.next() {
            Some(b"kB") => 1024,
            None => 1,
            Some(_) => {
                return Err(ParseError::Malformed {
                    file: FILE,
                    reason: "a memory figure has a unit other than kB",
                })
            }
        };
        values[index] = Some(kib.saturating_mul(multiplier));
    }
    let required = |index: usize| {
        values[index].ok_or(ParseError::MissingField {
            file: FILE,
            field: KEYS[index],
        })
    };
    Ok(MemInfo {
        total_bytes: required(0)?,
        available_bytes: values[1],
        swap_total_bytes: required(2)?,
        swap_free_bytes: required(3)?,
    })
}

/// Parses the `oom_kill` counter out of `/proc/vmstat` (kernel 4.13 and later).
pub fn parse_vmstat_oom_kill(bytes: &[u8]) -> Result<u64, ParseError> {
    const FILE: &str = "vmstat";
    for line in bytes.split(|&b| b == b'\n') {
        if let Some(value) = line.strip_prefix(b"oom_kill ") {
            return parse_u64(trim(value)).ok_or_else(|| ParseError::BadNumber {
                file: FILE,
                field: "oom_kill",
                value: excerpt(value),
            });
        }
    }
    Err(ParseError::MissingField {
        file: FILE,
        field: "oom_kill",
    })
}

/// Memory pressure stall totals from `/proc/pressure/memory`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MemoryPressure {
    /// `some total=`: time at least one task waited on memory.
    pub waiting_seconds: f64,
    /// `full total=`: time all non-idle tasks stalled on memory at once.
    pub stalled_seconds: f64,
    /// `some avg10=`, `avg60=`, `avg300=`: the share of time (percent) at least one task
    /// waited, over the last 10 s, 60 s and 300 s. Shown on the incident page; a line
    /// without them is still read for its total.
    pub waiting_avg: Option<[f64; 3]>,
    /// The same averages for `full`.
    pub stalled_avg: Option<[f64; 3]>,
}

/// Parses `/proc/pressure/memory` (`some avg10=.. avg60=.. avg300=.. total=<usec>`).
pub fn parse_memory_pressure(bytes: &[u8]) -> Result<MemoryPressure, ParseError> {
    const FILE: &str = "pressure/memory";
    let (mut some, mut full) = (None, None);
    let (mut some_avg, mut full_avg) = (None, None);
    for line in bytes.split(|&b| b == b'\n') {
        let (slot, avg, field, rest) = if let Some(rest) = line.strip_prefix(b"some ") {
            (&mut some, &mut some_avg, "some total", rest)
        } else if let Some(rest) = line.strip_prefix(b"full ") {
            (&mut full, &mut full_avg, "full total", rest)
        } else {
            continue;
        };
        *avg = parse_pressure_averages(rest);
        let total = rest
            .split(|&b| b == b' ')
            .find_map(|word| word.strip_prefix(b"total="))
            .ok_or(ParseError::MissingField { file: FILE, field })?;
        let micros = parse_u64(trim(total)).ok_or_else(|| ParseError::BadNumber {
            file: FILE,
            field,
            value: excerpt(total),
        })?;
        *slot = Some(micros as f64 / 1e6);
    }
    Ok(MemoryPressure {
        waiting_seconds: some.ok_or(ParseError::MissingField {
            file: FILE,
            field: "some total",
        })?,
        // Memory pressure has had both lines since PSI appeared (4.20); a missing one is
        // an error, never a silent zero.
        stalled_seconds: full.ok_or(ParseError::MissingField {
            file: FILE,
            field: "full total",
        })?,
        waiting_avg: some_avg,
        stalled_avg: full_avg,
    })
}

/// `avg10=0.00 avg60=1.50 avg300=0.20`, out of one PSI line; None unless all three parse.
fn parse_pressure_averages(line: &[u8]) -> Option<[f64; 3]> {
    let mut averages = [None; 3];
    for word in line.split(|&b| b == b' ') {
        let (slot, value) = if let Some(v) = word.strip_prefix(b"avg10=") {
            (0, v)
        } else if let Some(v) = word.strip_prefix(b"avg60=") {
            (1, v)
        } else if let Some(v) = word.strip_prefix(b"avg300=") {
            (2, v)
        } else {
            continue;
        };
        averages[slot] = std::str::from_utf8(trim(value))
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite());
    }
    Some([averages[0]?, averages[1]?, averages[2]?])
}

/// Parses the boot time (`btime`, seconds since the epoch) out of `/proc/stat`.
pub fn parse_stat_btime(bytes: &[u8]) -> Result<u64, ParseError> {
    const FILE: &str = "stat";
    for line in bytes.split(|&b| b == b'\n') {
        if let Some(value) = line.strip_prefix(b"btime ") {
            return parse_u64(trim(value)).ok_or_else(|| ParseError::BadNumber {
                file: FILE,
                field: "btime",
                value: excerpt(value),
            });
        }
    }
    Err(ParseError::MissingField {
        file: FILE,
        field: "btime",
    })
}

/// Parses `/proc/uptime` into seconds since boot (its first field).
pub fn parse_uptime(bytes: &[u8]) -> Result<f64, ParseError> {
    const FILE: &str = "uptime";
    let first = trim(bytes).split(|&b| b == b' ').next().unwrap_or_default();
    std::str::from_utf8(first)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| ParseError::BadNumber {
            file: FILE,
            field: "uptime",
            value: excerpt(first),
        })
}

/// Parses `sys/kernel/random/boot_id`: a UUID, lower-case, in its 8-4-4-4-12 form.
pub fn parse_boot_id(bytes: &[u8]) -> Result<String, ParseError> {
    let id = trim(bytes);
    let well_formed = id.len() == 36
        && id.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if !well_formed {
        return Err(ParseError::Malformed {
            file: "sys/kernel/random/boot_id",
            reason: "not a UUID",
        });
    }
    Ok(String::from_utf8_lossy(id).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &[u8] = b"MemTotal:       24579596 kB\nMemFree:        23832000 kB\n\
MemAvailable:   23900000 kB\nBuffers:            1234 kB\nSwapTotal:       2097148 kB\n\
SwapFree:        2097000 kB\nHugePages_Total:       0\n";

    #[test]
    fn meminfo_in_bytes() {
        let m = parse_meminfo(MEMINFO).expect("parses");
        assert_eq!(m.total_bytes, 24579596 * 1024);
        assert_eq!(m.available_bytes, Some(23900000 * 1024));
        assert_eq!(m.swap_total_bytes, 2097148 * 1024);
        assert_eq!(m.swap_free_bytes, 2097000 * 1024);
    }

    #[test]
    fn a_huge_meminfo_figure_saturates_instead_of_wrapping() {
        // 2^60 kB is 2^70 bytes: a wrapping multiply would read 0.
        let huge = format!(
            "MemTotal: {} kB\nMemAvailable: {} kB\nSwapTotal: {} kB\nSwapFree: 7\n",
            1u64 << 60,
            u64::MAX,
            u64::MAX / 1024 + 1
        );
        let m = parse_meminfo(huge.as_bytes()).expect("parses");
        assert_eq!(m.total_bytes, u64::MAX);
        assert_eq!(m.available_bytes, Some(u64::MAX));
        assert_eq!(m.swap_total_bytes, u64::MAX);
        assert_eq!(m.swap_free_bytes, 7, "a figure without a unit is bytes");
    }

    #[test]
    fn meminfo_before_3_14_has_no_available() {
        let old = b"MemTotal: 100 kB\nMemFree: 50 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n";
        let m = parse_meminfo(old).expect("parses");
        assert_eq!(m.available_bytes, None);
    }

    #[test]
    fn meminfo_errors_name_the_field() {
        let err = parse_meminfo(b"MemTotal: x kB\n").expect_err("bad number");
        assert!(err.to_string().contains("MemTotal"), "{err}");
        let err = parse_meminfo(b"MemTotal: 1 kB\n").expect_err("missing");
        assert!(err.to_string().contains("SwapTotal"), "{err}");
    }

    #[test]
    fn vmstat_oom_kill() {
        let v = b"nr_free_pages 1\noom_kill_other 9\noom_kill 7\nnuma_hit 3\n";
        assert_eq!(parse_vmstat_oom_kill(v), Ok(7));
        assert!(parse_vmstat_oom_kill(b"nr_free_pages 1\n").is_err());
    }

    #[test]
    fn pressure_totals_in_seconds() {
        let p = b"some avg10=12.50 avg60=3.00 avg300=0.75 total=1500000\n\
full avg10=0.00 avg60=0.00 avg300=0.00 total=250000\n";
        let m = parse_memory_pressure(p).expect("parses");
        assert_eq!(m.waiting_seconds, 1.5);
        assert_eq!(m.stalled_seconds, 0.25);
        assert_eq!(m.waiting_avg, Some([12.5, 3.0, 0.75]));
        assert_eq!(m.stalled_avg, Some([0.0; 3]));
        let totals_only = parse_memory_pressure(b"some total=1\nfull total=2\n").expect("parses");
        assert_eq!(totals_only.waiting_avg, None);
    }

    #[test]
    fn btime_uptime_boot_id() {
        assert_eq!(
            parse_stat_btime(b"cpu 1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Ok(1_700_000_000)
        );
        assert_eq!(parse_uptime(b"350735.47 234388.90\n"), Ok(350735.47));
        assert!(parse_uptime(b"nan 1\n").is_err());
        assert_eq!(
            parse_boot_id(b"1BAC31F0-b96c-4c61-af62-fb71b7e3cf17\n").as_deref(),
            Ok("1bac31f0-b96c-4c61-af62-fb71b7e3cf17")
        );
        assert!(parse_boot_id(b"not-a-uuid\n").is_err());
    }
}
