//! Parsers for per-process procfs files: `stat`, `statm`, `oom_score`, `oom_score_adj`,
//! `cgroup` and `cmdline`.
//!
//! Pure functions over the bytes of one file; the comm in `stat` may hold any byte,
//! including `)`, spaces and newlines, so it is delimited by the last `)` in the file.
//! Nothing here opens a file or allocates on the success path.

use super::{excerpt, parse_i64, parse_u64, trim, ParseError};

/// `PF_KTHREAD` in the `flags` field of `stat`: the task is a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields oomwatch uses from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat<'a> {
    /// The command name as the kernel keeps it: at most 15 bytes, any bytes but NUL.
    pub comm: &'a [u8],
    pub state: u8,
    pub ppid: u32,
    pub kernel_thread: bool,
    /// Start time in clock ticks since boot: with the pid, it names one process instance.
    pub start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`.
pub fn parse_pid_stat(bytes: &[u8]) -> Result<PidStat<'_>, ParseError> {
    const FILE: &str = "<pid>/stat";
    let malformed = |reason| ParseError::Malformed { file: FILE, reason };
    let open = bytes
        .iter()
        .position(|&b| b == b'(')
        .ok_or(malformed("no `(` before the comm"))?;
    let close = bytes
        .iter()
        .rposition(|&b| b == b')')
        .filter(|&close| close > open)
        .ok_or(malformed("no `)` after the comm"))?;
    let comm = &bytes[open + 1..close];
    // Fields after the comm, numbered as in proc(5): 3 = state, 4 = ppid, 9 = flags,
    // 22 = starttime.
    let mut fields = bytes[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    let mut field = |number: usize, skip: usize| -> Result<&[u8], ParseError> {
        fields.nth(skip).ok_or(ParseError::MissingField {
            file: FILE,
            field: match number {
                3 => "state",
                4 => "ppid",
                9 => "flags",
                22 => "starttime",
                _ => "vsize",
            },
        })
    };
    let number = |name: &'static str, value: &[u8]| {
        parse_u64(trim(value)).ok_or_else(|| ParseError::BadNumber {
            file: FILE,
            field: name,
            value: excerpt(value),
        })
    };
    let state = field(3, 0)?;
    let ppid = number("ppid", field(4, 0)?)?;
    let flags = number("flags", field(9, 4)?)?;
    let start_ticks = number("starttime", field(22, 12)?)?;
    // The kernel always prints vsize after starttime: without it the line was cut, maybe
    // inside starttime itself, which would then read as a wrong, shorter number.
    field(23, 0)?;
    Ok(PidStat {
        comm,
        state: state.first().copied().unwrap_or(b'?'),
        ppid: u32::try_from(ppid).map_err(|_| malformed("ppid out of range"))?,
        kernel_thread: flags & PF_KTHREAD != 0,
        start_ticks,
    })
}

/// The two `/proc/<pid>/statm` fields oomwatch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Statm {
    /// Total virtual memory in pages (the first field).
    pub size_pages: u64,
    /// Resident pages: file, anonymous and shared memory (the second field), the RSS the
    /// OOM killer counts.
    pub resident_pages: u64,
}

/// Parses `/proc/<pid>/statm` into its size and resident pages.
///
/// statm is used rather than the rss field of stat, which on current kernels lags behind
/// by the per-CPU counters not yet folded in (under-reading by ~9% here).
pub fn parse_statm(bytes: &[u8]) -> Result<Statm, ParseError> {
    const FILE: &str = "<pid>/statm";
    let mut fields = trim(bytes).split(|&b| b == b' ');
    let mut number = |field: &'static str| {
        let value = fields
            .next()
            .ok_or(ParseError::MissingField { file: FILE, field })?;
        parse_u64(value).ok_or_else(|| ParseError::BadNumber {
            file: FILE,
            field,
            value: excerpt(value),
        })
    };
    let size_pages = number("size")?;
    let resident_pages = number("resident")?;
    Ok(Statm {
        size_pages,
        resident_pages,
    })
}

/// Parses `/proc/<pid>/statm` into resident pages (its second field).
pub fn parse_statm_resident_pages(bytes: &[u8]) -> Result<u64, ParseError> {
    parse_statm(bytes).map(|statm| statm.resident_pages)
}

/// Parses a one-number file such as `oom_score` (0..=2000) or `oom_score_adj` (-1000..=1000).
pub fn parse_oom_value(file: &'static str, bytes: &[u8]) -> Result<i32, ParseError> {
    let value = trim(bytes);
    parse_i64(value)
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| ParseError::BadNumber {
            file,
            field: "value",
            value: excerpt(value),
        })
}

/// The cgroup paths of one process, as `/proc/<pid>/cgroup` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PidCgroups<'a> {
    /// The cgroup v2 path (the `0::` line), when the unified hierarchy is mounted.
    pub unified: Option<&'a [u8]>,
    /// The cgroup v1 `memory` controller path.
    pub memory_v1: Option<&'a [u8]>,
    /// The cgroup v1 `name=systemd` path, where systemd keeps its units on v1 hosts.
    pub systemd_v1: Option<&'a [u8]>,
}

impl<'a> PidCgroups<'a> {
    /// The path that says which service or container a process belongs to: the v2 path
    /// when it is more than `/`, else systemd's v1 path, else the v1 memory path.
    pub fn naming_path(&self) -> Option<&'a [u8]> {
        [self.unified, self.systemd_v1, self.memory_v1]
            .into_iter()
            .flatten()
            .find(|path| *path != b"/")
    }
}

/// Parses `/proc/<pid>/cgroup` (`hierarchy-ID:controller-list:path` lines).
///
/// The path is everything after the second colon, since a path may itself hold colons.
pub fn parse_pid_cgroup(bytes: &[u8]) -> Result<PidCgroups<'_>, ParseError> {
    let mut cgroups = PidCgroups::default();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, |&b| b == b':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::Malformed {
                file: "<pid>/cgroup",
                reason: "a line is not `id:controllers:path`",
            });
        };
        if id == b"0" && controllers.is_empty() {
            cgroups.unified = Some(path);
        } else if controllers.split(|&b| b == b',').any(|c| c == b"memory") {
            cgroups.memory_v1 = Some(path);
        } else if controllers == b"name=systemd" {
            cgroups.systemd_v1 = Some(path);
        }
    }
    Ok(cgroups)
}

/// Joins the NUL-separated arguments of `/proc/<pid>/cmdline` with spaces, into `out`.
///
/// Processes that rewrite their arguments (`postgres: checkpointer`) may leave no NULs;
/// the bytes are then taken as they are. Invalid UTF-8 is replaced, not rejected.
pub fn join_cmdline(bytes: &[u8], out: &mut String) {
    out.clear();
    let trimmed = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    for (i, arg) in trimmed.split(|&b| b == 0).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&String::from_utf8_lossy(arg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_line(comm: &str) -> Vec<u8> {
        format!(
            "4242 ({comm}) S 1 4242 4242 0 -1 4194560 120 0 0 0 3 1 0 0 20 0 1 0 \
             987654 12345678 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        )
        .into_bytes()
    }

    #[test]
    fn stat_fields() {
        let line = stat_line("redis-server");
        let stat = parse_pid_stat(&line).expect("parses");
        assert_eq!(stat.comm, b"redis-server");
        assert_eq!(stat.state, b'S');
        assert_eq!(stat.ppid, 1);
        assert!(!stat.kernel_thread);
        assert_eq!(stat.start_ticks, 987654);
    }

    #[test]
    fn comm_with_parentheses_spaces_and_newlines() {
        for comm in [
            "((resolved))",
            "a) S 1 2 (",
            "Web Content",
            "x\ny",
            ")",
            "runc:[2:INIT]",
        ] {
            let line = stat_line(comm);
            let stat = parse_pid_stat(&line).expect("parses");
            assert_eq!(stat.comm, comm.as_bytes());
            assert_eq!(stat.start_ticks, 987654);
        }
    }

    #[test]
    fn kernel_thread_flag() {
        let line = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0 \
18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0\n";
        let stat = parse_pid_stat(line).expect("parses");
        assert!(stat.kernel_thread);
        assert_eq!(stat.ppid, 0);
    }

    #[test]
    fn truncated_stat_names_the_missing_field() {
        let err = parse_pid_stat(b"1 (init) S 0 1 1 0 -1 4194560 5").expect_err("short");
        assert!(err.to_string().contains("starttime"), "{err}");
        let cut = b"1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 1 0 98";
        assert!(
            parse_pid_stat(cut).is_err(),
            "a line cut inside starttime is rejected"
        );
        assert!(parse_pid_stat(b"no parens").is_err());
        assert!(parse_pid_stat(b")(").is_err());
    }

    #[test]
    fn statm_and_oom_values() {
        assert_eq!(
            parse_statm_resident_pages(b"2000 321 100 5 0 200 0\n"),
            Ok(321)
        );
        assert!(parse_statm_resident_pages(b"2000\n").is_err());
        assert_eq!(parse_oom_value("oom_score_adj", b"-1000\n"), Ok(-1000));
        assert_eq!(parse_oom_value("oom_score", b"667\n"), Ok(667));
        assert!(parse_oom_value("oom_score", b"\n").is_err());
    }

    #[test]
    fn cgroup_v1_and_v2_lines() {
        let v1 =
            b"12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n";
        let cg = parse_pid_cgroup(v1).expect("parses");
        assert_eq!(cg.memory_v1, Some(&b"/docker/abc"[..]));
        assert_eq!(cg.systemd_v1, Some(&b"/docker/abc"[..]));
        assert_eq!(cg.unified, Some(&b"/"[..]));
        assert_eq!(cg.naming_path(), Some(&b"/docker/abc"[..]));

        let v2 = b"0::/system.slice/nginx.service\n";
        let cg = parse_pid_cgroup(v2).expect("parses");
        assert_eq!(cg.naming_path(), Some(&b"/system.slice/nginx.service"[..]));
        assert_eq!(cg.memory_v1, None);

        let colon = b"0::/user.slice/a:b.scope\n";
        let cg = parse_pid_cgroup(colon).expect("parses");
        assert_eq!(cg.unified, Some(&b"/user.slice/a:b.scope"[..]));
        assert!(parse_pid_cgroup(b"garbage\n").is_err());
    }

    #[test]
    fn cmdline_joined() {
        let mut out = String::new();
        join_cmdline(b"java\0-jar\0app.jar\0", &mut out);
        assert_eq!(out, "java -jar app.jar");
        join_cmdline(b"postgres: checkpointer   ", &mut out);
        assert_eq!(out, "postgres: checkpointer   ");
    }
}
