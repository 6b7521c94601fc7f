//! SRT through the proxy (docs/design.md §6.4): one UDP port for every SRT client, each session
//! sent to the origin that owns its stream, reading only what must be read of the handshake.
//!
//! - An induction is answered by the proxy itself with a stateless SYN cookie ([`CookieJar`]), so
//!   an induction flood creates no state.
//! - A conclusion with a valid cookie: the stream id gives the stream key and direction, the
//!   owner is picked (it must offer `srt`), and a task runs induction and conclusion with it as
//!   the caller, from a UDP socket of its own (the origin leg). The client's conclusion goes to the
//!   origin byte for byte but for the cookie and the destination socket id, so every extension
//!   (HSREQ, KMREQ for encryption, stream id, congestion, filter) arrives unchanged; the origin's
//!   conclusion response goes back to the client unchanged.
//! - Socket ids: the origin leg uses the client's socket id and the client learns the origin's
//!   from the response, so both ends address each other directly and data packets are forwarded
//!   without any rewriting.
//! - Retransmitted handshakes are answered from the flow's state: no second origin handshake; a
//!   handshake from another socket id at the same address starts over.
//! - A flow ends on SHUTDOWN from either side, when the origin leg fails, or after
//!   [`FLOW_IDLE`] without a packet from the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use srs_cluster::{Direction, Protocol, StreamKey};
use srs_lb::StoreError;
use srs_srt::handshake::CIF_LEN;
use srs_srt::{
    induction_request, induction_response, rejection, set_dst_socket_id, set_syn_cookie, shutdown,
    CookieJar, Handshake, HandshakeType, Header, Rejection, CONTROL_HANDSHAKE, CONTROL_SHUTDOWN,
    HEADER_LEN,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::metrics::UdpCounters;
use crate::ratelimit::OncePerSecond;
use crate::session::{ClientProtocol, Session};
use crate::state::State;
use crate::udp::flow::FlowTable;
use crate::udp::{origin_leg, DatagramHandler, Outbox, UdpEndpoint};
use crate::upstream::{ConnectError, ErrorChain, UpstreamError};

/// Sessions (flows) at most; a conclusion beyond it is rejected with SRT_REJ_RESOURCE.
pub const MAX_FLOWS: usize = 10_000;
/// A flow with no packet from its client this long is freed (SRT sends a keep-alive every
/// second, draft-sharabayko-srt 3.2.3).
pub const FLOW_IDLE: Duration = Duration::from_secs(15);
/// Time allowed for the whole handshake with one origin. libsrt callers give up connecting after
/// 3 s by default, so a silent origin must be given up on well before, leaving time to fail over
/// to another origin within the same client attempt.
pub const ORIGIN_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Interval of handshake retransmissions to the origin.
const RETRANSMIT: Duration = Duration::from_millis(250);
/// Largest SRT packet relayed from an origin (SRT's MSS is at most 1500).
const MAX_PACKET: usize = 1500;
/// Events the origin-leg tasks may have in flight to the handler.
pub const EVENT_QUEUE: usize = 1024;

/// What the proxy's SRT tasks report to the handler.
#[derive(Debug)]
pub enum SrtEvent {
    /// The origin handshake of the client at `client` finished.
    Connected {
        /// The client's address.
        client: SocketAddr,
        /// The origin leg and the origin's answer, or why there is none.
        result: Result<OriginLeg, UpstreamError>,
    },
    /// The origin leg of `client` ended (SHUTDOWN from the origin, a socket error, idle).
    LegClosed {
        /// The client's address.
        client: SocketAddr,
        /// Why, for the log.
        reason: String,
    },
}

/// An origin leg after the handshake: its socket and the origin's conclusion response.
#[derive(Debug)]
pub struct OriginLeg {
    origin_id: String,
    socket: Arc<UdpSocket>,
    /// The origin's answer to the conclusion: a response, or its rejection.
    response: Vec<u8>,
    rejected: Option<Rejection>,
}

enum FlowState {
    /// The origin handshake runs; retransmitted conclusions are ignored. `request` is the
    /// client's conclusion, to answer it with a rejection if need be.
    Connecting { request: Vec<u8> },
    /// Relaying. `response` answers retransmitted conclusions.
    Connected {
        socket: Arc<UdpSocket>,
        response: Vec<u8>,
        session: Arc<Session>,
        _leg: LegTask,
    },
    /// Refused; `response` answers retransmitted conclusions until the flow expires.
    Refused { response: Vec<u8> },
}

struct Flow {
    key: StreamKey,
    direction: Direction,
    /// The client's socket id, from its conclusion.
    socket_id: u32,
    state: FlowState,
}

impl Flow {
    /// Whether `handshake`, from this flow's address, opens a new connection: it comes from
    /// another socket id (draft-sharabayko-srt 3.2.1) and the flow is refused or relaying. While
    /// connecting, the origin's answer is still due for the old one, so it is left to finish.
    fn is_new_attempt(&self, handshake: &[u8]) -> bool {
        !matches!(self.state, FlowState::Connecting { .. })
            && Handshake::parse(handshake).is_ok_and(|hs| hs.socket_id() != self.socket_id)
    }
}

/// Aborts the origin leg's task when the flow goes.
struct LegTask(AbortHandle);

impl Drop for LegTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The SRT listener's handler; see the module docs.
pub struct SrtRelay {
    state: State,
    endpoint: Arc<UdpEndpoint>,
    events: mpsc::Sender<SrtEvent>,
    cookies: CookieJar,
    flows: FlowTable<Flow>,
    counters: UdpCounters,
    admitting: bool,
    scratch: Vec<u8>,
    /// When a dropped packet was last logged, to log at most one a second.
    drop_log: OncePerSecond,
}

impl SrtRelay {
    /// The handler of the SRT listener on `endpoint`; its tasks report on `events`.
    pub fn new(
        state: State,
        endpoint: Arc<UdpEndpoint>,
        events: mpsc::Sender<SrtEvent>,
        now: Instant,
    ) -> SrtRelay {
        let counters = state.metrics.udp("srt");
        SrtRelay {
            state,
            endpoint,
            events,
            cookies: CookieJar::new(now),
            flows: FlowTable::new(MAX_FLOWS, FLOW_IDLE),
            counters,
            admitting: true,
            scratch: Vec::with_capacity(HEADER_LEN + CIF_LEN),
            drop_log: OncePerSecond::default(),
        }
    }

    fn drop_packet(&mut self, now: Instant, from: SocketAddr, why: &str) {
        self.counters.dropped();
        if self.drop_log.due(now) {
            debug!(client = %from, why, "SRT packet dropped (one line a second at most)");
        }
    }

    fn refuse(
        &mut self,
        now: Instant,
        from: SocketAddr,
        hs: &Handshake<'_>,
        reason: Rejection,
        flow: Option<(StreamKey, Direction)>,
        out: &mut Outbox,
    ) {
        rejection(hs, reason, 0, from.ip(), &mut self.scratch);
        out.push(from, &self.scratch);
        if let Some((key, direction)) = flow {
            let refused = Flow {
                key,
                direction,
                socket_id: hs.socket_id(),
                state: FlowState::Refused {
                    response: self.scratch.clone(),
                },
            };
            let _ = self.flows.insert(from, refused, now);
            self.counters.set_flows(self.flows.len());
        }
    }

    fn on_handshake(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], out: &mut Outbox) {
        // A flow keeps its client's conclusion while connecting: bound it to one packet's size.
        if datagram.len() > MAX_PACKET {
            return self.drop_packet(now, from, "handshake larger than an SRT packet");
        }
        let hs = match Handshake::parse(datagram) {
            Ok(hs) => hs,
            Err(e) => return self.drop_packet(now, from, &e.to_string()),
        };
        match hs.handshake_type() {
            HandshakeType::Induction => {
                let cookie = self.cookies.cookie(from, now);
                induction_response(&hs, cookie, 0, from.ip(), &mut self.scratch);
                out.push(from, &self.scratch);
            }
            HandshakeType::Conclusion => self.on_conclusion(now, from, &hs, out),
            _ => self.drop_packet(now, from, "handshake of an unexpected type"),
        }
    }

    fn on_conclusion(
        &mut self,
        now: Instant,
        from: SocketAddr,
        hs: &Handshake<'_>,
        out: &mut Outbox,
    ) {
        if !self.cookies.check(from, hs.syn_cookie(), now) {
            return self.drop_packet(now, from, "conclusion with a wrong or stale SYN cookie");
        }
        if !self.admitting {
            return self.refuse(now, from, hs, Rejection::DOWN, None, out);
        }
        let stream_id = match hs.stream_id() {
            Ok(Some(id)) => id,
            Ok(None) => {
                info!(client = %from, "SRT refused: no stream id");
                return self.refuse(now, from, hs, Rejection::BAD_REQUEST, None, out);
            }
            Err(e) => {
                info!(client = %from, error = %e, "SRT refused: bad stream id");
                return self.refuse(now, from, hs, Rejection::BAD_REQUEST, None, out);
            }
        };
        let (key, direction) = match StreamKey::from_srt_streamid(&stream_id) {
            Ok(k) => k,
            Err(e) => {
                info!(client = %from, %stream_id, error = %e, "SRT refused: bad stream id");
                return self.refuse(now, from, hs, Rejection::BAD_REQUEST, None, out);
            }
        };
        let flow = Flow {
            key: key.clone(),
            direction,
            socket_id: hs.socket_id(),
            state: FlowState::Connecting {
                request: hs.bytes().to_vec(),
            },
        };
        let inserted = self.flows.insert(from, flow, now).map(|_| ());
        self.counters.set_flows(self.flows.len());
        if let Err(e) = inserted {
            warn!(client = %from, error = %e, "SRT refused");
            return self.refuse(now, from, hs, Rejection::RESOURCE, None, out);
        }
        let span = info_span!("srt", client = %from, stream = %key, direction = %direction);
        let task = connect_origin(
            self.state.clone(),
            from,
            key,
            hs.bytes().to_vec(),
            self.events.clone(),
        );
        tokio::spawn(task.instrument(span));
    }

    fn on_connected(
        &mut self,
        now: Instant,
        client: SocketAddr,
        result: Result<OriginLeg, UpstreamError>,
        out: &mut Outbox,
    ) {
        let Some(flow) = self.flows.get_mut(&client, now) else {
            return;
        };
        let FlowState::Connecting { request } = &mut flow.state else {
            return;
        };
        let request = std::mem::take(request);
        let (key, direction) = (flow.key.clone(), flow.direction);
        let leg = match result {
            Ok(leg) => leg,
            Err(e) => {
                let reason = match &e {
                    UpstreamError::Store {
                        source: StoreError::Unavailable(_),
                        ..
                    } => Rejection::DOWN,
                    UpstreamError::Store { .. } | UpstreamError::NoEndpoint { .. } => {
                        Rejection::NOT_FOUND
                    }
                    UpstreamError::Connect { .. } => Rejection::DOWN,
                };
                info!(client = %client, stream = %key, error = %ErrorChain(&e), code = reason.handshake_type(), "SRT refused");
                self.flows.remove(&client);
                if let Ok(hs) = Handshake::parse(&request) {
                    self.refuse(now, client, &hs, reason, Some((key, direction)), out);
                }
                return;
            }
        };
        out.push(client, &leg.response);
        if let Some(reason) = leg.rejected {
            info!(client = %client, stream = %key, origin = %leg.origin_id, code = reason.handshake_type(), "SRT refused by the origin");
            if let Some(flow) = self.flows.get_mut(&client, now) {
                flow.state = FlowState::Refused {
                    response: leg.response,
                };
            }
            return;
        }
        let session = Arc::new(self.state.open_session(
            ClientProtocol::Srt,
            direction,
            key.clone(),
            leg.origin_id.clone(),
        ));
        let task = relay_origin_to_client(
            Arc::clone(&leg.socket),
            Arc::clone(&self.endpoint),
            client,
            Arc::clone(&session),
            self.counters.clone(),
            self.events.clone(),
        );
        let span = info_span!("srt", client = %client, stream = %key, direction = %direction);
        let handle = tokio::spawn(task.instrument(span.clone())).abort_handle();
        span.in_scope(|| info!(origin = %leg.origin_id, "SRT session started"));
        if let Some(flow) = self.flows.get_mut(&client, now) {
            flow.state = FlowState::Connected {
                socket: leg.socket,
                response: leg.response,
                session,
                _leg: LegTask(handle),
            };
        }
    }
}

