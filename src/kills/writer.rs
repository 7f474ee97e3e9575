//! Whether a userspace OOM killer's kernel-log line was written by the killer. journald
//! (`ForwardToKMsg=yes`) forwards every program's journal messages to the kernel log as
//! `identifier[pid]: message`: the identifier is whatever the program logged under (any
//! user can `logger -t earlyoom …`), but the pid is the sender's, from the socket's
//! credentials, which no unprivileged program can forge. So a line counts as a killer's
//! only when the process with that pid is alive now and is root's (real and effective
//! uid 0: a set-uid program keeps its caller's real uid) or runs in the killer's own
//! system service (`/system.slice/<killer>*.service`, where no unprivileged user can
//! place a process; systemd-oomd runs as its own user there, earlyoom with DynamicUser).
//! A line with no pid was written straight into `/dev/kmsg`, which only root can do.
//!
//! Reads `/proc/<pid>/status` and `/proc/<pid>/cgroup` under the proc root, only when a
//! killer's line arrives; the rules are pure functions. Must not count anything.

use std::path::Path;

use crate::procfs::pid::parse_pid_cgroup;

/// Checks the writer of a userspace killer's line; Err says why it is not the killer.
pub fn check_writer(proc_root: &Path, pid: Option<u32>, killer: &str) -> Result<(), String> {
    let Some(pid) = pid else {
        return Ok(());
    };
    let dir = proc_root.join(pid.to_string());
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| {
            format!("its writer, pid {pid}, cannot be checked (gone before it was read: {e})")
        })
    };
    let status = read("status")?;
    let cgroup = read("cgroup")?;
    writer_is_killer(&status, &cgroup, killer)
        .map_err(|why| format!("its writer, pid {pid}, {why}"))
}

/// The rule, over the writer's `status` and `cgroup` files.
pub fn writer_is_killer(status: &[u8], cgroup: &[u8], killer: &str) -> Result<(), String> {
    let uids = real_and_effective_uid(status);
    if uids == Some((0, 0)) {
        return Ok(());
    }
    let cgroups =
        parse_pid_cgroup(cgroup).map_err(|e| format!("has an unreadable cgroup file ({e})"))?;
    let paths = [cgroups.unified, cgroups.systemd_v1];
    if paths
        .into_iter()
        .flatten()
        .any(|p| in_killer_service(p, killer))
    {
        return Ok(());
    }
    let shown = cgroups
        .naming_path()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    Err(match uids {
        Some((real, _)) => {
            format!("is uid {real} in cgroup {shown:?}, neither root nor {killer}'s own service")
        }
        None => {
            format!("has no readable uid and is in cgroup {shown:?}, not {killer}'s own service")
        }
    })
}

/// `Uid:` of a `status` file: (real, effective).
fn real_and_effective_uid(status: &[u8]) -> Option<(u32, u32)> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Uid:"))?;
    let text = std::str::from_utf8(line).ok()?;
    let mut ids = text.split_ascii_whitespace().map(|n| n.parse::<u32>().ok());
    Some((ids.next()??, ids.next()??))
}

/// The path is the killer's system service, or inside it: `/system.slice/<killer>…
/// .service[/…]`.
fn in_killer_service(path: &[u8], killer: &str) -> bool {
    let Some(rest) = path.strip_prefix(b"/system.slice/") else {
        return false;
    };
    let unit = rest.split(|&b| b == b'/').next().unwrap_or_default();
    unit.starts_with(killer.as_bytes()) && unit.ends_with(b".service")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &[u8] = b"Name:\tnohang\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
    const USER: &[u8] = b"Name:\tlogger\nUid:\t1000\t1000\t1000\t1000\n";
    const SETUID: &[u8] = b"Name:\tsudo\nUid:\t1000\t0\t0\t0\n";

    #[test]
    fn root_writes_for_any_killer() {
        assert_eq!(
            writer_is_killer(ROOT, b"0::/user.slice/x\n", "nohang"),
            Ok(())
        );
    }

    #[test]
    fn the_killers_own_service_writes_for_it_under_any_user() {
        let oomd = b"Uid:\t998\t998\t998\t998\n";
        assert_eq!(
            writer_is_killer(
                oomd,
                b"0::/system.slice/systemd-oomd.service\n",
                "systemd-oomd"
            ),
            Ok(())
        );
        assert_eq!(
            writer_is_killer(
                b"Uid:\t61234\t61234\t61234\t61234\n",
                b"12:memory:/system.slice/earlyoom.service\n1:name=systemd:/system.slice/earlyoom.service\n0::/\n",
                "earlyoom"
            ),
            Ok(())
        );
        assert_eq!(
            writer_is_killer(
                oomd,
                b"0::/system.slice/nohang-desktop.service/x\n",
                "nohang"
            ),
            Ok(())
        );
    }

    #[test]
    fn a_user_naming_itself_after_a_killer_does_not() {
        for cgroup in [
            &b"0::/user.slice/user-1000.slice/session-3.scope\n"[..],
            b"0::/system.slice/cron.service\n",
            // A user's own delegated tree, named like the killer's service.
            b"0::/user.slice/user-1000.slice/user@1000.service/app.slice/earlyoom.service\n",
            b"0::/system.slice/earlyoom.socket\n",
            // Only the v1 memory hierarchy, which says nothing about the unit.
            b"4:memory:/system.slice/earlyoom.service\n0::/user.slice\n",
        ] {
            let verdict = writer_is_killer(USER, cgroup, "earlyoom");
            assert!(verdict.is_err(), "{}", String::from_utf8_lossy(cgroup));
        }
        let why = writer_is_killer(SETUID, b"0::/user.slice/u\n", "earlyoom").expect_err("set-uid");
        assert!(why.contains("uid 1000"), "{why}");
        assert!(writer_is_killer(b"Name:\tx\n", b"0::/\n", "earlyoom").is_err());
    }

    #[test]
    fn an_untagged_writer_is_root_and_a_gone_one_is_not_trusted() {
        let dir = tempfile::tempdir().expect("temp");
        assert_eq!(check_writer(dir.path(), None, "oomd"), Ok(()));
        let why = check_writer(dir.path(), Some(4242), "earlyoom").expect_err("gone");
        assert!(why.contains("pid 4242"), "{why}");
    }

    #[test]
    fn this_process_is_checked_from_the_real_proc() {
        let me = std::process::id();
        let verdict = check_writer(Path::new("/proc"), Some(me), "earlyoom");
        let uid = std::fs::read_to_string("/proc/self/status").expect("status");
        let root = uid.lines().any(|l| l.starts_with("Uid:\t0\t0"));
        assert_eq!(verdict.is_ok(), root, "{verdict:?}");
    }
}
