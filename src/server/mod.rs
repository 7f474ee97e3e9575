//! The HTTP server: hyper 1 on tokio, bounded and graceful.
//!
//! Each listener's accepted connections are served by one accept loop that owns the
//! graceful-shutdown watcher; every connection has a header-read timeout, and scrapes are
//! capped by `--web.max-requests` (503 beyond, in `handlers`). On SIGTERM or SIGINT the
//! listeners close, connections in flight get `SHUTDOWN_DEADLINE` to finish, then the
//! caller flushes state. Scans run off the reactor (`scrape`).

pub mod handlers;
pub mod scrape;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::config::ListenAddress;
use handlers::Handler;

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
pub async fn serve(
    listeners: Vec<TcpListener>,
    handler: Arc<Handler>,
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
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            Some(stream) = accepted.recv() => {
                let handler = handler.clone();
                let service = service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, std::convert::Infallible>(handler.handle(request).await) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended with an error");
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