impl DatagramHandler for SrtRelay {
    type Event = SrtEvent;

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], out: &mut Outbox) {
        let Some(header) = Header::parse(datagram) else {
            return self.drop_packet(now, from, "shorter than an SRT header");
        };
        let is_handshake = header.is_control(CONTROL_HANDSHAKE);
        let Some(flow) = self.flows.get_mut(&from, now) else {
            if is_handshake {
                return self.on_handshake(now, from, datagram, out);
            }
            return self.drop_packet(now, from, "packet of no known session");
        };
        if is_handshake && flow.is_new_attempt(datagram) {
            // The client started over from the same address (a fixed local port, a restart):
            // the old flow is of no use to it, and a refusal must not outlive its stream's absence.
            debug!(client = %from, stream = %flow.key, "SRT client started a new connection; old flow dropped");
            self.flows.remove(&from);
            self.counters.set_flows(self.flows.len());
            return self.on_handshake(now, from, datagram, out);
        }
        match &flow.state {
            FlowState::Connected {
                socket,
                response,
                session,
                ..
            } => {
                if is_handshake {
                    // A retransmitted conclusion: the response again, no second handshake.
                    if let Ok(hs) = Handshake::parse(datagram) {
                        if hs.handshake_type() == HandshakeType::Conclusion {
                            out.push(from, response);
                        }
                    }
                    return;
                }
                out.push_to(socket, datagram);
                self.counters.to_origin();
                session.received_from_client(datagram.len() as u64);
                if header.is_control(CONTROL_SHUTDOWN) {
                    info!(client = %from, stream = %flow.key, "SRT session ended by the client");
                    self.flows.remove(&from);
                    self.counters.set_flows(self.flows.len());
                }
            }
            FlowState::Refused { response } => {
                if is_handshake {
                    out.push(from, response);
                }
            }
            FlowState::Connecting { .. } => {}
        }
    }

    fn on_event(&mut self, now: Instant, event: SrtEvent, out: &mut Outbox) {
        match event {
            SrtEvent::Connected { client, result } => self.on_connected(now, client, result, out),
            SrtEvent::LegClosed { client, reason } => {
                let removed = self.flows.remove(&client);
                self.counters.set_flows(self.flows.len());
                if let Some(flow) = removed {
                    info!(client = %client, stream = %flow.key, %reason, "SRT session ended");
                    // Tell the client now rather than let it time out.
                    shutdown(flow.socket_id, &mut self.scratch);
                    out.push(client, &self.scratch);
                }
            }
        }
    }

    fn on_timeout(&mut self, now: Instant, _out: &mut Outbox) {
        self.flows.expire(now, |client, flow| {
            if matches!(flow.state, FlowState::Connected { .. }) {
                info!(client = %client, stream = %flow.key, "SRT session idle; freed");
            }
        });
        self.counters.set_flows(self.flows.len());
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.flows.next_deadline()
    }

    fn stop_admitting(&mut self) {
        self.admitting = false;
    }
}

