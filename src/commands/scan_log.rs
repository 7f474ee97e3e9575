//! `oomwatch scan [FILE...]`: the seeds' `dmesg -T | egrep -i 'killed process'`, done
//! right. Reads kernel log text in any form oomwatch parses (dmesg, dmesg -T, syslog,
//! journalctl, kmsg records; gzip-compressed files too; standard input when no file is
//! named), and prints each OOM kill once: kernel kills with the kernel's numbers, and
//! userspace kills (systemd-oomd, earlyoom, …) marked as such, and kernel panics on OOM
//! (`vm.panic_on_oom`: the whole host went down, nothing was killed). Exit 0 when kills or
//! panics were found, 1 when none, 2 when an input could not be read (even if another had
//! kills).
//!
//! This file owns reading the inputs and printing the rows (table cells with their
//! control characters escaped, `\x1b`, so a comm in a log cannot drive the terminal); the
//! parsing is `kmsg`'s (`reader` rejoins the text, `oom` assembles the reports). It
//! streams: each line is bounded, each row is printed as soon as its report ends, and
//! memory does not grow with the number of kills or the size of the log.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::ScanFormat;
use crate::kmsg::oom::{KernelKill, OomAssembler, OomEvent, OomPanic};
use crate::kmsg::reader::TextReader;
use crate::kmsg::userspace::UserspaceKill;
use crate::terminal_text::escape_controls;

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
            uid: k.uid,
            task_memcg: k.unit_or_cgroup,
            time: k.time,
            line: k.at,
            killer: Some(k.killer),
            ..Self::default()
        }
    }
}

/// Why reading one input stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The input could not be read (a truncated gzip file, say).
    #[error("{0}")]
    Read(std::io::Error),
    /// The output could not be written (a closed pipe).
    #[error("writing the rows: {0}")]
    Write(std::io::Error),
}

/// Finds the kills in one input, line by line (`line` is 1-based), and hands each row to
/// `sink` as soon as its report ends. Returns how many rows it handed on.
pub fn scan_stream(
    input: impl Read,
    sink: &mut impl FnMut(KillRow) -> std::io::Result<()>,
) -> Result<usize, ScanError> {
    let mut reader = BufReader::new(input);
    let mut rows = Rows {
        sink,
        count: 0,
        failed: None,
        text: TextReader::new(),
        assembler: OomAssembler::new(),
    };
    let mut buf = Vec::new();
    let mut number = 0u64;
    let read = loop {
        buf.clear();
        let n = match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        if n == 0 {
            break Ok(());
        }
        if buf.last() != Some(&b'\n') && n as u64 == MAX_LINE {
            if let Err(e) = skip_line(&mut reader) {
                break Err(e);
            }
        }
        number += 1;
        rows.line(&String::from_utf8_lossy(&buf), number);
        if rows.failed.is_some() {
            break Ok(());
        }
    };
    rows.finish();
    if let Some(e) = rows.failed {
        return Err(ScanError::Write(e));
    }
    read.map_err(ScanError::Read)?;
    Ok(rows.count)
}

/// The parsers of one input and where its rows go.
struct Rows<'s, S> {
    sink: &'s mut S,
    count: usize,
    failed: Option<std::io::Error>,
    text: TextReader,
    assembler: OomAssembler,
}

impl<S: FnMut(KillRow) -> std::io::Result<()>> Rows<'_, S> {
    fn line(&mut self, line: &str, number: u64) {
        let Rows {
            text, assembler, ..
        } = self;
        let mut events = Vec::new();
        text.push_line(line, number, &mut |m| {
            events.extend(assembler.push(m.source, m.text, m.at, m.time));
        });
        events.into_iter().for_each(|e| self.event(e));
    }

    fn finish(&mut self) {
        let Rows {
            text, assembler, ..
        } = self;
        let mut events = Vec::new();
        text.finish(&mut |m| events.extend(assembler.push(m.source, m.text, m.at, m.time)));
        events.extend(assembler.finish());
        events.into_iter().for_each(|e| self.event(e));
    }

    fn event(&mut self, event: OomEvent) {
        let row = match event {
            OomEvent::Kill(kill) => KillRow::kernel(kill),
            OomEvent::Userspace(kill) => KillRow::userspace(kill),
            OomEvent::Panic(panic) => KillRow::panic(panic),
            _ => return,
        };
        self.count += 1;
        if self.failed.is_none() {
            self.failed = (self.sink)(row).err();
        }
    }
}

