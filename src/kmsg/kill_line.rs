//! The kill line, `[<msg>: ]Killed process N (comm) <fields>`, in every form from 2.2 to
//! 6.x and the vendor forms (RHEL's `, UID U,`, Android's `oom_score_adj=`): the victim's
//! pid, comm, uid and memory at its death.
//!
//! This file owns reading that one line and measuring how completely its fields read
//! (for rejoining a broken line). It must not look for the line anywhere but at the start
//! of the message, keep state or allocate. Forms and versions: docs/kernel-log.md.

use super::anchors::{
    after_message, all_digits, leading_u32, signed_digits, split_comm, starts_form, strip_space,
};

/// Fields of a `Killed process` line. Memory values are kB as printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Killed<'a> {
    /// Whether the `<msg>:` before `Killed process` names a memcg OOM (`Memory cgroup out
    /// of memory`) or not (`Out of memory...`); `None` when there is no prefix.
    pub memcg_prefix: Option<bool>,
    pub pid: u32,
    pub comm: &'a str,
    pub uid: Option<u32>,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
    pub oom_score_adj: Option<i32>,
}

/// All forms of the kill line (details and versions in docs/kernel-log.md):
/// `[<msg>: ]Killed process N (comm)` followed by `vsz:`/`total-vm:` fields, by `.`
/// (2.4-2.6.2x), by `, saved process N (comm).` (2.2), or the RHEL forms `Killed process
/// N, UID U, (comm) ...` and `Killed process N (comm), UID U, ...`.
pub fn parse_killed(msg: &str) -> Option<Killed<'_>> {
    let (memcg_prefix, rest) = match msg.strip_prefix("Killed process ") {
        Some(rest) => (None, rest),
        None => {
            let (memcg, rest) = after_message(msg)?;
            (memcg, rest.strip_prefix("Killed process ")?)
        }
    };
    let (pid, rest) = leading_u32(rest)?;
    let mut uid = None;
    let rest = if let Some(r) = rest.strip_prefix(", UID ") {
        let (u, r) = leading_u32(r)?;
        uid = Some(u);
        r.strip_prefix(", (")?
    } else {
        strip_space(rest)?.strip_prefix('(')?
    };
    let (comm, tail) = split_comm(rest, kill_tail_ok)?;
    let mut k = Killed {
        memcg_prefix,
        pid,
        comm,
        uid,
        ..Killed::default()
    };
    scan_kill_fields(tail, Some(&mut k));
    Some(k)
}

/// What may follow the `)` that ends a victim's comm in a kill line.
fn kill_tail_ok(after: &str) -> bool {
    if after.is_empty() || after.starts_with('.') || after.starts_with(',') {
        return true;
    }
    let t = after.trim_start();
    t.len() < after.len()
        && (t.is_empty()
            || t.starts_with("total-vm")
            || t.starts_with("vsz")
            || t.starts_with("anon-rss")
            || starts_form(t))
}

/// What the fields after a kill line's comm add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldScan {
    /// Fields read (`total-vm:1kB`, `UID 5`, `oom_score_adj:0`, ...).
    pub fields: i32,
    /// Tokens between the first and the last field that are not fields (a value without
    /// its `kB`, a number broken by a wrap, an elision).
    pub strays: i32,
    /// Byte offset in the tail just after the last field read.
    pub end: usize,
    /// Byte offset in the tail where a second form glued to this one starts.
    pub glued: Option<usize>,
}

/// Reads a kill line's fields into `k` (when given). Tokens are separated by commas and
/// whitespace; a kB field counts only with its `kB` (a value cut before its unit is not
/// known); reading stops where another form starts.
fn scan_kill_fields(tail: &str, mut k: Option<&mut Killed<'_>>) -> FieldScan {
    let mut scan = FieldScan::default();
    let mut pending_strays = 0;
    let mut expect_uid = false;
    for (at, tok) in tokens(tail) {
        if starts_form(&tail[at..]) {
            scan.glued = Some(at);
            break;
        }
        let known = if expect_uid {
            expect_uid = false;
            let uid = all_digits(tok).then(|| tok.parse::<u32>().ok()).flatten();
            set(&mut k, |k| k.uid = k.uid.or(uid));
            uid.is_some()
        } else if tok == "UID" {
            expect_uid = true;
            continue;
        } else {
            kill_field(tok, &mut k)
        };
        if known {
            scan.fields += 1;
            scan.strays += pending_strays;
            pending_strays = 0;
            scan.end = at + tok.len();
        } else if !matches!(tok, "." | "saved" | "process") {
            pending_strays += 1;
        }
    }
    scan
}

fn set(k: &mut Option<&mut Killed<'_>>, f: impl FnOnce(&mut Killed<'_>)) {
    if let Some(k) = k.as_deref_mut() {
        f(k);
    }
}

/// One `key:value` token of a kill line; true when it is a field.
fn kill_field(tok: &str, k: &mut Option<&mut Killed<'_>>) -> bool {
    let Some((key, value)) = tok.split_once(':').or_else(|| tok.split_once('=')) else {
        return false;
    };
    let kb = || {
        value
            .strip_suffix("kB")
            .filter(|v| all_digits(v))
            .and_then(|v| v.parse::<u64>().ok())
    };
    match key {
        "total-vm" | "vsz" => kb().map(|v| set(k, |k| k.total_vm_kb = Some(v))),
        "anon-rss" => kb().map(|v| set(k, |k| k.anon_rss_kb = Some(v))),
        "file-rss" => kb().map(|v| set(k, |k| k.file_rss_kb = Some(v))),
        "shmem-rss" => kb().map(|v| set(k, |k| k.shmem_rss_kb = Some(v))),
        "pgtables" => kb().map(|v| set(k, |k| k.pgtables_kb = Some(v))),
        "UID" => all_digits(value)
            .then(|| value.parse::<u32>().ok())
            .flatten()
            .map(|v| set(k, |k| k.uid = Some(v))),
        "oom_score_adj" => signed_digits(value)
            .then(|| value.parse::<i32>().ok())
            .flatten()
            .map(|v| set(k, |k| k.oom_score_adj = Some(v))),
        _ => None,
    }
    .is_some()
}

/// `(byte offset, token)` of `s` split on commas and whitespace.
fn tokens(s: &str) -> impl Iterator<Item = (usize, &str)> {
    s.split([',', ' ', '\t', '\n'])
        .scan(0usize, |pos, tok| {
            let at = *pos;
            *pos += tok.len() + 1;
            Some((at, tok))
        })
        .filter(|(_, tok)| !tok.is_empty())
}

/// The fields of a kill line's tail (what follows its comm).
pub(super) fn kill_tail_scan(tail: &str) -> FieldScan {
    scan_kill_fields(tail, None)
}

/// The fields of the kill line `msg` (which must parse as one).
pub(super) fn kill_scan(msg: &str) -> Option<FieldScan> {
    let tail = kill_tail(msg)?;
    Some(scan_kill_fields(tail, None))
}

/// The part of a kill line after its comm.
pub(super) fn kill_tail(msg: &str) -> Option<&str> {
    let k = parse_killed(msg)?;
    let start = k.comm.as_ptr() as usize - msg.as_ptr() as usize + k.comm.len() + 1;
    msg.get(start..)
}
