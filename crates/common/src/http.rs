//! Serving an axum router with bounded request heads and graceful connection shutdown.
//!
//! `axum::serve` sets no timer, so hyper's header-read timeout never fires there: a client that
//! sends its headers slowly, or idles between requests, would hold a connection forever. This
//! accept loop gives hyper a timer.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

/// Longest time a client may take to send a request's headers (also bounds idle keep-alive).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head buffered per connection, in bytes.
pub const MAX_HEAD_SIZE: usize = 64 * 1024;

/// The CORS policy of every HTTP listener of the proxy and the origin: players and publishers
/// run in web pages of any origin, so any origin may use any method with any request header and
/// read every response header. Preflight requests (`OPTIONS` with `Origin`) are answered by the
/// layer itself with 200.
pub fn cors() -> tower_http::cors::CorsLayer {
    tower_http::cors::CorsLayer::permissive()
}

/// In every request's extensions: closes the request's connection at once. A streaming
/// response whose client stopped reading is no longer polled by hyper, so its body cannot end
/// itself; a watchdog holding this handle can.
#[derive(Clone, Debug, Default)]
pub struct CloseConnection(Arc<Notify>);

impl CloseConnection {
    /// Drops the connection (and the response it is sending); the socket closes.
    pub fn close(&self) {
        // A stored permit: the connection task sees it even if it is not waiting right now.
        self.0.notify_one();
    }
}

/// A connection task handed to the caller's spawner.
pub type ConnectionTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Serves `app` on `listener` until `stop` resolves; each connection runs as a task given to
/// `spawn` (so the caller can track and drain them). After `stop`, keep-alive connections close
/// after their current response; streaming responses run on until they end or the caller exits.
///
/// Each request carries the peer address as `ConnectInfo<SocketAddr>` and a
/// [`CloseConnection`] for its connection; a client that takes
/// longer than [`HEADER_READ_TIMEOUT`] to send a request head is disconnected.
///
/// `admit` is asked for every accepted connection: `None` closes it at once (a connection
/// limit), `Some(permit)` keeps `permit` alive as long as the connection.
pub async fn serve<S, A, P>(
    name: &str,
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()>,
    spawn: S,
    admit: A,
) where
    S: Fn(ConnectionTask),
    A: Fn(SocketAddr) -> Option<P>,
    P: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_SIZE);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    warn!(error = %e, "{name}: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let Some(permit) = admit(peer) else {
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let app = app.clone();
        let close = CloseConnection::default();
        let closed = close.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            request.extensions_mut().insert(close.clone());
            tower::ServiceExt::oneshot(app.clone(), request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(socket), service)
            .into_owned();
        let connection = graceful.watch(connection);
        spawn(Box::pin(async move {
            let _permit = permit;
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    debug!(%peer, error = %e, "HTTP connection ended with an error");
                },
                _ = closed.0.notified() => debug!(%peer, "HTTP connection closed by its handler"),
            }
        }));
    }
    tokio::spawn(graceful.shutdown());
    info!("{name} stopped accepting");
}
