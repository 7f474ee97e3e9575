//! wtmpdb (`/var/lib/wtmpdb/wtmp.db` under `--path.rootfs`): the SQLite database that
//! replaces `/var/log/wtmp` on Debian 13, recent Ubuntu and openSUSE. At each boot
//! `wtmpdb boot` inserts a row of Type 1 (`BOOT_TIME`) with User `reboot` (`soft-reboot`
//! after a systemd soft reboot) and Login set to the boot time; at each clean shutdown
//! `wtmpdb shutdown` sets that row's Logout. A boot row whose Logout is NULL and that a
//! later boot follows (this boot, known by its new boot_id, whether or not its own row
//! is written yet) ended without a clean shutdown: what `wtmpdb last` prints as `crash`.
//! The rows become the same [`WtmpRecord`]s and [`WtmpVerdict`] as the legacy wtmp file.
//!
//! This module owns a small read-only reader of the SQLite 3 file format
//! (<https://www.sqlite.org/fileformat2.html>), just enough for wtmpdb's table: the
//! header, table b-tree pages (interior 0x05, leaf 0x0D), varints, record headers and
//! overflow chains. It links no SQLite and must never write, lock or create anything
//! next to the database. Input is untrusted and fuzzed: it never panics, reads out of
//! bounds or loops forever. Every page is read at most once per parse (a page reached
//! twice is a cycle or a shared page, an error), so the work is linear in the file size.
//! Any structural fault makes the whole file no evidence, never a partial answer: a
//! missing subtree could hide the very row that proves a clean shutdown.
//!
//! What the main file alone cannot say: SQLite keeps recent commits in `wtmp.db-wal`
//! (WAL mode) until a checkpoint, and an interrupted write leaves a hot
//! `wtmp.db-journal` with the main file half-updated. When either is pending,
//! [`read_verdict`] gives no verdict at all ([`ReadError::Pending`]), so a Logout that
//! sits only in the WAL is never taken for a missing shutdown. The wtmpdb sources read
//! set no journal mode (rollback journal by default), so neither is expected at rest.
//!
//! Facts taken from wtmpdb (github.com/thkukuk/wtmpdb), read for this module:
//! - `lib/sqlite.c`, `add_entry` (commit b1ac358, and the later one with wtmpdbd): the
//!   table is `CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User
//!   TEXT NOT NULL, Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service
//!   TEXT) STRICT`; `update_logout` runs `UPDATE wtmp SET Logout = ? WHERE ID = ?`; times are
//!   microseconds since the epoch (`usec_login`, `usec_logout`). SQLite stores the
//!   statement as `CREATE TABLE wtmp(…) STRICT`; columns are found by name in it, so an
//!   early layout seen in an old copy of `add_entry` (no ID, a PID column) reads too.
//! - `include/wtmpdb.h`: `_PATH_WTMPDB "/var/lib/wtmpdb/wtmp.db"`; Type values `EMPTY` 0,
//!   `BOOT_TIME` 1, `RUNLEVEL` 2 (unused with systemd), `USER_PROCESS` 3. These are not
//!   utmp's numbers (utmp's `BOOT_TIME` is 2).
//! - `src/wtmpdb.c`: `main_boot` writes `BOOT_TIME`, User `reboot` (or `soft-reboot`),
//!   TTY `~`, RemoteHost the kernel release, Login = CLOCK_REALTIME - CLOCK_BOOTTIME (the
//!   boot time, as btime) in µs; `main_shutdown` sets Logout = CLOCK_REALTIME in µs on
//!   the newest row with TTY `~` and Logout NULL (`search_id` in `lib/sqlite.c`);
//!   `print_entry` shows `crash` for a row without Logout listed after a newer boot.
//!   `units/wtmpdb-update-boot.service` runs `wtmpdb boot` at start and `wtmpdb
//!   shutdown` at stop.
//! - `wtmpdb rotate` (60 days by default) moves rows whose Login is older into
//!   `wtmp_<date>.db`; a previous boot older than that is then not in this file, and
//!   there is no verdict.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::wtmp::{self, WtmpKind, WtmpRecord, WtmpVerdict};

