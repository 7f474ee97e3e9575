//! Why a process ended, in the bounded vocabulary of `oomwatch_group_exits_total{reason}`,
//! from the kernel's wait status and whether the kernel log named it as an OOM victim.
//! Pure.

use serde::{Deserialize, Serialize};

/// How an instance ended. The label values are the contract with alerts and dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// Killed by the kernel's OOM killer (SIGKILL, and the kernel log names the pid).
    OomKilled,
    /// SIGKILL from anything else (a user, a watchdog, systemd's final kill).
    Killed,
    /// SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT, core dumped or not.
    Crashed,
    /// SIGTERM, SIGINT, SIGHUP or SIGQUIT: asked to stop; or SIGPIPE: its reader went
    /// away (the usual end of a pipeline's producer).
    Terminated,
    OtherSignal,
    ExitedOk,
    ExitedError,
    /// Gone between two scans with no exit event to say how (no process-events
    /// connector, or its events were lost).
    Unknown,
}

impl ExitReason {
    pub const ALL: [ExitReason; 8] = [
        ExitReason::OomKilled,
        ExitReason::Killed,
        ExitReason::Crashed,
        ExitReason::Terminated,
        ExitReason::OtherSignal,
        ExitReason::ExitedOk,
        ExitReason::ExitedError,
        ExitReason::Unknown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ExitReason::OomKilled => "oom_killed",
            ExitReason::Killed => "killed",
            ExitReason::Crashed => "crashed",
            ExitReason::Terminated => "terminated",
            ExitReason::OtherSignal => "other_signal",
            ExitReason::ExitedOk => "exited_ok",
            ExitReason::ExitedError => "exited_error",
            ExitReason::Unknown => "unknown",
        }
    }

    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.label() == label)
    }

    /// Whether this end makes a group worth series: a death by a signal nobody asked for
    /// (OOM kill, kill, crash, another fatal signal), or a non-zero exit of an instance
    /// that lived `MIN_SERVICE_SECS` (a command that fails at once, `grep` finding
    /// nothing, is a command, not a crashed service).
    pub fn promotes(self, lived_secs: Option<f64>) -> bool {
        match self {
            ExitReason::ExitedError => lived_secs.is_some_and(|l| l >= MIN_SERVICE_SECS),
            other => other.is_abnormal(),
        }
    }

    /// An end nobody asked for: killed (by the OOM killer or anyone), a crash, another
    /// fatal signal, or a non-zero exit. A new instance after one is a restart.
    pub fn is_abnormal(self) -> bool {
        matches!(
            self,
            ExitReason::OomKilled
                | ExitReason::Killed
                | ExitReason::Crashed
                | ExitReason::OtherSignal
                | ExitReason::ExitedError
        )
    }
}

/// A non-zero exit of an instance younger than this is a command failing, not a service
/// crashing: it makes no automatic group useful and no restart of one.
pub const MIN_SERVICE_SECS: f64 = 1.0;

const SIGHUP: u8 = 1;
const SIGINT: u8 = 2;
const SIGQUIT: u8 = 3;
const SIGILL: u8 = 4;
const SIGABRT: u8 = 6;
const SIGBUS: u8 = 7;
const SIGFPE: u8 = 8;
pub const SIGKILL: u8 = 9;
const SIGSEGV: u8 = 11;
const SIGPIPE: u8 = 13;
const SIGTERM: u8 = 15;

/// `task->exit_code` as the exit event carries it: a wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitStatus {
    Exited { code: u8 },
    Signaled { signal: u8, core_dumped: bool },
}

impl WaitStatus {
    /// Decodes the wait-status form: low 7 bits the signal (0: a normal exit), bit 7 a core
    /// dump, bits 8-15 the exit code.
    pub fn from_exit_code(raw: u32) -> Self {
        let signal = (raw & 0x7f) as u8;
        if signal == 0 {
            WaitStatus::Exited {
                code: ((raw >> 8) & 0xff) as u8,
            }
        } else {
            WaitStatus::Signaled {
                signal,
                core_dumped: raw & 0x80 != 0,
            }
        }
    }

    pub fn is_sigkill(self) -> bool {
        matches!(
            self,
            WaitStatus::Signaled {
                signal: SIGKILL,
                ..
            }
        )
    }

    /// The reason; `oom_victim` when the kernel log named this process as an OOM victim.
    pub fn reason(self, oom_victim: bool) -> ExitReason {
        match self {
            WaitStatus::Exited { code: 0 } => ExitReason::ExitedOk,
            WaitStatus::Exited { .. } => ExitReason::ExitedError,
            WaitStatus::Signaled { signal, .. } => match signal {
                SIGKILL if oom_victim => ExitReason::OomKilled,
                SIGKILL => ExitReason::Killed,
                SIGSEGV | SIGBUS | SIGILL | SIGFPE | SIGABRT => ExitReason::Crashed,
                SIGTERM | SIGINT | SIGHUP | SIGQUIT | SIGPIPE => ExitReason::Terminated,
                _ => ExitReason::OtherSignal,
            },
        }
    }
}

/// The conventional name of a signal number, for logs and the event log.
pub fn signal_name(signal: u8) -> &'static str {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    NAMES.get(usize::from(signal)).copied().unwrap_or("SIGRT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_decode_as_waitpid_does() {
        assert_eq!(
            WaitStatus::from_exit_code(0),
            WaitStatus::Exited { code: 0 }
        );
        assert_eq!(
            WaitStatus::from_exit_code(3 << 8),
            WaitStatus::Exited { code: 3 }
        );
        assert_eq!(
            WaitStatus::from_exit_code(11 | 0x80),
            WaitStatus::Signaled {
                signal: 11,
                core_dumped: true
            }
        );
        assert_eq!(
            WaitStatus::from_exit_code(9),
            WaitStatus::Signaled {
                signal: 9,
                core_dumped: false
            }
        );
    }

    #[test]
    fn every_reason_is_reachable_and_labels_round_trip() {
        let cases = [
            (0, false, ExitReason::ExitedOk),
            (1 << 8, false, ExitReason::ExitedError),
            (9, true, ExitReason::OomKilled),
            (9, false, ExitReason::Killed),
            (11, false, ExitReason::Crashed),
            (6 | 0x80, false, ExitReason::Crashed),
            (15, false, ExitReason::Terminated),
            (1, false, ExitReason::Terminated),
            (10, false, ExitReason::OtherSignal),
            // The kernel log naming a pid that exited normally does not make it a victim.
            (0, true, ExitReason::ExitedOk),
        ];
        for (raw, oom, want) in cases {
            assert_eq!(
                WaitStatus::from_exit_code(raw).reason(oom),
                want,
                "{raw:#x}"
            );
        }
        for reason in ExitReason::ALL {
            assert_eq!(ExitReason::from_label(reason.label()), Some(reason));
        }
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(40), "SIGRT");
    }
}
