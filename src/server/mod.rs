//! The HTTP server: hyper 1 on tokio, bounded and graceful.
//!
//! Each listener's accepted connections are served by one accept loop that owns the
//! graceful-shutdown watcher; every connection takes a slot (`connections`): at most
//! `limits::MAX_CONNECTIONS` (fewer under a low open-file limit) are open, a connection
//! that has not sent a whole request header is idle and is closed, the longest idle
//! first, to make room for a new one, so a flood of idle connections cannot keep a scrape
//! out; what was closed or refused is logged once a minute with its counts
//! (`refusals`). Every connection has a header-read timeout, and scrapes are capped by
//! `--web.max-requests` (503 beyond, in `handlers`). On SIGTERM or SIGINT the listeners
//! close, connections in flight get `SHUTDOWN_DEADLINE` to finish, then the caller
//! flushes state. Scans run off the reactor (`scrape`). With `--web.config.file`,
//! connections speak TLS (`tls`) and requests need credentials (`auth`), loaded by
//! `security` from the file `web_config` parses.

pub mod auth;
pub mod connections;
pub mod handlers;
pub mod incident;
pub mod listen;
pub mod rate_limit;
pub mod refusals;
pub mod scrape;
pub mod security;
pub mod tls;
pub mod web_config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use connections::{Admitted, Connections, Slot};
use handlers::Handler;
use listen::ListenAddress;
use refusals::{Refusal, RefusalLog, Tally, REPORT_INTERVAL};
use tls::TlsSource;

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections in flight may run on after a shutdown signal.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// Connections the kernel queues before they are accepted (it caps this at
/// `net.core.somaxconn`), as Go servers ask: a burst of connections waits there rather
/// than being dropped and retried a second later.
const LISTEN_BACKLOG: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address} (--web.listen-address): {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// Binds every listen address; an address that cannot be bound fails the start.
pub async fn bind(addresses: &[ListenAddress]) -> Result<Vec<TcpListener>, ServeError> {
    let mut listeners = Vec::with_capacity(addresses.len());
    for address in addresses {
        let listener = match address {
            ListenAddress::Socket(addr) => listen(*addr).map_err(|source| ServeError::Bind {
                address: addr.to_string(),
                source,
            })?,
            ListenAddress::AllInterfaces(port) => {
                // [::] accepts IPv4 too where the host has IPv6; else fall back to 0.0.0.0.
                match listen(SocketAddr::from(([0u16; 8], *port))) {
                    Ok(listener) => listener,
                    Err(_) => listen(SocketAddr::from(([0u8; 4], *port))).map_err(|source| {
                        ServeError::Bind {
                            address: format!(":{port}"),
                            source,
                        }
                    })?,
                }
            }
        };
        listeners.push(listener);
    }
    Ok(listeners)
}

/// A listener on `addr` with the deeper backlog (and SO_REUSEADDR, as std binds).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves until `shutdown` resolves, then drains connections for at most the deadline.
/// With `tls`, every connection must complete a TLS handshake within the header timeout.
pub async fn serve(
    listeners: Vec<TcpListener>,
    handler: Arc<Handler>,
    tls: Option<Arc<TlsSource>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (accepted_tx, mut accepted) = mpsc::channel::<std::io::Result<TcpStream>>(64);
    let accept_tasks: Vec<_> = listeners
        .into_iter()
        .map(|listener| tokio::spawn(accept_loop(listener, accepted_tx.clone())))
        .collect();
    drop(accepted_tx);

    let graceful = GracefulShutdown::new();
    let connections = Connections::new(connections::capacity_for(open_file_limit()));
    let mut refusals = RefusalLog::new(REPORT_INTERVAL);
    let report_timer = tokio::time::sleep(REPORT_INTERVAL);
    tokio::pin!(shutdown, report_timer);
    let mut timer_set_for = None;
    loop {
        let due = refusals.due();
        if let Some(due) = due.filter(|due| timer_set_for != Some(*due)) {
            report_timer.as_mut().reset(due.into());
            timer_set_for = Some(due);
        }
        tokio::select! {
            Some(stream) = accepted.recv() => {
                let noted = match stream {
                    Ok(stream) => admit(stream, &connections, &handler, &graceful, tls.as_ref()),
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        Some(Refusal::AcceptError)
                    }
                };
                let report = noted.and_then(|what| refusals.note(what, Instant::now()));
                log_refusals(report, &connections);
            }
            () = &mut report_timer, if due.is_some() => {
                log_refusals(refusals.flush(Instant::now()), &connections);
            }
            () = &mut shutdown => break,
        }
    }
    for task in accept_tasks {
        task.abort();
    }
    log_refusals(refusals.flush(Instant::now()), &connections);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_DEADLINE) => {
            tracing::warn!(deadline = ?SHUTDOWN_DEADLINE, "connections still open at the shutdown deadline; closing them");
        }
    }
}

