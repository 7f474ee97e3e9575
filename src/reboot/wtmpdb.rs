//! wtmpdb (`/var/lib/wtmpdb/wtmp.db` under `--path.rootfs`): the SQLite database that
//! replaces `/var/log/wtmp` on Debian 13, recent Ubuntu and openSUSE. At each boot
//! `wtmpdb boot` inserts a row of Type 1 (`BOOT_TIME`) with User `reboot` (`soft-reboot`
//! after a systemd soft reboot) and Login set to the boot time; at each clean shutdown
//! `wtmpdb shutdown` sets that row's Logout. A boot row whose Logout is NULL and that a
//! later boot follows (this boot, known by its new boot_id, whether or not its own row
//! is written yet) ended without a clean shutdown: what `wtmpdb last` prints as `crash`.
//! The rows become the same [`WtmpRecord`]s and [`WtmpVerdict`] as the legacy wtmp file.
//!
//! The file is read with `sqlite`, oomwatch's own read-only reader of the file format.
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
//! The wtmpdb facts this rests on, with the sources read: docs/wtmpdb.md.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::sqlite::{column_names, decode_text, integer, record, Database, SqliteError, Value};
use super::wtmp::{self, WtmpKind, WtmpRecord, WtmpVerdict};

/// Where wtmpdb keeps its database on the host (`_PATH_WTMPDB`).
pub const PATH: &str = "/var/lib/wtmpdb/wtmp.db";
/// wtmpdb's `Type` of a boot row (`BOOT_TIME` in `include/wtmpdb.h`).
pub const BOOT_TIME: i64 = 1;
/// User names are cut to this many bytes (Linux allows 32).
const USER_MAX: usize = 256;
/// The columns read must be among the first this many, which bounds the work per row
/// whatever the schema says (wtmpdb's are the 2nd to 5th).
const COLUMNS_MAX: usize = 64;
/// First bytes of a rollback journal's header: the journal holds a transaction that has
/// not been finished or rolled back.
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// Why a file gives no rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WtmpdbError {
    #[error(transparent)]
    File(#[from] SqliteError),
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
    let (root, sql) = file.table("wtmp")?.ok_or(WtmpdbError::NoTable)?;
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
    let mut rows = |rowid, payload: &[u8]| {
        let bad = |what| SqliteError::BadRow { rowid, what };
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
    };
    Ok(file.walk_table(root, &mut rows)?)
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
                (file.page_size(), file.pages() as usize),
                (page_size, db.len() / page_size)
            );
            let root = file.table("wtmp").unwrap().unwrap().0;
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
            Err(WtmpdbError::File(SqliteError::Truncated { .. }))
        ));
        assert_eq!(
            previous_boot_verdict(&db[..60], 1.0),
            Err(WtmpdbError::File(SqliteError::NotSqlite))
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
        assert_eq!(
            for_each_row(b"", |_| {}),
            Err(WtmpdbError::File(SqliteError::NotSqlite))
        );
        let mut noise = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..8192 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.push(x as u8);
        }
        assert_eq!(
            for_each_row(&noise, |_| {}),
            Err(WtmpdbError::File(SqliteError::NotSqlite))
        );
        let mut fake = super::super::sqlite::MAGIC.to_vec();
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
        let root = Database::open(&db)
            .unwrap()
            .table("wtmp")
            .unwrap()
            .unwrap()
            .0;
        let root_at = (root as usize - 1) * page_size;
        assert_eq!(db[root_at], 0x05);
        // The root's right-most child pointing back at the root: a cycle.
        let mut cycle = db.clone();
        cycle[root_at + 8..root_at + 12].copy_from_slice(&root.to_be_bytes());
        assert_eq!(
            for_each_row(&cycle, |_| {}),
            Err(WtmpdbError::File(SqliteError::PageRevisited(root)))
        );
        // A child past the end of the file.
        let mut out_of_range = db.clone();
        out_of_range[root_at + 8..root_at + 12].copy_from_slice(&999_999u32.to_be_bytes());
        assert_eq!(
            for_each_row(&out_of_range, |_| {}),
            Err(WtmpdbError::File(SqliteError::PageOutOfRange(999_999)))
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
}