/// Runs the origin handshake for the client at `client` and reports the result.
async fn connect_origin(
    state: State,
    client: SocketAddr,
    key: StreamKey,
    conclusion: Vec<u8>,
    events: mpsc::Sender<SrtEvent>,
) {
    let result = state
        .upstream
        .connect(&key, Protocol::Srt, None, |target| {
            origin_handshake(target.addr.to_string(), &conclusion)
        })
        .await
        .map(|connected| {
            let (socket, response, rejected) = connected.conn;
            OriginLeg {
                origin_id: connected.origin_id,
                socket,
                response,
                rejected,
            }
        });
    let _ = events.send(SrtEvent::Connected { client, result }).await;
}

/// Why the origin handshake failed, as the source of a [`ConnectError`].
#[derive(Debug, thiserror::Error)]
enum OriginHandshakeError {
    #[error("no answer to the SRT {0} within {1:?}")]
    NoAnswer(&'static str, Duration),
    #[error("cannot resolve {0}")]
    Resolve(String),
}

type Answer = (Arc<UdpSocket>, Vec<u8>, Option<Rejection>);

/// Induction and conclusion with the origin at `addr` as the client would have done them: the
/// SRT connect step of [`crate::upstream::Upstream::connect`]. A handshake with no answer within
/// [`ORIGIN_HANDSHAKE_TIMEOUT`] is [`ConnectError::Unreachable`], so the origin is set aside.
async fn origin_handshake(addr: String, conclusion: &[u8]) -> Result<Answer, ConnectError> {
    let unreachable = |addr: &str, e: OriginHandshakeError| ConnectError::Unreachable {
        addr: addr.to_string(),
        source: e.into(),
    };
    let origin = tokio::net::lookup_host(&addr)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| unreachable(&addr, OriginHandshakeError::Resolve(addr.clone())))?;
    let failed = |addr: &str, e: std::io::Error| ConnectError::Failed {
        addr: addr.to_string(),
        source: e.into(),
    };
    // Nothing listening (ICMP port unreachable on the connected socket) is as good as a refused
    // TCP dial: the origin is gone.
    let io_error = |addr: &str, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            ConnectError::Unreachable {
                addr: addr.to_string(),
                source: e.into(),
            }
        } else {
            failed(addr, e)
        }
    };
    let socket = origin_leg(origin).await.map_err(|e| failed(&addr, e))?;
    let deadline = tokio::time::Instant::now() + ORIGIN_HANDSHAKE_TIMEOUT;
    let Ok(client_hs) = Handshake::parse(conclusion) else {
        return Err(ConnectError::BadRequest("not a handshake".into()));
    };
    let mut induction = Vec::new();
    induction_request(&client_hs, origin.ip(), &mut induction);
    let mut buf = vec![0u8; MAX_PACKET];
    let cookie = loop {
        let answer = exchange(&socket, &induction, &mut buf, deadline).await;
        let Some(n) = answer.map_err(|e| io_error(&addr, e))? else {
            let e = OriginHandshakeError::NoAnswer("induction", ORIGIN_HANDSHAKE_TIMEOUT);
            return Err(unreachable(&addr, e));
        };
        if let Ok(hs) = Handshake::parse(&buf[..n]) {
            match hs.handshake_type() {
                HandshakeType::Induction if hs.version() >= 5 => break hs.syn_cookie(),
                HandshakeType::Rejected(r) => {
                    return Ok(rejected(socket, &buf[..n], r, conclusion))
                }
                _ => {}
            }
        }
    };
    let mut forwarded = conclusion.to_vec();
    set_syn_cookie(&mut forwarded, cookie);
    set_dst_socket_id(&mut forwarded, 0);
    loop {
        let answer = exchange(&socket, &forwarded, &mut buf, deadline).await;
        let Some(n) = answer.map_err(|e| io_error(&addr, e))? else {
            let e = OriginHandshakeError::NoAnswer("conclusion", ORIGIN_HANDSHAKE_TIMEOUT);
            return Err(unreachable(&addr, e));
        };
        if let Ok(hs) = Handshake::parse(&buf[..n]) {
            match hs.handshake_type() {
                HandshakeType::Conclusion => {
                    return Ok((Arc::new(socket), buf[..n].to_vec(), None));
                }
                HandshakeType::Rejected(r) => {
                    return Ok(rejected(socket, &buf[..n], r, conclusion))
                }
                _ => {}
            }
        }
    }
}

