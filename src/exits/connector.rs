//! The kernel's process-events connector, as bytes: the subscription request oomwatch
//! sends, and the parser of what the kernel sends back. Pure; no socket here.
//!
//! A datagram holds one or more netlink messages (`nlmsghdr`, 16 bytes, host byte order),
//! each carrying a connector message (`cn_msg`, 20 bytes: id, seq, ack, len, flags) whose
//! payload is a `proc_event`: what happened (`what`), on which CPU, when (CLOCK_MONOTONIC
//! nanoseconds), and a union of per-event fields. Layout from `include/uapi/linux/cn_proc.h`
//! and `connector.h`; stable since 2.6.15, with the exit event's parent fields added in
//! 4.18 (zero before). The connector numbers each event with a per-CPU sequence number;
//! `LossCounter` turns gaps in it into the count of events the kernel dropped.

/// `CN_IDX_PROC`, `CN_VAL_PROC`: the process-events connector's id, and its multicast group.
pub const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;

const NLMSG_HEADER: usize = 16;
const CN_MSG_HEADER: usize = 20;
/// `what`, `cpu`, `timestamp_ns`.
const EVENT_HEADER: usize = 16;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const NLMSG_NOOP: u16 = 1;
const NLMSG_OVERRUN: u16 = 4;

const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 0x1;
const PROC_EVENT_EXEC: u32 = 0x2;
const PROC_EVENT_COMM: u32 = 0x200;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// Length of the request built by `listen_request`.
pub const LISTEN_REQUEST_LEN: usize = NLMSG_HEADER + CN_MSG_HEADER + 4;

/// The message that subscribes the sending socket to process events; `port` is the
/// socket's netlink port id. The kernel's acknowledgement carries `ack + 1` (its sequence
/// number is the connector's own).
pub fn listen_request(port: u32, seq: u32, ack: u32) -> [u8; LISTEN_REQUEST_LEN] {
    let mut out = [0u8; LISTEN_REQUEST_LEN];
    out[0..4].copy_from_slice(&(LISTEN_REQUEST_LEN as u32).to_ne_bytes());
    out[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
    // flags 0
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    out[12..16].copy_from_slice(&port.to_ne_bytes());
    let cn = NLMSG_HEADER;
    out[cn..cn + 4].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
    out[cn + 4..cn + 8].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
    out[cn + 8..cn + 12].copy_from_slice(&seq.to_ne_bytes());
    out[cn + 12..cn + 16].copy_from_slice(&ack.to_ne_bytes());
    out[cn + 16..cn + 18].copy_from_slice(&4u16.to_ne_bytes());
    // flags 0
    out[cn + 20..cn + 24].copy_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    out
}

/// One process event. Pids are thread ids, tgids process ids, as the kernel names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcEvent {
    /// The kernel's answer to a subscription request; `err` 0 is success, else an errno.
    Ack {
        err: u32,
    },
    Fork {
        parent_tgid: u32,
        child_pid: u32,
        child_tgid: u32,
    },
    Exec {
        pid: u32,
        tgid: u32,
    },
    /// The thread renamed itself (`prctl(PR_SET_NAME)`, a write to `comm`).
    Comm {
        pid: u32,
        tgid: u32,
        comm: [u8; 16],
    },
    Exit {
        pid: u32,
        tgid: u32,
        /// `task->exit_code`, in wait-status form (see `exit_reason::WaitStatus`).
        exit_code: u32,
        /// The real parent's process id at the exit; 0 on kernels before 4.18.
        parent_tgid: u32,
    },
    /// UID, GID, SID, ptrace, coredump and events of later kernels: not needed here.
    Other {
        what: u32,
    },
}

/// An event with what the connector says around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMessage {
    /// The connector's per-CPU sequence number.
    pub seq: u32,
    /// For an acknowledgement: the request's `ack` plus one.
    pub ack: u32,
    pub cpu: u32,
    /// CLOCK_MONOTONIC nanoseconds when the kernel sent the event.
    pub timestamp_ns: u64,
    pub event: ProcEvent,
}

/// A datagram the parser cannot read. Reading goes on with the next datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("process-events message: {0}")]
    Malformed(&'static str),
    #[error("process-events socket: the kernel reports error {0}")]
    Netlink(i32),
    #[error("process-events socket: the kernel's buffer overran (NLMSG_OVERRUN)")]
    Overrun,
}

