//! `oomwatch scan [FILE...]`: the seeds' `dmesg -T | egrep -i 'killed process'`, done
//! right. Reads kernel log text in any form oomwatch parses (dmesg, dmesg -T, syslog,
//! journalctl, kmsg records; gzip-compressed files too; standard input when no file is
//! named), and prints each OOM kill once: kernel kills with the kernel's numbers, and
//! userspace kills (systemd-oomd, earlyoom, …) marked as such, and kernel panics on OOM
//! (`vm.panic_on_oom`: the whole host went down, nothing was killed). Exit 0 when kills or
//! panics were found, 1 when none, 2 when an input could not be read (even if another had
//! kills). Reads line by line, each line bounded: memory grows with the kills found in one
//! input, not with the size of the log.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::ScanFormat;
use crate::kmsg::oom::{KernelKill, OomAssembler, OomEvent, OomPanic};
use crate::kmsg::text::parse_text_line;
use crate::kmsg::userspace::UserspaceKill;

/// Longest line read whole; longer lines are cut (no kernel line comes near it).
const MAX_LINE: u64 = 64 * 1024;

/// One kill as `--format json` prints it; unknown values are null.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct KillRow {
    pub kind: &'static str,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub uid: Option<u32>,
    pub constraint: Option<String>,
    pub global: Option<bool>,
    pub memcg: Option<String>,
    pub task_memcg: Option<String>,
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
    pub oom_score_adj: Option<i32>,
    pub invoker: Option<String>,
    pub time: Option<String>,
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killer: Option<String>,
    /// For `kind: "panic"`: the kernel's panic message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panic: Option<String>,
}

impl KillRow {
    fn kernel(k: KernelKill) -> Self {
        Self {
            kind: "kernel",
            pid: Some(k.pid),
            comm: Some(k.comm),
            uid: k.uid,
            constraint: k.constraint,
            global: k.global,
            memcg: k.memcg,
            task_memcg: k.task_memcg,
            total_vm_kb: k.total_vm_kb,
            anon_rss_kb: k.anon_rss_kb,
            file_rss_kb: k.file_rss_kb,
            shmem_rss_kb: k.shmem_rss_kb,
            pgtables_kb: k.pgtables_kb,
            oom_score_adj: k.oom_score_adj,
            invoker: k.invoker,
            time: k.time,
            line: k.at,
            ..Self::default()
        }
    }

    /// The kernel panicked on an OOM (`vm.panic_on_oom`, or nothing left to kill): no
    /// process was killed, the whole host went down.
    fn panic(p: OomPanic) -> Self {
        Self {
            kind: "panic",
            time: p.time,
            line: p.at,
            panic: Some(p.reason),
            ..Self::default()
        }
    }

    fn userspace(k: UserspaceKill) -> Self {
        Self {
            kind: "userspace",
            pid: k.pid,
            comm: k.comm,
            task_memcg: k.unit_or_cgroup,
            time: k.time,
            line: k.at,
            killer: Some(k.killer),
            ..Self::default()
        }
    }
}

/// Finds the kills in one input, line by line (`line` is 1-based). A read error (a
/// truncated gzip file, say) ends the input but keeps the kills found before it.
pub fn kills_in(input: impl Read) -> (Vec<KillRow>, Option<std::io::Error>) {
    let mut rows = Vec::new();
    let error = scan_into(input, &mut rows).err();
    (rows, error)
}

fn scan_into(input: impl Read, rows: &mut Vec<KillRow>) -> std::io::Result<()> {
    let mut reader = BufReader::new(input);
    let mut assembler = OomAssembler::new();
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        let read = (&mut reader).take(MAX_LINE).read_until(b'\n', &mut buf)?;
        if read == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') && read as u64 == MAX_LINE {
            skip_line(&mut reader)?;
        }
        number += 1;
        let text = String::from_utf8_lossy(&buf);
        let line = parse_text_line(text.trim_end_matches(['\n', '\r']));
        match assembler.push(line.source, line.message, number, line.time) {
            Some(OomEvent::Kill(kill)) => rows.push(KillRow::kernel(kill)),
            Some(OomEvent::Userspace(kill)) => rows.push(KillRow::userspace(kill)),
            Some(OomEvent::Panic(panic)) => rows.push(KillRow::panic(panic)),
            _ => {}
        }
    }
    Ok(())
}

