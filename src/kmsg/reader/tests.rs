//! Broken lines rejoined, glued records split, one message per record.

use super::*;

fn read(lines: &[&str]) -> Vec<(Source<'static>, String)> {
    let mut r = TextReader::new();
    let mut out = Vec::new();
    let mut take = |m: Message<'_>| {
        let source = match m.source {
            Source::Kernel => Source::Kernel,
            Source::Unknown => Source::Unknown,
            Source::Program(_) => Source::Program("program"),
        };
        out.push((source, m.text.to_owned()));
    };
    for (i, l) in lines.iter().enumerate() {
        r.push_line(l, i as u64 + 1, &mut take);
    }
    r.finish(&mut take);
    out
}

fn texts(lines: &[&str]) -> Vec<String> {
    read(lines).into_iter().map(|(_, t)| t).collect()
}

#[test]
fn a_kill_line_broken_by_a_mail_client_is_one_message() {
    assert_eq!(
        texts(&[
            ">>> [  244.946537][ T3106] Out of memory: Killed process 4526 (dhclient)",
            ">>> total-vm:20464kB, anon-rss:1112kB, file-rss:0kB, shmem-rss:0kB, UID:0",
            ">>> pgtables:76kB oom_score_adj:0",
            ">>> [  244.953740][ T9068] syz-executor.0 invoked oom-killer:",
        ]),
        [
            "Out of memory: Killed process 4526 (dhclient) total-vm:20464kB, anon-rss:1112kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:76kB oom_score_adj:0",
            "syz-executor.0 invoked oom-killer:",
        ]
    );
}

#[test]
fn a_wrap_inside_a_word_or_number_rejoins_without_a_space() {
    assert_eq!(
        texts(&[
            "[115879.769795] Killed process 1917 (php-cgi) vsz:467184kB, anon-",
            "rss:101196kB, file-rss:204kB"
        ]),
        ["Killed process 1917 (php-cgi) vsz:467184kB, anon-rss:101196kB, file-rss:204kB"]
    );
    let padded = format!(
        "[2059991.491542] Out of memory: Killed process 25315 (python3) total-vm:53312244{}kB, anon-rss:1kB, UID:0 pgtables:690{}68kB oom_score_adj:0",
        " ".repeat(117),
        " ".repeat(117)
    );
    assert_eq!(
        texts(&[&padded]),
        ["Out of memory: Killed process 25315 (python3) total-vm:53312244kB, anon-rss:1kB, UID:0 pgtables:69068kB oom_score_adj:0"]
    );
    assert_eq!(
        texts(&[
            "[180042.118480] oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/kubepods/burstable/podfbdfe8e3-1c87-4ff2-907",
            "c-b2ec8e25d012,task_memcg=/kubepods/x,task=manager,pid=966,uid=0",
        ]),
        ["oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/kubepods/burstable/podfbdfe8e3-1c87-4ff2-907c-b2ec8e25d012,task_memcg=/kubepods/x,task=manager,pid=966,uid=0"]
    );
}

#[test]
fn backslash_arrow_and_dmesg_continuations() {
    assert_eq!(
        texts(&[
            "Apr 15 23:04:52 localhost kernel: oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),\\",
            "    cpuset=x.scope,mems_allowed=0,\\",
            "    task=tail,pid=51947,uid=0",
        ]),
        ["oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=x.scope,mems_allowed=0,task=tail,pid=51947,uid=0"]
    );
    assert_eq!(
        texts(&[
            "Oct 14 10:22:40 localhost kernel: Task in /foo killed as",
            " \u{21aa}a result of limit of /foo"
        ]),
        ["Task in /foo killed as a result of limit of /foo"]
    );
    // dmesg prints a comm holding a newline on an indented continuation line.
    assert_eq!(
        texts(&[
            "[   12.300000] Out of memory: Killed process 5 (foo",
            "               bar) total-vm:1kB, anon-rss:1kB"
        ]),
        ["Out of memory: Killed process 5 (foo\nbar) total-vm:1kB, anon-rss:1kB"]
    );
}

