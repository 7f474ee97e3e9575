//! Parser tests against independent oracles and random input: the procfs crate reads the
//! same files on the fixture tree and on the live /proc, and must agree with oomwatch's
//! hand-rolled parsers; property tests feed the parsers comms with `)`, spaces, newlines
//! and non-UTF-8 bytes, and arbitrary bytes, which must never panic; the YAML nesting
//! check never counts fewer levels than the YAML parser builds.

mod common;

use std::path::Path;

use oomwatch::procfs::host::{parse_meminfo, parse_stat_btime, parse_vmstat_oom_kill};
use oomwatch::procfs::pid::{parse_pid_cgroup, parse_pid_stat, parse_statm_resident_pages};
use procfs::{FromBufRead, FromRead};
use proptest::prelude::*;

/// Compares stat, statm and cgroup of every process under `root` with the procfs crate.
/// Returns how many processes were compared (processes that exit meanwhile are skipped).
fn compare_with_procfs_crate(root: &Path) -> usize {
    let mut compared = 0;
    let entries = std::fs::read_dir(root).expect("procfs root");
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let dir = root.join(pid.to_string());
        let (Ok(stat_bytes), Ok(statm_bytes), Ok(cgroup_bytes)) = (
            std::fs::read(dir.join("stat")),
            std::fs::read(dir.join("statm")),
            std::fs::read(dir.join("cgroup")),
        ) else {
            continue;
        };
        let Ok(oracle) = procfs::process::Stat::from_read(&stat_bytes[..]) else {
            continue;
        };
        let ours = parse_pid_stat(&stat_bytes).expect("oomwatch parses what procfs parses");
        assert_eq!(ours.comm, oracle.comm.as_bytes(), "comm of {pid}");
        assert_eq!(
            i64::from(ours.ppid),
            i64::from(oracle.ppid),
            "ppid of {pid}"
        );
        assert_eq!(ours.start_ticks, oracle.starttime, "starttime of {pid}");
        assert_eq!(ours.state, oracle.state as u8, "state of {pid}");
        assert_eq!(
            ours.kernel_thread,
            oracle.flags & 0x0020_0000 != 0,
            "flags of {pid}"
        );

        let statm = procfs::process::StatM::from_read(&statm_bytes[..]).expect("procfs statm");
        assert_eq!(
            parse_statm_resident_pages(&statm_bytes).ok(),
            Some(statm.resident)
        );

        let groups =
            procfs::ProcessCGroups::from_buf_read(&cgroup_bytes[..]).expect("procfs cgroup");
        let ours = parse_pid_cgroup(&cgroup_bytes).expect("oomwatch parses cgroup");
        let unified = groups
            .0
            .iter()
            .find(|g| g.hierarchy == 0)
            .map(|g| g.pathname.as_bytes());
        assert_eq!(ours.unified, unified, "v2 path of {pid}");
        let memory = groups
            .0
            .iter()
            .find(|g| g.controllers.iter().any(|c| c == "memory"))
            .map(|g| g.pathname.as_bytes());
        assert_eq!(ours.memory_v1, memory, "v1 memory path of {pid}");
        compared += 1;
    }
    compared
}

#[test]
fn agrees_with_the_procfs_crate_on_the_fixture_tree() {
    let compared = compare_with_procfs_crate(&common::fixture("host/proc"));
    assert!(compared >= 10, "compared {compared}");
}

#[test]
fn agrees_with_the_procfs_crate_on_the_live_host() {
    let compared = compare_with_procfs_crate(Path::new("/proc"));
    assert!(compared >= 5, "compared {compared}");
}

#[test]
fn host_files_agree_with_the_procfs_crate() {
    let meminfo_bytes = std::fs::read("/proc/meminfo").expect("meminfo");
    let oracle = procfs::Meminfo::from_buf_read(&meminfo_bytes[..]).expect("procfs meminfo");
    let ours = parse_meminfo(&meminfo_bytes).expect("meminfo");
    assert_eq!(ours.total_bytes, oracle.mem_total);
    assert_eq!(ours.available_bytes, oracle.mem_available);
    assert_eq!(ours.swap_total_bytes, oracle.swap_total);

    let stat_bytes = std::fs::read("/proc/stat").expect("stat");
    let btime = procfs::boot_time_secs().expect("procfs btime");
    assert_eq!(parse_stat_btime(&stat_bytes).ok(), Some(btime));

    let vmstat_bytes = std::fs::read("/proc/vmstat").expect("vmstat");
    let oracle = procfs::vmstat().expect("procfs vmstat");
    let kills = oracle.get("oom_kill").map(|v| *v as u64);
    assert!(kills.is_some(), "this kernel has oom_kill in /proc/vmstat");
    // OOM kills may happen between the two reads (other tests make them): never fewer.
    assert!(parse_vmstat_oom_kill(&vmstat_bytes).ok() <= kills);
}

