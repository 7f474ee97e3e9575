//! The D-Bus system bus, as oomwatch reads it: the connection (zbus, on the tokio runtime
//! of the thread that drives it), systemd's verdict on a unit (`Result`, `NRestarts`, and
//! where systemd 259+ has them `OOMKills` and `ManagedOOMKills`), and systemd-oomd's
//! `Killed(s cgroup, s reason)` signal (`org.freedesktop.oom1.Manager`, systemd 252+).
//! Thin I/O and the pure pieces it needs (a unit's object path, which interface carries
//! its verdict, a property map read into a verdict, whether a `Killed` signal came from
//! systemd-oomd); must not decide what a kill counts for, nor keep state.
//!
//! Any client of the system bus may send a signal named `Killed` on that interface (the
//! default bus policy lets every user send signals, and a signal addressed to oomwatch's
//! own connection passes any match rule). Only the owner of `org.freedesktop.oom1`
//! (systemd-oomd: the bus policy lets no one else own it) sends the real one, so a
//! signal counts only when its sender, which the bus daemon stamps and no client can set,
//! is that owner's unique name, and its path is systemd-oomd's object. The owner is asked
//! once (`GetNameOwner`) and then followed through the bus driver's `NameOwnerChanged`.

use std::collections::HashMap;

use zbus::zvariant::OwnedValue;
use zbus::{Connection, MatchRule, MessageStream};

/// systemd's well-known bus name and the object every unit hangs under.
const SYSTEMD: &str = "org.freedesktop.systemd1";
const UNIT_PATH_PREFIX: &str = "/org/freedesktop/systemd1/unit/";
/// systemd-oomd's manager interface and its signal.
pub const OOMD_INTERFACE: &str = "org.freedesktop.oom1.Manager";
pub const OOMD_NAME: &str = "org.freedesktop.oom1";
const OOMD_PATH: &str = "/org/freedesktop/oom1";
const OOMD_KILLED: &str = "Killed";
/// The bus driver: its own name is the sender of what the bus itself says.
const BUS_DRIVER: &str = "org.freedesktop.DBus";

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
/// the bus delivers it once it does). The bus delivers only broadcasts from the owner of
/// `org.freedesktop.oom1`; a signal addressed to this connection comes whoever sent it,
/// so each one is still checked with [`killed`].
pub async fn oomd_kills(bus: &Connection) -> zbus::Result<MessageStream> {
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(OOMD_NAME)?
        .path(OOMD_PATH)?
        .interface(OOMD_INTERFACE)?
        .member(OOMD_KILLED)?
        .build();
    MessageStream::for_match_rule(rule, bus, Some(256)).await
}

/// Subscribes to the bus driver's word on who owns `org.freedesktop.oom1`: subscribe
/// before asking [`oomd_owner`], so that no change falls between the two.
pub async fn oomd_owner_changes(bus: &Connection) -> zbus::Result<MessageStream> {
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(BUS_DRIVER)?
        .interface(BUS_DRIVER)?
        .member("NameOwnerChanged")?
        .add_arg(OOMD_NAME)?
        .build();
    MessageStream::for_match_rule(rule, bus, Some(16)).await
}

/// The unique name that owns `org.freedesktop.oom1` now; None when systemd-oomd does
/// not run (or the bus would not say).
pub async fn oomd_owner(bus: &Connection) -> Option<String> {
    let reply = bus
        .call_method(
            Some(BUS_DRIVER),
            "/org/freedesktop/DBus",
            Some(BUS_DRIVER),
            "GetNameOwner",
            &(OOMD_NAME,),
        )
        .await
        .ok()?;
    reply.body().deserialize::<String>().ok()
}

/// The new owner of `org.freedesktop.oom1` when `message` is the bus driver's
/// `NameOwnerChanged` for it (`Some(None)`: nobody owns it now); None for any other
/// message, including one a client sent under that name.
pub fn oomd_owner_change(message: &zbus::Message) -> Option<Option<String>> {
    let header = message.header();
    let from_driver = header.sender().is_some_and(|s| s.as_str() == BUS_DRIVER)
        && header
            .member()
            .is_some_and(|m| m.as_str() == "NameOwnerChanged");
    if !from_driver {
        return None;
    }
    let (name, _old, new) = message
        .body()
        .deserialize::<(String, String, String)>()
        .ok()?;
    (name == OOMD_NAME).then(|| (!new.is_empty()).then_some(new))
}

/// A `Killed` signal: the cgroup systemd-oomd killed and why (`memory-pressure`,
/// `memory-used`, …), and whether it really came from systemd-oomd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KilledSignal {
    pub cgroup: String,
    pub reason: String,
    /// Sent by the owner of `org.freedesktop.oom1`, from its object; false for a signal
    /// any other bus client sent: never a kill.
    pub authentic: bool,
    /// The sender's unique name, for the log line about a forged signal.
    pub sender: String,
}

