//! The process-events listener: a thread that subscribes to the kernel's process-events
//! connector (netlink, `NETLINK_CONNECTOR`, group `CN_IDX_PROC`), names every live process
//! once from /proc, then follows fork, exec, comm and exit events and queues each
//! top-level exit for the next scan.
//!
//! The socket's receive buffer is raised for bursts (`SO_RCVBUFFORCE`, else `SO_RCVBUF`
//! up to `net.core.rmem_max`). Events the kernel drops are counted from the connector's
//! per-CPU sequence gaps (ENOBUFS says it happened; the gaps say how many), and after a
//! loss the tracker is reconciled with /proc so it forgets processes whose exit it missed.
//! Subscribing needs the host's initial user, pid and network namespaces, and on kernels
//! older than 6.6 CAP_NET_ADMIN; without them the thread says once what is missing, keeps
//! `oomwatch_exit_events_up` at 0 (scans then infer exits as `unknown`), and retries.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::sockopt::{set_socket_recv_buffer_size, set_socket_recv_buffer_size_force};
use rustix::net::{
    bind, getsockname, recv, sendto, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags,
    SocketType,
};

use super::connector::{
    listen_request, parse_datagram, EventMessage, LossCounter, ProcEvent, CN_IDX_PROC,
};
use super::namer::ProcfsNamer;
use super::tracker::{Outcome, ProcessTracker};
use super::{ExitsShared, LostCause};
use crate::groups::GroupRules;

/// Receive buffer asked for: about 10k events of bursts between two reads.
const RECEIVE_BUFFER_BYTES: usize = 8 << 20;
/// How long the kernel has to acknowledge the subscription.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
const RETRY_DELAY: Duration = Duration::from_secs(60);
/// Reconciling with /proc after a loss happens at most this often.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(30);
const DATAGRAM_BUFFER: usize = 64 * 1024;
/// The subscription's `ack` field; the kernel's acknowledgement carries it plus one, which
/// tells it from the acknowledgements of other programs' subscriptions.
const REQUEST_ACK: u32 = 0x6f6f_6d77;
/// The listener thread's nice value (where allowed): ahead of ordinary work, far from
/// real-time.
const LISTENER_NICE: i32 = -10;

pub struct Listener {
    pub procfs: PathBuf,
    pub rules: GroupRules,
    pub shared: Arc<ExitsShared>,
}

/// Why the listener cannot run now; the message says what to grant or change.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error("the kernel has no process-events connector (CONFIG_PROC_EVENTS): {0}")]
    NoConnector(Errno),
    #[error("this kernel lets only CAP_NET_ADMIN listen to process events (grant it, or run as root): {0}")]
    Permission(Errno),
    #[error("the process-events connector exists only in the host's initial network namespace: run oomwatch there (hostNetwork in Kubernetes)")]
    NotHostNetwork,
    #[error("the process-events connector did not answer: oomwatch must run in the host's initial user and pid namespaces (hostPID in Kubernetes)")]
    NoAnswer,
    #[error("the process-events connector refused the subscription with error {0}")]
    Refused(u32),
    #[error("process-events socket: {0}")]
    Socket(Errno),
    #[error("cannot open {path} to name processes: {source}")]
    Procfs {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Listener {
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("proc-events".into())
            .spawn(move || self.run())
    }

    fn run(self) {
        // A process can exec and be reaped within a millisecond; the sooner this thread
        // runs after an exec, the fewer programs go unnamed. Needs CAP_SYS_NICE; without
        // it the thread keeps the default priority.
        let raised =
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), LISTENER_NICE);
        tracing::debug!(
            nice = LISTENER_NICE,
            raised = raised.is_ok(),
            "process-events thread priority"
        );
        let mut reported: Option<String> = None;
        loop {
            let result = self.follow();
            self.shared.set_up(false);
            if let Err(e) = result {
                let message = e.to_string();
                if reported.as_deref() != Some(message.as_str()) {
                    tracing::warn!(error = %message,
                        "exit reasons unavailable: exits are inferred from scans with reason \"unknown\"; oomwatch_exit_events_up is 0");
                    reported = Some(message);
                }
            }
            std::thread::sleep(RETRY_DELAY);
        }
    }

    /// Subscribes, names every process, then handles events until a fatal socket error.
    fn follow(&self) -> Result<(), ListenError> {
        let socket = subscribe()?;
        let namer = ProcfsNamer::open(&self.procfs, self.rules.clone()).map_err(|source| {
            ListenError::Procfs {
                path: self.procfs.clone(),
                source,
            }
        })?;
        let mut session = Session::new(&self.shared, namer);
        self.shared.set_up(true);
        tracing::info!(
            processes = session.tracker.len(),
            "following process events: exits are classified as they happen"
        );
        let mut buf = vec![0u8; DATAGRAM_BUFFER];
        loop {
            match recv(&socket, &mut buf[..], RecvFlags::DONTWAIT) {
                Ok((0, _)) => {}
                Ok((n, _)) => session.datagram(&buf[..n]),
                Err(Errno::AGAIN) => {
                    session.idle();
                    wait_readable(&socket)?;
                }
                Err(Errno::NOBUFS) => session.overflowed(),
                Err(Errno::INTR) => {}
                Err(errno) => return Err(ListenError::Socket(errno)),
            }
        }
    }
}

