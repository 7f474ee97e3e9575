//! A small read-only reader of the SQLite 3 file format
//! (<https://www.sqlite.org/fileformat2.html>): the header, table b-tree pages (interior
//! 0x05, leaf 0x0D), varints, record headers and overflow chains; enough to read a table's
//! rows, nothing more. It links no SQLite and must never write, lock or create anything
//! next to the database (it is handed bytes). Input is untrusted and fuzzed: it never
//! panics, reads out of bounds or loops forever. Every page is read at most once per walk
//! (a page reached twice is a cycle or a shared page, an error), so the work is linear in
//! the file size. Why it is hand-written: README, "Why some parts are hand-written".

/// At most this much of a row's payload is assembled from overflow pages.
pub const PAYLOAD_PREFIX_MAX: usize = 64 * 1024;
/// The first 16 bytes of every SQLite 3 database.
pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Why a file is not a readable SQLite database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqliteError {
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
}

/// The value of an INTEGER column; None for NULL and for anything that holds no integer
/// (a STRICT table holds only integers or NULL; an older one may hold a real or text).
pub fn integer(value: Value<'_>) -> Option<i64> {
    match value {
        Value::Int(v) => Some(v),
        Value::Real(v) if v.is_finite() => Some(v as i64),
        Value::Text(raw) => std::str::from_utf8(raw).ok()?.trim().parse().ok(),
        Value::Null | Value::Real(_) | Value::Blob | Value::Missing => None,
    }
}

/// The database's text encoding (header offset 56).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
}

/// A TEXT value as a string of at most `max_bytes` of its bytes, invalid units replaced.
pub fn decode_text(raw: &[u8], encoding: Encoding, max_bytes: usize) -> String {
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
pub enum Value<'a> {
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
pub fn record(payload: &[u8], want: usize) -> Result<Vec<Value<'_>>, &'static str> {
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
pub fn column_names(sql: &str) -> Vec<String> {
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
pub type CellVisitor<'v> = dyn FnMut(i64, &[u8]) -> Result<(), SqliteError> + 'v;

/// A database file being read: its geometry and the pages already read.
pub struct Database<'a> {
    bytes: &'a [u8],
    page_size: usize,
    /// Bytes of each page that hold data (page size minus the reserved tail).
    usable: usize,
    pages: u32,
    /// How TEXT values are encoded.
    pub encoding: Encoding,
    seen: Vec<bool>,
}

impl<'a> Database<'a> {
    /// Checks the header and sizes the file; reads no page yet.
    pub fn open(bytes: &'a [u8]) -> Result<Self, SqliteError> {
        if bytes.len() < 100 || &bytes[..16] != MAGIC {
            return Err(SqliteError::NotSqlite);
        }
        let page_size = match be_u16(bytes, 16).unwrap_or(0) {
            1 => 65536,
            n if n.is_power_of_two() && n >= 512 => usize::from(n),
            _ => return Err(SqliteError::Header("page size")),
        };
        let usable = page_size - usize::from(bytes[20]);
        if usable < 480 {
            return Err(SqliteError::Header("reserved bytes per page"));
        }
        if bytes[21..24] != [64, 32, 32] {
            return Err(SqliteError::Header("payload fractions"));
        }
        let encoding = match be_u32(bytes, 56).unwrap_or(0) {
            0 | 1 => Encoding::Utf8,
            2 => Encoding::Utf16Le,
            3 => Encoding::Utf16Be,
            _ => return Err(SqliteError::Header("text encoding")),
        };
        let have = (bytes.len() / page_size) as u64;
        // The size in the header counts only when written by a version that keeps it
        // (its change counter matches "version-valid-for"); else the file size decides.
        let declared = u64::from(be_u32(bytes, 28).unwrap_or(0));
        let valid = declared > 0 && bytes[24..28] == bytes[92..96];
        let pages = if valid {
            if declared > have {
                return Err(SqliteError::Truncated { have, declared });
            }
            declared
        } else {
            have
        };
        if pages == 0 {
            return Err(SqliteError::Truncated { have, declared });
        }
        let pages = u32::try_from(pages).map_err(|_| SqliteError::Header("page count"))?;
        Ok(Self {
            bytes,
            page_size,
            usable,
            pages,
            encoding,
            seen: vec![false; pages as usize + 1],
        })
    }

    /// Bytes per page.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Pages in the database.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// The usable bytes of page `number`, marked as read; a second read is an error.
    fn take_page(&mut self, number: u32) -> Result<&'a [u8], SqliteError> {
        if number == 0 || number > self.pages {
            return Err(SqliteError::PageOutOfRange(u64::from(number)));
        }
        let seen = self
            .seen
            .get_mut(number as usize)
            .ok_or(SqliteError::PageOutOfRange(u64::from(number)))?;
        if *seen {
            return Err(SqliteError::PageRevisited(number));
        }
        *seen = true;
        let start = (number as usize - 1) * self.page_size;
        let bytes: &'a [u8] = self.bytes;
        bytes
            .get(start..start + self.usable)
            .ok_or(SqliteError::PageOutOfRange(u64::from(number)))
    }

    /// The root page and `CREATE TABLE` text of the table `name`, from sqlite_schema
    /// (the table b-tree rooted at page 1: type, name, tbl_name, rootpage, sql); None
    /// when the database has no such table.
    pub fn table(&mut self, name: &str) -> Result<Option<(u32, String)>, SqliteError> {
        let encoding = self.encoding;
        let mut found = None;
        self.walk_table(1, &mut |rowid, payload| {
            let bad = |what| SqliteError::BadRow { rowid, what };
            let values = record(payload, 5).map_err(bad)?;
            let is = |v: Option<&Value<'_>>, want: &str| {
                matches!(v, Some(Value::Text(raw)) if decode_text(raw, encoding, 64).eq_ignore_ascii_case(want))
            };
            if found.is_none() && is(values.first(), "table") && is(values.get(1), name) {
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
        Ok(found)
    }

    /// Visits every cell of the table b-tree rooted at `root`, in key order, with its
    /// rowid and payload (whole, or its first 64 KiB when it spills to overflow pages).
    pub fn walk_table(
        &mut self,
        root: u32,
        visit: &mut CellVisitor<'_>,
    ) -> Result<(), SqliteError> {
        let mut stack = vec![root];
        while let Some(number) = stack.pop() {
            let page = self.take_page(number)?;
            let malformed = |what| SqliteError::Malformed { page: number, what };
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
            let cell_at = |i: usize| -> Result<&'a [u8], SqliteError> {
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
    fn overflow(&mut self, local: &[u8], size: u64, first: u32) -> Result<Vec<u8>, SqliteError> {
        let want = usize::try_from(size).map_or(PAYLOAD_PREFIX_MAX, |s| s.min(PAYLOAD_PREFIX_MAX));
        let mut payload = local.to_vec();
        let mut next = first;
        while payload.len() < want {
            if next == 0 {
                return Err(SqliteError::Malformed {
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