/// The `Killed` signal in `message`, checked against `owner` (the unique name that owns
/// `org.freedesktop.oom1`); None for any other message.
pub fn killed(message: &zbus::Message, owner: Option<&str>) -> Option<KilledSignal> {
    let header = message.header();
    let ours = header
        .interface()
        .is_some_and(|i| i.as_str() == OOMD_INTERFACE)
        && header.member().is_some_and(|m| m.as_str() == OOMD_KILLED);
    if !ours {
        return None;
    }
    let (cgroup, reason) = message.body().deserialize::<(String, String)>().ok()?;
    let sender = header.sender().map(|s| s.as_str().to_owned());
    let path = header.path().map(|p| p.as_str());
    Some(KilledSignal {
        cgroup,
        reason,
        authentic: from_oomd(sender.as_deref(), path, owner),
        sender: sender.unwrap_or_default(),
    })
}

/// Whether a signal with this sender and path is systemd-oomd's: the sender is the
/// current owner of its name (a unique name, stamped by the bus) and the path its object.
pub fn from_oomd(sender: Option<&str>, path: Option<&str>, owner: Option<&str>) -> bool {
    matches!((sender, owner), (Some(sender), Some(owner)) if sender == owner)
        && path == Some(OOMD_PATH)
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
    fn only_the_owner_of_oomds_name_sends_its_kills() {
        let path = Some("/org/freedesktop/oom1");
        assert!(from_oomd(Some(":1.7"), path, Some(":1.7")));
        // Another client, even while systemd-oomd runs.
        assert!(!from_oomd(Some(":1.42"), path, Some(":1.7")));
        // Nobody owns the name: nothing is systemd-oomd's.
        assert!(!from_oomd(Some(":1.42"), path, None));
        assert!(!from_oomd(None, path, None));
        // The owner, from another object.
        assert!(!from_oomd(Some(":1.7"), Some("/x"), Some(":1.7")));
        assert!(!from_oomd(Some(":1.7"), None, Some(":1.7")));
    }

    fn signal(
        sender: &str,
        path: &str,
        interface: &str,
        member: &str,
        body: &(impl serde::Serialize + zbus::zvariant::DynamicType),
    ) -> zbus::Message {
        zbus::Message::signal(path, interface, member)
            .expect("header")
            .sender(sender)
            .expect("sender")
            .build(body)
            .expect("message")
    }

    #[test]
    fn a_killed_signal_is_read_and_checked_against_the_owner() {
        let body = ("/system.slice/web.service", "memory-pressure");
        let real = signal(":1.7", OOMD_PATH, OOMD_INTERFACE, "Killed", &body);
        let seen = killed(&real, Some(":1.7")).expect("a Killed signal");
        assert_eq!(
            (seen.cgroup.as_str(), seen.reason.as_str(), seen.authentic),
            ("/system.slice/web.service", "memory-pressure", true)
        );
        // Another client, sending the same signal from the same path.
        let forged = signal(":1.42", OOMD_PATH, OOMD_INTERFACE, "Killed", &body);
        let seen = killed(&forged, Some(":1.7")).expect("still a Killed signal");
        assert!(!seen.authentic);
        assert_eq!(seen.sender, ":1.42");
        // Not a Killed signal at all.
        let other = signal(":1.7", OOMD_PATH, OOMD_INTERFACE, "Other", &body);
        assert_eq!(killed(&other, Some(":1.7")), None);
    }

    #[test]
    fn only_the_bus_driver_says_who_owns_the_name() {
        let gained = ("org.freedesktop.oom1", "", ":1.9");
        let lost = ("org.freedesktop.oom1", ":1.9", "");
        let member = "NameOwnerChanged";
        let message = signal(
            BUS_DRIVER,
            "/org/freedesktop/DBus",
            BUS_DRIVER,
            member,
            &gained,
        );
        assert_eq!(oomd_owner_change(&message), Some(Some(":1.9".into())));
        let message = signal(
            BUS_DRIVER,
            "/org/freedesktop/DBus",
            BUS_DRIVER,
            member,
            &lost,
        );
        assert_eq!(oomd_owner_change(&message), Some(None));
        // A client's copy of the driver's signal changes nothing.
        let forged = signal(
            ":1.42",
            "/org/freedesktop/DBus",
            BUS_DRIVER,
            member,
            &gained,
        );
        assert_eq!(oomd_owner_change(&forged), None);
        // Another name's owner.
        let other = ("org.example.x", "", ":1.5");
        let message = signal(
            BUS_DRIVER,
            "/org/freedesktop/DBus",
            BUS_DRIVER,
            member,
            &other,
        );
        assert_eq!(oomd_owner_change(&message), None);
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
