//! The HTTP/1 client pieces every HTTP user of srs-bench shares (HTTP-FLV and HLS players, the
//! servers' readiness checks): hyper's client connection over a loopback `TcpStream`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The request side of a client connection.
pub type Sender = SendRequest<Empty<Bytes>>;
/// The connection future that drives the I/O; it must be polled (or spawned) for requests to move.
pub type Conn = Connection<TokioIo<TcpStream>, Empty<Bytes>>;

/// Connects to `addr` (TCP_NODELAY) and does the HTTP/1 handshake, within `limit`.
pub async fn connect(addr: SocketAddr, limit: Duration) -> anyhow::Result<(Sender, Conn)> {
    let open = async {
        let sock = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        sock.set_nodelay(true)?;
        Ok::<_, anyhow::Error>(hyper::client::conn::http1::handshake(TokioIo::new(sock)).await?)
    };
    tokio::time::timeout(limit, open)
        .await
        .map_err(|_| anyhow!("connect {addr} timed out"))?
}

/// `GET path` with the `Host` header of `addr`.
pub fn get(addr: SocketAddr, path: &str) -> anyhow::Result<hyper::Request<Empty<Bytes>>> {
    Ok(hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?)
}