/// The messages of one datagram, in order. A malformed message ends the datagram: its
/// length fields cannot be trusted to find the next one.
pub fn parse_datagram(bytes: &[u8]) -> Messages<'_> {
    Messages { rest: bytes }
}

pub struct Messages<'a> {
    rest: &'a [u8],
}

impl Iterator for Messages<'_> {
    type Item = Result<EventMessage, ConnectorError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.len() < NLMSG_HEADER {
                return None;
            }
            let len = u32_at(self.rest, 0) as usize;
            let kind = u16::from_ne_bytes([self.rest[4], self.rest[5]]);
            if len < NLMSG_HEADER || len > self.rest.len() {
                self.rest = &[];
                return Some(Err(ConnectorError::Malformed(
                    "a netlink length runs past the datagram",
                )));
            }
            let body = &self.rest[NLMSG_HEADER..len];
            let aligned = (len + 3) & !3;
            self.rest = self.rest.get(aligned..).unwrap_or(&[]);
            match kind {
                NLMSG_NOOP => continue,
                NLMSG_ERROR => {
                    let errno = body.get(0..4).map_or(0, |b| i32_at(b, 0));
                    if errno == 0 {
                        continue; // an acknowledgement, not an error
                    }
                    // saturating: a forged i32::MIN must not overflow (found by fuzzing).
                    return Some(Err(ConnectorError::Netlink(errno.saturating_neg())));
                }
                NLMSG_OVERRUN => return Some(Err(ConnectorError::Overrun)),
                _ => {}
            }
            let parsed = parse_connector(body);
            if parsed.is_err() {
                self.rest = &[];
            }
            match parsed {
                Ok(Some(message)) => return Some(Ok(message)),
                Ok(None) => continue, // another connector's message
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

fn parse_connector(body: &[u8]) -> Result<Option<EventMessage>, ConnectorError> {
    if body.len() < CN_MSG_HEADER {
        return Err(ConnectorError::Malformed("shorter than a connector header"));
    }
    if u32_at(body, 0) != CN_IDX_PROC || u32_at(body, 4) != CN_VAL_PROC {
        return Ok(None);
    }
    let seq = u32_at(body, 8);
    let ack = u32_at(body, 12);
    let payload_len = u16::from_ne_bytes([body[16], body[17]]) as usize;
    let payload = body
        .get(CN_MSG_HEADER..CN_MSG_HEADER + payload_len)
        .ok_or(ConnectorError::Malformed("a payload runs past its message"))?;
    if payload.len() < EVENT_HEADER + 4 {
        return Err(ConnectorError::Malformed("shorter than a process event"));
    }
    let what = u32_at(payload, 0);
    let cpu = u32_at(payload, 4);
    let timestamp_ns = u64::from_ne_bytes(array_at(payload, 8));
    let data = &payload[EVENT_HEADER..];
    let field = |index: usize| -> Result<u32, ConnectorError> {
        data.get(index * 4..index * 4 + 4)
            .map(|b| u32_at(b, 0))
            .ok_or(ConnectorError::Malformed("a process event is cut short"))
    };
    let event = match what {
        PROC_EVENT_NONE => ProcEvent::Ack { err: field(0)? },
        PROC_EVENT_FORK => ProcEvent::Fork {
            parent_tgid: field(1)?,
            child_pid: field(2)?,
            child_tgid: field(3)?,
        },
        PROC_EVENT_EXEC => ProcEvent::Exec {
            pid: field(0)?,
            tgid: field(1)?,
        },
        PROC_EVENT_COMM => {
            let comm = data
                .get(8..24)
                .ok_or(ConnectorError::Malformed("a comm event is cut short"))?;
            let mut name = [0u8; 16];
            name.copy_from_slice(comm);
            ProcEvent::Comm {
                pid: field(0)?,
                tgid: field(1)?,
                comm: name,
            }
        }
        PROC_EVENT_EXIT => ProcEvent::Exit {
            pid: field(0)?,
            tgid: field(1)?,
            exit_code: field(2)?,
            // Absent (short payload) or zero before 4.18.
            parent_tgid: field(5).unwrap_or(0),
        },
        what => ProcEvent::Other { what },
    };
    Ok(Some(EventMessage {
        seq,
        ack,
        cpu,
        timestamp_ns,
        event,
    }))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(array_at(bytes, at))
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes(array_at(bytes, at))
}

/// `N` bytes at `at`; callers have checked the length, zeros otherwise.
fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(slice) = bytes.get(at..at + N) {
        out.copy_from_slice(slice);
    }
    out
}

