//! The HTTP server: hyper 1 on tokio, bounded and graceful.
//!
//! Each listener's accepted connections are served by one accept loop that owns the
//! graceful-shutdown watcher; every connection has a header-read timeout, and scrapes are
//! capped by `--web.max-requests` (503 beyond, in `handlers`). On SIGTERM or SIGINT the
//! listeners close, connections in flight get `SHUTDOWN_DEADLINE` to finish, then the
//! caller flushes state. Scans run off the reactor (`scrape`). With `--web.config.file`,
//! connections speak TLS (`tls`) and requests need credentials (`auth`), loaded by
//! `security` from the file `web_config` parses.

pub mod auth;
pub mod handlers;
pub mod incident;
pub mod listen;
pub mod rate_limit;
pub mod scrape;
pub mod security;
pub mod tls;
pub mod web_config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::limits::MAX_CONNECTIONS;
use handlers::Handler;
use listen::ListenAddress;
use tls::TlsSource;

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections in flight may run on after a shutdown signal.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

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
            ListenAddress::Socket(addr) => {
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Bind {
                        address: addr.to_string(),
                        source,
                    })?
            }
            ListenAddress::AllInterfaces(port) => {
                // [::] accepts IPv4 too where the host has IPv6; else fall back to 0.0.0.0.
                match TcpListener::bind(SocketAddr::from(([0u16; 8], *port))).await {
                    Ok(listener) => listener,
                    Err(_) => TcpListener::bind(SocketAddr::from(([0u8; 4], *port)))
                        .await
                        .map_err(|source| ServeError::Bind {
                            address: format!(":{port}"),
                            source,
                        })?,
                }
            }
        };
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Serves until `shutdown` resolves, then drains connections for at most the deadline.
/// With `tls`, every connection must complete a TLS handshake within the header timeout.
pub async fn serve(
    listeners: Vec<TcpListener>,
    handler: Arc<Handler>,
    tls: Option<Arc<TlsSource>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (accepted_tx, mut accepted) = mpsc::channel::<TcpStream>(64);
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        let tx = accepted_tx.clone();
        accept_tasks.push(tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        if tx.send(stream).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    drop(accepted_tx);

    let graceful = GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut refused_logged = false;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            Some(stream) = accepted.recv() => {
                let Ok(slot) = connections.clone().try_acquire_owned() else {
                    if !refused_logged {
                        tracing::warn!(max = MAX_CONNECTIONS, "too many open connections; closing new ones until some end");
                        refused_logged = true;
                    }
                    drop(stream);
                    continue;
                };
                refused_logged = false;
                let handler = handler.clone();
                let watcher = graceful.watcher();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    match tls {
                        None => serve_connection(TokioIo::new(stream), handler, watcher).await,
                        Some(tls) => {
                            let handshake = tokio::time::timeout(HEADER_READ_TIMEOUT, accept_tls(stream, &tls));
                            match handshake.await {
                                Ok(Some(stream)) => serve_connection(TokioIo::new(stream), handler, watcher).await,
                                Ok(None) => {}
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    for task in accept_tasks {
        task.abort();
    }
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_DEADLINE) => {
            tracing::warn!(deadline = ?SHUTDOWN_DEADLINE, "connections still open at the shutdown deadline; closing them");
        }
    }
}

/// Serves HTTP/1.1 on one connection, watched for graceful shutdown.
async fn serve_connection<I>(io: I, handler: Arc<Handler>, watcher: Watcher)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let handler = handler.clone();
        async move { Ok::<_, std::convert::Infallible>(handler.handle(request).await) }
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
    use tokio::io::AsyncWriteExt;
    const ANSWER: &[u8] =
        b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
    let _ = stream.write_all(ANSWER).await;
    let _ = stream.shutdown().await;
}
