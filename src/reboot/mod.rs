//! Reboots and whether each one was expected.
//!
//! A reboot is a boot_id different from the one in the state file (btime is never used:
//! it moves when NTP steps the clock). On the first start in a new boot, the previous
//! boot's end is classified from the strongest evidence there is: a pstore record of a
//! panic or oops (`pstore`), the login accounting's shutdown record (`wtmpdb`, the SQLite
//! database where the distribution moved to it, read by `sqlite`, else the legacy `wtmp`
//! file), then the
//! exporter's own clean-stop marker and heartbeat (`history`). `pstore`, `wtmp` and
//! `wtmpdb` are pure parsers plus thin readers; `history` holds the persisted boot
//! history and the decision, without I/O.

pub mod history;
pub mod pstore;
pub mod sqlite;
pub mod wtmp;
pub mod wtmpdb;
