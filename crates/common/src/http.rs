//! Serving an axum router with bounded request heads and graceful connection shutdown.
//!
//! `axum::serve` sets no timer, so hyper's header-read timeout never fires there: a client that
//! sends its headers slowly, or idles between requests, would hold a connection forever. This
//! accept loop gives hyper a timer.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
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

/// Serves one accepted connection with hyper and the router: what [`serve`] does with every
/// connection, and what a [`serve_routed`] router does with those it does not serve itself.
/// Holds the connection's place in the graceful shutdown.
pub struct Hyper {
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: Router,
    peer: SocketAddr,
    watcher: Watcher,
}

impl Hyper {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Serves `io` (the accepted socket, or a [`Rewind`] of it) until the connection ends, its
    /// handler closes it ([`CloseConnection`]), or graceful shutdown lets its current response
    /// finish.
    pub async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Hyper {
            builder,
            app,
            peer,
            watcher,
        } = self;
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
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let connection = watcher.watch(connection);
        tokio::select! {
            ended = connection => if let Err(e) = ended {
                debug!(%peer, error = %e, "HTTP connection ended with an error");
            },
            _ = closed.0.notified() => debug!(%peer, "HTTP connection closed by its handler"),
        }
    }
}

/// A connection whose first bytes were already read: reads return `prefix` first, then the
/// connection's own bytes; writes go straight to it. Lets a router look at a request head
/// before handing the connection to hyper ([`Hyper::serve`]).
pub struct Rewind<T> {
    prefix: Vec<u8>,
    at: usize,
    inner: T,
}

impl<T> Rewind<T> {
    /// `inner` with `prefix` to be read again first.
    pub fn new(prefix: Vec<u8>, inner: T) -> Self {
        Rewind {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                // Read once; free it.
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

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
    serve_routed(name, listener, app, stop, spawn, admit, |socket, hyper| {
        hyper.serve(socket)
    })
    .await
}

/// [`serve`] with a router of connections: `route` gets every admitted connection (no-delay
/// set) and the [`Hyper`] that serves it with `app`, and returns the connection's task. A router
/// may serve some requests itself and hand the connection to hyper at any request boundary,
/// with the bytes it already read ([`Rewind`]).
pub async fn serve_routed<S, A, P, R, F>(
    name: &str,
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()>,
    spawn: S,
    admit: A,
    route: R,
) where
    S: Fn(ConnectionTask),
    A: Fn(SocketAddr) -> Option<P>,
    P: Send + 'static,
    R: Fn(TcpStream, Hyper) -> F,
    F: Future<Output = ()> + Send + 'static,
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
        let hyper = Hyper {
            builder: Arc::clone(&builder),
            app: app.clone(),
            peer,
            watcher: graceful.watcher(),
        };
        let task = route(socket, hyper);
        spawn(Box::pin(async move {
            let _permit = permit;
            task.await;
        }));
    }
    tokio::spawn(graceful.shutdown());
    info!("{name} stopped accepting");
}
