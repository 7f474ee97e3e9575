//! The D-Bus thread: connects to the system bus, subscribes to systemd-oomd's `Killed`
//! signal and answers the `systemd` collector's questions about units, on a tokio runtime
//! of its own thread (one thread, no second kind of runtime). Each kill is named (the
//! group the config file's rules or the zero-config name give its cgroup), written to the
//! state file and the event log, then counted for the scrapes. When the bus cannot be
//! reached (no systemd, no /run/dbus in a container) it says so once, keeps both
//! collectors at success 0 and retries every 30 s; the connection ending says so and
//! reconnects. Owns the connection; must not decide what the metrics are.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::subscription::{subscribe, ForgedLog};
use super::{SystemdShared, UnitsRequest};
use crate::dbus::{connect, unit_verdict, UnitVerdict};
use crate::events::{Event, EventKind, EventLog};
use crate::groups::{group_name, GroupRules, ProcessFields};
use crate::kills::shared::KmsgShared;
use crate::state::StateStore;

const RECONNECT_DELAY: Duration = Duration::from_secs(30);
const KILLER: &str = "systemd-oomd";

pub struct BusThread {
    /// The system bus address (`DBUS_SYSTEM_BUS_ADDRESS` or the socket under the root).
    pub address: String,
    pub shared: Arc<SystemdShared>,
    /// Told whether systemd-oomd's kills are received here, so that the kernel log's copy
    /// of them (journald `ForwardToKMsg=yes`) is not counted again.
    pub kmsg: Arc<KmsgShared>,
    pub state: Arc<StateStore>,
    pub events: Arc<EventLog>,
    pub rules: GroupRules,
    /// The `oomd` collector is on: subscribe to the signal.
    pub oomd: bool,
}

impl BusThread {
    /// Starts the thread.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("dbus".into())
            .spawn(move || self.run())
    }

    fn run(self) {
        let Some(mut requests) = self.shared.take_receiver() else {
            tracing::error!("a second D-Bus thread was started; this one stops");
            return;
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the D-Bus thread's runtime; systemd-oomd's kills and systemd's unit verdicts are not available");
                return;
            }
        };
        runtime.block_on(self.serve(&mut requests));
    }

    /// Connects, follows, reconnects: forever.
    /// The collectors say why the bus is missing (each once, through the scan's log of
    /// their errors); this thread logs only at debug, so a host without systemd gets one
    /// clear line per source.
    async fn serve(&self, requests: &mut UnboundedReceiver<UnitsRequest>) {
        loop {
            let why = match connect(&self.address).await {
                Ok(bus) => {
                    let why = self.session(&bus, requests).await;
                    format!("the D-Bus connection to {} ended ({why}); reconnecting every 30 s", self.address)
                }
                Err(e) => format!(
                    "no D-Bus system bus at {} ({e}): no systemd here, or its socket is not visible; retrying every 30 s",
                    self.address
                ),
            };
            tracing::debug!(why = %why, "D-Bus not connected");
            self.shared.set_down(why);
            self.shared.mark_tried();
            self.kmsg.set_oomd_live(false);
            let pause = tokio::time::sleep(RECONNECT_DELAY);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    () = &mut pause => break,
                    request = requests.recv() => match request {
                        Some(request) => {
                            let _ = request.reply.send(Err("not connected to the D-Bus system bus".into()));
                        }
                        None => return,
                    },
                }
            }
        }
    }

    /// One connection: the subscription and the questions, until the bus goes away.
    async fn session(
        &self,
        bus: &zbus::Connection,
        requests: &mut UnboundedReceiver<UnitsRequest>,
    ) -> String {
        let mut kills = if self.oomd {
            match subscribe(bus).await {
                Ok(kills) => Some(kills),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to systemd-oomd's Killed signal; its kills are not available");
                    None
                }
            }
        } else {
            None
        };
        self.shared.set_up(true, kills.is_some());
        self.kmsg.set_oomd_live(kills.is_some());
        self.shared.mark_tried();
        tracing::info!(
            address = %self.address,
            systemd_oomd_running = kills.as_ref().is_some_and(|k| k.oomd_running()),
            subscribed = kills.is_some(),
            "connected to the D-Bus system bus: systemd-oomd's kills and systemd's unit verdicts are read live"
        );
        let mut forged_log = ForgedLog::default();
        loop {
            let next = async {
                match kills.as_mut() {
                    Some(kills) => kills.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                signal = next => match signal {
                    Ok(Some(signal)) if signal.authentic => self.on_kill(&signal.cgroup, &signal.reason),
                    Ok(Some(signal)) => {
                        self.shared.count_forged();
                        forged_log.note(&signal);
                    }
                    Ok(None) => {}
                    Err(why) => return why,
                },
                // Answered on a task of its own, so that a kill is not held up behind a
                // scrape's questions.
                request = requests.recv() => match request {
                    Some(request) => {
                        let bus = bus.clone();
                        tokio::spawn(async move {
                            let answer = verdicts(&bus, &request.units).await;
                            let _ = request.reply.send(answer);
                        });
                    }
                    None => return "the exporter is stopping".into(),
                },
            }
        }
    }

    /// A kill by systemd-oomd: named, persisted and logged, then counted for the scrapes.
    fn on_kill(&self, cgroup: &str, reason: &str) {
        let at = crate::clock::unix_now();
        let process = ProcessFields {
            comm: "",
            cmdline: None,
            cgroup: Some(cgroup),
        };
        let group = group_name(&self.rules, process).0;
        tracing::warn!(killer = KILLER, group = %group, cgroup = %cgroup, reason = %reason, "userspace OOM kill");
        let mut ledger = self.shared.ledger();
        ledger.count(&group, cgroup, reason, at);
        // Durable before served.
        let persisted = ledger.clone();
        self.state.update(|s| s.oomd = persisted);
        let event = Event {
            time: at,
            kind: EventKind::UserspaceKill {
                group,
                killer: KILLER.to_owned(),
                cgroup: cgroup.to_owned(),
                reason: reason.to_owned(),
            },
        };
        if let Err(e) = self.events.append(&[event]) {
            tracing::debug!(error = %e, "the event log keeps the kill pending");
        }
        self.shared.set_ledger(ledger);
    }
}

/// systemd's verdict on each unit, in order; an error only when systemd answered for none
/// of them (the connection is gone).
async fn verdicts(
    bus: &zbus::Connection,
    units: &[String],
) -> Result<Vec<Option<UnitVerdict>>, String> {
    let mut answers = Vec::with_capacity(units.len());
    let mut first_error = None;
    for unit in units {
        match unit_verdict(bus, unit).await {
            Ok(verdict) => answers.push(Some(verdict)),
            Err(e) => {
                tracing::debug!(unit = %unit, error = %e, "systemd did not answer for a unit");
                first_error.get_or_insert_with(|| e.to_string());
                answers.push(None);
            }
        }
    }
    match first_error {
        Some(e) if answers.iter().all(Option::is_none) => Err(e),
        _ => Ok(answers),
    }
}
