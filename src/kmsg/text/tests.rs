//! One line of log text in every form the corpus holds: where the message starts, the
//! time as printed and the writer.

use super::*;

fn p(line: &str) -> (Option<&str>, Source<'_>, &str) {
    let t = parse_text_line(line);
    (t.time, t.source, t.message)
}

#[test]
fn dmesg_plain_and_human() {
    assert_eq!(
        p("[  294.385120] Memory cgroup out of memory: Killed process 6438 (x)"),
        (
            Some("294.385120"),
            Source::Kernel,
            "Memory cgroup out of memory: Killed process 6438 (x)"
        )
    );
    assert_eq!(
        p("[Sun Nov 22 02:54:31 2026] oom-kill:constraint=CONSTRAINT_MEMCG"),
        (
            Some("Sun Nov 22 02:54:31 2026"),
            Source::Kernel,
            "oom-kill:constraint=CONSTRAINT_MEMCG"
        )
    );
    assert_eq!(p("[  +0.000082] Out of memory: x").0, Some("+0.000082"));
    assert_eq!(
        p("[Oct28 16:58] mysqld invoked oom-killer: x").2,
        "mysqld invoked oom-killer: x"
    );
}

#[test]
fn dmesg_in_other_languages_and_caller_ids() {
    assert_eq!(
        p("[So Jun  9 01:03:02 2013] qemu-system-x86 invoked oom-killer: gfp_mask=0xd0"),
        (
            Some("So Jun  9 01:03:02 2013"),
            Source::Kernel,
            "qemu-system-x86 invoked oom-killer: gfp_mask=0xd0"
        )
    );
    assert_eq!(
        p("[dim. 19 avril 18:03:30 2026] oom-kill:constraint=CONSTRAINT_NONE").2,
        "oom-kill:constraint=CONSTRAINT_NONE"
    );
    assert_eq!(
        p("[ 9422.457061][T10521] memeater invoked oom-killer: gfp_mask=0xcc0"),
        (
            Some("9422.457061"),
            Source::Kernel,
            "memeater invoked oom-killer: gfp_mask=0xcc0"
        )
    );
    assert_eq!(
        p("[   50.167554][   T55] oom_reaper: reaped").2,
        "oom_reaper: reaped"
    );
    assert_eq!(
        p("[   50.1][C3] Killed process 1 (a)").2,
        "Killed process 1 (a)"
    );
}

#[test]
fn dmesg_raw_and_decoded() {
    assert_eq!(
        p("<3>[  294.385120] Out of memory: Killed process 1 (a)"),
        (
            Some("294.385120"),
            Source::Kernel,
            "Out of memory: Killed process 1 (a)"
        )
    );
    // A user-facility priority is a program's line, whatever it says.
    assert_eq!(
        p("<14>[  5.000001] Out of memory: Killed process 1 (a) total-vm:1kB"),
        (
            Some("5.000001"),
            Source::Program(""),
            "Out of memory: Killed process 1 (a) total-vm:1kB"
        )
    );
    assert_eq!(
        p("kern  :err   : [  294.385120] Out of memory: Killed process 1 (a)"),
        (
            Some("294.385120"),
            Source::Kernel,
            "Out of memory: Killed process 1 (a)"
        )
    );
    assert_eq!(
        p("<3>Out of Memory: Killed process 1 (a).").2,
        "Out of Memory: Killed process 1 (a)."
    );
}

#[test]
fn dmesg_iso_has_no_host() {
    assert_eq!(
        p("2026-11-22T02:54:31,384649+00:00 oom (fix) 1:[2] invoked oom-killer: gfp_mask=0xcc0"),
        (
            Some("2026-11-22T02:54:31,384649+00:00"),
            Source::Kernel,
            "oom (fix) 1:[2] invoked oom-killer: gfp_mask=0xcc0"
        )
    );
}

#[test]
fn syslog_forms() {
    assert_eq!(
        p("Nov 18 10:12:13 web1 kernel: [12345.678901] Out of memory: Killed process 7 (a)"),
        (
            Some("Nov 18 10:12:13"),
            Source::Kernel,
            "Out of memory: Killed process 7 (a)"
        )
    );
    assert_eq!(
        p("Nov  8 10:12:13 web1 kernel: Out of memory: Killed process 7 (a)"),
        (
            Some("Nov  8 10:12:13"),
            Source::Kernel,
            "Out of memory: Killed process 7 (a)"
        )
    );
    assert_eq!(
        p("2024-11-18T10:12:13.123456+00:00 web1 systemd-oomd[612]: Killed /a.scope due to x"),
        (
            Some("2024-11-18T10:12:13.123456+00:00"),
            Source::Program("systemd-oomd"),
            "Killed /a.scope due to x"
        )
    );
    assert_eq!(
        p("Nov 18 10:12:13.123456 web1 earlyoom[45]: low memory! at or below SIGTERM limits"),
        (
            Some("Nov 18 10:12:13.123456"),
            Source::Program("earlyoom"),
            "low memory! at or below SIGTERM limits"
        )
    );
}

