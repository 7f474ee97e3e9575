//! Memory cgroups: which hierarchy the host uses (v1 or v2, detected at run time), the pure
//! parsers of its files, and the thin readers of one cgroup's usage, limit and OOM kills,
//! and of its early signals (the events before a kill, memory.high, swap, pressure).
//!
//! cgroup v2: `memory.current`, `memory.max`, `memory.events` (`oom_kill`).
//! cgroup v1: `memory.usage_in_bytes`, `memory.limit_in_bytes`, `memory.oom_control`
//! (`oom_kill`, kernel 4.13+). The kill count alone, with the cgroup's inode, backs the
//! kernel log's kills (`oom_kill_count`). Early signals (`signals`): v2 every
//! `memory.events` key, `memory.high`, `memory.swap.current`, `memory.pressure`; v1
//! `memory.failcnt`, `memory.oom_control` (`under_oom`, `oom_kill`), `memory.memsw.failcnt`
//! and `memory.memsw.usage_in_bytes`. Paths are the ones `/proc/<pid>/cgroup` prints,
//! joined under `<sysfs>/fs/cgroup`. This module never decides which group a cgroup
//! belongs to.

use std::path::{Path, PathBuf};

use crate::procfs::host::parse_memory_pressure;
use crate::procfs::{parse_u64, trim};
use crate::roots::Roots;

/// v1 prints "no limit" as the page counter maximum, a value near 2^63.
const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

/// Which memory cgroup hierarchy the host mounts, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryHierarchy {
    /// The v1 `memory` controller, mounted at `<sysfs>/fs/cgroup/memory`.
    V1 { mount: PathBuf },
    /// The unified hierarchy with the memory controller enabled, at `<sysfs>/fs/cgroup`.
    V2 { mount: PathBuf },
}

impl MemoryHierarchy {
    /// Detects the memory hierarchy: a mounted v1 memory controller wins (hybrid hosts
    /// keep memory on v1), else a unified hierarchy that lists `memory` in its controllers.
    pub fn detect(roots: &Roots) -> Option<Self> {
        let base = roots.cgroup_root();
        let v1 = base.join("memory");
        if v1.join("memory.usage_in_bytes").exists() {
            return Some(Self::V1 { mount: v1 });
        }
        let controllers = std::fs::read(base.join("cgroup.controllers")).ok()?;
        controllers
            .split(|b| b.is_ascii_whitespace())
            .any(|c| c == b"memory")
            .then_some(Self::V2 { mount: base })
    }

    pub fn version(&self) -> u8 {
        match self {
            Self::V1 { .. } => 1,
            Self::V2 { .. } => 2,
        }
    }

    fn dir(&self, cgroup: &str) -> PathBuf {
        let mount = match self {
            Self::V1 { mount } | Self::V2 { mount } => mount,
        };
        mount.join(cgroup.trim_start_matches('/'))
    }

    /// Reads the usage, limit and OOM kill count of one cgroup (`/`-rooted path).
    pub fn read(&self, cgroup: &str) -> Result<MemcgSample, CgroupReadError> {
        let dir = self.dir(cgroup);
        let (usage, limit, events) = match self {
            Self::V1 { .. } => (
                "memory.usage_in_bytes",
                "memory.limit_in_bytes",
                "memory.oom_control",
            ),
            Self::V2 { .. } => ("memory.current", "memory.max", "memory.events"),
        };
        let usage_bytes = parse_u64(trim(&read(&dir, usage)?))
            .ok_or_else(|| CgroupReadError::malformed(&dir, usage))?;
        // The v2 root has no memory.max: an absent limit is no limit.
        let limit_bytes = match read(&dir, limit) {
            Ok(bytes) => {
                parse_limit(&bytes).ok_or_else(|| CgroupReadError::malformed(&dir, limit))?
            }
            Err(CgroupReadError::Missing { .. }) => None,
            Err(err) => return Err(err),
        };
        let oom_kills = match read(&dir, events) {
            Ok(bytes) => parse_keyed_counter(&bytes, b"oom_kill"),
            Err(CgroupReadError::Missing { .. }) => None,
            Err(err) => return Err(err),
        };
        Ok(MemcgSample {
            usage_bytes,
            limit_bytes,
            oom_kills,
        })
    }
}

