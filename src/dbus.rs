//! The D-Bus system bus, as oomwatch reads it: the connection (zbus, on the tokio runtime
//! of the thread that drives it), systemd's verdict on a unit (`Result`, `NRestarts`, and
//! where systemd 259+ has them `OOMKills` and `ManagedOOMKills`), and systemd-oomd's
//! `Killed(s cgroup, s reason)` signal (`org.freedesktop.oom1.Manager`, systemd 252+).
//! Thin I/O and the pure pieces it needs (a unit's object path, which interface carries
//! its verdict, a property map read into a verdict); must not decide what a kill counts
//! for, nor keep state.

use std::collections::HashMap;

use zbus::zvariant::OwnedValue;
use zbus::{Connection, MatchRule, MessageStream};

/// systemd's well-known bus name and the object every unit hangs under.
const SYSTEMD: &str = "org.freedesktop.systemd1";
const UNIT_PATH_PREFIX: &str = "/org/freedesktop/systemd1/unit/";
/// systemd-oomd's manager interface and its signal.
pub const OOMD_INTERFACE: &str = "org.freedesktop.oom1.Manager";
pub const OOMD_NAME: &str = "org.freedesktop.oom1";
const OOMD_KILLED: &str = "Killed";

/// The bus address: `DBUS_SYSTEM_BUS_ADDRESS` when set, else the system bus socket under
/// the root file system (`--path.rootfs`).
pub fn system_bus_address(env: Option<&str>, socket: &std::path::Path) -> String {
    match env {
        Some(address) if !address.is_empty() => address.to_owned(),
        _ => format!("unix:path={}", socket.display()),
    }
}

/// Connects to the bus at `address` (and says hello).
pub async fn connect(address: &str) -> zbus::Result<Connection> {
    zbus::connection::Builder::address(address)?.build().await
}

/// systemd's verdict on one unit, as far as its version tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitVerdict {
    /// `Result`: `success`, `exit-code`, `signal`, `core-dump`, `oom-kill`, `timeout`, …
    pub result: Option<String>,
    /// `NRestarts` (services, systemd 235+): restarts by `Restart=` since the last start
    /// asked for by hand.
    pub restarts: Option<u32>,
    /// `OOMKills` (systemd 259+): processes of the unit the kernel's OOM killer killed.
    pub oom_kills: Option<u64>,
    /// `ManagedOOMKills` (systemd 259+): kills of the unit by systemd-oomd.
    pub managed_oom_kills: Option<u64>,
}

/// The D-Bus interface that carries a unit's verdict, by its type; None for a type
/// without one (a slice, a target).
pub fn unit_interface(unit: &str) -> Option<&'static str> {
    let (_, kind) = unit.rsplit_once('.')?;
    match kind {
        "service" => Some("org.freedesktop.systemd1.Service"),
        "scope" => Some("org.freedesktop.systemd1.Scope"),
        "socket" => Some("org.freedesktop.systemd1.Socket"),
        "mount" => Some("org.freedesktop.systemd1.Mount"),
        "swap" => Some("org.freedesktop.systemd1.Swap"),
        _ => None,
    }
}

/// A unit's object path: systemd escapes every byte outside `[A-Za-z0-9]`, and a leading
/// digit, as `_xx` (bus_label_escape).
pub fn unit_object_path(unit: &str) -> String {
    let mut path = String::with_capacity(UNIT_PATH_PREFIX.len() + unit.len() * 3);
    path.push_str(UNIT_PATH_PREFIX);
    for (i, byte) in unit.bytes().enumerate() {
        if byte.is_ascii_alphabetic() || (byte.is_ascii_digit() && i > 0) {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("_{byte:02x}"));
        }
    }
    path
}

/// Reads a verdict out of a `GetAll` answer; properties this systemd lacks stay None.
pub fn verdict_of(properties: &HashMap<String, OwnedValue>) -> UnitVerdict {
    let get = |name: &str| properties.get(name);
    UnitVerdict {
        result: get("Result").and_then(|v| String::try_from(v.clone()).ok()),
        restarts: get("NRestarts").and_then(|v| u32::try_from(v).ok()),
        oom_kills: get("OOMKills").and_then(|v| u64::try_from(v).ok()),
        managed_oom_kills: get("ManagedOOMKills").and_then(|v| u64::try_from(v).ok()),
    }
}

