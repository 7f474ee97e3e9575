//! `oomwatch events`: the event log in `--state.dir` (OOM kills, restarts, exits,
//! reboots), filtered by type, group and time, read straight from the file: the exporter
//! need not be running. A table for people, or JSON lines (the log's own form) for jq.
//! Exit 0 after printing (none found is still 0), 2 when a flag is wrong or the log
//! cannot be read.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{EventsArgs, ListFormat};
use crate::clock::unix_now;
use crate::events::{
    parse_time, parse_types, read_file_events, Event, EventFilter, FilterError, Newest, EVENTS_FILE,
};
use crate::incident::format::{ago, describe, utc};
use crate::terminal_text::escape_controls;

/// Runs `oomwatch events`; returns the exit code.
pub fn run(args: &EventsArgs) -> u8 {
    let now = unix_now();
    let filter = match filter_from_flags(args, now) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("oomwatch events: {e}");
            return 2;
        }
    };
    match state_dir_or_default(args.state_dir.as_ref()) {
        Ok(dir) => list(&dir, &filter, args.format, now),
        Err(e) => {
            eprintln!("oomwatch events: {e}");
            2
        }
    }
}

/// The filter the flags ask for; errors name the flag.
pub fn filter_from_flags(args: &EventsArgs, now: f64) -> Result<EventFilter, FilterError> {
    let time = |name, value: &Option<String>| {
        value
            .as_deref()
            .map(|value| parse_time(name, value, now))
            .transpose()
    };
    Ok(EventFilter {
        types: match &args.types {
            Some(types) => parse_types("--type", types)?,
            None => Vec::new(),
        },
        group: args.group.clone(),
        since: time("--since", &args.since)?,
        until: time("--until", &args.until)?,
        limit: args.limit,
    })
}

/// `--state.dir` of the incident commands: as given, else the exporter's default; it must
/// exist (a missing one is a wrong flag far more often than a host where nothing happened).
pub fn state_dir_or_default(given: Option<&PathBuf>) -> Result<PathBuf, String> {
    let dir = match given {
        Some(dir) => dir.clone(),
        None => crate::config::default_state_dir().map_err(|e| e.to_string())?,
    };
    match dir.is_dir() {
        true => Ok(dir),
        false => Err(format!(
            "--state.dir {}: no such directory (give the exporter's --state.dir)",
            dir.display()
        )),
    }
}

/// Prints the events of `state_dir` that pass `filter`; returns the exit code. The log is
/// streamed: without `--limit` each event is printed as it is read, with one only the
/// newest `limit` are held.
pub fn list(state_dir: &Path, filter: &EventFilter, format: ListFormat, now: f64) -> u8 {
    let path = state_dir.join(EVENTS_FILE);
    let mut out = std::io::stdout().lock();
    let mut written: std::io::Result<()> = Ok(());
    if format == ListFormat::Table {
        written = out.write_all(table_header().as_bytes());
    }
    let mut printed = 0usize;
    let mut print = |event: &Event| {
        if written.is_ok() {
            printed += 1;
            written = print_event(&mut out, event, format, now);
        }
    };
    let mut newest = Newest::new(filter.clone(), filter.limit.unwrap_or(0));
    let read = read_file_events(&path, |line| {
        match filter.limit {
            Some(_) => newest.offer(line),
            None if filter.matches_head(&line.head) => {
                if let Some(event) = line.event() {
                    print(&event);
                }
            }
            None => {}
        }
        false
    });
    let skipped = match read {
        Ok((_, skipped)) => skipped,
        Err(e) => {
            eprintln!(
                "oomwatch events: cannot read {} ({e}); check --state.dir",
                path.display()
            );
            return 2;
        }
    };
    let (kept, unparsed) = newest.into_events();
    kept.iter().for_each(&mut print);
    let skipped = skipped + unparsed;
    if printed == 0 && format == ListFormat::Table && written.is_ok() {
        let path = path.display().to_string();
        written = writeln!(out, "no matching events in {}", escape_controls(&path));
    }
    if skipped > 0 {
        eprintln!(
            "oomwatch events: {skipped} unreadable lines in {} skipped",
            path.display()
        );
    }
    match written {
        Ok(()) => 0,
        // A closed pipe (`| head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("oomwatch events: {e}");
            2
        }
    }
}

fn table_header() -> String {
    format!(
        "{:<21} {:>12}  {:<34} {:<24} {:<22} {}\n",
        "TIME (UTC)", "AGO", "EVENT", "GROUP", "PROCESS", "DETAILS"
    )
}

/// One event: a row of the table (every cell's control characters escaped), or its JSON
/// line.
fn print_event(
    out: &mut impl Write,
    event: &Event,
    format: ListFormat,
    now: f64,
) -> std::io::Result<()> {
    match format {
        ListFormat::Json => {
            serde_json::to_writer(&mut *out, event).map_err(std::io::Error::from)?;
            out.write_all(b"\n")
        }
        ListFormat::Table => {
            let (title, details) = describe(event);
            let process = event
                .kind
                .process()
                .map_or_else(String::new, |(pid, comm)| format!("{pid} {comm}"));
            writeln!(
                out,
                "{:<21} {:>12}  {:<34} {:<24} {:<22} {}",
                utc(event.time),
                ago(now, event.time),
                escape_controls(&title),
                escape_controls(event.kind.group().unwrap_or("(host)")),
                escape_controls(&process),
                escape_controls(&details),
            )
        }
    }
}
