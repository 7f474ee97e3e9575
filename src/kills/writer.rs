//! Whether a userspace OOM killer's kernel-log line was written by the killer. journald
//! forwards a program's journal messages to the kernel log (`ForwardToKMsg=yes`, or a
//! stream client that asks for it) as `identifier[pid]: message`: the identifier and the
//! message are whatever the program sent (any user can `logger -t earlyoom …`), but the
//! pid is the sender's, from its socket credentials, which no unprivileged program can
//! forge. The record's text tells which pid is journald's only when it holds exactly one
//! `[digits]:` (`kmsg::record::Writer`); otherwise nothing it claims is trusted.
//!
//! So a line counts as a killer's only when the process with that pid is alive, started
//! before the line was written (a pid reused since, by a replay after a restart, is not
//! the writer; both times on the kernel's boot clock, so no wall-clock step moves them),
//! and is either root's (real and effective uid 0: a set-uid program keeps its caller's
//! real uid) under the killer's process name, or runs in the killer's own system service
//! (`/system.slice/<killer>*.service`, where no unprivileged user can place a process;
//! systemd-oomd runs as its own user there, earlyoom as a DynamicUser). A record with no
//! `[digits]:` at all was written straight into `/dev/kmsg`, which only root can open for
//! writing.
//!
//! Reads `/proc/<pid>/{status,cgroup,stat}` under the proc root, only for a line under a
//! killer's name; the rules are pure functions. Must not count anything.

use std::path::Path;

use crate::kmsg::record::Writer;
use crate::procfs::pid::{parse_pid_cgroup, parse_pid_stat};

/// Seconds a writer may seem to have started after its line, plus a share of the uptime:
/// the printk clock runs from the raw CPU clock, and drifts from the boot clock process
/// start times are kept on by up to about 100 ppm.
const START_SLACK_SECS: f64 = 2.0;
const START_SLACK_PER_UPTIME: f64 = 1e-4;

/// Checks the writer of a userspace killer's line written `written_at` seconds after
/// boot (the boot clock, CLOCK_BOOTTIME); `clock_ticks` is the kernel's ticks per second.
/// Err says why it is not the killer.
pub fn check_writer(
    proc_root: &Path,
    writer: Writer,
    killer: &str,
    written_at: f64,
    clock_ticks: u64,
) -> Result<(), String> {
    let pid = match writer {
        Writer::Kernel | Writer::Untagged => return Ok(()),
        Writer::Unknown => {
            return Err("its record holds more than one [pid]: (or a pid past any pid), so the writer journald saw cannot be told from the program's own text".into())
        }
        Writer::Pid(pid) => pid,
    };
    let dir = proc_root.join(pid.to_string());
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| {
            format!("its writer, pid {pid}, cannot be checked (gone before it was read: {e})")
        })
    };
    let stat = read("stat")?;
    let status = read("status")?;
    let cgroup = read("cgroup")?;
    let parsed = parse_pid_stat(&stat)
        .map_err(|e| format!("its writer, pid {pid}, has an unreadable stat file ({e})"))?;
    let started = parsed.start_ticks as f64 / clock_ticks.max(1) as f64;
    if started > written_at + START_SLACK_SECS + START_SLACK_PER_UPTIME * written_at {
        return Err(format!(
            "its writer's pid {pid} belongs to a process started {:.0} s after the line was written (the pid was reused)",
            started - written_at
        ));
    }
    let exe = std::fs::read_link(dir.join("exe")).ok();
    let exe = exe
        .as_deref()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str());
    writer_is_killer(&status, &cgroup, parsed.comm, exe, killer)
        .map_err(|why| format!("its writer, pid {pid}, {why}"))
}

