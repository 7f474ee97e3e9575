//! Kernel-log text as people paste it, turned back into one message per record: lines
//! broken by mail clients, terminals, typesetting or authors are rejoined, records glued
//! onto one line are split, and the padding of terminal copies is read as the line
//! break it was. The rules, and the corpus excerpts behind each, are in
//! docs/kernel-log.md ("Broken and glued text").
//!
//! This file owns that rejoining for `oomwatch scan`: it holds at most one record back
//! (a kernel form that the next line may continue), bounded by [`MAX_RECORD`], and
//! hands every message on in order. It must not interpret a message beyond asking
//! `kernel_lines` how completely it reads as a kernel form, must not do I/O, and is not
//! used for `/dev/kmsg` records (a record there is never broken or glued).

use std::borrow::Cow;

use super::bounds::{bounded, MAX_TIME};
use super::kernel_lines::{form_quality, glued_at};
use super::text::{glued_record, parse_text_line, strip_quote_marks, LineKind, Source, TextLine};

/// Longest record held back for rejoining; a join that would pass it is refused. A
/// kernel record holds at most about 1 KiB of text (`LOG_LINE_MAX`), quoted or escaped
/// perhaps four times that.
pub const MAX_RECORD: usize = 4 * 1024;
/// Most lines one record is rejoined from (a wrapped kill line takes two to four).
const MAX_JOINS: u32 = 32;
/// A run of this many spaces inside a line is where a terminal copy padded a line
/// (or pasted two lines together): it is read as a line break.
const PADDING_RUN: usize = 16;
/// A continuation indented at least this much is a `dmesg`/`journalctl` continuation
/// line: the record itself held a newline there.
const RECORD_INDENT: usize = 8;

/// One message for the assembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub source: Source<'a>,
    pub time: Option<&'a str>,
    pub text: &'a str,
    /// The 1-based line the record started on.
    pub at: u64,
}

/// Rejoins and splits text lines into messages. See the module documentation.
#[derive(Debug, Default)]
pub struct TextReader {
    /// A kernel form is held back for the next line to continue.
    pending: bool,
    text: String,
    time: Option<String>,
    /// The held record's writer: the kernel (a stamp or tag said so) or unknown.
    kernel: bool,
    at: u64,
    quality: i32,
    /// Lines rejoined onto the held record.
    joins: u32,
}

impl TextReader {
    /// A reader holding nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held on the heap (at most about [`MAX_RECORD`] and a time).
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.time.as_ref().map_or(0, String::capacity)
    }

    /// Takes one physical line (`at` is its 1-based number) and hands `emit` every
    /// message it completes.
    pub fn push_line<F: FnMut(Message<'_>)>(&mut self, line: &str, at: u64, emit: &mut F) {
        let cleaned = clean(line);
        let mut first = true;
        for piece in pieces(&cleaned) {
            self.piece(piece, first, at, emit);
            first = false;
        }
    }

    /// The end of the input: the held record is complete.
    pub fn finish<F: FnMut(Message<'_>)>(&mut self, emit: &mut F) {
        self.flush(emit);
    }

    fn piece<F: FnMut(Message<'_>)>(&mut self, piece: &str, first: bool, at: u64, emit: &mut F) {
        let t = parse_text_line(piece);
        match t.kind {
            LineKind::KmsgRecord | LineKind::Record => {
                self.flush(emit);
                self.record(t, at, emit);
            }
            LineKind::Other => {
                let (cont, indent) = strip_quote_marks(piece);
                let indent = if first { indent } else { 0 };
                if !self.join(cont, indent, emit) {
                    self.flush(emit);
                    emit(Message {
                        source: Source::Unknown,
                        time: None,
                        text: piece,
                        at,
                    });
                }
            }
        }
    }

    /// A line that starts a record: records glued after it are split off (not in kmsg
    /// record lines), and a kernel form is held for the next line.
    fn record<F: FnMut(Message<'_>)>(&mut self, first: TextLine<'_>, at: u64, emit: &mut F) {
        let mut t = first;
        while t.kind != LineKind::KmsgRecord {
            // Each cut must move on (a cut at 0 would split off nothing, for ever).
            let Some(cut) = glued_record(t.message).filter(|&cut| cut > 0) else {
                break;
            };
            emit_forms(t.source, t.time, &t.message[..cut], at, emit);
            let next = parse_text_line(&t.message[cut..]);
            if next.kind == LineKind::Other {
                return emit_forms(Source::Unknown, None, next.message, at, emit);
            }
            t = next;
        }
        let kernel = matches!(t.source, Source::Kernel | Source::Unknown);
        // Most lines are no kernel form at all: they go on as they are.
        let Some(_) = kernel.then(|| form_quality(t.message)).flatten() else {
            return emit_one(t.source, t.time, t.message, at, emit);
        };
        if t.message.len() > MAX_RECORD {
            return emit_forms(t.source, t.time, t.message, at, emit);
        }
        let mut msg = t.message;
        while let Some(cut) = glued_at(msg) {
            emit_one(t.source, t.time, &msg[..cut], at, emit);
            msg = &msg[cut..];
        }
        self.pending = true;
        self.text.clear();
        self.text.push_str(msg);
        self.time = t.time.map(|s| bounded(s, MAX_TIME));
        self.kernel = t.source == Source::Kernel;
        self.at = at;
        self.quality = form_quality(msg).unwrap_or(0);
        self.joins = 0;
    }

    /// Rejoins `cont` onto the held record when that reads more completely as a kernel
    /// form: without a space (a wrap inside a word or number; always for the `oom-kill:`
    /// summary, which has no spaces) or with one (a newline for a `dmesg` continuation
    /// line), whichever reads better.
    fn join<F: FnMut(Message<'_>)>(&mut self, cont: &str, indent: usize, emit: &mut F) -> bool {
        let cont = cont.trim_end();
        if !self.pending || cont.is_empty() || self.joins >= MAX_JOINS {
            return false;
        }
        let base = self.text.trim_end();
        let base = base.strip_suffix('\\').unwrap_or(base).trim_end();
        if base.len() + cont.len() + 1 > MAX_RECORD {
            return false;
        }
        let summary = base.starts_with("oom-kill:") || base.starts_with(',');
        let tight = format!("{base}{cont}");
        let sep = if indent >= RECORD_INDENT { '\n' } else { ' ' };
        let loose = format!("{base}{sep}{cont}");
        let score = |s: &str| form_quality(s).unwrap_or(-1);
        let (best, quality) = if summary {
            let q = score(&tight);
            (tight, q)
        } else {
            let (qt, ql) = (score(&tight), score(&loose));
            if qt > ql {
                (tight, qt)
            } else {
                (loose, ql)
            }
        };
        if quality <= self.quality && glued_at(&best).is_none() {
            return false;
        }
        self.text = best;
        self.quality = quality;
        self.joins += 1;
        self.settle(emit);
        true
    }

    /// Splits off the complete forms that a rejoin revealed at the front of the record.
    fn settle<F: FnMut(Message<'_>)>(&mut self, emit: &mut F) {
        while let Some(cut) = glued_at(&self.text) {
            let source = self.source();
            emit(Message {
                source,
                time: self.time.as_deref(),
                text: self.text[..cut].trim_end(),
                at: self.at,
            });
            self.text.drain(..cut);
            self.quality = form_quality(&self.text).unwrap_or(0);
        }
    }

    fn source(&self) -> Source<'static> {
        if self.kernel {
            Source::Kernel
        } else {
            Source::Unknown
        }
    }

    fn flush<F: FnMut(Message<'_>)>(&mut self, emit: &mut F) {
        if !self.pending {
            return;
        }
        self.pending = false;
        emit(Message {
            source: self.source(),
            time: self.time.as_deref(),
            text: &self.text,
            at: self.at,
        });
    }
}