#[test]
fn syslog_without_host_in_other_languages_and_with_junk() {
    assert_eq!(
        p("Aug 19 00:32:04 kernel: [ 9610.328720] Killed process 1 (a)").1,
        Source::Kernel
    );
    assert_eq!(
        p("Aug 18 03:19:11 169 kernel: Killed process 7748 (python)").2,
        "Killed process 7748 (python)"
    );
    assert_eq!(
        p("   kernel: oom-kill:constraint=X").2,
        "oom-kill:constraint=X"
    );
    assert_eq!(
        p("19:50:59 kernel: Out of memory: x"),
        (Some("19:50:59"), Source::Kernel, "Out of memory: x")
    );
    assert_eq!(
        p("19:50:59 systemd: user@1000.service: A process").1,
        Source::Program("systemd")
    );
    assert_eq!(
        p("\u{0430}\u{043f}\u{0440} 28 01:23:30 PC kernel: Out of memory: x"),
        (
            Some("\u{0430}\u{043f}\u{0440} 28 01:23:30"),
            Source::Kernel,
            "Out of memory: x"
        )
    );
    assert_eq!(
        p("sep 03 10:26:07 HOSTNAME kernel: ThreadPoolForeg invoked oom-killer: x").2,
        "ThreadPoolForeg invoked oom-killer: x"
    );
    assert_eq!(
        p("2025-07-08T10:52:57.622+00:00 node-a0049803-0-1      !ERR | kernel: Out of memory: x"),
        (
            Some("2025-07-08T10:52:57.622+00:00"),
            Source::Kernel,
            "Out of memory: x"
        )
    );
    assert_eq!(
        p("Sat Jan 25 09:40:15 2020 kern.err kernel: [22042.602270] Killed process 1350 (udhcpc)"),
        (
            Some("Sat Jan 25 09:40:15 2020"),
            Source::Kernel,
            "Killed process 1350 (udhcpc)"
        )
    );
}

#[test]
fn any_prefix_before_a_known_start() {
    for (line, message) in [
        (
            "messages-20150510:May  9 23:40:38 localhost kernel: Killed process 1 (a)",
            "Killed process 1 (a)",
        ),
        (
            "> Apr 16 11:34:50 localhost kernel: Killed process 1 (a)",
            "Killed process 1 (a)",
        ),
        (
            "\tAug 25 18:21:35 test-a3-60-17 kernel: Killed process 1 (a)",
            "Killed process 1 (a)",
        ),
        (
            "  1 [57539.949044] Out of memory: Killed process 1 (a)",
            "Out of memory: Killed process 1 (a)",
        ),
        (
            "#Jan  4 11:27:20 testdbt kernel: Killed process 1 (a)",
            "Killed process 1 (a)",
        ),
        (
            "   * [41313.629018] java invoked oom-killer: gfp_mask=0xd0",
            "java invoked oom-killer: gfp_mask=0xd0",
        ),
        ("> > > [  804.3] Out of memory: x", "Out of memory: x"),
        (
            "fs).<3>Out of Memory: Killed process 2165 (mke2fs).",
            "Out of Memory: Killed process 2165 (mke2fs).",
        ),
        (
            "Out of Memory: Killed process 6598 (FvwmPager).",
            "Out of Memory: Killed process 6598 (FvwmPager).",
        ),
        ("> oom-killer: gfp_mask=0xd2", "oom-killer: gfp_mask=0xd2"),
        (
            "sh invoked oom-killer: gfp_mask=0xd0, order=0",
            "sh invoked oom-killer: gfp_mask=0xd0, order=0",
        ),
    ] {
        let t = parse_text_line(line);
        assert_eq!((t.message, t.kind), (message, LineKind::Record), "{line}");
    }
    // A prefix the reader does not know leaves the writer unknown.
    assert_eq!(p("> Killed process 1 (a) total-vm:1kB").1, Source::Unknown);
}

