//! systemd-oomd's `Killed` signals as the D-Bus thread reads them: the subscription,
//! whose sender counts as systemd-oomd (the unique name that owns `org.freedesktop.oom1`,
//! asked once and then followed through the bus driver's `NameOwnerChanged`), and the
//! log of forged ones. Owns the order of reading; must not count anything.
//!
//! The streams are never left unread while the bus is asked something: zbus reads the
//! socket in order and waits, rather than drop, when a stream's queue is full, so a bus
//! call awaited in the reading loop while any user floods oomwatch's connection with
//! signals (which the bus delivers whatever the match rules) would wait for ever for a
//! reply queued behind them. The owner is therefore asked again on a task of its own,
//! with a timeout, and the signals that wait for its answer are held, a bounded few.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::dbus::{
    killed, oomd_kills, oomd_owner, oomd_owner_change, oomd_owner_changes, KilledSignal,
};
use crate::logging::LogLimit;

/// Forged `Killed` signals are logged in full at most once per this long.
const FORGED_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// The owner of systemd-oomd's name is asked again at most this often when a `Killed`
/// signal comes from someone else.
const OWNER_REASK: Duration = Duration::from_secs(10);
/// How long the bus may take to say who owns the name.
const OWNER_TIMEOUT: Duration = Duration::from_secs(5);
/// Signals held while the owner is asked again; beyond, they are judged at once.
const MAX_HELD: usize = 16;
/// Bytes of a forged signal's text that are logged.
const FORGED_TEXT_LOGGED: usize = 512;

/// systemd-oomd's `Killed` signals and who sends them for real.
pub struct OomdSubscription {
    bus: zbus::Connection,
    kills: zbus::MessageStream,
    owner_changes: zbus::MessageStream,
    /// The unique name that owns `org.freedesktop.oom1` now.
    owner: Option<String>,
    /// When the bus was last asked for the owner.
    asked_at: Instant,
    /// The bus being asked again, on a task of its own: None inside when it would not say.
    asking: Option<tokio::task::JoinHandle<Option<Option<String>>>>,
    /// Signals from someone else than the owner, waiting for that answer.
    held: Vec<zbus::Message>,
    /// Signals judged, to hand out.
    ready: VecDeque<KilledSignal>,
}

/// Subscribes to the owner's changes first and asks the owner second, so that no change
/// falls between the two. The first answer is awaited (with a timeout): nobody knows
/// this connection's name yet.
pub async fn subscribe(bus: &zbus::Connection) -> zbus::Result<OomdSubscription> {
    let owner_changes = oomd_owner_changes(bus).await?;
    let kills = oomd_kills(bus).await?;
    let owner = tokio::time::timeout(OWNER_TIMEOUT, oomd_owner(bus))
        .await
        .ok()
        .flatten();
    Ok(OomdSubscription {
        bus: bus.clone(),
        kills,
        owner_changes,
        owner,
        asked_at: Instant::now(),
        asking: None,
        held: Vec::new(),
        ready: VecDeque::new(),
    })
}

impl OomdSubscription {
    /// Whether systemd-oomd held its name when last seen.
    pub fn oomd_running(&self) -> bool {
        self.owner.is_some()
    }

    /// The next `Killed` signal, checked against the owner (Ok(None): a message that was
    /// not one, or one held); an error when the connection ended. A change of owner the
    /// bus sent before a signal is always taken first: the bus driver announces
    /// systemd-oomd's new name before systemd-oomd can send anything under it.
    pub async fn next(&mut self) -> Result<Option<KilledSignal>, String> {
        if let Some(signal) = self.ready.pop_front() {
            return Ok(Some(signal));
        }
        let asking = async {
            match self.asking.as_mut() {
                Some(task) => task.await.ok().flatten(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            change = self.owner_changes.next() => match change {
                Some(Ok(message)) => {
                    if let Some(owner) = oomd_owner_change(&message) {
                        tracing::debug!(owner = ?owner, "systemd-oomd's bus name changed owner");
                        self.owner = owner;
                    }
                    Ok(None)
                }
                Some(Err(e)) => Err(e.to_string()),
                None => Err("the bus closed the connection".into()),
            },
            answer = asking => {
                self.asking = None;
                if let Some(owner) = answer {
                    self.owner = owner;
                }
                self.judge_held();
                Ok(self.ready.pop_front())
            }
            message = self.kills.next() => match message {
                Some(Ok(message)) => Ok(self.judge(message)),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("the bus closed the connection".into()),
            },
        }
    }

    /// Checks a `Killed` signal's sender against the owner. One from someone else makes
    /// the bus be asked again (at most every `OWNER_REASK`), in case the owner was never
    /// learnt (a failed `GetNameOwner`): otherwise every real kill would be refused until
    /// systemd-oomd restarts. It waits for that answer, among at most `MAX_HELD`.
    fn judge(&mut self, message: zbus::Message) -> Option<KilledSignal> {
        let signal = killed(&message, self.owner.as_deref())?;
        if signal.authentic {
            return Some(signal);
        }
        if self.asking.is_none() && self.asked_at.elapsed() >= OWNER_REASK {
            let bus = self.bus.clone();
            self.asking = Some(tokio::spawn(async move {
                tokio::time::timeout(OWNER_TIMEOUT, oomd_owner(&bus))
                    .await
                    .ok()
            }));
            self.asked_at = Instant::now();
        }
        if self.asking.is_some() && self.held.len() < MAX_HELD {
            self.held.push(message);
            return None;
        }
        Some(signal)
    }

    /// Judges the held signals against the owner as now known.
    fn judge_held(&mut self) {
        for message in std::mem::take(&mut self.held) {
            if let Some(signal) = killed(&message, self.owner.as_deref()) {
                self.ready.push_back(signal);
            }
        }
    }
}

/// The log of forged `Killed` signals: in full at most once a minute, with how many
/// were not logged since.
pub struct ForgedLog(LogLimit);

impl Default for ForgedLog {
    fn default() -> Self {
        Self(LogLimit::new(FORGED_LOG_INTERVAL))
    }
}

impl ForgedLog {
    pub fn note(&mut self, signal: &KilledSignal) {
        let Some(quiet) = self.0.admit() else {
            return;
        };
        let cut = |text: &str| -> String { text.chars().take(FORGED_TEXT_LOGGED).collect() };
        tracing::warn!(
            sender = %signal.sender,
            cgroup = %cut(&signal.cgroup),
            reason = %cut(&signal.reason),
            not_logged_since = quiet,
            "a Killed signal not sent by systemd-oomd (another bus client sent it): not counted as a kill"
        );
    }
}