/// Skips to the end of the current line without holding it (a file with no newline at
/// all, such as a sparse binary, must not be read into memory).
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

/// Opens a file or standard input, decompressing gzip (by its magic bytes).
fn open(path: Option<&Path>) -> std::io::Result<Box<dyn Read>> {
    let raw: Box<dyn Read> = match path {
        Some(path) => Box::new(std::fs::File::open(path)?),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut buffered = BufReader::new(raw);
    let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    })
}

/// Runs `oomwatch scan`; returns the exit code.
pub fn run(files: &[PathBuf], format: ScanFormat) -> u8 {
    let inputs: Vec<Option<&Path>> = if files.is_empty() {
        vec![None]
    } else {
        files.iter().map(|f| Some(f.as_path())).collect()
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut found = 0usize;
    let mut failed = false;
    for input in inputs {
        let name = input.map_or_else(|| "<stdin>".to_owned(), |p| p.display().to_string());
        let (rows, error) = match open(input) {
            Ok(reader) => kills_in(reader),
            Err(e) => (Vec::new(), Some(e)),
        };
        if let Some(e) = error {
            eprintln!("oomwatch scan: {name}: {e} (kills found before it are shown)");
            failed = true;
        }
        found += rows.len();
        let written = match format {
            ScanFormat::Json => rows.iter().try_for_each(|row| {
                let json = serde_json::to_string(row).map_err(std::io::Error::other)?;
                writeln!(out, "{json}")
            }),
            ScanFormat::Table => write_table(&mut out, &name, files.len() > 1, &rows),
        };
        if written.is_err() {
            // A closed pipe (`| head`): stop quietly.
            return if found > 0 { 0 } else { 1 };
        }
    }
    if failed {
        2
    } else if found > 0 {
        0
    } else {
        1
    }
}

fn write_table(
    out: &mut impl Write,
    name: &str,
    named: bool,
    rows: &[KillRow],
) -> std::io::Result<()> {
    if named {
        writeln!(out, "== {name}")?;
    }
    if rows.is_empty() {
        return writeln!(out, "no OOM kills or OOM panics found");
    }
    let mib = |kb: Option<u64>| {
        kb.map_or_else(|| "-".to_owned(), |kb| format!("{:.1}", kb as f64 / 1024.0))
    };
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    writeln!(
        out,
        "{:<6} {:<32} {:>8} {:<16} {:<8} {:>9} {:>9} {:>6} {:<16} {:<24} CGROUP",
        "LINE",
        "TIME",
        "PID",
        "COMM",
        "KIND",
        "ANON_MiB",
        "FILE_MiB",
        "ADJ",
        "INVOKER",
        "KILLED_BY"
    )?;
    for row in rows {
        let kind = match (row.kind, row.global) {
            ("userspace", _) => "user",
            ("panic", _) => "PANIC",
            (_, Some(true)) => "global",
            (_, Some(false)) => "memcg",
            _ => "kernel",
        };
        let killed_by = match (&row.killer, &row.panic) {
            (Some(killer), _) => killer.clone(),
            (None, Some(reason)) => format!("kernel panic: {reason}"),
            (None, None) => "kernel OOM killer".to_owned(),
        };
        writeln!(
            out,
            "{:<6} {:<32} {:>8} {:<16} {:<8} {:>9} {:>9} {:>6} {:<16} {:<24} {}",
            row.line,
            dash(row.time.clone()),
            row.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            dash(row.comm.clone()),
            kind,
            mib(row.anon_rss_kb),
            mib(row.file_rss_kb),
            row.oom_score_adj
                .map_or_else(|| "-".to_owned(), |a| a.to_string()),
            dash(row.invoker.clone()),
            killed_by,
            dash(row.task_memcg.clone().or_else(|| row.memcg.clone())),
        )?;
    }
    Ok(())
}