#[test]
fn glued_records_and_forms_are_split() {
    assert_eq!(
        texts(&["Nov  2 06:07:33 tunes kernel: Out of Memory: Killed process 148 (perl).<3>Out of Memory: Killed process 198 (perl).kernel BUG at swap_state.c:60!"]),
        ["Out of Memory: Killed process 148 (perl).", "Out of Memory: Killed process 198 (perl).kernel BUG at swap_state.c:60!"]
    );
    assert_eq!(
        texts(&[
            "> Memory cgroup out of memory: kill process 9139 (memcg_test_1) score 3 or a",
            ">  child Killed process 9139 (memcg_test_1) vsz:3456kB, anon-rss:448kB,",
            ">  file-rss:1088kB Memory cgroup out of memory: kill process 9140",
            ">  (memcg_test_1) score 3 or a child Killed process 9140 (memcg_test_1)",
            ">  vsz:3456kB, anon-rss:448kB, file-rss:1088kB Unable to handle kernel paging",
            ">  request for data at address 0x720072007200720",
        ]),
        [
            "Memory cgroup out of memory: kill process 9139 (memcg_test_1) score 3 or a child",
            "Killed process 9139 (memcg_test_1) vsz:3456kB, anon-rss:448kB, file-rss:1088kB",
            "Memory cgroup out of memory: kill process 9140 (memcg_test_1) score 3 or a child",
            "Killed process 9140 (memcg_test_1) vsz:3456kB, anon-rss:448kB, file-rss:1088kB Unable to handle kernel paging",
            ">  request for data at address 0x720072007200720",
        ]
    );
}

#[test]
fn unrelated_lines_pass_through_and_end_the_held_record() {
    let got = read(&[
        "[ 1.000000] Out of memory: Killed process 1 (a) total-vm:1kB",
        "",
        "prose",
        "Nov 18 10:12:13 h earlyoom[4]: sending SIGTERM to process 9",
    ]);
    assert_eq!(
        got,
        [
            (
                Source::Kernel,
                "Out of memory: Killed process 1 (a) total-vm:1kB".to_owned()
            ),
            (Source::Unknown, String::new()),
            (Source::Unknown, "prose".to_owned()),
            (
                Source::Program("program"),
                "sending SIGTERM to process 9".to_owned()
            ),
        ]
    );
}

#[test]
fn html_edges_are_not_text() {
    assert_eq!(
        texts(&["<pre><code>Out of memory: Kill process 23636 (osm2pgsql) score 953 or sacrifice child  ", "Killed process 23636 (osm2pgsql) total-vm:75687764kB, anon-rss:60639884kB, file-rss:0kB</code></pre>"]),
        [
            "Out of memory: Kill process 23636 (osm2pgsql) score 953 or sacrifice child",
            "Killed process 23636 (osm2pgsql) total-vm:75687764kB, anon-rss:60639884kB, file-rss:0kB",
        ]
    );
}

#[test]
fn the_held_record_is_bounded() {
    let mut r = TextReader::new();
    let mut n = 0;
    r.push_line(
        "[ 1.000000] Out of memory: Killed process 1 (a) total-vm:1kB,",
        1,
        &mut |_| n += 1,
    );
    for i in 0..10_000 {
        r.push_line("anon-rss:1kB,", i + 2, &mut |_| n += 1);
    }
    assert!(r.heap_bytes() <= 2 * MAX_RECORD, "{}", r.heap_bytes());
    assert!(n > 9_000, "later lines are not rejoined: {n}");
}

/// Found by the fuzzer: a syslog header the line parser does not take (`Aug24`, no
/// space) was found again as a glued record at 0, and the reader split off nothing for
/// ever. The line is read once and ends: the header, then the record after its stamp.
#[test]
fn a_header_the_parser_did_not_take_is_not_split_off_again() {
    let out = texts(&[
        "Aug24 17:37:47 freecinc kernel: [2438755.000881] taskd invoked oom-killer: gfp_mask=0x201da, order=0, oom_score_adj=0",
    ]);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[1].starts_with("taskd invoked oom-killer"), "{out:?}");
}