/// Where wtmpdb keeps its database on the host (`_PATH_WTMPDB`).
pub const PATH: &str = "/var/lib/wtmpdb/wtmp.db";
/// wtmpdb's `Type` of a boot row (`BOOT_TIME` in `include/wtmpdb.h`).
pub const BOOT_TIME: i64 = 1;
/// At most this much of a row's payload is assembled from overflow pages; wtmpdb's
/// columns of interest come first and are short.
const PAYLOAD_PREFIX_MAX: usize = 64 * 1024;
/// User names are cut to this many bytes (Linux allows 32).
const USER_MAX: usize = 256;
/// The columns read must be among the first this many, which bounds the work per row
/// whatever the schema says (wtmpdb's are the 2nd to 5th).
const COLUMNS_MAX: usize = 64;
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// First bytes of a rollback journal's header: the journal holds a transaction that has
/// not been finished or rolled back.
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// Why a file gives no rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WtmpdbError {
    #[error("not an SQLite 3 database")]
    NotSqlite,
    #[error("bad database header: {0}")]
    Header(&'static str),
    #[error("truncated: the file holds {have} whole pages, the header declares {declared}")]
    Truncated { have: u64, declared: u64 },
    #[error("page {0} is outside the file")]
    PageOutOfRange(u64),
    #[error("page {0} is reached twice (a cycle or a shared page)")]
    PageRevisited(u32),
    #[error("malformed page {page}: {what}")]
    Malformed { page: u32, what: &'static str },
    #[error("malformed row {rowid}: {what}")]
    BadRow { rowid: i64, what: &'static str },
    #[error("no wtmp table in sqlite_schema")]
    NoTable,
    #[error("the wtmp table has no {0} column")]
    NoColumn(&'static str),
    #[error("the wtmp table's {0} column is not among its first 64")]
    ColumnTooFar(&'static str),
}

/// Why [`read_verdict`] gives no verdict.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds writes not yet in the main file; wtmpdb gives no verdict from the main file alone", path.display())]
    Pending { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Parse { path: PathBuf, source: WtmpdbError },
}

impl ReadError {
    /// The database itself does not exist: the host has no wtmpdb.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// One row of the `wtmp` table, the columns a verdict needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WtmpdbRow {
    /// The rowid (wtmpdb's `ID INTEGER PRIMARY KEY`).
    pub id: i64,
    /// `Type`: 1 boot, 3 user session (see the module doc).
    pub kind: Option<i64>,
    /// `User`, cut to 256 bytes.
    pub user: Option<String>,
    /// `Login`, microseconds since the epoch.
    pub login: Option<i64>,
    /// `Logout`, microseconds since the epoch; NULL while the session or boot lasts.
    pub logout: Option<i64>,
}

/// Reads `path` (wtmpdb's database) and, unless its `-wal` is non-empty or its `-journal`
/// is hot (then [`ReadError::Pending`]: the main file alone would miss or misread recent
/// rows, and a missing Logout must not be taken for a missing shutdown), says how the
/// boot before the one that started at `current_boot` ended.
pub fn read_verdict(path: &Path, current_boot: f64) -> Result<Option<WtmpVerdict>, ReadError> {
    let db = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let wal = sidecar(path, "-wal");
    match std::fs::metadata(&wal) {
        Ok(meta) if meta.len() > 0 => return Err(ReadError::Pending { path: wal }),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ReadError::Io { path: wal, source }),
    }
    let journal = sidecar(path, "-journal");
    let mut head = Vec::with_capacity(JOURNAL_MAGIC.len());
    match std::fs::File::open(&journal) {
        Ok(file) => {
            if let Err(source) = file.take(JOURNAL_MAGIC.len() as u64).read_to_end(&mut head) {
                return Err(ReadError::Io {
                    path: journal,
                    source,
                });
            }
            if head == JOURNAL_MAGIC {
                return Err(ReadError::Pending { path: journal });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ReadError::Io {
                path: journal,
                source,
            })
        }
    }
    previous_boot_verdict(&db, current_boot).map_err(|source| ReadError::Parse {
        path: path.to_owned(),
        source,
    })
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What the database says of the boot that ended before the boot that started at
/// `current_boot`, by the same rule as the legacy wtmp file
/// ([`wtmp::previous_boot_verdict`]). The main file only: see [`read_verdict`].
pub fn previous_boot_verdict(
    db: &[u8],
    current_boot: f64,
) -> Result<Option<WtmpVerdict>, WtmpdbError> {
    Ok(wtmp::previous_boot_verdict(
        &boot_records(db)?,
        current_boot,
    ))
}

/// The boots and clean shutdowns in the database, as wtmp records, oldest boot first:
/// each boot row (Type 1) gives a boot at its Login and, when its Logout is set, a
/// shutdown at its Logout.
pub fn boot_records(db: &[u8]) -> Result<Vec<WtmpRecord>, WtmpdbError> {
    let mut boots = Vec::new();
    for_each_row(db, |row| {
        if row.kind == Some(BOOT_TIME) {
            if let Some(login) = row.login {
                boots.push((login, row.logout));
            }
        }
    })?;
    // wtmpdb lists by Login (`ORDER BY Login`); `wtmpdb import` can add old rows late.
    boots.sort_by_key(|&(login, _)| login);
    let mut records = Vec::with_capacity(boots.len() * 2);
    for (login, logout) in boots {
        records.push(WtmpRecord {
            kind: WtmpKind::Boot,
            time: micros_to_seconds(login),
        });
        if let Some(logout) = logout {
            records.push(WtmpRecord {
                kind: WtmpKind::Shutdown,
                time: micros_to_seconds(logout),
            });
        }
    }
    Ok(records)
}

fn micros_to_seconds(micros: i64) -> f64 {
    micros as f64 / 1e6
}

/// Calls `f` with every row of the `wtmp` table, in rowid order. A structural fault
/// anywhere is an error, even after some rows were given.
pub fn for_each_row(db: &[u8], mut f: impl FnMut(WtmpdbRow)) -> Result<(), WtmpdbError> {
    let mut file = Database::open(db)?;
    let encoding = file.encoding;
    let (root, sql) = file.wtmp_table()?;
    let columns = column_names(&sql);
    let find = |name: &'static str| match columns.iter().position(|c| c.eq_ignore_ascii_case(name))
    {
        Some(at) if at < COLUMNS_MAX => Ok(at),
        Some(_) => Err(WtmpdbError::ColumnTooFar(name)),
        None => Err(WtmpdbError::NoColumn(name)),
    };
    let kind_at = find("Type")?;
    let login_at = find("Login")?;
    let logout_at = find("Logout")?;
    let user_at = find("User").ok();
    let want = [kind_at, login_at, logout_at, user_at.unwrap_or(0)]
        .into_iter()
        .max()
        .map_or(1, |m| m + 1);
    file.walk_table(root, &mut |rowid, payload| {
        let bad = |what| WtmpdbError::BadRow { rowid, what };
        let values = record(payload, want).map_err(bad)?;
        if values.contains(&Value::Missing) {
            return Err(bad("a column runs past the payload"));
        }
        let get = |i: usize| values.get(i).copied().unwrap_or(Value::Null);
        let logout = integer(get(logout_at));
        // A Logout that is set but holds no number still says the row was closed;
        // reading it as NULL could invent a crash.
        if logout.is_none() && get(logout_at) != Value::Null {
            return Err(bad("Logout is not a number"));
        }
        let user = match user_at.map(get) {
            Some(Value::Text(raw)) => Some(decode_text(raw, encoding, USER_MAX)),
            _ => None,
        };
        f(WtmpdbRow {
            id: rowid,
            kind: integer(get(kind_at)),
            user,
            login: integer(get(login_at)),
            logout,
        });
        Ok(())
    })
}

/// The value of an INTEGER column; None for NULL and for anything that holds no integer
/// (a STRICT table holds only integers or NULL; an older one may hold a real or text).
fn integer(value: Value<'_>) -> Option<i64> {
    match value {
        Value::Int(v) => Some(v),
        Value::Real(v) if v.is_finite() => Some(v as i64),
        Value::Text(raw) => std::str::from_utf8(raw).ok()?.trim().parse().ok(),
        Value::Null | Value::Real(_) | Value::Blob | Value::Missing => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
}

fn decode_text(raw: &[u8], encoding: Encoding, max_bytes: usize) -> String {
    let raw = &raw[..raw.len().min(max_bytes)];
    let units = |be: bool| {
        raw.chunks_exact(2).map(move |pair| {
            if be {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from_le_bytes([pair[0], pair[1]])
            }
        })
    };
    match encoding {
        Encoding::Utf8 => String::from_utf8_lossy(raw).into_owned(),
        Encoding::Utf16Le | Encoding::Utf16Be => {
            char::decode_utf16(units(encoding == Encoding::Utf16Be))
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
    }
}

/// A decoded column of a record. `Missing`: the record header says the value is there,
/// but its bytes run past the payload.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob,
    Missing,
}

/// Up to the first `want` columns of a record (a header of serial types, then the
/// values); fewer when the record is shorter: the columns it lacks (added later by ALTER
/// TABLE) are NULL.
fn record(payload: &[u8], want: usize) -> Result<Vec<Value<'_>>, &'static str> {
    let (header_len, used) = varint(payload).ok_or("record header length")?;
    if header_len < used as u64 || header_len > payload.len() as u64 {
        return Err("record header length");
    }
    // In bounds: checked against payload.len() just above.
    let header = &payload[used..header_len as usize];
    let mut at = 0;
    let mut body = header_len;
    let mut values = Vec::with_capacity(want);
    while values.len() < want {
        let Some(rest) = header.get(at..).filter(|rest| !rest.is_empty()) else {
            break;
        };
        let (serial, used) = varint(rest).ok_or("record serial type")?;
        at += used;
        let size = match serial {
            0 | 8 | 9 => 0,
            1..=4 => serial,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return Err("reserved serial type"),
            n => (n - 12) / 2,
        };
        let start = body;
        let end = start.checked_add(size).ok_or("record value size")?;
        body = end;
        let bytes = if end <= payload.len() as u64 {
            // In bounds: start <= end <= payload.len().
            &payload[start as usize..end as usize]
        } else {
            values.push(Value::Missing);
            continue;
        };
        values.push(match serial {
            0 => Value::Null,
            1..=6 => Value::Int(be_int(bytes)),
            7 => Value::Real(f64::from_bits(be_int(bytes) as u64)),
            8 => Value::Int(0),
            9 => Value::Int(1),
            n if n % 2 == 0 => Value::Blob,
            _ => Value::Text(bytes),
        });
    }
    Ok(values)
}

/// A big-endian two's-complement integer of 1 to 8 bytes.
fn be_int(bytes: &[u8]) -> i64 {
    let negative = bytes.first().is_some_and(|&b| b & 0x80 != 0);
    bytes
        .iter()
        .fold(if negative { -1 } else { 0 }, |v: i64, &b| {
            (v << 8) | i64::from(b)
        })
}

/// SQLite's varint: 1 to 9 bytes, big-endian, 7 bits a byte with the high bit set on
/// all but the last; a 9th byte gives all 8 bits. Returns the value and its length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(9).enumerate() {
        if i == 8 {
            return Some(((value << 8) | u64::from(b), 9));
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The column names of a `CREATE TABLE name(col type …, …, constraint …)` statement, in
/// order. Table constraints end the list. Quoted names lose their quotes.
fn column_names(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let Some(open) = bytes.iter().position(|&b| b == b'(') else {
        return Vec::new();
    };
    let mut definitions = Vec::new();
    let mut depth = 0usize;
    let mut quote = None;
    let mut start = open + 1;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if let Some(close) = quote {
            if b == close {
                quote = None;
            }
            continue;
        }
        match b {
            b'\'' | b'"' | b'`' => quote = Some(b),
            b'[' => quote = Some(b']'),
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    // ASCII delimiters: both ends are char boundaries.
                    definitions.extend(sql.get(start..i));
                    break;
                }
            }
            b',' if depth == 1 => {
                definitions.extend(sql.get(start..i));
                start = i + 1;
            }
            _ => {}
        }
    }
    let mut names = Vec::new();
    for definition in definitions {
        let definition = definition.trim_start();
        let name = match definition.chars().next() {
            Some(q @ ('"' | '`' | '\'' | '[')) => {
                let close = if q == '[' { ']' } else { q };
                let inner = &definition[1..];
                inner.split(close).next().unwrap_or(inner).to_owned()
            }
            _ => definition
                .split(|c: char| c.is_whitespace() || c == '(')
                .next()
                .unwrap_or("")
                .to_owned(),
        };
        let keyword = name.to_ascii_uppercase();
        if ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"].contains(&keyword.as_str()) {
            break;
        }
        names.push(name);
    }
    names
}

/// Called with each table row's rowid and payload.
type CellVisitor<'v> = dyn FnMut(i64, &[u8]) -> Result<(), WtmpdbError> + 'v;

/// A database file being read: its geometry and the pages already read.
struct Database<'a> {
    bytes: &'a [u8],
    page_size: usize,
    /// Bytes of each page that hold data (page size minus the reserved tail).
    usable: usize,
    pages: u32,
    encoding: Encoding,
    seen: Vec<bool>,
}

impl<'a> Database<'a> {
    fn open(bytes: &'a [u8]) -> Result<Self, WtmpdbError> {
        if bytes.len() < 100 || &bytes[..16] != MAGIC {
            return Err(WtmpdbError::NotSqlite);
        }
        let page_size = match be_u16(bytes, 16).unwrap_or(0) {
            1 => 65536,
            n if n.is_power_of_two() && n >= 512 => usize::from(n),
            _ => return Err(WtmpdbError::Header("page size")),
        };
        let usable = page_size - usize::from(bytes[20]);
        if usable < 480 {
            return Err(WtmpdbError::Header("reserved bytes per page"));
        }
        if bytes[21..24] != [64, 32, 32] {
            return Err(WtmpdbError::Header("payload fractions"));
        }
        let encoding = match be_u32(bytes, 56).unwrap_or(0) {
            0 | 1 => Encoding::Utf8,
            2 => Encoding::Utf16Le,
            3 => Encoding::Utf16Be,
            _ => return Err(WtmpdbError::Header("text encoding")),
        };
        let have = (bytes.len() / page_size) as u64;
        // The size in the header counts only when written by a version that keeps it
        // (its change counter matches "version-valid-for"); else the file size decides.
        let declared = u64::from(be_u32(bytes, 28).unwrap_or(0));
        let valid = declared > 0 && bytes[24..28] == bytes[92..96];
        let pages = if valid {
            if declared > have {
                return Err(WtmpdbError::Truncated { have, declared });
            }
            declared
        } else {
            have
        };
        if pages == 0 {
            return Err(WtmpdbError::Truncated { have, declared });
        }
        let pages = u32::try_from(pages).map_err(|_| WtmpdbError::Header("page count"))?;
        Ok(Self {
            bytes,
            page_size,
            usable,
            pages,
            encoding,
            seen: vec![false; pages as usize + 1],
        })
    }

    /// The usable bytes of page `number`, marked as read; a second read is an error.
    fn take_page(&mut self, number: u32) -> Result<&'a [u8], WtmpdbError> {
        if number == 0 || number > self.pages {
            return Err(WtmpdbError::PageOutOfRange(u64::from(number)));
        }
        let seen = self
            .seen
            .get_mut(number as usize)
            .ok_or(WtmpdbError::PageOutOfRange(u64::from(number)))?;
        if *seen {
            return Err(WtmpdbError::PageRevisited(number));
        }
        *seen = true;
        let start = (number as usize - 1) * self.page_size;
        let bytes: &'a [u8] = self.bytes;
        bytes
            .get(start..start + self.usable)
            .ok_or(WtmpdbError::PageOutOfRange(u64::from(number)))
    }

    /// The root page and `CREATE TABLE` text of the `wtmp` table, from sqlite_schema
    /// (the table b-tree rooted at page 1: type, name, tbl_name, rootpage, sql).
    fn wtmp_table(&mut self) -> Result<(u32, String), WtmpdbError> {
        let encoding = self.encoding;
        let mut found = None;
        self.walk_table(1, &mut |rowid, payload| {
            let bad = |what| WtmpdbError::BadRow { rowid, what };
            let values = record(payload, 5).map_err(bad)?;
            let is = |v: Option<&Value<'_>>, want: &str| {
                matches!(v, Some(Value::Text(raw)) if decode_text(raw, encoding, 64).eq_ignore_ascii_case(want))
            };
            if found.is_none() && is(values.first(), "table") && is(values.get(1), "wtmp") {
                let root = match values.get(3) {
                    Some(Value::Int(n)) => u32::try_from(*n).map_err(|_| bad("rootpage"))?,
                    _ => return Err(bad("rootpage")),
                };
                let sql = match values.get(4) {
                    Some(Value::Text(raw)) => decode_text(raw, encoding, PAYLOAD_PREFIX_MAX),
                    _ => return Err(bad("sql")),
                };
                found = Some((root, sql));
            }
            Ok(())
        })?;
        found.ok_or(WtmpdbError::NoTable)
    }

    /// Visits every cell of the table b-tree rooted at `root`, in key order, with its
    /// rowid and payload (whole, or its first 64 KiB when it spills to overflow pages).
    fn walk_table(&mut self, root: u32, visit: &mut CellVisitor<'_>) -> Result<(), WtmpdbError> {
        let mut stack = vec![root];
        while let Some(number) = stack.pop() {
            let page = self.take_page(number)?;
            let malformed = |what| WtmpdbError::Malformed { page: number, what };
            let header_at = if number == 1 { 100 } else { 0 };
            let kind = *page.get(header_at).ok_or(malformed("page header"))?;
            let cells = usize::from(be_u16(page, header_at + 3).ok_or(malformed("page header"))?);
            let header_len = match kind {
                0x05 => 12,
                0x0D => 8,
                _ => return Err(malformed("not a table b-tree page")),
            };
            let pointers = header_at + header_len;
            if pointers + 2 * cells > page.len() {
                return Err(malformed("cell count"));
            }
            let cell_at = |i: usize| -> Result<&'a [u8], WtmpdbError> {
                let offset =
                    usize::from(be_u16(page, pointers + 2 * i).ok_or(malformed("cell pointer"))?);
                if offset < pointers + 2 * cells {
                    return Err(malformed("cell pointer"));
                }
                page.get(offset..)
                    .filter(|c| !c.is_empty())
                    .ok_or(malformed("cell pointer"))
            };
            if kind == 0x05 {
                // Children in key order: each cell's left child, then the right-most.
                let right = be_u32(page, header_at + 8).ok_or(malformed("right child"))?;
                stack.push(right);
                for i in (0..cells).rev() {
                    let child = be_u32(cell_at(i)?, 0).ok_or(malformed("child pointer"))?;
                    stack.push(child);
                }
                continue;
            }
            for i in 0..cells {
                let cell = cell_at(i)?;
                let (size, a) = varint(cell).ok_or(malformed("payload size"))?;
                let (rowid, b) = varint(&cell[a..]).ok_or(malformed("rowid"))?;
                let rowid = rowid as i64;
                let local = self.local_payload(size);
                // In bounds: a + b <= cell.len() (both varints were read from it).
                let body = &cell[a + b..];
                let local_bytes = usize::try_from(local)
                    .ok()
                    .and_then(|n| body.get(..n))
                    .ok_or(malformed("payload runs past the page"))?;
                if size == local {
                    visit(rowid, local_bytes)?;
                } else {
                    let first =
                        be_u32(body, local_bytes.len()).ok_or(malformed("overflow pointer"))?;
                    let payload = self.overflow(local_bytes, size, first)?;
                    visit(rowid, &payload)?;
                }
            }
        }
        Ok(())
    }

    /// How many payload bytes a table leaf cell keeps on its page (the file format's
    /// rule; the rest goes to overflow pages).
    fn local_payload(&self, size: u64) -> u64 {
        let usable = self.usable as u64;
        let max_local = usable - 35;
        if size <= max_local {
            return size;
        }
        let min_local = (usable - 12) * 32 / 255 - 23;
        let local = min_local + (size - min_local) % (usable - 4);
        if local <= max_local {
            local
        } else {
            min_local
        }
    }

    /// The local bytes followed by the overflow chain from `first`, up to the payload's
    /// `size` or 64 KiB.
    fn overflow(&mut self, local: &[u8], size: u64, first: u32) -> Result<Vec<u8>, WtmpdbError> {
        let want = usize::try_from(size).map_or(PAYLOAD_PREFIX_MAX, |s| s.min(PAYLOAD_PREFIX_MAX));
        let mut payload = local.to_vec();
        let mut next = first;
        while payload.len() < want {
            if next == 0 {
                return Err(WtmpdbError::Malformed {
                    page: first,
                    what: "overflow chain ends early",
                });
            }
            let page = self.take_page(next)?;
            let following = be_u32(page, 0).unwrap_or(0);
            let take = (want - payload.len()).min(page.len() - 4);
            payload.extend_from_slice(&page[4..4 + take]);
            next = following;
        }
        payload.truncate(want);
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// wtmpdb's own statement (`add_entry` in lib/sqlite.c).
    const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL, Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;";
    /// 2023-11-14T22:13:20Z in microseconds.
    const T0: i64 = 1_700_000_000_000_000;
    const HOUR: i64 = 3_600_000_000;

    /// Runs a Python script with the real sqlite3 module; `db` is the database path and
    /// `SCHEMA` wtmpdb's CREATE TABLE. Returns the directory holding `wtmp.db`.
    fn python_db(script: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wtmp.db");
        let prelude = format!(
            "import sqlite3, sys, os, shutil\ndb = sys.argv[1]\nSCHEMA = {SCHEMA:?}\nT0 = {T0}\nHOUR = {HOUR}\n"
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!("{prelude}{script}"))
            .arg(&path)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "python3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    }

    fn bytes_of(dir: &tempfile::TempDir) -> Vec<u8> {
        std::fs::read(dir.path().join("wtmp.db")).unwrap()
    }

    fn rows(db: &[u8]) -> Vec<WtmpdbRow> {
        let mut rows = Vec::new();
        for_each_row(db, |row| rows.push(row)).unwrap();
        rows
    }

    fn secs(micros: i64) -> f64 {
        micros as f64 / 1e6
    }

    /// Boot A shut down cleanly, a user session, boot B crashed, boot C is now.
    const HISTORY: &str = r#"
con = sqlite3.connect(db)
con.execute(SCHEMA)
ins = "INSERT INTO wtmp (Type,User,Login,Logout,TTY,RemoteHost,Service) VALUES(?,?,?,?,?,?,?)"
con.execute(ins, (1, "reboot", T0, T0 + 5 * HOUR, "~", "6.12.48+deb13-amd64", None))
con.execute(ins, (3, "alice", T0 + HOUR, T0 + 2 * HOUR, "pts/0", "192.0.2.7", "sshd"))
con.execute(ins, (1, "reboot", T0 + 6 * HOUR, None, "~", "6.12.48+deb13-amd64", None))
con.execute(ins, (3, "bob", T0 + 7 * HOUR, None, "pts/1", "192.0.2.8", "sshd"))
con.execute(ins, (1, "reboot", T0 + 9 * HOUR, None, "~", "6.12.48+deb13-amd64", None))
con.commit()
con.close()
"#;

    #[test]
    fn rows_and_verdicts_of_a_real_database() {
        let db = bytes_of(&python_db(HISTORY));
        let all = rows(&db);
        assert_eq!(all.len(), 5);
        assert_eq!(
            all[0],
            WtmpdbRow {
                id: 1,
                kind: Some(BOOT_TIME),
                user: Some("reboot".into()),
                login: Some(T0),
                logout: Some(T0 + 5 * HOUR),
            }
        );
        assert_eq!(all[1].user.as_deref(), Some("alice"));
        assert_eq!((all[3].kind, all[3].logout), (Some(3), None));
        // Now is boot C: B has no Logout and a later boot: no clean shutdown.
        assert_eq!(
            previous_boot_verdict(&db, secs(T0 + 9 * HOUR)),
            Ok(Some(WtmpVerdict::NoShutdown {
                previous_boot: secs(T0 + 6 * HOUR)
            }))
        );
        // Had we been asked at boot B: A's Logout is its clean shutdown.
        assert_eq!(
            previous_boot_verdict(&db, secs(T0 + 6 * HOUR)),
            Ok(Some(WtmpVerdict::CleanShutdown {
                at: secs(T0 + 5 * HOUR)
            }))
        );
        // Nothing before the first boot.
        assert_eq!(previous_boot_verdict(&db, secs(T0)), Ok(None));
        // The same through the reader, with no -wal or -journal next to it.
        let dir = python_db(HISTORY);
        let path = dir.path().join("wtmp.db");
        assert_eq!(
            read_verdict(&path, secs(T0 + 9 * HOUR)).unwrap(),
            Some(WtmpVerdict::NoShutdown {
                previous_boot: secs(T0 + 6 * HOUR)
            })
        );
    }

    #[test]
    fn the_current_boot_row_need_not_be_written_yet() {
        // oomwatch may start before wtmpdb-update-boot.service: the previous boot's row
        // is the last one, and its Logout alone decides.
        let db = bytes_of(&python_db(
            r#"
con = sqlite3.connect(db)
con.execute(SCHEMA)
con.execute("INSERT INTO wtmp (Type,User,Login,Logout,TTY) VALUES(1,'reboot',?,?,'~')", (T0, T0 + HOUR))
con.commit()
"#,
        ));
        assert_eq!(
            previous_boot_verdict(&db, secs(T0 + 2 * HOUR)),
            Ok(Some(WtmpVerdict::CleanShutdown {
                at: secs(T0 + HOUR)
            }))
        );
    }

    /// More than 300 rows: the table b-tree has interior pages; every row comes back, in
    /// rowid order, with its values.
    #[test]
    fn a_multi_page_table() {
        for (page_size, rows_n) in [(4096, 400), (512, 2000)] {
            let db = bytes_of(&python_db(&format!(
                r#"
con = sqlite3.connect(db)
con.execute("PRAGMA page_size={page_size}")
con.execute(SCHEMA)
for i in range({rows_n}):
    kind = 1 if i % 50 == 0 else 3
    logout = None if i == {last_boot} else T0 + i * HOUR + 60
    con.execute("INSERT INTO wtmp (Type,User,Login,Logout,TTY,RemoteHost,Service) VALUES(?,?,?,?,?,?,?)",
                (kind, "reboot" if kind == 1 else "user%d" % i, T0 + i * HOUR, logout, "pts/%d" % i, "198.51.100.%d" % (i % 250), "sshd"))
con.commit()
"#,
                last_boot = rows_n - 50,
            )));
            let mut file = Database::open(&db).unwrap();
            assert_eq!(
                (file.page_size, file.pages as usize),
                (page_size, db.len() / page_size)
            );
            let root = file.wtmp_table().unwrap().0;
            let root_at = (root as usize - 1) * page_size;
            assert_eq!(
                db[root_at], 0x05,
                "page size {page_size}: the root is interior"
            );
            let all = rows(&db);
            assert_eq!(all.len(), rows_n, "page size {page_size}");
            for (i, row) in all.iter().enumerate() {
                assert_eq!(row.id, i as i64 + 1);
                assert_eq!(row.login, Some(T0 + i as i64 * HOUR));
                let user = if i % 50 == 0 {
                    "reboot".to_owned()
                } else {
                    format!("user{i}")
                };
                assert_eq!(row.user.as_deref(), Some(user.as_str()));
            }
            let last_boot = (rows_n - 50) as i64;
            assert_eq!(
                previous_boot_verdict(&db, secs(T0 + rows_n as i64 * HOUR)),
                Ok(Some(WtmpVerdict::NoShutdown {
                    previous_boot: secs(T0 + last_boot * HOUR)
                }))
            );
        }
    }

    #[test]
    fn payloads_that_spill_to_overflow_pages() {
        // 512-byte pages keep as little as 39 payload bytes locally: a long user name and
        // host spill, Login and Logout come from the overflow chain.
        let db = bytes_of(&python_db(
            r#"
con = sqlite3.connect(db)
con.execute("PRAGMA page_size=512")
con.execute(SCHEMA)
for i in range(20):
    con.execute("INSERT INTO wtmp (Type,User,Login,Logout,TTY,RemoteHost,Service) VALUES(?,?,?,?,?,?,?)",
                (1, ("u%d-" % i) + "x" * (40 + 7 * i), T0 + i * HOUR, T0 + i * HOUR + 5, "~", "h" * (300 + 97 * i), "s" * 2000))
con.commit()
"#,
        ));
        let all = rows(&db);
        assert_eq!(all.len(), 20);
        for (i, row) in all.iter().enumerate() {
            let user = format!("u{i}-{}", "x".repeat(40 + 7 * i));
            assert_eq!(row.user.as_deref(), Some(&user[..user.len().min(USER_MAX)]));
            assert_eq!(row.login, Some(T0 + i as i64 * HOUR));
            assert_eq!(row.logout, Some(T0 + i as i64 * HOUR + 5));
        }
    }

    #[test]
    fn utf16_databases_and_older_layouts() {
        // An early wtmpdb layout (no ID, a PID column) in a UTF-16 database: columns are
        // found by name, text is decoded.
        let db = bytes_of(&python_db(
            r#"
con = sqlite3.connect(db)
con.execute("PRAGMA encoding='UTF-16be'")
con.execute("CREATE TABLE wtmp(Type INTEGER, User TEXT NOT NULL, PID INTEGER, Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT)")
con.execute("INSERT INTO wtmp VALUES(1,'reboot',0,?,NULL,'~','6.1',NULL)", (T0,))
con.execute("INSERT INTO wtmp VALUES(3,'jürgen',4242,?,?,'tty1','',NULL)", (T0 + 1, T0 + 2))
con.commit()
"#,
        ));
        let all = rows(&db);
        assert_eq!(all[1].user.as_deref(), Some("jürgen"));
        assert_eq!((all[1].login, all[1].logout), (Some(T0 + 1), Some(T0 + 2)));
        assert_eq!(
            previous_boot_verdict(&db, secs(T0 + HOUR)),
            Ok(Some(WtmpVerdict::NoShutdown {
                previous_boot: secs(T0)
            }))
        );
    }

    /// A WAL holding the shutdown: the main file alone would say "no shutdown", so the
    /// reader gives no verdict.
    #[test]
    fn a_pending_wal_gives_no_verdict() {
        let dir = python_db(
            r#"
work = db + ".work"
con = sqlite3.connect(work)
con.execute("PRAGMA journal_mode=WAL")
con.execute(SCHEMA)
con.execute("INSERT INTO wtmp (Type,User,Login,TTY) VALUES(1,'reboot',?,'~')", (T0,))
con.commit()
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.execute("PRAGMA wal_autocheckpoint=0")
con.execute("UPDATE wtmp SET Logout = ? WHERE ID = 1", (T0 + HOUR,))
con.execute("INSERT INTO wtmp (Type,User,Login,TTY) VALUES(1,'reboot',?,'~')", (T0 + 2 * HOUR,))
con.commit()
shutil.copy(work, db)
shutil.copy(work + "-wal", db + "-wal")
os._exit(0)
"#,
        );
        let path = dir.path().join("wtmp.db");
        let main_alone = bytes_of(&dir);
        assert_eq!(
            previous_boot_verdict(&main_alone, secs(T0 + 2 * HOUR)),
            Ok(Some(WtmpVerdict::NoShutdown {
                previous_boot: secs(T0)
            })),
            "the main file alone misses the shutdown"
        );
        assert!(std::fs::metadata(sidecar(&path, "-wal")).unwrap().len() > 0);
        let err = read_verdict(&path, secs(T0 + 2 * HOUR)).unwrap_err();
        assert!(matches!(err, ReadError::Pending { .. }), "{err}");
        assert!(err.to_string().contains("wtmp.db-wal"), "{err}");
        // An empty WAL (checkpointed and truncated) holds nothing: the file decides.
        std::fs::write(sidecar(&path, "-wal"), b"").unwrap();
        assert!(read_verdict(&path, secs(T0 + 2 * HOUR)).unwrap().is_some());
        // A hot rollback journal: the main file may be half-written.
        let mut journal = JOURNAL_MAGIC.to_vec();
        journal.extend([0u8; 504]);
        std::fs::write(sidecar(&path, "-journal"), &journal).unwrap();
        assert!(matches!(
            read_verdict(&path, secs(T0 + 2 * HOUR)),
            Err(ReadError::Pending { .. })
        ));
        // A journal whose header was zeroed (committed in PERSIST mode) is not hot.
        std::fs::write(sidecar(&path, "-journal"), [0u8; 512]).unwrap();
        assert!(read_verdict(&path, secs(T0 + 2 * HOUR)).unwrap().is_some());
    }

    #[test]
    fn a_missing_database_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_verdict(&dir.path().join("wtmp.db"), 1.0).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn truncated_files_are_errors_never_panics() {
        let db = bytes_of(&python_db(
            r#"
con = sqlite3.connect(db)
con.execute(SCHEMA)
for i in range(400):
    con.execute("INSERT INTO wtmp (Type,User,Login,Logout,TTY) VALUES(?,?,?,?,?)", (1 if i % 9 == 0 else 3, "u%d" % i, T0 + i, T0 + i + 1, "~"))
con.commit()
"#,
        ));
        let half = &db[..db.len() / 2];
        assert!(matches!(
            for_each_row(half, |_| {}),
            Err(WtmpdbError::Truncated { .. })
        ));
        assert_eq!(
            previous_boot_verdict(&db[..60], 1.0),
            Err(WtmpdbError::NotSqlite)
        );
        // Every cut, with the header's page count cleared so the file size decides.
        for cut in (0..db.len()).step_by(97) {
            let mut short = db[..cut].to_vec();
            if short.len() >= 32 {
                short[28..32].fill(0);
            }
            let _ = previous_boot_verdict(&short, 1.0);
        }
    }

    #[test]
    fn garbage_cycles_and_bad_page_numbers_are_errors() {
        assert_eq!(for_each_row(b"", |_| {}), Err(WtmpdbError::NotSqlite));
        let mut noise = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..8192 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.push(x as u8);
        }
        assert_eq!(for_each_row(&noise, |_| {}), Err(WtmpdbError::NotSqlite));
        let mut fake = MAGIC.to_vec();
        fake.extend_from_slice(&noise[16..]);
        assert!(for_each_row(&fake, |_| {}).is_err());

        let db = bytes_of(&python_db(
            r#"
con = sqlite3.connect(db)
con.execute(SCHEMA)
for i in range(400):
    con.execute("INSERT INTO wtmp (Type,User,Login,TTY) VALUES(3,?,?,'pts/0')", ("u%d" % i, T0 + i))
con.commit()
"#,
        ));
        let page_size = usize::from(u16::from_be_bytes([db[16], db[17]]));
        let root = Database::open(&db).unwrap().wtmp_table().unwrap().0;
        let root_at = (root as usize - 1) * page_size;
        assert_eq!(db[root_at], 0x05);
        // The root's right-most child pointing back at the root: a cycle.
        let mut cycle = db.clone();
        cycle[root_at + 8..root_at + 12].copy_from_slice(&root.to_be_bytes());
        assert_eq!(
            for_each_row(&cycle, |_| {}),
            Err(WtmpdbError::PageRevisited(root))
        );
        // A child past the end of the file.
        let mut out_of_range = db.clone();
        out_of_range[root_at + 8..root_at + 12].copy_from_slice(&999_999u32.to_be_bytes());
        assert_eq!(
            for_each_row(&out_of_range, |_| {}),
            Err(WtmpdbError::PageOutOfRange(999_999))
        );
        // No wtmp table: a database of something else.
        let other = bytes_of(&python_db(
            "con = sqlite3.connect(db)\ncon.execute('CREATE TABLE t(x)')\ncon.commit()\n",
        ));
        assert_eq!(for_each_row(&other, |_| {}), Err(WtmpdbError::NoTable));
        // Columns of interest placed far out: refused, so no schema makes a row costly.
        let wide = bytes_of(&python_db(
            "con = sqlite3.connect(db)\ncon.execute('CREATE TABLE wtmp(%s, Type, User, Login, Logout)' % ', '.join('c%d' % i for i in range(70)))\ncon.commit()\n",
        ));
        assert_eq!(
            for_each_row(&wide, |_| {}),
            Err(WtmpdbError::ColumnTooFar("Type"))
        );
    }

    #[test]
    fn varints_records_and_column_names() {
        assert_eq!(varint(&[0x05]), Some((5, 1)));
        assert_eq!(varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(varint(&[0xff; 9]), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81]), None);
        assert_eq!(be_int(&[0xff, 0xfe]), -2);
        assert_eq!(be_int(&[0x01, 0x00, 0x00]), 65536);
        // Header of 4 bytes: NULL, 1-byte int, text of 2 bytes; then the body.
        let payload = [4, 0, 1, 17, 42, b'h', b'i'];
        assert_eq!(
            record(&payload, 4),
            Ok(vec![Value::Null, Value::Int(42), Value::Text(b"hi")])
        );
        assert_eq!(
            record(&[4, 0, 1, 17, 42, b'h'], 3).unwrap()[2],
            Value::Missing
        );
        assert!(record(&[9, 0], 1).is_err());
        assert_eq!(
            column_names("CREATE TABLE wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, \"User\" TEXT NOT NULL, [Login] INTEGER, Logout INTEGER CHECK (Logout > 0), TTY TEXT, PRIMARY KEY(ID)) STRICT"),
            ["ID", "Type", "User", "Login", "Logout", "TTY"]
        );
        assert!(column_names("CREATE TABLE wtmp").is_empty());
    }
}