/// Every row of one input, collected (for callers that want them all; `run` streams).
/// A read error ends the input but keeps the kills found before it.
pub fn kills_in(input: impl Read) -> (Vec<KillRow>, Option<std::io::Error>) {
    let mut rows = Vec::new();
    let error = match scan_stream(input, &mut |row| {
        rows.push(row);
        Ok(())
    }) {
        Ok(_) => None,
        Err(ScanError::Read(e) | ScanError::Write(e)) => Some(e),
    };
    (rows, error)
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
        let named = files.len() > 1;
        let scanned = match open(input) {
            Ok(reader) => scan_one(reader, &mut out, format, &name, named),
            Err(e) => Err(ScanError::Read(e)),
        };
        match scanned {
            Ok(rows) => found += rows,
            Err(ScanError::Read(e)) => {
                eprintln!("oomwatch scan: {name}: {e} (kills found before it are shown)");
                failed = true;
            }
            // A closed pipe (`| head`): stop quietly.
            Err(ScanError::Write(_)) => return if found > 0 { 0 } else { 1 },
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

/// Scans one input, printing each row as it is found; `Ok` holds the number of rows.
/// A read error still prints what came before it (and, for a table, the no-kills note).
fn scan_one(
    reader: impl Read,
    out: &mut impl Write,
    format: ScanFormat,
    name: &str,
    named: bool,
) -> Result<usize, ScanError> {
    if named && format == ScanFormat::Table {
        writeln!(out, "== {}", escape_controls(name)).map_err(ScanError::Write)?;
    }
    let mut header = false;
    let result = scan_stream(reader, &mut |row| match format {
        ScanFormat::Json => {
            let json = serde_json::to_string(&row).map_err(std::io::Error::other)?;
            writeln!(out, "{json}")
        }
        ScanFormat::Table => {
            if !header {
                write_header(out)?;
                header = true;
            }
            write_row(out, &row)
        }
    });
    let rows_seen = match &result {
        Ok(n) => *n,
        Err(_) => usize::from(header),
    };
    if format == ScanFormat::Table && rows_seen == 0 && !matches!(result, Err(ScanError::Write(_)))
    {
        writeln!(out, "no OOM kills or OOM panics found").map_err(ScanError::Write)?;
    }
    result
}

fn write_header(out: &mut impl Write) -> std::io::Result<()> {
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
    )
}

fn write_row(out: &mut impl Write, row: &KillRow) -> std::io::Result<()> {
    let mib = |kb: Option<u64>| {
        kb.map_or_else(|| "-".to_owned(), |kb| format!("{:.1}", kb as f64 / 1024.0))
    };
    // Words of the log: control characters escaped, so a comm cannot drive the terminal.
    let dash =
        |v: Option<&String>| v.map_or_else(|| "-".to_owned(), |v| escape_controls(v).into_owned());
    let kind = match (row.kind, row.global) {
        ("userspace", _) => "user",
        ("panic", _) => "PANIC",
        (_, Some(true)) => "global",
        (_, Some(false)) => "memcg",
        _ => "kernel",
    };
    let killed_by = match (&row.killer, &row.panic) {
        (Some(killer), _) => escape_controls(killer).into_owned(),
        (None, Some(reason)) => format!("kernel panic: {}", escape_controls(reason)),
        (None, None) => "kernel OOM killer".to_owned(),
    };
    writeln!(
        out,
        "{:<6} {:<32} {:>8} {:<16} {:<8} {:>9} {:>9} {:>6} {:<16} {:<24} {}",
        row.line,
        dash(row.time.as_ref()),
        row.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
        dash(row.comm.as_ref()),
        kind,
        mib(row.anon_rss_kb),
        mib(row.file_rss_kb),
        row.oom_score_adj
            .map_or_else(|| "-".to_owned(), |a| a.to_string()),
        dash(row.invoker.as_ref()),
        killed_by,
        dash(row.task_memcg.as_ref().or(row.memcg.as_ref())),
    )
}
