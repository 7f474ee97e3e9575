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
        if let Some(reason) = unbracketed_ipv6(value) {
            return Err(reason);
        }
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

/// Why an IPv6 address written without brackets (`::1:9721`) cannot be read, with the
/// form to write instead; None for any other value. Neither a host name nor an IPv4
/// address has two colons, so two colons outside brackets are an IPv6 address.
fn unbracketed_ipv6(value: &str) -> Option<String> {
    if value.starts_with('[') || value.matches(':').count() < 2 {
        return None;
    }
    // The last colon most likely parts the address from the port.
    let suggestion = match value.rsplit_once(':') {
        Some((host, port))
            if host.parse::<std::net::Ipv6Addr>().is_ok() && port.parse::<u16>().is_ok() =>
        {
            format!("[{host}]:{port}")
        }
        _ => format!("[{value}]:9721"),
    };
    Some(format!(
        "an IPv6 address needs brackets around it before the port, as in {suggestion}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_parse() {
        assert_eq!(
            ListenAddress::parse(":9721"),
            Ok(ListenAddress::AllInterfaces(9721))
        );
        assert_eq!(
            ListenAddress::parse("127.0.0.1:80"),
            Ok(ListenAddress::Socket(SocketAddr::from((
                [127, 0, 0, 1],
                80
            ))))
        );
        assert_eq!(
            ListenAddress::parse("[::1]:9721"),
            Ok(ListenAddress::Socket("[::1]:9721".parse().expect("v6")))
        );
    }

    #[test]
    fn an_ipv6_address_without_brackets_is_told_to_use_them() {
        for (value, suggestion) in [
            ("::1:9721", "[::1]:9721"),
            ("fe80::1:80", "[fe80::1]:80"),
            ("::1", "[::1]:9721"),
            ("2001:db8::zz", "[2001:db8::zz]:9721"),
            ("::", "[::]:9721"),
        ] {
            let reason = ListenAddress::parse(value).expect_err(value);
            assert!(reason.contains("brackets"), "{value}: {reason}");
            assert!(reason.contains(suggestion), "{value}: {reason}");
        }
        assert!(ListenAddress::parse(":http")
            .expect_err("named port")
            .contains("port is not a number"));
    }
}