impl MemoryHierarchy {
    /// The kernel's own count of OOM kills of tasks in `cgroup`, with the directory's inode
    /// (a cgroup removed and created again under the same path has another inode and
    /// counts from 0). v2: `memory.events.local` (5.2+; this cgroup's tasks only), else
    /// `memory.events` (its subtree); v1: `memory.oom_control` (4.13+). None when the
    /// cgroup is gone, the kernel keeps no such count, or the path is not a cgroup path.
    pub fn oom_kill_count(&self, cgroup: &str) -> Option<MemcgKillCount> {
        let plain = cgroup.starts_with('/')
            && !cgroup.split('/').any(|part| part == "..")
            && !cgroup.contains('\0');
        if !plain {
            return None;
        }
        let dir = self.dir(cgroup);
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&dir).ok()?);
        let files: &[&str] = match self {
            Self::V1 { .. } => &["memory.oom_control"],
            Self::V2 { .. } => &["memory.events.local", "memory.events"],
        };
        let kills = files
            .iter()
            .find_map(|file| parse_keyed_counter(&read(&dir, file).ok()?, b"oom_kill"))?;
        Some(MemcgKillCount { kills, inode })
    }
}

impl MemoryHierarchy {
    /// The early signals of one cgroup (`/`-rooted path): its event counters, memory.high,
    /// swap in use, pressure stall totals and, on v1, whether it is stuck in OOM now; with
    /// the directory's inode, so that a cgroup created again under the same path is told
    /// apart. A file this kernel or hierarchy lacks leaves its part empty.
    pub fn signals(&self, cgroup: &str) -> Result<MemcgSignals, CgroupReadError> {
        let dir = self.dir(cgroup);
        let inode = match std::fs::metadata(&dir) {
            Ok(meta) => std::os::unix::fs::MetadataExt::ino(&meta),
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(CgroupReadError::Missing {
                    path: dir.display().to_string(),
                })
            }
            Err(source) => {
                return Err(CgroupReadError::Io {
                    path: dir.display().to_string(),
                    source,
                })
            }
        };
        let mut signals = MemcgSignals {
            inode,
            ..MemcgSignals::default()
        };
        match self {
            Self::V2 { .. } => {
                if let Some(bytes) = optional(&dir, "memory.events")? {
                    signals.events = parse_memory_events(&bytes);
                }
                if let Some(bytes) = optional(&dir, "memory.high")? {
                    signals.high_bytes = parse_limit(&bytes)
                        .ok_or_else(|| CgroupReadError::malformed(&dir, "memory.high"))?;
                }
                if let Some(bytes) = optional(&dir, "memory.swap.current")? {
                    signals.swap_bytes =
                        Some(parse_u64(trim(&bytes)).ok_or_else(|| {
                            CgroupReadError::malformed(&dir, "memory.swap.current")
                        })?);
                }
                if let Some(bytes) = optional(&dir, "memory.pressure")? {
                    let pressure = parse_memory_pressure(&bytes)
                        .map_err(|_| CgroupReadError::malformed(&dir, "memory.pressure"))?;
                    signals.pressure_us = Some([
                        (pressure.waiting_seconds * 1e6).round() as u64,
                        (pressure.stalled_seconds * 1e6).round() as u64,
                    ]);
                    signals.pressure_avg10 = pressure
                        .waiting_avg
                        .zip(pressure.stalled_avg)
                        .map(|(some, full)| [some[0], full[0]]);
                }
            }
            Self::V1 { .. } => {
                let counter = |file: &str| -> Result<Option<u64>, CgroupReadError> {
                    optional(&dir, file)?
                        .map(|bytes| {
                            parse_u64(trim(&bytes))
                                .ok_or_else(|| CgroupReadError::malformed(&dir, file))
                        })
                        .transpose()
                };
                if let Some(failcnt) = counter("memory.failcnt")? {
                    signals.events.push((MemcgEvent::Max, failcnt));
                }
                if let Some(bytes) = optional(&dir, "memory.oom_control")? {
                    if let Some(kills) = parse_keyed_counter(&bytes, b"oom_kill") {
                        signals.events.push((MemcgEvent::OomKill, kills));
                    }
                    signals.under_oom = parse_keyed_counter(&bytes, b"under_oom").map(|v| v > 0);
                }
                if let Some(failcnt) = counter("memory.memsw.failcnt")? {
                    signals.events.push((MemcgEvent::MemswMax, failcnt));
                }
                // Swap in use is memory+swap usage less memory usage (swap accounting on).
                if let (Some(memsw), Some(usage)) = (
                    counter("memory.memsw.usage_in_bytes")?,
                    counter("memory.usage_in_bytes")?,
                ) {
                    signals.swap_bytes = Some(memsw.saturating_sub(usage));
                }
            }
        }
        Ok(signals)
    }
}