/// The comm of a comm event, up to its NUL.
pub fn comm_str(comm: &[u8; 16]) -> &[u8] {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    &comm[..end]
}

/// Counts events the kernel dropped, from gaps in the per-CPU sequence numbers.
///
/// An acknowledgement of any listener's subscription takes a number from some CPU's
/// sequence too, but says CPU -1; every listener receives it. Its number is remembered, and
/// a gap it falls in is that much smaller: another program subscribing is no loss.
#[derive(Debug, Default)]
pub struct LossCounter {
    last_seq: Vec<Option<u32>>,
    acks: Vec<u32>,
}

/// Larger jumps are a counter reset or a garbled message, not this many drops.
const MAX_PLAUSIBLE_GAP: u32 = 1 << 24;
const ACKS_KEPT: usize = 64;

impl LossCounter {
    /// Notes an event; returns how many events of that CPU were dropped before it.
    pub fn observe(&mut self, message: &EventMessage) -> u64 {
        if matches!(message.event, ProcEvent::Ack { .. }) {
            if self.acks.len() >= ACKS_KEPT {
                self.acks.remove(0);
            }
            self.acks.push(message.seq);
            return 0;
        }
        let cpu = message.cpu as usize;
        if cpu >= 65_536 {
            return 0;
        }
        if self.last_seq.len() <= cpu {
            self.last_seq.resize(cpu + 1, None);
        }
        let Some(previous) = self.last_seq[cpu].replace(message.seq) else {
            return 0;
        };
        let gap = message.seq.wrapping_sub(previous).wrapping_sub(1);
        if gap == 0 || gap >= MAX_PLAUSIBLE_GAP {
            return 0;
        }
        // Acknowledgements numbered inside the gap explain that much of it.
        let before = self.acks.len();
        self.acks
            .retain(|&ack| ack.wrapping_sub(previous).wrapping_sub(1) >= gap);
        let explained = (before - self.acks.len()) as u32;
        u64::from(gap.saturating_sub(explained))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A datagram as the kernel sends it: one netlink message with one event.
    pub(crate) fn event_datagram(seq: u32, cpu: u32, what: u32, fields: &[u32]) -> Vec<u8> {
        let mut payload = Vec::new();
        payload.extend_from_slice(&what.to_ne_bytes());
        payload.extend_from_slice(&cpu.to_ne_bytes());
        payload.extend_from_slice(&123_456_789u64.to_ne_bytes());
        let mut data = [0u8; 24];
        for (i, f) in fields.iter().enumerate() {
            data[i * 4..i * 4 + 4].copy_from_slice(&f.to_ne_bytes());
        }
        payload.extend_from_slice(&data);
        let mut out = Vec::new();
        let len = (NLMSG_HEADER + CN_MSG_HEADER + payload.len()) as u32;
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        out.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&(payload.len() as u16).to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&payload);
        out
    }

    fn events(bytes: &[u8]) -> Vec<Result<EventMessage, ConnectorError>> {
        parse_datagram(bytes).collect()
    }

