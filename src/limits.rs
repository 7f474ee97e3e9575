//! Bounds that more than one layer must agree on: how many connections the server holds
//! at once, and so how many descriptors the process scan must leave free for them. Owns
//! the numbers and their reasons; must not enforce them (the server and the scan do).

/// Connections served at once; more are closed as soon as they are accepted. Each costs a
/// task and, with TLS, about 16 KiB of buffers, for at most the header timeout when idle.
pub const MAX_CONNECTIONS: usize = 4096;

/// Descriptors the process scan leaves free of pins: every connection, and a reserve for
/// the state directory, the kernel log, the netlink socket and the rest.
pub const RESERVED_DESCRIPTORS: u64 = MAX_CONNECTIONS as u64 + 1024;