/// An event a memory cgroup counts: the `memory.events` keys of cgroup v2, and the v1
/// counters that mean the same (`max` is v1's `memory.failcnt`); `memsw_max` is v1's
/// `memory.memsw.failcnt`, which v2 has no key for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemcgEvent {
    Low,
    High,
    Max,
    Oom,
    OomKill,
    OomGroupKill,
    MemswMax,
}

impl MemcgEvent {
    pub const ALL: [MemcgEvent; 7] = [
        Self::Low,
        Self::High,
        Self::Max,
        Self::Oom,
        Self::OomKill,
        Self::OomGroupKill,
        Self::MemswMax,
    ];

    /// The `event` label: the v2 key.
    pub fn label(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::High => "high",
            Self::Max => "max",
            Self::Oom => "oom",
            Self::OomKill => "oom_kill",
            Self::OomGroupKill => "oom_group_kill",
            Self::MemswMax => "memsw_max",
        }
    }

    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.label() == label)
    }
}

/// One memory cgroup's early signals at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemcgSignals {
    /// The cgroup directory's inode: another inode under the same path is a new cgroup.
    pub inode: u64,
    /// Event counters this kernel keeps, in the order read.
    pub events: Vec<(MemcgEvent, u64)>,
    /// `memory.high` (v2); None when `max` or absent.
    pub high_bytes: Option<u64>,
    /// Swap in use by the cgroup: `memory.swap.current` (v2), memsw less usage (v1).
    pub swap_bytes: Option<u64>,
    /// `memory.pressure` `some` and `full` totals, in microseconds (v2 with PSI).
    pub pressure_us: Option<[u64; 2]>,
    /// `memory.pressure` `some` and `full` `avg10=`: percent of the last 10 s.
    pub pressure_avg10: Option<[f64; 2]>,
    /// v1 `memory.oom_control` `under_oom`: tasks are stopped at the limit now, the OOM
    /// killer being disabled for the cgroup (`oom_kill_disable 1`) or still at work.
    pub under_oom: Option<bool>,
}

/// Parses `memory.events` (v2): every key this oomwatch knows, in the file's order;
/// unknown keys (a newer kernel's) are skipped.
pub fn parse_memory_events(bytes: &[u8]) -> Vec<(MemcgEvent, u64)> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let text = std::str::from_utf8(line).ok()?;
            let (key, value) = text.split_once(' ')?;
            Some((
                MemcgEvent::from_label(key)?,
                parse_u64(trim(value.as_bytes()))?,
            ))
        })
        .filter(|(event, _)| *event != MemcgEvent::MemswMax)
        .collect()
}