/// One subscription: the process table and what was lost since it was last made whole.
struct Session<'s> {
    shared: &'s ExitsShared,
    tracker: ProcessTracker,
    namer: ProcfsNamer,
    pids: Vec<u32>,
    losses: LossCounter,
    lost_since_reconcile: bool,
    reconciled_at: Instant,
    overflow_logged: Option<Instant>,
}

impl<'s> Session<'s> {
    /// Starts with every process in /proc named.
    fn new(shared: &'s ExitsShared, namer: ProcfsNamer) -> Self {
        let mut session = Self {
            shared,
            tracker: ProcessTracker::default(),
            namer,
            pids: Vec::new(),
            losses: LossCounter::default(),
            lost_since_reconcile: false,
            reconciled_at: Instant::now(),
            overflow_logged: None,
        };
        reconcile(&mut session.tracker, &mut session.namer, &mut session.pids);
        session
    }

    /// Handles every event of one datagram.
    fn datagram(&mut self, bytes: &[u8]) {
        let mut handled = 0u64;
        let to_boottime = crate::clock::boottime_offset_ns();
        for message in parse_datagram(bytes) {
            match message {
                Ok(message) => {
                    handled += 1;
                    self.event(&message, to_boottime);
                }
                Err(e) => tracing::debug!(error = %e, "skipping a process-events message"),
            }
        }
        self.shared.count_events(handled);
    }

    fn event(&mut self, message: &EventMessage, to_boottime: i64) {
        let dropped = self.losses.observe(message);
        if dropped > 0 {
            tracing::debug!(cpu = message.cpu, seq = message.seq, dropped, event = ?message.event, "process events missing before this one");
            self.shared.count_lost(LostCause::Dropped, dropped);
            self.shared.renames_lost();
            self.lost_since_reconcile = true;
        }
        let stamp = message.timestamp_ns.saturating_add_signed(to_boottime);
        match self.tracker.handle(&message.event, stamp, &mut self.namer) {
            Outcome::Exit(record) => self.shared.push(record),
            Outcome::Start(record) => self.shared.push_start(record),
            Outcome::UnnamedExit => self.shared.count_lost(LostCause::Unnamed, 1),
            Outcome::UntrackedExit => self.shared.count_lost(LostCause::Untracked, 1),
            Outcome::None => {}
        }
        match message.event {
            ProcEvent::Exec { pid, tgid } | ProcEvent::Comm { pid, tgid, .. } if pid == tgid => {
                self.shared.note_renamed(tgid);
            }
            ProcEvent::Ack { err } => {
                tracing::debug!(err, "process-events acknowledgement");
            }
            _ => {}
        }
    }

    /// Nothing to read: after a loss, names /proc again (at most every interval).
    fn idle(&mut self) {
        if self.lost_since_reconcile && self.reconciled_at.elapsed() >= RECONCILE_INTERVAL {
            reconcile(&mut self.tracker, &mut self.namer, &mut self.pids);
            self.lost_since_reconcile = false;
            self.reconciled_at = Instant::now();
        }
    }