/// Accepts connections and hands them on; a failed accept (out of descriptors) is handed
/// on too, and backed off from instead of spinning.
async fn accept_loop(listener: TcpListener, accepted: mpsc::Sender<std::io::Result<TcpStream>>) {
    loop {
        let result = listener.accept().await.map(|(stream, _)| stream);
        let failed = result.is_err();
        if accepted.send(result).await.is_err() {
            return;
        }
        if failed {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Gives a new connection a slot and serves it; says what had to give way, if anything.
fn admit(
    stream: TcpStream,
    connections: &Arc<Connections>,
    handler: &Arc<Handler>,
    graceful: &GracefulShutdown,
    tls: Option<&Arc<TlsSource>>,
) -> Option<Refusal> {
    let Some((slot, admitted)) = connections.admit() else {
        drop(stream);
        return Some(Refusal::Refused);
    };
    let connection = run_connection(
        stream,
        Arc::new(slot),
        handler.clone(),
        graceful.watcher(),
        tls.cloned(),
    );
    tokio::spawn(connection);
    (admitted == Admitted::ClosedIdle).then_some(Refusal::ClosedIdle)
}

/// One connection, from the TLS handshake (if any) to its close; it ends early when its
/// slot is given to a new connection.
async fn run_connection(
    stream: TcpStream,
    slot: Arc<Slot>,
    handler: Arc<Handler>,
    watcher: Watcher,
    tls: Option<Arc<TlsSource>>,
) {
    let serve = async {
        match tls {
            None => serve_connection(TokioIo::new(stream), handler, watcher, slot.clone()).await,
            Some(tls) => {
                let handshake = tokio::time::timeout(HEADER_READ_TIMEOUT, accept_tls(stream, &tls));
                match handshake.await {
                    Ok(Some(stream)) => {
                        serve_connection(TokioIo::new(stream), handler, watcher, slot.clone()).await
                    }
                    Ok(None) => {}
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        }
    };
    // Closed for room: counted by the caller, not logged one by one.
    tokio::select! {
        () = serve => {}
        () = slot.closed() => {}
    }
}

/// Logs what the refusal log hands over: counts since the last such line.
fn log_refusals(tally: Option<Tally>, connections: &Connections) {
    if let Some(tally) = tally {
        tracing::warn!(
            closed_idle = tally.closed_idle,
            refused = tally.refused,
            accept_errors = tally.accept_errors,
            max_connections = connections.capacity(),
            "too many open connections: the longest-idle ones were closed to make room, new ones refused while every slot was busy (counts since the last such line; at most one a minute)"
        );
    }
}

/// The soft open-file limit (`u64::MAX` when unlimited).
fn open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// Serves HTTP/1.1 on one connection, watched for graceful shutdown. The connection is
/// busy (never closed for room) from each request header to its response.
async fn serve_connection<I>(io: I, handler: Arc<Handler>, watcher: Watcher, slot: Arc<Slot>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let handler = handler.clone();
        let busy = slot.busy();
        async move {
            let response = handler.handle(request).await;
            drop(busy);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(io, service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The TLS handshake. A client speaking plain HTTP to the TLS port gets a 400 that says so
/// (as Go servers answer), not a silent close.
async fn accept_tls(
    stream: TcpStream,
    tls: &Arc<TlsSource>,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    /// The first byte of every TLS record that opens a handshake.
    const HANDSHAKE_RECORD: u8 = 0x16;
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] != HANDSHAKE_RECORD => {
            reject_plaintext(stream).await;
            return None;
        }
        Ok(1) => {}
        _ => return None,
    }
    match tokio_rustls::TlsAcceptor::from(tls.config())
        .accept(stream)
        .await
    {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
    }
}

async fn reject_plaintext(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const ANSWER: &[u8] =
        b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
    /// What is read of the client's request before closing: closing with it unread would
    /// reset the connection, and the client could lose the answer (or fail its write).
    const DRAIN: usize = 64 * 1024;
    let _ = stream.write_all(ANSWER).await;
    let _ = stream.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while read < DRAIN {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