/// Reads a file that a kernel or hierarchy may lack: None when it does not exist.
fn optional(dir: &Path, file: &str) -> Result<Option<Vec<u8>>, CgroupReadError> {
    match read(dir, file) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(CgroupReadError::Missing { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// A memory cgroup's count of OOM kills (`oom_kill`), and which cgroup it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemcgKillCount {
    pub kills: u64,
    /// The cgroup directory's inode number.
    pub inode: u64,
}

/// One memory cgroup's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemcgSample {
    pub usage_bytes: u64,
    /// None when the cgroup sets no limit of its own.
    pub limit_bytes: Option<u64>,
    /// OOM kills of tasks in this cgroup, where the kernel counts them (v2; v1 from 4.13).
    pub oom_kills: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupReadError {
    /// The cgroup was removed (its service stopped) or the file does not exist here.
    #[error("{path}: no such file")]
    Missing { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: malformed content")]
    Malformed { path: String },
}

impl CgroupReadError {
    fn malformed(dir: &Path, file: &str) -> Self {
        Self::Malformed {
            path: dir.join(file).display().to_string(),
        }
    }
}

fn read(dir: &Path, file: &str) -> Result<Vec<u8>, CgroupReadError> {
    let path = dir.join(file);
    std::fs::read(&path).map_err(|source| {
        let path = path.display().to_string();
        if source.kind() == std::io::ErrorKind::NotFound {
            CgroupReadError::Missing { path }
        } else {
            CgroupReadError::Io { path, source }
        }
    })
}

/// Parses `memory.max` (`max` or bytes) or `memory.limit_in_bytes` (bytes, with "no limit"
/// written as a value near 2^63). The outer None means malformed, the inner None unlimited.
pub fn parse_limit(bytes: &[u8]) -> Option<Option<u64>> {
    let value = trim(bytes);
    if value == b"max" {
        return Some(None);
    }
    let limit = parse_u64(value)?;
    Some((limit < V1_UNLIMITED_FLOOR).then_some(limit))
}

/// Finds `key value` in a flat-keyed file such as `memory.events` or `memory.oom_control`.
pub fn parse_keyed_counter(bytes: &[u8], key: &[u8]) -> Option<u64> {
    bytes.split(|&b| b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(b" ")?;
        parse_u64(trim(rest))
    })
}

/// The cgroup itself, then each ancestor up to but not including the root, deepest first.
pub fn self_and_ancestors(cgroup: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(cgroup.trim_end_matches('/'));
    std::iter::from_fn(move || {
        let current = next.filter(|c| !c.is_empty())?;
        next = current.rfind('/').map(|slash| &current[..slash]);
        Some(current)
    })
}

/// The tightest limit over `cgroup` and its ancestors, with the usage of the cgroup that
/// sets it: `(limit, usage)`; None when none of them is limited. `read` reads one cgroup.
pub fn tightest_limit<'c>(
    cgroup: &'c str,
    read: impl FnMut(&'c str) -> Option<MemcgSample>,
) -> Option<(u64, u64)> {
    self_and_ancestors(cgroup)
        .filter_map(read)
        .filter_map(|s| s.limit_bytes.map(|limit| (limit, s.usage_bytes)))
        .min_by_key(|(limit, _)| *limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(b"max\n"), Some(None));
        assert_eq!(parse_limit(b"52428800\n"), Some(Some(52428800)));
        assert_eq!(parse_limit(b"9223372036854771712\n"), Some(None));
        assert_eq!(parse_limit(b"lots\n"), None);
    }

    #[test]
    fn oom_kill_counters() {
        let v2 = b"low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_keyed_counter(v2, b"oom_kill"), Some(2));
        let v1 = b"oom_kill_disable 0\nunder_oom 0\noom_kill 5\n";
        assert_eq!(parse_keyed_counter(v1, b"oom_kill"), Some(5));
        assert_eq!(parse_keyed_counter(b"under_oom 0\n", b"oom_kill"), None);
    }

    #[test]
    fn memory_events_every_key_and_unknown_ones_skipped() {
        let v2 = b"low 1\nhigh 20\nmax 12\noom 3\noom_kill 2\noom_group_kill 1\nsock_throttled 4\nmemsw_max 9\n";
        assert_eq!(
            parse_memory_events(v2),
            [
                (MemcgEvent::Low, 1),
                (MemcgEvent::High, 20),
                (MemcgEvent::Max, 12),
                (MemcgEvent::Oom, 3),
                (MemcgEvent::OomKill, 2),
                (MemcgEvent::OomGroupKill, 1),
            ]
        );
        for event in MemcgEvent::ALL {
            assert_eq!(MemcgEvent::from_label(event.label()), Some(event));
        }
    }

    #[test]
    fn signals_of_v1_and_v2_cgroups() {
        let v2 = tempfile::tempdir().expect("temp");
        let unit = v2.path().join("fs/cgroup/system.slice/a.service");
        std::fs::create_dir_all(&unit).expect("mkdir");
        for (file, text) in [
            ("memory.events", "low 0\nhigh 7\nmax 2\noom 1\noom_kill 1\n"),
            ("memory.high", "1048576\n"),
            ("memory.swap.current", "4096\n"),
            (
                "memory.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=250\n",
            ),
        ] {
            std::fs::write(unit.join(file), text).expect("write");
        }
        let hierarchy = MemoryHierarchy::V2 {
            mount: v2.path().join("fs/cgroup"),
        };
        let s = hierarchy.signals("/system.slice/a.service").expect("read");
        assert_eq!(s.events.len(), 5);
        assert_eq!(s.events[1], (MemcgEvent::High, 7));
        assert_eq!(
            (s.high_bytes, s.swap_bytes, s.pressure_us, s.under_oom),
            (Some(1 << 20), Some(4096), Some([1_500_000, 250]), None)
        );
        std::fs::write(unit.join("memory.high"), "max\n").expect("write");
        assert_eq!(
            hierarchy
                .signals("/system.slice/a.service")
                .expect("read")
                .high_bytes,
            None
        );
        assert!(matches!(
            hierarchy.signals("/gone"),
            Err(CgroupReadError::Missing { .. })
        ));

        let v1 = tempfile::tempdir().expect("temp");
        let memcg = v1.path().join("memory/job");
        std::fs::create_dir_all(&memcg).expect("mkdir");
        for (file, text) in [
            ("memory.failcnt", "31\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 1\nunder_oom 1\noom_kill 4\n",
            ),
            ("memory.memsw.failcnt", "2\n"),
            ("memory.memsw.usage_in_bytes", "9000\n"),
            ("memory.usage_in_bytes", "8000\n"),
        ] {
            std::fs::write(memcg.join(file), text).expect("write");
        }
        let hierarchy = MemoryHierarchy::V1 {
            mount: v1.path().join("memory"),
        };
        let s = hierarchy.signals("/job").expect("read");
        assert_eq!(
            s.events,
            [
                (MemcgEvent::Max, 31),
                (MemcgEvent::OomKill, 4),
                (MemcgEvent::MemswMax, 2)
            ]
        );
        assert_eq!(
            (s.swap_bytes, s.under_oom, s.high_bytes),
            (Some(1000), Some(true), None)
        );
    }

    #[test]
    fn ancestors_stop_before_the_root() {
        let all: Vec<_> = self_and_ancestors("/system.slice/nginx.service").collect();
        assert_eq!(all, ["/system.slice/nginx.service", "/system.slice"]);
        assert_eq!(self_and_ancestors("/").count(), 0);
    }

    #[test]
    fn detects_v1_and_v2_layouts() {
        let v1 = tempfile::tempdir().expect("temp");
        let memory = v1.path().join("fs/cgroup/memory");
        std::fs::create_dir_all(&memory).expect("mkdir");
        std::fs::write(memory.join("memory.usage_in_bytes"), "1\n").expect("write");
        let roots = Roots::new("/proc", v1.path(), "/");
        assert_eq!(
            MemoryHierarchy::detect(&roots).map(|h| h.version()),
            Some(1)
        );

        let v2 = tempfile::tempdir().expect("temp");
        let unified = v2.path().join("fs/cgroup");
        std::fs::create_dir_all(&unified).expect("mkdir");
        std::fs::write(unified.join("cgroup.controllers"), "cpu io memory pids\n").expect("write");
        let roots = Roots::new("/proc", v2.path(), "/");
        assert_eq!(
            MemoryHierarchy::detect(&roots).map(|h| h.version()),
            Some(2)
        );

        let none = tempfile::tempdir().expect("temp");
        let roots = Roots::new("/proc", none.path(), "/");
        assert_eq!(MemoryHierarchy::detect(&roots), None);
    }
}
