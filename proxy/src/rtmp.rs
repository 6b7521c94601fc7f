//! RTMP relay (docs/design.md §6.1): the proxy completes the handshake and the connect / createStream /
//! publish|play exchange with the client itself, opens the same session to the owner origin, then
//! relays media, data and command messages both ways: media and data chunk by chunk as they
//! arrive ([`srs_rtmp::cut`]), commands and user control reassembled and mapped. Per-hop control
//! (chunk size, acknowledgement window, peer bandwidth, ping) is handled on each leg by its own
//! [`Connection`]; message stream ids are mapped between the legs.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use srs_cluster::{Protocol, StreamKey};
use srs_rtmp::amf0::Amf0Value;
use srs_rtmp::chunk::{Limits, RawMessage};
use srs_rtmp::conn::Connection;
use srs_rtmp::cut::{self, MsidMap};
use srs_rtmp::error::RtmpError;
use srs_rtmp::io::{accept_session, open_session_via, RtmpStream, ServerRequest, VIA_PROPERTY};
use srs_rtmp::message::{csid, type_id, Command, Message, UserControl};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, info_span, warn, Instrument, Span};

use crate::admission::ConnectionLimit;
use crate::loops;
use crate::session::{ClientProtocol, Direction, Session};
use crate::state::{State, ORIGIN_DIAL_TIMEOUT};
use crate::upstream::{client_gone, ConnectError, Connected, ErrorChain, Side};

/// Output a leg may hold before the relay stops moving the other leg's input to it, and reads
/// of that leg stop (bytes): chunks are forwarded as they arrive, so this, not the largest
/// message, bounds a session's memory.
const OUTPUT_BUDGET: usize = 16 * 1024;
/// Read sizes per leg: a leg starts small (a player's client leg only ever carries control
/// traffic) and doubles up to the maximum while reads fill what was asked (media). The input
/// buffer never holds more than the maximum.
const READ_MIN: usize = 4 * 1024;
const READ_MAX: usize = 16 * 1024;
/// A buffer grown past this (a reassembled message, or set-up's reservations) is released once
/// drained, so one large message does not pin memory for the rest of the session.
const BUFFER_KEEP: usize = 2 * OUTPUT_BUDGET;
/// A session with no bytes either way for this long gives its empty buffers back; they are
/// allocated again when traffic resumes.
const RELEASE_IDLE_AFTER: Duration = Duration::from_secs(2);
/// Time allowed to flush what is left to one leg after the other closed.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(2);
/// Most client transactions awaiting an origin reply that are remembered.
const MAX_PENDING_TRANSACTIONS: usize = 32;

