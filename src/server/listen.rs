//! Where the server listens: `--web.listen-address` values (`:port` for every interface,
//! `host:port`, `[v6]:port`), parsed once at start. Owns the address forms; must not bind.

use std::net::{SocketAddr, ToSocketAddrs};

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// `:port`: every interface, IPv6 and IPv4 where the host has both.
    AllInterfaces(u16),
    Socket(SocketAddr),
}

impl ListenAddress {
    /// Parses `--web.listen-address`: `:port`, `host:port`, `[v6]:port`; the error is why.
    pub fn parse(value: &str) -> Result<Self, String> {
        if let Some(port) = value.strip_prefix(':') {
            let port = port
                .parse::<u16>()
                .map_err(|_| "the port is not a number from 0 to 65535".to_owned())?;
            return Ok(Self::AllInterfaces(port));
        }
        if let Ok(addr) = value.parse::<SocketAddr>() {
            return Ok(Self::Socket(addr));
        }
        let mut resolved = value
            .to_socket_addrs()
            .map_err(|e| format!("expected host:port or :port ({e})"))?;
        resolved
            .next()
            .map(Self::Socket)
            .ok_or_else(|| "the host name resolves to no address".to_owned())
    }
}