/// A complete record, with any forms glued after each other split apart.
fn emit_forms<F: FnMut(Message<'_>)>(
    source: Source<'_>,
    time: Option<&str>,
    text: &str,
    at: u64,
    emit: &mut F,
) {
    let mut msg = text;
    if matches!(source, Source::Kernel | Source::Unknown) {
        while let Some(cut) = glued_at(msg) {
            emit_one(source, time, &msg[..cut], at, emit);
            msg = &msg[cut..];
        }
    }
    emit_one(source, time, msg, at, emit);
}

fn emit_one<F: FnMut(Message<'_>)>(
    source: Source<'_>,
    time: Option<&str>,
    text: &str,
    at: u64,
    emit: &mut F,
) {
    emit(Message {
        source,
        time,
        text: text.trim_end(),
        at,
    });
}

/// A line without its line ending and trailing blanks, without HTML tags at its ends
/// (`<pre><code>`, `</div>`), and with typeset continuation marks (`↪`) taken out.
fn clean(line: &str) -> Cow<'_, str> {
    let line = strip_html_edges(line.trim_end());
    if !line.contains('\u{21aa}') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{21aa}' {
            out.push(c);
            continue;
        }
        let before = out.chars().next_back().is_some_and(|p| !p.is_whitespace());
        let after = chars.peek().is_some_and(|n| !n.is_whitespace());
        if before && after {
            out.push(' ');
        }
    }
    Cow::Owned(out)
}

/// `<tag ...>` runs at the start and the end of a line (a letter or `/` after `<`, so
/// a `<3>` priority stays).
fn strip_html_edges(mut s: &str) -> &str {
    while s.starts_with('<') && s[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '/') {
        match s.find('>') {
            Some(gt) => s = &s[gt + 1..],
            None => break,
        }
    }
    while s.ends_with('>') {
        let Some(lt) = s.rfind('<') else { break };
        let tag = &s[lt + 1..s.len() - 1];
        if !tag.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
            || tag.contains(char::is_whitespace)
        {
            break;
        }
        s = &s[..lt];
    }
    s
}

/// The parts of a line between padding runs (not counting its leading indentation).
fn pieces(line: &str) -> impl Iterator<Item = &str> {
    let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
    let mut rest = Some((line, indent));
    std::iter::from_fn(move || {
        let (s, from) = rest?;
        match padding_at(s, from) {
            Some((start, end)) => {
                rest = Some((&s[end..], 0));
                Some(&s[..start])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

/// The first run of at least [`PADDING_RUN`] blanks at or after `from`: `(start, end)`.
fn padding_at(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() {
        if b[i] == b' ' || b[i] == b'\t' {
            let start = i;
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            if i - start >= PADDING_RUN && i < b.len() {
                return Some((start, i));
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests;