    /// The socket overflowed: the gaps in the next events' sequence numbers count what
    /// was dropped.
    fn overflowed(&mut self) {
        self.shared.renames_lost();
        self.lost_since_reconcile = true;
        if self
            .overflow_logged
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            tracing::warn!("process events arrive faster than oomwatch reads them; the kernel dropped some (counted in oomwatch_exit_events_lost_total, cause dropped)");
            self.overflow_logged = Some(Instant::now());
        }
    }
}

/// Opens the socket, joins the process-events group and waits for the kernel's answer.
fn subscribe() -> Result<OwnedFd, ListenError> {
    let socket = socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::CONNECTOR),
    )
    .map_err(|errno| match errno {
        Errno::PROTONOSUPPORT | Errno::AFNOSUPPORT => ListenError::NoConnector(errno),
        Errno::PERM | Errno::ACCESS => ListenError::Permission(errno),
        errno => ListenError::Socket(errno),
    })?;
    if set_socket_recv_buffer_size_force(&socket, RECEIVE_BUFFER_BYTES).is_err() {
        // Capped by net.core.rmem_max without CAP_NET_ADMIN; still better than the default.
        let _ = set_socket_recv_buffer_size(&socket, RECEIVE_BUFFER_BYTES);
    }
    bind(&socket, &SocketAddrNetlink::new(0, CN_IDX_PROC)).map_err(|errno| match errno {
        Errno::PERM | Errno::ACCESS => ListenError::Permission(errno),
        errno => ListenError::Socket(errno),
    })?;
    let port = getsockname(&socket)
        .ok()
        .and_then(|addr| SocketAddrNetlink::try_from(addr).ok())
        .map_or(0, |addr| addr.pid());
    let request = listen_request(port, 1, REQUEST_ACK);
    sendto(
        &socket,
        &request,
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )
    .map_err(|errno| match errno {
        Errno::PERM | Errno::ACCESS => ListenError::Permission(errno),
        Errno::CONNREFUSED => ListenError::NotHostNetwork,
        errno => ListenError::Socket(errno),
    })?;
    await_ack(&socket)?;
    Ok(socket)
}

/// Waits for the acknowledgement of the subscription; events before it are skipped
/// (every process is named from /proc right after).
fn await_ack(socket: &OwnedFd) -> Result<(), ListenError> {
    let deadline = Instant::now() + ACK_TIMEOUT;
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ListenError::NoAnswer);
        }
        let timeout = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: 2,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(socket, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => return Err(ListenError::NoAnswer),
            Ok(_) | Err(Errno::INTR) => {}
            Err(errno) => return Err(ListenError::Socket(errno)),
        }
        match recv(socket, &mut buf[..], RecvFlags::DONTWAIT) {
            Ok((n, _)) => {
                for message in parse_datagram(&buf[..n]).flatten() {
                    if message.ack != REQUEST_ACK.wrapping_add(1) {
                        continue; // another listener's subscription
                    }
                    match message.event {
                        ProcEvent::Ack { err: 0 } => return Ok(()),
                        ProcEvent::Ack { err } if err == Errno::PERM.raw_os_error() as u32 => {
                            return Err(ListenError::Permission(Errno::PERM))
                        }
                        ProcEvent::Ack { err } => return Err(ListenError::Refused(err)),
                        _ => {}
                    }
                }
            }
            Err(Errno::AGAIN) | Err(Errno::INTR) | Err(Errno::NOBUFS) => {}
            Err(errno) => return Err(ListenError::Socket(errno)),
        }
    }
}

fn wait_readable(socket: &OwnedFd) -> Result<(), ListenError> {
    let mut fds = [PollFd::new(socket, PollFlags::IN)];
    match poll(&mut fds, None) {
        Ok(_) | Err(Errno::INTR) => Ok(()),
        Err(errno) => Err(ListenError::Socket(errno)),
    }
}

/// Names every process in /proc the tracker does not know, and forgets the ones gone.
fn reconcile(tracker: &mut ProcessTracker, namer: &mut ProcfsNamer, pids: &mut Vec<u32>) {
    if let Err(e) = namer.list_pids(pids) {
        tracing::warn!(error = %e, "cannot list processes to name them");
        return;
    }
    tracker.retain_live(pids);
    for &pid in pids.iter() {
        if !tracker.contains(pid) {
            if let Some(named) = super::tracker::Namer::name(namer, pid) {
                tracker.insert(pid, named);
            }
        }
    }
}