    #[test]
    fn a_netlink_error_of_i32_min_does_not_overflow() {
        // Found by tests/fuzz.rs: nlmsghdr of type NLMSG_ERROR whose errno is i32::MIN.
        let mut bytes = vec![0u8; 20];
        bytes[0..4].copy_from_slice(&20u32.to_ne_bytes());
        bytes[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        bytes[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
        assert!(matches!(
            events(&bytes).as_slice(),
            [Err(ConnectorError::Netlink(i32::MAX))]
        ));
    }

    #[test]
    fn the_listen_request_has_the_kernels_layout() {
        let request = listen_request(4242, 7, 9);
        assert_eq!(u32_at(&request, 0) as usize, request.len());
        assert_eq!(u32_at(&request, 12), 4242);
        assert_eq!(u32_at(&request, 16), CN_IDX_PROC);
        assert_eq!(u32_at(&request, 20), CN_VAL_PROC);
        assert_eq!(u32_at(&request, 28), 9, "ack");
        assert_eq!(u32_at(&request, 36), 1, "PROC_CN_MCAST_LISTEN");
    }

    #[test]
    fn fork_exec_comm_and_exit_parse() {
        let fork = event_datagram(1, 0, PROC_EVENT_FORK, &[10, 10, 11, 11]);
        let exec = event_datagram(2, 0, PROC_EVENT_EXEC, &[11, 11]);
        let exit = event_datagram(3, 1, PROC_EVENT_EXIT, &[11, 11, 0x0b, 17, 10, 10]);
        let mut comm_fields = vec![11, 11];
        comm_fields.extend(
            b"worker\0\0"
                .chunks(4)
                .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])),
        );
        let comm = event_datagram(4, 0, PROC_EVENT_COMM, &comm_fields);
        let mut all = fork.clone();
        all.extend_from_slice(&exec);
        let parsed = events(&all);
        assert_eq!(parsed.len(), 2, "two messages in one datagram");
        assert_eq!(
            parsed[0].as_ref().map(|m| m.event),
            Ok(ProcEvent::Fork {
                parent_tgid: 10,
                child_pid: 11,
                child_tgid: 11
            })
        );
        assert_eq!(
            parsed[1].as_ref().map(|m| m.event),
            Ok(ProcEvent::Exec { pid: 11, tgid: 11 })
        );
        let exit = events(&exit);
        let exit = exit[0].as_ref().expect("exit");
        assert_eq!(exit.cpu, 1);
        assert_eq!(exit.timestamp_ns, 123_456_789);
        assert_eq!(
            exit.event,
            ProcEvent::Exit {
                pid: 11,
                tgid: 11,
                exit_code: 0x0b,
                parent_tgid: 10
            }
        );
        match events(&comm)[0].as_ref().map(|m| m.event) {
            Ok(ProcEvent::Comm { comm, .. }) => assert_eq!(comm_str(&comm), b"worker"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_and_garbled_datagrams_are_errors_not_panics() {
        let exit = event_datagram(3, 0, PROC_EVENT_EXIT, &[11, 11, 0, 17, 10, 10]);
        for cut in 0..exit.len() {
            for item in parse_datagram(&exit[..cut]) {
                assert!(item.is_err(), "cut at {cut}");
            }
        }
        let mut bad = exit.clone();
        bad[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert!(matches!(
            events(&bad)[..],
            [Err(ConnectorError::Malformed(_))]
        ));
    }

    #[test]
    fn other_connectors_and_noops_are_skipped() {
        let mut other = event_datagram(1, 0, PROC_EVENT_FORK, &[1, 1, 2, 2]);
        other[NLMSG_HEADER..NLMSG_HEADER + 4].copy_from_slice(&7u32.to_ne_bytes());
        assert!(events(&other).is_empty());
    }

    #[test]
    fn per_cpu_gaps_count_dropped_events() {
        let mut loss = LossCounter::default();
        let message = |seq, cpu| EventMessage {
            seq,
            ack: 0,
            cpu,
            timestamp_ns: 0,
            event: ProcEvent::Other { what: 4 },
        };
        assert_eq!(loss.observe(&message(10, 0)), 0);
        assert_eq!(loss.observe(&message(500, 1)), 0);
        assert_eq!(loss.observe(&message(11, 0)), 0);
        assert_eq!(loss.observe(&message(15, 0)), 3);
        assert_eq!(loss.observe(&message(501, 1)), 0);
        assert_eq!(loss.observe(&message(u32::MAX, 2)), 0);
        assert_eq!(loss.observe(&message(1, 2)), 1, "wraps");
        // Another program's subscription took number 16 on CPU 0: no loss there.
        let ack = EventMessage {
            event: ProcEvent::Ack { err: 0 },
            cpu: u32::MAX,
            ..message(16, 0)
        };
        assert_eq!(loss.observe(&ack), 0);
        assert_eq!(loss.observe(&message(17, 0)), 0);
        assert_eq!(loss.observe(&message(20, 0)), 2);
    }
}