fn stat_line(comm: &[u8], ppid: u32, start: u64) -> Vec<u8> {
    let mut line = b"4242 (".to_vec();
    line.extend_from_slice(comm);
    line.extend_from_slice(
        format!(
            ") S {ppid} 4242 4242 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 1 0 {start} 1234 56 \
             18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        )
        .as_bytes(),
    );
    line
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_comm_round_trips(comm in proptest::collection::vec(1u8..=255, 0..16), ppid in 0u32..4_194_304, start in any::<u64>()) {
        let line = stat_line(&comm, ppid, start);
        let stat = parse_pid_stat(&line).expect("parses");
        prop_assert_eq!(stat.comm, &comm[..]);
        prop_assert_eq!(stat.ppid, ppid);
        prop_assert_eq!(stat.start_ticks, start);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_pid_stat(&bytes);
        let _ = parse_statm_resident_pages(&bytes);
        let _ = parse_pid_cgroup(&bytes);
        let _ = parse_meminfo(&bytes);
        let _ = parse_vmstat_oom_kill(&bytes);
        let _ = parse_stat_btime(&bytes);
        let _ = oomwatch::procfs::host::parse_memory_pressure(&bytes);
        let _ = oomwatch::procfs::host::parse_uptime(&bytes);
        let _ = oomwatch::procfs::host::parse_boot_id(&bytes);
        let _ = oomwatch::cgroupfs::parse_limit(&bytes);
        let _ = oomwatch::cgroupfs::parse_keyed_counter(&bytes, b"oom_kill");
    }

    #[test]
    fn truncated_stat_is_an_error_not_a_wrong_value(cut in 0usize..120) {
        let line = stat_line(b"redis-server", 1, 987654);
        let cut = cut.min(line.len());
        if let Ok(stat) = parse_pid_stat(&line[..cut]) {
            // Only a cut inside the last digits of a later field can still parse, and the
            // fields up to starttime must then be intact.
            prop_assert_eq!(stat.comm, b"redis-server");
            prop_assert_eq!(stat.start_ticks, 987654);
        }
    }

    #[test]
    fn group_names_are_bounded(path in "(/[a-z0-9@:._-]{0,80}){0,8}", comm in ".{0,40}") {
        let name = oomwatch::groups::auto_group_name(Some(&path), &comm);
        prop_assert!(name.len() <= 64);
    }
}

/// Levels of collections in a parsed YAML value (a scalar is 0).
fn yaml_depth(value: &serde_norway::Value) -> usize {
    use serde_norway::Value;
    match value {
        Value::Sequence(items) => 1 + items.iter().map(yaml_depth).max().unwrap_or(0),
        Value::Mapping(map) => {
            1 + map
                .iter()
                .map(|(k, v)| yaml_depth(k).max(yaml_depth(v)))
                .max()
                .unwrap_or(0)
        }
        Value::Tagged(tagged) => yaml_depth(&tagged.value),
        _ => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Random YAML-ish text: whatever the parser reads, the check counted at least as many
    /// levels (it never lets deeper text through than it says).
    #[test]
    fn the_nesting_check_never_counts_fewer_levels_than_the_parser(
        text in proptest::collection::vec(
            prop_oneof![
                Just("["), Just("]"), Just("{"), Just("}"), Just(", "), Just(": "), Just(":"),
                Just(" "), Just("  "), Just("\n"), Just("- "), Just("? "), Just("#"),
                Just("'"), Just("\""), Just("|"), Just(">"), Just("*a"), Just("&a "),
                Just("!t "), Just("a"), Just("\\"), Just("2"), Just("--- "),
            ],
            0..40,
        ).prop_map(|parts| parts.concat())
    ) {
        if let Ok(value) = serde_norway::from_str::<serde_norway::Value>(&text) {
            let parsed = yaml_depth(&value);
            let counted = (0..64)
                .find(|&limit| oomwatch::yaml_nesting::check_nesting(&text, limit).is_ok())
                .unwrap_or(64);
            prop_assert!(counted >= parsed, "{text:?}: counted {counted}, parsed {parsed}");
        }
    }
}