/// The origin's rejection, addressed to the client's socket.
fn rejected(socket: UdpSocket, answer: &[u8], reason: Rejection, conclusion: &[u8]) -> Answer {
    let mut response = answer.to_vec();
    if let Ok(client) = Handshake::parse(conclusion) {
        set_dst_socket_id(&mut response, client.socket_id());
    }
    (Arc::new(socket), response, Some(reason))
}

/// Sends `packet` every [`RETRANSMIT`] until a handshake comes back or `deadline` passes;
/// `Ok(None)` on the deadline.
async fn exchange(
    socket: &UdpSocket,
    packet: &[u8],
    buf: &mut [u8],
    deadline: tokio::time::Instant,
) -> std::io::Result<Option<usize>> {
    loop {
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        socket.send(packet).await?;
        let wait = (tokio::time::Instant::now() + RETRANSMIT).min(deadline);
        match tokio::time::timeout_at(wait, socket.recv(buf)).await {
            Ok(Ok(n))
                if Header::parse(&buf[..n]).is_some_and(|h| h.is_control(CONTROL_HANDSHAKE)) =>
            {
                return Ok(Some(n))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {}
        }
    }
}

/// Relays the origin leg's packets to the client until SHUTDOWN, an error or [`FLOW_IDLE`] of
/// silence, then tells the handler.
async fn relay_origin_to_client(
    socket: Arc<UdpSocket>,
    endpoint: Arc<UdpEndpoint>,
    client: SocketAddr,
    session: Arc<Session>,
    counters: UdpCounters,
    events: mpsc::Sender<SrtEvent>,
) {
    let mut buf = vec![0u8; MAX_PACKET];
    let reason = loop {
        let n = match tokio::time::timeout(FLOW_IDLE, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => break format!("origin leg failed: {e}"),
            Err(_) => break format!("origin silent for {FLOW_IDLE:?}"),
        };
        let packet = &buf[..n];
        if let Err(e) = endpoint.send_to(client, packet).await {
            debug!(error = %e, "SRT packet to the client dropped");
            continue;
        }
        session.sent_to_client(n as u64);
        counters.to_client();
        if Header::parse(packet).is_some_and(|h| h.is_control(CONTROL_SHUTDOWN)) {
            break "origin sent SHUTDOWN".to_string();
        }
    };
    let _ = events.send(SrtEvent::LegClosed { client, reason }).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::lifecycle::Lifecycle;
    use crate::state::Inner;
    use srs_lb::{MemoryStore, Store, StoreConfig};
    use srs_srt::encode_stream_id;

    const CLIENT: &str = "127.0.0.1:40000";

    fn relay() -> (SrtRelay, mpsc::Receiver<SrtEvent>, Instant) {
        let config = Config::from_pairs([]).unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::with_config(StoreConfig::new(
            Duration::from_secs(30),
            None,
        )));
        let state = Inner::new(config, store, Lifecycle::new());
        let endpoint = Arc::new(UdpEndpoint::bind("127.0.0.1:0".parse().unwrap(), false).unwrap());
        let (tx, rx) = mpsc::channel(8);
        let now = Instant::now();
        (SrtRelay::new(state, endpoint, tx, now), rx, now)
    }

    /// A caller's induction (version 4, cookie 0) from socket 0x1234.
    fn induction() -> Vec<u8> {
        let mut conclusion_like = conclusion(0, None);
        conclusion_like.truncate(HEADER_LEN + CIF_LEN);
        let hs = Handshake::parse(&conclusion_like).unwrap();
        let mut out = Vec::new();
        induction_request(&hs, "127.0.0.1".parse().unwrap(), &mut out);
        out
    }

    /// A caller's conclusion from socket 0x1234 with `cookie` and an optional stream id.
    fn conclusion(cookie: u32, stream_id: Option<&str>) -> Vec<u8> {
        let mut p = vec![0u8; HEADER_LEN + CIF_LEN];
        p[0] = 0x80;
        p[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&5u32.to_be_bytes());
        p[HEADER_LEN + 20..HEADER_LEN + 24].copy_from_slice(&0xFFFF_FFFFu32.to_be_bytes());
        p[HEADER_LEN + 24..HEADER_LEN + 28].copy_from_slice(&0x1234u32.to_be_bytes());
        set_syn_cookie(&mut p, cookie);
        if let Some(id) = stream_id {
            let sid = encode_stream_id(id);
            p.extend_from_slice(&5u16.to_be_bytes());
            p.extend_from_slice(&((sid.len() / 4) as u16).to_be_bytes());
            p.extend_from_slice(&sid);
        }
        p
    }

    /// The next event of the relay's tasks, within 5 s.
    async fn next_event(rx: &mut mpsc::Receiver<SrtEvent>) -> SrtEvent {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
    }

    /// `handshake` as if sent from socket `id`.
    fn from_socket(handshake: &[u8], id: u32) -> Vec<u8> {
        let mut p = handshake.to_vec();
        p[HEADER_LEN + 24..HEADER_LEN + 28].copy_from_slice(&id.to_be_bytes());
        p
    }

    /// The handshakes queued in `out` for the client.
    fn answers(out: &Outbox) -> Vec<(HandshakeType, u32, u32)> {
        out.to_clients()
            .map(|(_, datagram)| {
                let hs = Handshake::parse(datagram).unwrap();
                (hs.handshake_type(), hs.syn_cookie(), hs.dst_socket_id())
            })
            .collect()
    }

    #[tokio::test]
    async fn induction_is_answered_without_state_and_cookies_are_checked() {
        let (mut relay, _rx, now) = relay();
        let client: SocketAddr = CLIENT.parse().unwrap();
        let mut out = Outbox::default();
        relay.on_datagram(now, client, &induction(), &mut out);
        let got = answers(&out);
        assert_eq!(got.len(), 1);
        let (kind, cookie, dst) = got[0];
        assert_eq!((kind, dst), (HandshakeType::Induction, 0x1234));
        assert!(relay.flows.is_empty(), "an induction creates no state");
        // Many inductions: still no state, the same cookie.
        for _ in 0..1000 {
            relay.on_datagram(now, client, &induction(), &mut out);
        }
        assert!(relay.flows.is_empty());
        assert!(answers(&out).iter().all(|a| a.1 == cookie));
        // A wrong cookie is dropped in silence; an unknown client's data too.
        let mut out = Outbox::default();
        relay.on_datagram(
            now,
            client,
            &conclusion(cookie ^ 1, Some("live/s")),
            &mut out,
        );
        relay.on_datagram(now, client, &[0u8; 40], &mut out);
        relay.on_datagram(now, client, &[0x80], &mut out);
        assert!(out.is_empty() && relay.flows.is_empty());
        let text = relay
            .state
            .metrics
            .encode(&[], &srs_lb::StoreHealth::memory());
        assert!(
            text.contains(r#"srs_proxy_udp_datagrams_total{listener="srt",outcome="dropped"} 3"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_conclusion_without_stream_id_is_rejected_and_retransmits_answered_alike() {
        let (mut relay, _rx, now) = relay();
        let client: SocketAddr = CLIENT.parse().unwrap();
        let cookie = relay.cookies.cookie(client, now);
        let mut out = Outbox::default();
        relay.on_datagram(now, client, &conclusion(cookie, None), &mut out);
        let rejected = HandshakeType::Rejected(Rejection::BAD_REQUEST);
        assert_eq!(answers(&out), [(rejected, cookie, 0x1234)]);
        let mut out = Outbox::default();
        relay.on_datagram(
            now,
            client,
            &conclusion(cookie, Some("#!::m=publish")),
            &mut out,
        );
        assert_eq!(answers(&out)[0].0, rejected);
    }

    #[tokio::test]
    async fn no_origin_is_not_found_once_for_every_retransmit() {
        let (mut relay, mut rx, now) = relay();
        let client: SocketAddr = CLIENT.parse().unwrap();
        let cookie = relay.cookies.cookie(client, now);
        let hs = conclusion(cookie, Some("#!::r=live/s,m=publish"));
        let mut out = Outbox::default();
        relay.on_datagram(now, client, &hs, &mut out);
        // Retransmits while the origin is sought start nothing more.
        relay.on_datagram(now, client, &hs, &mut out);
        assert!(out.is_empty());
        assert_eq!(relay.flows.len(), 1);
        relay.on_event(now, next_event(&mut rx).await, &mut out);
        let not_found = HandshakeType::Rejected(Rejection::NOT_FOUND);
        assert_eq!(answers(&out), [(not_found, cookie, 0x1234)]);
        let mut out = Outbox::default();
        relay.on_datagram(now, client, &hs, &mut out);
        assert_eq!(answers(&out), [(not_found, cookie, 0x1234)]);
        assert!(rx.try_recv().is_err(), "no second origin handshake");
        // The refusal is forgotten with the flow.
        relay.on_timeout(now + FLOW_IDLE, &mut out);
        assert!(relay.flows.is_empty());
    }

    #[tokio::test]
    async fn a_new_connection_from_a_refused_address_is_not_refused_from_memory() {
        let (mut relay, mut rx, now) = relay();
        let client: SocketAddr = CLIENT.parse().unwrap();
        let cookie = relay.cookies.cookie(client, now);
        let hs = conclusion(cookie, Some("#!::r=live/s,m=request"));
        let mut out = Outbox::default();
        relay.on_datagram(now, client, &hs, &mut out);
        relay.on_event(now, next_event(&mut rx).await, &mut out);
        let not_found = HandshakeType::Rejected(Rejection::NOT_FOUND);
        assert_eq!(answers(&out), [(not_found, cookie, 0x1234)]);
        // The same port, another socket id: its induction is answered as an induction, and its
        // conclusion is sought anew.
        let mut out = Outbox::default();
        relay.on_datagram(now, client, &from_socket(&induction(), 0x5678), &mut out);
        assert_eq!(answers(&out), [(HandshakeType::Induction, cookie, 0x5678)]);
        assert!(relay.flows.is_empty());
        let mut out = Outbox::default();
        relay.on_datagram(now, client, &from_socket(&hs, 0x5678), &mut out);
        assert!(
            out.is_empty(),
            "sought at the origin, not refused from memory"
        );
        assert_eq!(relay.flows.len(), 1);
        relay.on_event(now, next_event(&mut rx).await, &mut out);
        assert_eq!(answers(&out), [(not_found, cookie, 0x5678)]);
    }
}
