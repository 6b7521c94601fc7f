//! The UDP layer shared by SRT and WebRTC (docs/design.md §8): one socket per listener driven
//! from tokio through `quinn-udp` (batched `recvmmsg`/`sendmmsg`, GRO on receive and GSO on send
//! where the kernel has them), a sans-IO [`DatagramHandler`] per protocol that turns datagrams and
//! `now` into datagrams to send, and a [`flow::FlowTable`] of client flows.
//!
//! The socket task keeps forwarding through the drain: on *stop admitting* the handler is told to
//! take no new flows, and the task ends only on the final *stop* (docs/design.md §7).

pub mod flow;

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::lifecycle::Lifecycle;

/// Largest UDP payload received or sent, in bytes (an IPv4 datagram's limit).
pub const MAX_DATAGRAM: usize = 65_507;

/// Largest GSO batch in bytes: the kernel refuses a send larger than one IP datagram.
const MAX_GSO_BYTES: usize = 64_000;

/// A bound UDP socket with its `quinn-udp` state.
pub struct UdpEndpoint {
    socket: tokio::net::UdpSocket,
    state: UdpSocketState,
}

impl UdpEndpoint {
    /// Binds `addr`; with `reuse_port`, sets `SO_REUSEPORT` first so that another process can
    /// bind it too (docs/design.md §7, restarts).
    ///
    /// Errors: the bind's I/O error (address in use, permission denied, ...).
    pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpEndpoint> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&addr.into())?;
        let socket: std::net::UdpSocket = socket.into();
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&socket).into())?;
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        Ok(UdpEndpoint { socket, state })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Datagrams one send may carry with GSO (1 without it).
    pub fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Sends one datagram to `dest` (a reply outside the handler's batch, from another task).
    ///
    /// Errors: the send's I/O error.
    pub async fn send_to(&self, dest: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        let transmit = Transmit {
            destination: dest,
            ecn: None,
            contents: datagram,
            segment_size: None,
            src_ip: None,
        };
        self.send(&transmit).await
    }

    /// Waits for datagrams and receives up to [`BATCH_SIZE`] buffers of them into `batch` in one
    /// system call; returns how many buffers were filled (see [`RecvBatch::datagrams`]).
    ///
    /// Errors: the receive's I/O error.
    pub async fn recv(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        loop {
            self.socket.readable().await?;
            let mut slices: [IoSliceMut<'_>; BATCH_SIZE] = {
                let mut chunks = batch.buf.chunks_mut(batch.slot);
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()))
            };
            let received = self.socket.try_io(Interest::READABLE, || {
                self.state
                    .recv((&self.socket).into(), &mut slices, &mut batch.meta)
            });
            match received {
                Ok(n) => {
                    batch.filled = n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends every datagram queued in `out`, coalescing runs to one destination into GSO
    /// sends, and those queued for other sockets ([`Outbox::push_to`]) on those sockets, then
    /// empties `out`. A datagram the kernel refuses is dropped, as UDP may drop it
    /// anywhere on the path; only the first such error of a call is returned.
    ///
    /// Errors: the first send error other than "would block".
    pub async fn send_all(&self, out: &mut Outbox) -> io::Result<()> {
        let max_segments = self.max_gso_segments().max(1);
        let mut first_error = None;
        let mut i = 0;
        while i < out.queued.len() {
            let (dest, start, len) = out.queued[i];
            // A GSO run: same destination, same size, the last one may be shorter.
            let mut end = i + 1;
            let mut bytes = len;
            while end < out.queued.len() && end - i < max_segments {
                let (d, s, l) = out.queued[end];
                let prev = out.queued[end - 1];
                if d != dest || l > len || prev.2 != len || s != prev.1 + prev.2 {
                    break;
                }
                if bytes + l > MAX_GSO_BYTES {
                    break;
                }
                bytes += l;
                end += 1;
            }
            let transmit = Transmit {
                destination: dest,
                ecn: None,
                contents: &out.buf[start..start + bytes],
                segment_size: (end - i > 1).then_some(len),
                src_ip: None,
            };
            if let Err(e) = self.send(&transmit).await {
                first_error.get_or_insert(e);
            }
            i = end;
        }
        for (socket, start, len) in &out.legs {
            // A full socket buffer drops the datagram, as the network may.
            if let Err(e) = socket.try_send(&out.buf[*start..start + len]) {
                if e.kind() != io::ErrorKind::WouldBlock {
                    first_error.get_or_insert(e);
                }
            }
        }
        out.clear();
        first_error.map_or(Ok(()), Err)
    }

    async fn send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        loop {
            self.socket.writable().await?;
            let sent = self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), transmit)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

/// A UDP socket of its own for one session's origin leg: bound to the unspecified address of
/// `origin`'s family, any port, and connected to `origin`, so only the origin's datagrams arrive
/// and an ICMP port unreachable shows as `ConnectionRefused` on the next receive.
///
/// Errors: the bind's or connect's I/O error.
pub async fn origin_leg(origin: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    let local: SocketAddr = match origin {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(origin).await?;
    Ok(socket)
}

/// Receive buffers for one batched receive, allocated once per socket.
pub struct RecvBatch {
    buf: Box<[u8]>,
    /// Bytes per buffer: one datagram, or several of one sender with GRO.
    slot: usize,
    meta: [RecvMeta; BATCH_SIZE],
    filled: usize,
}

impl RecvBatch {
    /// Buffers sized for `endpoint` (GRO may put several datagrams in one buffer): at most
    /// [`BATCH_SIZE`] × 64 KiB.
    pub fn new(endpoint: &UdpEndpoint) -> RecvBatch {
        // One datagram, or a GRO run, which the kernel keeps within 64 KiB.
        let slot = if endpoint.state.gro_segments() > 1 {
            64 * 1024
        } else {
            MAX_DATAGRAM
        };
        RecvBatch {
            buf: vec![0; slot * BATCH_SIZE].into_boxed_slice(),
            slot,
            meta: [RecvMeta::default(); BATCH_SIZE],
            filled: 0,
        }
    }

    /// The datagrams of the last receive, each with its sender, GRO runs split at their stride.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.meta[..self.filled]
            .iter()
            .enumerate()
            .flat_map(move |(i, meta)| {
                let start = i * self.slot;
                let data = &self.buf[start..start + meta.len.min(self.slot)];
                let stride = meta.stride.max(1);
                data.chunks(stride).map(move |d| (meta.addr, d))
            })
    }
}

/// Datagrams a handler wants sent, in one reused buffer (no allocation once warmed up): to
/// clients from the listener's socket, or on another socket (a session's origin leg).
#[derive(Default)]
pub struct Outbox {
    buf: Vec<u8>,
    queued: Vec<(SocketAddr, usize, usize)>,
    legs: Vec<(Arc<tokio::net::UdpSocket>, usize, usize)>,
}

impl Outbox {
    /// Queues `datagram` for `dest`; one over [`MAX_DATAGRAM`] bytes is dropped.
    pub fn push(&mut self, dest: SocketAddr, datagram: &[u8]) {
        if datagram.len() > MAX_DATAGRAM {
            return;
        }
        self.queued.push((dest, self.buf.len(), datagram.len()));
        self.buf.extend_from_slice(datagram);
    }

    /// Queues `datagram` to be sent on `socket`, a connected socket of an origin leg.
    pub fn push_to(&mut self, socket: &Arc<tokio::net::UdpSocket>, datagram: &[u8]) {
        if datagram.len() > MAX_DATAGRAM {
            return;
        }
        self.legs
            .push((Arc::clone(socket), self.buf.len(), datagram.len()));
        self.buf.extend_from_slice(datagram);
    }

    /// The datagrams queued for clients of the listener, in order (for tests and logs).
    pub fn to_clients(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.queued
            .iter()
            .map(|&(dest, start, len)| (dest, &self.buf[start..start + len]))
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.queued.len() + self.legs.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.legs.is_empty()
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.queued.clear();
        self.legs.clear();
    }
}

/// A protocol's sans-IO side of a UDP listener: datagrams, time and events (the results of work
/// done elsewhere, such as an origin handshake) in, datagrams out.
pub trait DatagramHandler: Send + 'static {
    /// What the protocol's tasks report back to the handler.
    type Event: Send + 'static;

    /// An event from one of the protocol's tasks, at `now`; what to send goes to `out`.
    fn on_event(&mut self, now: Instant, event: Self::Event, out: &mut Outbox);

    /// One datagram from `from`, received at `now`; what to send goes to `out`.
    fn on_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], out: &mut Outbox);

    /// Time passed to `now`: expire idle flows, retransmit, ...; what to send goes to `out`.
    fn on_timeout(&mut self, now: Instant, out: &mut Outbox);

    /// When [`DatagramHandler::on_timeout`] is next due, if ever.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Shutdown started: take no new flows, keep serving the existing ones.
    fn stop_admitting(&mut self);
}

