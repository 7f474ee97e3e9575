//! The fixed beginnings of the kernel's OOM messages and the small readers every form
//! shares: the `<message>:` strings, a form's start, a comm in parentheses, numbers.
//!
//! This file owns those pieces so that `kernel_lines.rs` (the forms) and `kill_line.rs`
//! (the kill line) agree on them. It must not classify a whole message, keep state or
//! allocate. The forms and versions are in docs/kernel-log.md.

/// Longest command name a form may carry: the kernel's is 15 bytes, up to 60 when a
/// log writer escaped it as `\xHH`; lossy UTF-8 of a raw record can make 45.
pub(super) const COMM_WINDOW: usize = 64;
/// The kernel's own comm length (`TASK_COMM_LEN` - 1).
pub(super) const TASK_COMM: usize = 15;

/// The `<message>` strings the kernel puts before `: Killed process` / `: Kill process`
/// (the `message` argument of `oom_kill_process` and the hard-coded 2.4-2.6 spellings).
pub(super) const KILL_MESSAGES: [(&str, bool); 6] = [
    ("Out of memory", false),
    ("Out of Memory", false),
    ("Memory cgroup out of memory", true),
    ("Out of memory (oom_kill_allocating_task)", false),
    ("No available memory (MPOL_BIND)", false),
    ("No available memory in cpuset", false),
];

/// Starts of every form, used to find where a glued second form begins and whether a
/// broken message could still become a form.
pub(super) const ANCHORS: [&str; 16] = [
    "Out of memory",
    "Out of Memory",
    "Memory cgroup out of memory",
    "Memory cgroup stats for ",
    "Memory limit reached of cgroup ",
    "No available memory",
    "Killed process ",
    "Kill process ",
    "oom-kill:constraint=",
    "oom-killer: gfp_mask=",
    "oom_reaper: reaped process ",
    "Task in ",
    "Tasks in ",
    "Kernel panic - not syncing: ",
    "Mem-Info:",
    ",global_oom",
];

/// `(memcg?, rest)` after one of the kernel's `<message>: ` strings at the start.
pub(super) fn after_message(msg: &str) -> Option<(Option<bool>, &str)> {
    KILL_MESSAGES.iter().find_map(|&(m, memcg)| {
        let rest = msg.strip_prefix(m)?.strip_prefix(": ")?;
        Some((Some(memcg), rest))
    })
}

/// Whether `s` starts with one of the forms' fixed beginnings.
pub fn starts_form(s: &str) -> bool {
    match s.as_bytes().first() {
        Some(b'O' | b'M' | b'K' | b'N' | b'o' | b'T' | b',') => {
            ANCHORS.iter().any(|a| s.starts_with(a))
        }
        _ => false,
    }
}

/// A form begun but not finished: a prefix of a fixed beginning, or a fixed beginning
/// whose rest did not parse.
pub(super) fn is_form_start(msg: &str) -> bool {
    if !matches!(
        msg.as_bytes().first(),
        Some(b'O' | b'M' | b'K' | b'N' | b'o' | b'T' | b',')
    ) {
        return false;
    }
    ANCHORS
        .iter()
        .chain(KILL_MESSAGES.iter().map(|(m, _)| m))
        .any(|a| a.starts_with(msg) || msg.starts_with(a))
}

/// One or more whitespace characters removed (a rejoined line may put a newline there).
pub(super) fn strip_space(s: &str) -> Option<&str> {
    let t = s.trim_start();
    (t.len() < s.len()).then_some(t)
}

/// `(comm)` whose closing parenthesis is the last `)` that `ok_after` accepts within the
/// kernel's 15 bytes of comm, or, when there is none, within [`COMM_WINDOW`] bytes (a comm
/// a log writer escaped): a comm may itself hold `(`, `)`, spaces, colons and commas. The
/// 2.2 form `(a), saved process N (b).` ends at its first `), saved process `.
pub(super) fn split_comm(s: &str, ok_after: impl Fn(&str) -> bool) -> Option<(&str, &str)> {
    let window = |max: usize| {
        let mut end = s.len().min(max + 1);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        end
    };
    if let Some(i) = s[..window(COMM_WINDOW)].find("), saved process ") {
        return Some((&s[..i], &s[i + 1..]));
    }
    [TASK_COMM, COMM_WINDOW].iter().find_map(|&max| {
        let mut end = window(max);
        while let Some(i) = s[..end].rfind(')') {
            let after = &s[i + 1..];
            if ok_after(after) {
                return Some((&s[..i], after));
            }
            end = i;
        }
        None
    })
}

pub(super) fn digits_prefix(s: &str) -> Option<&str> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    (n > 0).then(|| &s[..n])
}

pub(super) fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

pub(super) fn signed_digits(s: &str) -> bool {
    all_digits(s.strip_prefix('-').unwrap_or(s))
}

pub(super) fn leading_u32(s: &str) -> Option<(u32, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || n > 10 {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}