/// Accepts RTMP clients until shutdown starts; each runs as a tracked session task.
pub async fn serve(state: State, listener: TcpListener) {
    let limit = ConnectionLimit::new("rtmp", state.config.max_connections, &state.metrics);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = state.lifecycle.no_longer_admitting() => break,
        };
        match accepted {
            Ok((socket, peer)) => {
                let Some(permit) = limit.admit(peer) else {
                    drop(socket);
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let id = state.session_id();
                let span = info_span!("session", id, proto = "rtmp", client = %peer);
                let st = state.clone();
                state.lifecycle.spawn(async move {
                    let _permit = permit;
                    session(st, socket, peer, span).await
                });
            }
            Err(e) => {
                // Out of descriptors or similar: back off instead of spinning.
                warn!(error = %e, "RTMP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    info!("RTMP server stopped");
}

/// One client connection, start to end, logged in `span`. The relay polls its sockets for the
/// whole session, so only the set-up and the log lines run inside the spans: a relayed chunk
/// does not pay for entering and leaving two spans at every wake-up.
async fn session(state: State, socket: TcpStream, peer: SocketAddr, span: Span) {
    let Some((mut relay, stream)) = set_up(state, socket, peer).instrument(span).await else {
        return;
    };
    let reason = relay.run().await;
    stream.in_scope(|| {
        info!(
            duration_ms = relay.started.elapsed().as_millis() as u64,
            bytes_from_client = relay.client.conn.bytes_received(),
            bytes_to_client = relay.client.conn.bytes_sent(),
            bytes_from_origin = relay.origin.conn.bytes_received(),
            bytes_to_origin = relay.origin.conn.bytes_sent(),
            reason = %reason,
            "session ended"
        );
    });
}

/// Sets up a client's session: handshake, commands, the origin leg. Until then the client is
/// held to tight limits: [`Limits::setup`] with `PROXY_SETUP_MAX_MESSAGE_SIZE`, and
/// `PROXY_SETUP_TIMEOUT` for the handshake and the command exchange together (docs/design.md §7).
/// Returns the relay and the span of its stream, or `None` when the session did not start.
async fn set_up(state: State, socket: TcpStream, peer: SocketAddr) -> Option<(Relay, Span)> {
    let setup = state.config.setup_timeout;
    let deadline = Instant::now() + setup;
    let limits = Limits {
        max_message_size: state.config.setup_max_message_size,
        ..Limits::setup()
    };
    let mut client = match RtmpStream::accept(socket, limits, setup).await {
        Ok(c) => c,
        Err(e) => {
            debug!(error = %e, "handshake failed");
            info!(reason = %e, "connection closed before a session started");
            return None;
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let request = match accept_session(&mut client, left).await {
        Ok(r) => r,
        Err(e) => {
            info!(reason = %e, "connection closed before a session started");
            return None;
        }
    };
    let key = match StreamKey::from_rtmp(&request.connect.tc_url, &request.stream_name) {
        Ok(k) => k,
        Err(e) => {
            refuse(&mut client, &request, &format!("bad stream: {e}")).await;
            info!(tc_url = %request.connect.tc_url, stream = %request.stream_name, reason = %e, "refused");
            return None;
        }
    };
    let incoming_via = request
        .connect_object
        .get(VIA_PROPERTY)
        .and_then(Amf0Value::as_str);
    let via = match loops::rtmp_via(incoming_via, &state.proxy_id) {
        Ok(via) => via,
        Err(e) => {
            warn!(stream = %key, reason = %e, "RTMP session refused: relay loop");
            refuse(&mut client, &request, &e.to_string()).await;
            return None;
        }
    };
    let span = info_span!("stream", key = %key, kind = ?request.kind);
    let relay = relay_session(state, client, request, key, via, peer)
        .instrument(span.clone())
        .await?;
    Some((relay, span))
}

async fn relay_session(
    state: State,
    mut client: RtmpStream<TcpStream>,
    request: ServerRequest,
    key: StreamKey,
    via: String,
    peer: SocketAddr,
) -> Option<Relay> {
    let timeout = state.config.rtmp_timeout;
    let dial = state
        .upstream
        .connect(&key, Protocol::Rtmp, None, |target| {
            open_origin(target.addr.to_string(), &request, &via, timeout)
        });
    let connected = tokio::select! {
        connected = dial => connected,
        _ = client_gone(client.get_ref()) => {
            info!("client went away while its origin was dialed; stopped dialing");
            return None;
        }
    };
    let Connected {
        origin_id,
        addr,
        conn: (mut upstream, origin_msid),
        ..
    } = match connected {
        Ok(c) => c,
        Err(e) => {
            let reason = ErrorChain(&e).to_string();
            warn!(error = %reason, "cannot open the origin session");
            let description = match e.side() {
                Side::Store => format!("no origin available: {reason}"),
                _ => format!("origin unavailable: {reason}"),
            };
            refuse(&mut client, &request, &description).await;
            info!(reason = %reason, "session refused");
            return None;
        }
    };
    client.connection().set_limits(Limits::default());
    let session = state.open_session(ClientProtocol::Rtmp, request.kind, key, origin_id.clone());
    info!(client = %peer, origin = %origin_id, %addr, kind = ?request.kind, "session started");
    let started = Instant::now();
    if let Err(e) = client.flush().await {
        info!(reason = %e, "client gone before relaying");
        return None;
    }
    if let Err(e) = upstream.flush().await {
        info!(reason = %e, "origin gone before relaying");
        return None;
    }
    let (client_sock, client_conn) = client.into_parts();
    let (origin_sock, origin_conn) = upstream.into_parts();
    Some(Relay {
        client: Leg::new(client_sock, client_conn, request.msid),
        origin: Leg::new(origin_sock, origin_conn, origin_msid),
        pending: VecDeque::new(),
        session,
        counted: (0, 0),
        idle_timeout: state.config.idle_timeout,
        started,
    })
}

/// Dials the origin's RTMP endpoint at `addr` and opens the client's session there, its
/// `connect` carrying `via` (the proxies on the way, this one last): the RTMP connect step of
/// [`crate::upstream::Upstream::connect`]. Returns the origin leg and its message stream id.
///
/// Errors: [`ConnectError::Unreachable`] when the dial is refused or times out;
/// [`ConnectError::Timeout`] when the origin accepts but the handshake or the command exchange
/// does not complete within `timeout` (a hung origin, set aside like an unreachable one);
/// [`ConnectError::Failed`] when the handshake or the command exchange fails.
async fn open_origin(
    addr: String,
    request: &ServerRequest,
    via: &str,
    timeout: Duration,
) -> Result<(RtmpStream<TcpStream>, u32), ConnectError> {
    let socket = match tokio::time::timeout(ORIGIN_DIAL_TIMEOUT, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(ConnectError::Unreachable {
                addr,
                source: e.into(),
            })
        }
        Err(e) => {
            return Err(ConnectError::Unreachable {
                addr,
                source: e.into(),
            })
        }
    };
    let _ = socket.set_nodelay(true);
    let mut upstream = match RtmpStream::connect(socket, Limits::default(), timeout).await {
        Ok(u) => u,
        Err(e) => return Err(origin_leg_error(addr, e, timeout)),
    };
    let opened = open_session_via(
        &mut upstream,
        &request.connect.tc_url,
        &request.connect.app,
        &request.stream_name,
        request.kind,
        Some(via),
        timeout,
    )
    .await;
    match opened {
        Ok(msid) => Ok((upstream, msid)),
        Err(e) => Err(origin_leg_error(addr, e, timeout)),
    }
}

/// The connect error of a failed origin-leg handshake or command exchange: silence past
/// `timeout` is [`ConnectError::Timeout`], anything else [`ConnectError::Failed`].
fn origin_leg_error(addr: String, error: RtmpError, timeout: Duration) -> ConnectError {
    match error {
        RtmpError::Timeout(_) => ConnectError::Timeout {
            addr,
            after: timeout,
        },
        e => ConnectError::Failed {
            addr,
            source: e.into(),
        },
    }
}

/// Tells the client its publish or play failed (onStatus error), then lets the socket close.
async fn refuse(client: &mut RtmpStream<TcpStream>, request: &ServerRequest, description: &str) {
    let code = match request.kind {
        Direction::Publish => "NetStream.Publish.Denied",
        Direction::Play => "NetStream.Play.Failed",
    };
    let status = Message::Command(Command::on_status("error", code, description));
    client
        .connection()
        .send_message(request.csid, 0, request.msid, &status);
    let _ = tokio::time::timeout(FLUSH_ON_CLOSE, client.flush()).await;
}

/// One side of a relay: the socket, its per-hop RTMP state and its message stream id.
struct Leg {
    sock: TcpStream,
    conn: Connection,
    msid: u32,
    /// Bytes asked for by the next read, between [`READ_MIN`] and [`READ_MAX`].
    read_size: usize,
}

impl Leg {
    fn new(sock: TcpStream, mut conn: Connection, msid: u32) -> Leg {
        // Set-up reads reserved generously; the relay sizes its own.
        conn.release_idle_input();
        conn.release_idle_output();
        Leg {
            sock,
            conn,
            msid,
            read_size: READ_MIN,
        }
    }

    /// True while the input buffer has room for another read.
    fn has_input_room(&self) -> bool {
        self.conn.input_len() < READ_MAX
    }

    /// Reads what the socket has, at most up to [`READ_MAX`] buffered; Ok(false) on EOF.
    fn try_read(&mut self) -> std::io::Result<bool> {
        if self.conn.input_capacity() == 0 {
            *self.conn.input_buffer() = pool::take();
        }
        let buf = self.conn.input_buffer();
        let want = self.read_size.min(READ_MAX.saturating_sub(buf.len()));
        if want == 0 {
            return Ok(true);
        }
        buf.reserve(want);
        let sock = &self.sock;
        let mut got = 0;
        // A short read has drained the socket: reported to tokio as WouldBlock, it clears the
        // read readiness now instead of costing another wake-up and a read that only returns
        // EAGAIN. (tokio clears it only if no readiness event came in since, so none is lost.)
        let read = sock.try_io(Interest::READABLE, || {
            got = sock.try_read_buf(&mut buf.limit(want))?;
            if got > 0 && got < want {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(got)
        });
        match read {
            Ok(0) => Ok(false),
            Ok(_) => {
                self.read_size = (self.read_size * 2).min(READ_MAX);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Gives this leg an output buffer from the thread's pool when it has none, before
    /// anything is forwarded to it.
    fn lend_output(&mut self) {
        let out = self.conn.output_buffer();
        if out.capacity() == 0 {
            *out = pool::take();
        }
    }

    /// Returns the drained input and output buffers to the thread's pool: between turns a leg
    /// holds a buffer only while bytes wait in it.
    fn give_back(&mut self) {
        let input = self.conn.input_buffer();
        if input.is_empty() && input.capacity() > 0 {
            pool::give(std::mem::take(input));
        }
        let out = self.conn.output_buffer();
        if out.is_empty() && out.capacity() > 0 {
            pool::give(std::mem::take(out));
        }
    }

    /// Releases every empty buffer and starts reads small again: the session went quiet.
    fn release_all(&mut self) {
        self.give_back();
        self.conn.release_idle_output();
        self.read_size = READ_MIN;
    }

    /// Writes as much pending output as the socket takes.
    fn try_write(&mut self) -> std::io::Result<()> {
        let out = self.conn.output_buffer();
        while !out.is_empty() {
            match self.sock.try_write(out) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => out.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        if out.capacity() > BUFFER_KEEP {
            self.conn.release_idle_output();
        }
        Ok(())
    }

    /// Writes pending output now, without waiting for readiness; true if that emptied an
    /// output buffer the relay had filled to its budget (so more input can move).
    fn write_now(&mut self, name: &str) -> Result<bool, String> {
        if !self.conn.has_output() {
            return Ok(false);
        }
        let full = self.conn.output_len() >= OUTPUT_BUDGET;
        self.try_write()
            .map_err(|e| format!("{name} write failed: {e}"))?;
        Ok(full && !self.conn.has_output())
    }

    /// Polls the readiness this leg waits for: readable when `read`, writable while output is
    /// pending. The waker is kept in the socket's own per-direction slot, so waiting costs no
    /// future and no waiter-list entry per turn.
    fn poll_ready(&self, cx: &mut Context<'_>, read: bool) -> Result<Ready, String> {
        let mut ready = Ready::default();
        if read {
            match self.sock.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => ready.readable = true,
                Poll::Ready(Err(e)) => return Err(format!("error: {e}")),
                Poll::Pending => {}
            }
        }
        if self.conn.has_output() {
            match self.sock.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => ready.writable = true,
                Poll::Ready(Err(e)) => return Err(format!("error: {e}")),
                Poll::Pending => {}
            }
        }
        Ok(ready)
    }

    /// Handles a readiness: writes pending output, then reads when `ready` says so.
    /// Ok(false) when the peer closed.
    fn on_ready(&mut self, ready: Ready, name: &str) -> Result<bool, String> {
        if ready.writable {
            self.try_write()
                .map_err(|e| format!("{name} write failed: {e}"))?;
        }
        if ready.readable {
            return self
                .try_read()
                .map_err(|e| format!("{name} read failed: {e}"));
        }
        Ok(true)
    }

    /// Writes all pending output, bounded by `limit`.
    async fn flush_all(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.conn.has_output() {
            let ready = tokio::time::timeout_at(deadline, self.sock.writable()).await;
            if !matches!(ready, Ok(Ok(()))) || self.try_write().is_err() {
                return;
            }
        }
    }
}

/// Per-thread pool of empty relay buffers (docs/design.md §6.1). A leg's buffer goes back as
/// soon as it is drained, and the next leg that needs one on this thread takes the one returned
/// last, still in the CPU cache: sessions share a few hot buffers instead of each touching
/// its own cold ones. Bounded: at most 64 buffers per thread, none larger than
/// [`BUFFER_KEEP`].
mod pool {
    use std::cell::RefCell;

    use bytes::BytesMut;

    use super::{BUFFER_KEEP, OUTPUT_BUDGET};

    /// Capacity of a new pooled buffer: a full read or output budget plus a chunk header and
    /// the control messages the relay may add past the budget.
    const CAPACITY: usize = OUTPUT_BUDGET + 1024;
    /// Buffers kept per thread.
    const POOL_MAX: usize = 64;

    thread_local! {
        static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer of at least [`CAPACITY`] bytes.
    pub(super) fn take() -> BytesMut {
        FREE.with_borrow_mut(Vec::pop)
            .unwrap_or_else(|| BytesMut::with_capacity(CAPACITY))
    }

    /// Keeps an empty buffer for the next [`take`] on this thread, or frees it.
    pub(super) fn give(mut buf: BytesMut) {
        buf.clear();
        // An emptied buffer gets its whole allocation back without copying anything.
        buf.reserve(CAPACITY);
        if buf.capacity() > BUFFER_KEEP {
            return;
        }
        FREE.with_borrow_mut(|free| {
            if free.len() < POOL_MAX {
                free.push(buf);
            }
        });
    }
}

/// Direction of one relayed message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    ToOrigin,
    ToClient,
}

struct Relay {
    client: Leg,
    origin: Leg,
    /// Transaction ids of client commands forwarded to the origin, awaiting `_result`/`_error`.
    pending: VecDeque<f64>,
    /// The session, counting the client leg's bytes as they flow.
    session: Session,
    /// Client-leg bytes (received, sent) already counted in the session.
    counted: (u64, u64),
    /// With no bytes in either direction for this long the session is closed.
    idle_timeout: Duration,
    /// When the session started (its origin leg open).
    started: Instant,
}

impl Relay {
    /// Relays until either side closes or fails; returns why it ended.
    async fn run(&mut self) -> String {
        let reason = match self.pump_loop().await {
            Ok(r) => r,
            Err(e) => e,
        };
        // Whatever was already read from one side still reaches the other, briefly.
        self.client.flush_all(FLUSH_ON_CLOSE).await;
        self.origin.flush_all(FLUSH_ON_CLOSE).await;
        self.count_client_bytes();
        reason
    }

    /// Adds the client leg's bytes since the last call to the session's counters.
    fn count_client_bytes(&mut self) {
        let (received, sent) = (
            self.client.conn.bytes_received(),
            self.client.conn.bytes_sent(),
        );
        // The counters are shared by every session: touch only the one that moved.
        if received != self.counted.0 {
            self.session.received_from_client(received - self.counted.0);
            self.counted.0 = received;
        }
        if sent != self.counted.1 {
            self.session.sent_to_client(sent - self.counted.1);
            self.counted.1 = sent;
        }
    }

    async fn pump_loop(&mut self) -> Result<String, String> {
        let mut last_activity = tokio::time::Instant::now();
        // One timer for the session, moved only when it fires: re-arming it on every wake-up
        // would cost a timer-wheel update per relayed chunk. It first fires for the quiet-
        // session buffer release, then for the idle timeout.
        let release_after = RELEASE_IDLE_AFTER.min(self.idle_timeout);
        let idle = tokio::time::sleep(release_after);
        tokio::pin!(idle);
        let mut released = false;
        loop {
            self.client.lend_output();
            self.origin.lend_output();
            self.forward(Flow::ToOrigin)?;
            self.forward(Flow::ToClient)?;
            // Write what was just forwarded at once (a loopback or LAN socket nearly always
            // takes it) instead of waiting a turn for write readiness; what a full socket
            // leaves waits for readiness as usual, and room made here takes more input now.
            if self.client.write_now("client")? | self.origin.write_now("origin")? {
                self.forward(Flow::ToOrigin)?;
                self.forward(Flow::ToClient)?;
                self.client.write_now("client")?;
                self.origin.write_now("origin")?;
            }
            self.count_client_bytes();
            self.client.give_back();
            self.origin.give_back();

            let read_client =
                self.origin.conn.output_len() < OUTPUT_BUDGET && self.client.has_input_room();
            let read_origin =
                self.client.conn.output_len() < OUTPUT_BUDGET && self.origin.has_input_room();

            // Both legs and the timer in one poll: every leg that is ready is served this turn.
            let (client, origin, timer) = std::future::poll_fn(|cx| {
                let client = self.client.poll_ready(cx, read_client);
                let origin = self.origin.poll_ready(cx, read_origin);
                let timer = idle.as_mut().poll(cx).is_ready();
                let quiet = |r: &Result<Ready, String>| matches!(r, Ok(r) if !r.any());
                if quiet(&client) && quiet(&origin) && !timer {
                    return Poll::Pending;
                }
                Poll::Ready((client, origin, timer))
            })
            .await;
            let (client, origin) = (
                client.map_err(|e| format!("client {e}"))?,
                origin.map_err(|e| format!("origin {e}"))?,
            );
            if client.any() || origin.any() {
                last_activity = tokio::time::Instant::now();
                released = false;
            }
            if client.any() && !self.client.on_ready(client, "client")? {
                return Ok("client closed".into());
            }
            if origin.any() && !self.origin.on_ready(origin, "origin")? {
                return Ok("origin closed".into());
            }
            if timer {
                let now = tokio::time::Instant::now();
                if last_activity + self.idle_timeout <= now {
                    return Ok(format!("no bytes either way for {:?}", self.idle_timeout));
                }
                if !released && last_activity + release_after <= now {
                    self.client.release_all();
                    self.origin.release_all();
                    released = true;
                }
                let next = if released {
                    self.idle_timeout
                } else {
                    release_after
                };
                idle.as_mut().reset(last_activity + next);
            }
        }
    }

    /// Moves one leg's input to the other leg's output: media and data chunks as they arrive,
    /// every other message once complete and mapped, until the input is used up or the other
    /// leg holds [`OUTPUT_BUDGET`] bytes.
    fn forward(&mut self, flow: Flow) -> Result<(), String> {
        let (from, to, from_name) = match flow {
            Flow::ToOrigin => (&mut self.client, &mut self.origin, "client"),
            Flow::ToClient => (&mut self.origin, &mut self.client, "origin"),
        };
        let msids = MsidMap {
            from: from.msid,
            to: to.msid,
        };
        loop {
            let msg = match cut::relay(&mut from.conn, &mut to.conn, msids, OUTPUT_BUDGET) {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("{from_name} protocol error: {e}")),
            };
            if let Some(out) = map_message(msg, from.msid, to.msid, flow, &mut self.pending) {
                to.conn.send(&out);
            }
        }
    }
}

/// What one poll found a leg ready for.
#[derive(Debug, Default, Clone, Copy)]
struct Ready {
    readable: bool,
    writable: bool,
}

impl Ready {
    fn any(self) -> bool {
        self.readable || self.writable
    }
}

/// Rewrites one message for the other leg, or drops it when it only concerns this hop.
///
/// Stream-scoped messages move from `from_msid` to `to_msid` (including the stream id carried in
/// user-control events and `deleteStream`). Replies the origin sends to transactions the proxy
/// itself made while opening the session are dropped; replies to client transactions forwarded
/// during the relay pass through.
fn map_message(
    mut msg: RawMessage,
    from_msid: u32,
    to_msid: u32,
    flow: Flow,
    pending: &mut VecDeque<f64>,
) -> Option<RawMessage> {
    if msg.msid == from_msid {
        msg.msid = to_msid;
    }
    match msg.type_id {
        type_id::USER_CONTROL => {
            let Ok(Message::UserControl(event)) = Message::parse(&msg) else {
                return Some(msg);
            };
            let map = |id: u32| if id == from_msid { to_msid } else { id };
            let event = match event {
                UserControl::StreamBegin(id) => UserControl::StreamBegin(map(id)),
                UserControl::StreamEof(id) => UserControl::StreamEof(map(id)),
                UserControl::StreamDry(id) => UserControl::StreamDry(map(id)),
                UserControl::StreamIsRecorded(id) => UserControl::StreamIsRecorded(map(id)),
                UserControl::SetBufferLength { msid, ms } => UserControl::SetBufferLength {
                    msid: map(msid),
                    ms,
                },
                other => other,
            };
            Some(Message::UserControl(event).to_raw(
                csid::PROTOCOL_CONTROL,
                msg.timestamp,
                msg.msid,
            ))
        }
        type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => {
            let Ok(Message::Command(mut cmd)) = Message::parse(&msg) else {
                return Some(msg);
            };
            match (flow, cmd.name.as_str()) {
                (Flow::ToClient, "_result" | "_error") => {
                    let pos = pending.iter().position(|t| *t == cmd.transaction_id)?;
                    pending.remove(pos);
                    Some(msg)
                }
                // The proxy answered connect with its own onBWDone already.
                (Flow::ToClient, "onBWDone") => None,
                (Flow::ToOrigin, "deleteStream") => {
                    if let Some(arg) = cmd.args.first_mut() {
                        if arg.as_number() == Some(f64::from(from_msid)) {
                            *arg = srs_rtmp::amf0::Amf0Value::Number(f64::from(to_msid));
                        }
                    }
                    Some(Message::Command(cmd).to_raw(msg.csid, msg.timestamp, msg.msid))
                }
                (Flow::ToOrigin, _) => {
                    if cmd.transaction_id != 0.0 {
                        if pending.len() == MAX_PENDING_TRANSACTIONS {
                            pending.pop_front();
                        }
                        pending.push_back(cmd.transaction_id);
                    }
                    Some(msg)
                }
                _ => Some(msg),
            }
        }
        _ => Some(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn raw(type_id: u8, msid: u32, payload: Bytes) -> RawMessage {
        RawMessage {
            csid: 6,
            timestamp: 40,
            type_id,
            msid,
            payload,
        }
    }

    #[test]
    fn media_msid_is_mapped() {
        let mut pending = VecDeque::new();
        let m = raw(type_id::VIDEO, 1, Bytes::from_static(&[0x17, 1, 0, 0, 0]));
        let out = map_message(m, 1, 7, Flow::ToOrigin, &mut pending).unwrap();
        assert_eq!(out.msid, 7);
        assert_eq!(out.timestamp, 40);
        assert_eq!(&out.payload[..], &[0x17, 1, 0, 0, 0]);
    }

    #[test]
    fn stream_begin_event_is_mapped() {
        let mut pending = VecDeque::new();
        let m = Message::UserControl(UserControl::StreamBegin(3)).to_raw(2, 0, 0);
        let out = map_message(m, 3, 1, Flow::ToClient, &mut pending).unwrap();
        assert_eq!(
            Message::parse(&out).unwrap(),
            Message::UserControl(UserControl::StreamBegin(1))
        );
    }

    #[test]
    fn setup_replies_are_dropped_but_client_transactions_pass() {
        let mut pending = VecDeque::new();
        let reply = Message::Command(Command::result(
            2.0,
            srs_rtmp::amf0::Amf0Value::Null,
            vec![],
        ))
        .to_raw(3, 0, 0);
        assert!(map_message(reply.clone(), 1, 1, Flow::ToClient, &mut pending).is_none());
        let call = Message::Command(Command::release_stream(2.0, "s")).to_raw(3, 0, 0);
        assert!(map_message(call, 1, 1, Flow::ToOrigin, &mut pending).is_some());
        assert!(map_message(reply.clone(), 1, 1, Flow::ToClient, &mut pending).is_some());
        assert!(map_message(reply, 1, 1, Flow::ToClient, &mut pending).is_none());
    }

    #[test]
    fn delete_stream_argument_is_mapped() {
        let mut pending = VecDeque::new();
        let m = Message::Command(Command::delete_stream(0.0, 1)).to_raw(3, 0, 0);
        let out = map_message(m, 1, 5, Flow::ToOrigin, &mut pending).unwrap();
        let Message::Command(cmd) = Message::parse(&out).unwrap() else {
            panic!("not a command")
        };
        assert_eq!(cmd.args[0].as_number(), Some(5.0));
    }
}