/// The rule, over the writer's `status` and `cgroup` files, its comm and the name of the
/// program it runs (`exe`): the writer bears the killer's name, and is either in the
/// killer's own service, or root's outside any user's session, or root's in a session
/// running the killer's own program (a user can run a set-uid program such as sudo
/// through a link named after the killer: for a few milliseconds it is root under that
/// name, in the user's session, but its program is still sudo).
pub fn writer_is_killer(
    status: &[u8],
    cgroup: &[u8],
    comm: &[u8],
    exe: Option<&str>,
    killer: &str,
) -> Result<(), String> {
    if killer.is_empty() {
        return Err("writes under no name".into());
    }
    let shown_comm = String::from_utf8_lossy(comm);
    if !comm.starts_with(killer.as_bytes()) {
        return Err(format!("is {shown_comm:?}, not {killer}"));
    }
    let cgroups =
        parse_pid_cgroup(cgroup).map_err(|e| format!("has an unreadable cgroup file ({e})"))?;
    let paths = || [cgroups.unified, cgroups.systemd_v1].into_iter().flatten();
    if paths().any(|p| in_killer_service(p, killer)) {
        return Ok(());
    }
    let uids = real_and_effective_uid(status);
    let in_session = paths().any(|p| without_namespace_prefix(p).starts_with(b"/user.slice/"));
    let runs_killer = exe.is_some_and(|exe| exe.starts_with(killer));
    if uids == Some((0, 0)) && (!in_session || runs_killer) {
        return Ok(());
    }
    let shown = cgroups
        .naming_path()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    Err(match uids {
        Some((0, 0)) => format!(
            "is root's {shown_comm:?} running {exe:?} in a user's session (cgroup {shown:?}), not {killer}'s own service",
            exe = exe.unwrap_or("?")
        ),
        Some((real, _)) => format!(
            "is uid {real} in cgroup {shown:?}, neither root nor {killer}'s own service"
        ),
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
/// .service[/…]`. Seen from inside a cgroup namespace (the exporter in a pod) a host path
/// starts with `/..` once per level between the namespace's root and the host's: those
/// are taken off first.
fn in_killer_service(path: &[u8], killer: &str) -> bool {
    let Some(rest) = without_namespace_prefix(path).strip_prefix(b"/system.slice/") else {
        return false;
    };
    let unit = rest.split(|&b| b == b'/').next().unwrap_or_default();
    !killer.is_empty() && unit.starts_with(killer.as_bytes()) && unit.ends_with(b".service")
}

/// A cgroup path without the `/..` a cgroup namespace puts in front of a host path.
fn without_namespace_prefix(mut path: &[u8]) -> &[u8] {
    while let Some(rest) = path.strip_prefix(b"/..") {
        path = rest;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &[u8] = b"Name:\tnohang\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
    const USER: &[u8] = b"Name:\tlogger\nUid:\t1000\t1000\t1000\t1000\n";
    const SETUID: &[u8] = b"Name:\tsudo\nUid:\t1000\t0\t0\t0\n";

    fn ticks() -> u64 {
        rustix::param::clock_ticks_per_second()
    }

    fn now() -> f64 {
        crate::clock::boottime_now()
    }

    #[test]
    fn root_writes_for_any_killer() {
        assert_eq!(
            writer_is_killer(
                ROOT,
                b"0::/system.slice/cron.service\n",
                b"nohang",
                None,
                "nohang"
            ),
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
                b"systemd-oomd",
                None,
                "systemd-oomd"
            ),
            Ok(())
        );
        assert_eq!(
            writer_is_killer(b"Uid:\t61234\t61234\t61234\t61234\n",
                b"12:memory:/system.slice/earlyoom.service\n1:name=systemd:/system.slice/earlyoom.service\n0::/\n", b"earlyoom", None, "earlyoom"),
            Ok(())
        );
        // In the service, but not the killer (a hook it runs, a pid reused by a helper).
        assert!(writer_is_killer(
            oomd,
            b"0::/system.slice/earlyoom.service\n",
            b"sh",
            None,
            "earlyoom"
        )
        .is_err());
        assert_eq!(
            writer_is_killer(
                oomd,
                b"0::/system.slice/nohang-desktop.service/x\n",
                b"nohang-desktop",
                None,
                "nohang"
            ),
            Ok(())
        );
        // Seen from a pod's cgroup namespace, three levels below the host's root.
        assert_eq!(
            writer_is_killer(
                oomd,
                b"0::/../../../system.slice/earlyoom.service\n",
                b"earlyoom",
                None,
                "earlyoom"
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
            b"0::/../user.slice/system.slice/earlyoom.service\n",
            // Only the v1 memory hierarchy, which says nothing about the unit.
            b"4:memory:/system.slice/earlyoom.service\n0::/user.slice\n",
        ] {
            let verdict = writer_is_killer(USER, cgroup, b"earlyoom", None, "earlyoom");
            assert!(verdict.is_err(), "{}", String::from_utf8_lossy(cgroup));
        }
        let why = writer_is_killer(SETUID, b"0::/user.slice/u\n", b"earlyoom", None, "earlyoom")
            .expect_err("set-uid");
        assert!(why.contains("uid 1000"), "{why}");
        assert!(writer_is_killer(b"Name:\tx\n", b"0::/\n", b"earlyoom", None, "earlyoom").is_err());
        // Root, but not the killer: any root process (an sshd child) could hold its pid.
        let why = writer_is_killer(
            ROOT,
            b"0::/system.slice/ssh.service\n",
            b"sshd",
            None,
            "earlyoom",
        )
        .expect_err("root's sshd");
        assert!(why.contains("not earlyoom"), "{why}");
        // Root under the killer's name in a user's session: sudo run through a link
        // named earlyoom, for the milliseconds it reads its configuration.
        let session = b"0::/user.slice/user-1000.slice/session-3.scope\n";
        let why = writer_is_killer(ROOT, session, b"earlyoom", None, "earlyoom").expect_err("sudo");
        assert!(why.contains("session"), "{why}");
        let namespaced = b"0::/../../user.slice/user-1000.slice/session-3.scope\n";
        assert!(writer_is_killer(ROOT, namespaced, b"earlyoom", None, "earlyoom").is_err());
        let sudo = writer_is_killer(ROOT, session, b"earlyoom", Some("sudo"), "earlyoom");
        assert!(sudo.is_err());
        // earlyoom started by hand from a root shell: its program is earlyoom.
        let by_hand = writer_is_killer(ROOT, session, b"earlyoom", Some("earlyoom"), "earlyoom");
        assert_eq!(by_hand, Ok(()));
        // No name: every unit name starts with "".
        let www = b"Uid:\t33\t33\t33\t33\n";
        assert!(writer_is_killer(www, b"0::/system.slice/nginx.service\n", b"", None, "").is_err());
        assert!(writer_is_killer(ROOT, b"0::/\n", b"", None, "").is_err());
    }

    #[test]
    fn untagged_is_root_unknown_and_gone_writers_are_not_trusted() {
        let dir = tempfile::tempdir().expect("temp");
        let check = |writer| check_writer(dir.path(), writer, "earlyoom", now(), ticks());
        assert_eq!(check(Writer::Untagged), Ok(()));
        assert!(check(Writer::Unknown).is_err());
        let why = check(Writer::Pid(4242)).expect_err("gone");
        assert!(why.contains("pid 4242"), "{why}");
    }

    #[test]
    fn this_process_is_checked_from_the_real_proc() {
        let me = Writer::Pid(std::process::id());
        let proc = Path::new("/proc");
        let verdict = check_writer(proc, me, "earlyoom", now(), ticks());
        let why = verdict.expect_err("this test is not earlyoom");
        assert!(why.contains("earlyoom"), "{why}");
        // A line written before this process started: its pid was reused since.
        let why = check_writer(proc, me, "earlyoom", now() - 3600.0, ticks())
            .expect_err("started after the line");
        assert!(why.contains("reused"), "{why}");
    }
}
