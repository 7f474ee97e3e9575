//! Bounds that more than one layer must agree on: how many connections the server holds
//! at once, and so how many descriptors the process scan must leave free for them. Owns
//! the numbers and their reasons; must not enforce them (the server and the scan do).

/// Connections served at once at most (fewer under a low open-file limit); beyond it the
/// longest-idle connection is closed to make room, and a new one is refused only when all
/// are busy. Each costs a task and, with TLS, about 16 KiB of buffers.
pub const MAX_CONNECTIONS: usize = 4096;

/// Descriptors kept for everything but connections and pinned processes: the state
/// directory, the kernel log, the netlink socket, the listeners, a scan's open files.
pub const OTHER_DESCRIPTORS: u64 = 1024;

/// Descriptors the process scan leaves free of pins: every connection, and the reserve
/// for the rest.
pub const RESERVED_DESCRIPTORS: u64 = MAX_CONNECTIONS as u64 + OTHER_DESCRIPTORS;
