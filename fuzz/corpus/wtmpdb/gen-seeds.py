#!/usr/bin/env python3
"""Seeds for the wtmpdb fuzz target (tests/fuzz.rs, fuzz_wtmpdb): SQLite files with
wtmpdb's own table (lib/sqlite.c, add_entry, in github.com/thkukuk/wtmpdb).

    python3 fuzz/corpus/wtmpdb/gen-seeds.py    # rewrites the .db files next to it

boot-crash-512.db: 512-byte pages, so 70 rows make a two-level table b-tree; boots with
and without Logout (a clean shutdown and a crash) among user sessions; one row long
enough to spill to overflow pages. clean-4096.db: the default page size, a few rows.
(This script is itself read as one more, harmless, seed.)
"""
import os
import sqlite3

SCHEMA = ("CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, "
          "User TEXT NOT NULL, Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, "
          "Service TEXT) STRICT;")
INSERT = ("INSERT INTO wtmp (Type,User,Login,Logout,TTY,RemoteHost,Service) "
          "VALUES(?,?,?,?,?,?,?)")
T0 = 1_700_000_000_000_000  # microseconds since the epoch, as wtmpdb writes
HOUR = 3_600_000_000
BOOT_TIME, USER_PROCESS = 1, 3
KERNEL = "6.12.48+deb13-amd64"
here = os.path.dirname(os.path.abspath(__file__))


def make(name, page_size, rows):
    path = os.path.join(here, name)
    if os.path.exists(path):
        os.remove(path)
    con = sqlite3.connect(path)
    con.execute("PRAGMA page_size=%d" % page_size)
    con.execute(SCHEMA)
    con.executemany(INSERT, rows)
    con.commit()
    con.execute("VACUUM")
    con.close()


rows = []
for i in range(70):
    at = T0 + i * HOUR
    if i % 20 == 0:
        # The boot at i=40 has no Logout: the next boot follows a crash.
        logout = None if i in (40, 60) else at + 19 * HOUR + 30_000_000
        rows.append((BOOT_TIME, "reboot", at, logout, "~", KERNEL, None))
    else:
        host = "h" * 700 if i == 33 else "192.0.2.%d" % i
        rows.append((USER_PROCESS, "user%d" % i, at, at + 600_000_000, "pts/%d" % (i % 4),
                     host, "sshd"))
make("boot-crash-512.db", 512, rows)

make("clean-4096.db", 4096, [
    (BOOT_TIME, "reboot", T0, T0 + 5 * HOUR, "~", KERNEL, None),
    (USER_PROCESS, "alice", T0 + HOUR, T0 + 2 * HOUR, "pts/0", "192.0.2.7", "sshd"),
    (BOOT_TIME, "reboot", T0 + 6 * HOUR, None, "~", KERNEL, None),
    (BOOT_TIME, "soft-reboot", T0 + 8 * HOUR, T0 + 9 * HOUR, "~", KERNEL, None),
])