#[test]
fn journal_forms() {
    assert_eq!(
        p("2024-11-18T10:12:13+0000 web1 kernel: oom_reaper: reaped process 7 (a)"),
        (
            Some("2024-11-18T10:12:13+0000"),
            Source::Kernel,
            "oom_reaper: reaped process 7 (a)"
        )
    );
    assert_eq!(
        p("Mon 2024-11-18 10:12:13 UTC web1 kernel: Killed process 7 (a)"),
        (
            Some("Mon 2024-11-18 10:12:13 UTC"),
            Source::Kernel,
            "Killed process 7 (a)"
        )
    );
    assert_eq!(
        p("[  294.385120] web1 kernel: Killed process 7 (a)"),
        (Some("294.385120"), Source::Kernel, "Killed process 7 (a)")
    );
    assert_eq!(
        p("1731924733.123456 web1 kernel: Killed process 7 (a)"),
        (
            Some("1731924733.123456"),
            Source::Kernel,
            "Killed process 7 (a)"
        )
    );
    assert_eq!(
        p("    [   77.749670] systemd-oomd[659]: Marked /system.slice/x.service for killing"),
        (
            Some("77.749670"),
            Source::Program("systemd-oomd"),
            "Marked /system.slice/x.service for killing"
        )
    );
}

#[test]
fn kmsg_record_line() {
    assert_eq!(
        p("3,418,294385120,-;Memory cgroup out of memory: Killed process 6438 (x)\n"),
        (
            Some("294385120"),
            Source::Kernel,
            "Memory cgroup out of memory: Killed process 6438 (x)"
        )
    );
    assert_eq!(
        p("30,5,6,-;systemd-oomd[612]: Killed /a.scope due to x"),
        (
            Some("6"),
            Source::Program("systemd-oomd"),
            "Killed /a.scope due to x"
        )
    );
    assert_eq!(parse_text_line("6,1,2,-;x").kind, LineKind::KmsgRecord);
}

#[test]
fn dmesg_kernel_message_that_looks_like_a_tag_stays_kernel() {
    assert_eq!(
        p("[    1.0] usb 1-1: new high-speed USB device"),
        (
            Some("1.0"),
            Source::Kernel,
            "usb 1-1: new high-speed USB device"
        )
    );
    assert_eq!(
        p("[    1.0] in:imjournal invoked oom-killer: x").1,
        Source::Kernel
    );
    assert_eq!(
        p("[    1.0] systemd-oomd[612]: Killed /a due to b"),
        (
            Some("1.0"),
            Source::Program("systemd-oomd"),
            "Killed /a due to b"
        )
    );
}

#[test]
fn other_lines_stay_whole() {
    for line in [
        "",
        "-- Boot 0123abcd --",
        "[   6438]     0  6438 x",
        " (systemd-udevd) total-vm:1056800kB,",
        "anon-rss:13452kB, file-rss:0kB",
        "This log output means that your Ruby application",
    ] {
        let t = parse_text_line(line);
        assert_eq!(
            (t.kind, t.source, t.message),
            (LineKind::Other, Source::Unknown, line),
            "{line}"
        );
    }
    // The forged mount option stays inside its subsystem's message.
    let t = parse_text_line("Nov 18 10:12:13 h kernel: tmpfs: Unknown parameter 'Memory: Killed process 123 (mysqld) total-vm:1kB'");
    assert_eq!(
        t.message,
        "tmpfs: Unknown parameter 'Memory: Killed process 123 (mysqld) total-vm:1kB'"
    );
}

#[test]
fn glued_records_are_found_by_their_own_start() {
    let m = "Out of Memory: Killed process 148 (perl).<3>Out of Memory: Killed process 198 (perl).";
    assert_eq!(glued_record(m), m.find("<3>"));
    let m = "Task in /foo killed as a result of limit of /fooOct 14 10:22:40 localhost kernel: memory: usage 4kB";
    assert_eq!(glued_record(m), m.find("Oct 14"));
    let m = "Out of memory: kill process 15595 (apache2) score 76575 or a child [505756.811202] Killed process 15595";
    assert_eq!(glued_record(m), m.find("[505756"));
    for m in [
        "runc:[2:INIT] x",
        "[<ffffffff8168e288>] page_fault+0x28/0x30",
        "<TASK>",
        "a [1.2] b",
        "at 10:22:40 on Oct 14 x",
        // Its own header, one the line parser did not take (found by the fuzzer: a
        // start at 0 made the reader split off nothing, for ever).
        "Aug24 17:37:47 freecinc kernel: taskd invoked oom-killer:",
    ] {
        assert_eq!(glued_record(m), None, "{m}");
    }
}

#[test]
fn split_program_forms() {
    assert_eq!(split_program("earlyoom[45]: x"), Some(("earlyoom", "x")));
    assert_eq!(split_program("a b[1]: x"), None);
    assert_eq!(split_program("a[x]: y"), None);
    assert_eq!(split_program("a[1] y"), None);
}

#[test]
fn quote_marks() {
    assert_eq!(
        strip_quote_marks("> > > > total-vm:1kB"),
        ("total-vm:1kB", 1)
    );
    assert_eq!(
        strip_quote_marks("               pgfault 1"),
        ("pgfault 1", 15)
    );
    assert_eq!(strip_quote_marks(">  child Killed"), ("child Killed", 2));
}