/// Asks systemd for one unit's verdict (`org.freedesktop.DBus.Properties.GetAll` on its
/// type's interface). A unit systemd does not know answers with its defaults.
pub async fn unit_verdict(bus: &Connection, unit: &str) -> zbus::Result<UnitVerdict> {
    let Some(interface) = unit_interface(unit) else {
        return Ok(UnitVerdict::default());
    };
    let reply = bus
        .call_method(
            Some(SYSTEMD),
            unit_object_path(unit).as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "GetAll",
            &(interface,),
        )
        .await?;
    let properties: HashMap<String, OwnedValue> = reply.body().deserialize()?;
    Ok(verdict_of(&properties))
}

/// Subscribes to systemd-oomd's `Killed` signal (whether or not systemd-oomd runs now:
/// the bus delivers it once it does).
pub async fn oomd_kills(bus: &Connection) -> zbus::Result<MessageStream> {
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(OOMD_INTERFACE)?
        .member(OOMD_KILLED)?
        .build();
    MessageStream::for_match_rule(rule, bus, Some(256)).await
}

/// A `Killed` signal's cgroup and reason (`memory-pressure`, `memory-used`, …); None for
/// any other message.
pub fn killed(message: &zbus::Message) -> Option<(String, String)> {
    let header = message.header();
    let ours = header
        .interface()
        .is_some_and(|i| i.as_str() == OOMD_INTERFACE)
        && header.member().is_some_and(|m| m.as_str() == OOMD_KILLED);
    if !ours {
        return None;
    }
    message.body().deserialize::<(String, String)>().ok()
}

/// Whether systemd-oomd holds its bus name now.
pub async fn oomd_running(bus: &Connection) -> bool {
    let reply = bus
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "NameHasOwner",
            &(OOMD_NAME,),
        )
        .await;
    reply
        .ok()
        .and_then(|r| r.body().deserialize::<bool>().ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_paths_escape_as_systemd_does() {
        assert_eq!(
            unit_object_path("nginx.service"),
            "/org/freedesktop/systemd1/unit/nginx_2eservice"
        );
        assert_eq!(
            unit_object_path("user@1000.service"),
            "/org/freedesktop/systemd1/unit/user_401000_2eservice"
        );
        assert_eq!(
            unit_object_path("9p-x.scope"),
            "/org/freedesktop/systemd1/unit/_39p_2dx_2escope"
        );
    }

    #[test]
    fn interfaces_by_unit_type() {
        assert_eq!(
            unit_interface("a.service"),
            Some("org.freedesktop.systemd1.Service")
        );
        assert_eq!(
            unit_interface("session-3.scope"),
            Some("org.freedesktop.systemd1.Scope")
        );
        assert_eq!(unit_interface("hogs.slice"), None);
        assert_eq!(unit_interface("tail"), None);
    }

    #[test]
    fn a_verdict_takes_what_this_systemd_has() {
        let mut properties: HashMap<String, OwnedValue> = HashMap::new();
        properties.insert(
            "Result".into(),
            OwnedValue::try_from(zbus::zvariant::Value::from("oom-kill")).expect("value"),
        );
        properties.insert("NRestarts".into(), OwnedValue::from(3u32));
        properties.insert("ExecMainStatus".into(), OwnedValue::from(9i32));
        let verdict = verdict_of(&properties);
        assert_eq!(
            verdict,
            UnitVerdict {
                result: Some("oom-kill".into()),
                restarts: Some(3),
                oom_kills: None,
                managed_oom_kills: None,
            }
        );
        properties.insert("OOMKills".into(), OwnedValue::from(2u64));
        properties.insert("ManagedOOMKills".into(), OwnedValue::from(1u64));
        let verdict = verdict_of(&properties);
        assert_eq!(
            (verdict.oom_kills, verdict.managed_oom_kills),
            (Some(2), Some(1))
        );
    }

    #[test]
    fn the_address_comes_from_the_environment_or_the_root() {
        let socket = std::path::Path::new("/host/run/dbus/system_bus_socket");
        assert_eq!(
            system_bus_address(None, socket),
            "unix:path=/host/run/dbus/system_bus_socket"
        );
        assert_eq!(
            system_bus_address(Some("unix:path=/x"), socket),
            "unix:path=/x"
        );
    }
}