/// Drives `handler` on `endpoint`, with the events its tasks send on `events`, until the
/// lifecycle's final stop (docs/design.md §8).
pub async fn serve<H: DatagramHandler>(
    name: &'static str,
    endpoint: Arc<UdpEndpoint>,
    mut handler: H,
    mut events: mpsc::Receiver<H::Event>,
    lifecycle: Lifecycle,
) {
    let mut batch = RecvBatch::new(&endpoint);
    let mut out = Outbox::default();
    let no_longer_admitting = lifecycle.no_longer_admitting();
    let stopping = lifecycle.stopping();
    tokio::pin!(no_longer_admitting, stopping);
    let mut admitting = true;
    let mut last_error: Option<Instant> = None;
    loop {
        let timeout = handler.poll_timeout();
        tokio::select! {
            received = endpoint.recv(&mut batch) => match received {
                Ok(_) => {
                    let now = Instant::now();
                    for (from, datagram) in batch.datagrams() {
                        handler.on_datagram(now, from, datagram, &mut out);
                    }
                }
                Err(e) => {
                    // E.g. ICMP errors reported on the socket: one line a minute, no spin.
                    if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        warn!(listener = name, error = %e, "UDP receive failed");
                        last_error = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            },
            _ = sleep_until(timeout) => handler.on_timeout(Instant::now(), &mut out),
            Some(event) = events.recv() => handler.on_event(Instant::now(), event, &mut out),
            _ = &mut no_longer_admitting, if admitting => {
                admitting = false;
                handler.stop_admitting();
            }
            _ = &mut stopping => break,
        }
        if !out.is_empty() {
            if let Err(e) = endpoint.send_all(&mut out).await {
                debug!(listener = name, error = %e, "UDP send failed");
            }
        }
    }
    info!(listener = name, "UDP listener stopped");
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batched_receive_and_gso_send_keep_datagrams_whole() {
        let a = UdpEndpoint::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let b = UdpEndpoint::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let to = b.local_addr().unwrap();
        let mut out = Outbox::default();
        // A run GSO can coalesce (same size, short last), then other sizes.
        for i in 0..6u8 {
            out.push(to, &[i; 1316]);
        }
        out.push(to, &[6; 100]);
        out.push(to, &[7; 1500]);
        out.push(to, &[8; 1]);
        assert_eq!(out.len(), 9);
        a.send_all(&mut out).await.unwrap();
        assert!(out.is_empty());
        let mut batch = RecvBatch::new(&b);
        let mut got = Vec::new();
        while got.len() < 9 {
            let n = tokio::time::timeout(Duration::from_secs(5), b.recv(&mut batch))
                .await
                .expect("datagrams arrive on loopback")
                .unwrap();
            assert!(n >= 1);
            for (from, d) in batch.datagrams() {
                assert_eq!(from, a.local_addr().unwrap());
                got.push((d[0], d.len()));
            }
        }
        let want: Vec<(u8, usize)> = (0..6)
            .map(|i| (i, 1316))
            .chain([(6, 100), (7, 1500), (8, 1)])
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn outbox_drops_oversized_datagrams() {
        let mut out = Outbox::default();
        out.push("127.0.0.1:9".parse().unwrap(), &vec![0; MAX_DATAGRAM + 1]);
        assert!(out.is_empty());
    }
}
