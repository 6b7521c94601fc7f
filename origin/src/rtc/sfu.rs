//! The media task: one UDP socket, every session's str0m [`Rtc`], and the forwarding of a
//! publisher's frames to the players of its stream.
//!
//! str0m is sans-IO: this task feeds it datagrams and timeouts and carries out what it asks
//! (transmit, wake me at). It owns all sessions, so no locks are held while media flows; the
//! signalling side talks to it over a bounded channel ([`super::RtcServer`]).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use srs_cluster::StreamKey;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{Command, Role, RtcServer, IDLE_TIMEOUT, KEYFRAME_REQUEST_GAP, MAX_SESSIONS};
use crate::hub::{Hub, RtcPublisher};
use crate::srt_server::SessionSlot;

/// Largest datagram read; WebRTC peers keep packets under the path MTU.
const DATAGRAM_MAX: usize = 2048;

/// The task wakes at least this often to check idle sessions.
const TICK: Duration = Duration::from_secs(1);

/// Source addresses remembered for fast demultiplexing; the cache is emptied when full.
const ROUTES_MAX: usize = 4 * MAX_SESSIONS;

/// UDP socket buffer sizes asked for; the kernel may grant less.
const UDP_BUFFER: usize = 4 * 1024 * 1024;

/// One negotiated session, owned by the media task.
pub struct Session {
    id: String,
    role: Role,
    key: StreamKey,
    rtc: Rtc,
    _slot: SessionSlot,
    /// Publishers: the hub's reservation of the key, and the API figures.
    publisher: Option<RtcPublisher>,
    span: tracing::Span,
    /// The session's media lines, from str0m's `MediaAdded` events.
    mids: Vec<(Mid, MediaKind, Direction)>,
    last_input: Instant,
    next_timeout: Instant,
    /// Players: video is held back until a keyframe, so decoding starts cleanly.
    needs_keyframe: bool,
    /// Publishers: when a keyframe was last asked for.
    last_keyframe_request: Option<Instant>,
}

impl Session {
    /// A session for `key` around a negotiated `rtc`; `publisher` is the hub reservation of a
    /// publishing session.
    pub(super) fn new(
        id: String,
        role: Role,
        key: StreamKey,
        rtc: Rtc,
        slot: SessionSlot,
        publisher: Option<RtcPublisher>,
        peer: SocketAddr,
    ) -> Self {
        let span = tracing::info_span!(
            "rtc",
            id = %id,
            stream = %key,
            role = ?role,
            signalling_peer = %peer,
        );
        let now = Instant::now();
        Self {
            id,
            role,
            key,
            rtc,
            _slot: slot,
            publisher,
            span,
            mids: Vec::new(),
            last_input: now,
            next_timeout: now,
            needs_keyframe: true,
            last_keyframe_request: None,
        }
    }

    /// The first media line of `kind` that sends (players) or receives (publishers).
    fn mid_of(&self, kind: MediaKind) -> Option<Mid> {
        let wanted = |d: Direction| match self.role {
            Role::Publish => matches!(d, Direction::RecvOnly | Direction::SendRecv),
            Role::Play => matches!(d, Direction::SendOnly | Direction::SendRecv),
        };
        self.mids
            .iter()
            .find(|(_, k, d)| *k == kind && wanted(*d))
            .map(|(m, _, _)| *m)
    }
}

/// The sessions of one stream.
#[derive(Default)]
struct Room {
    publisher: Option<String>,
    players: Vec<String>,
}

/// A bound media socket, ready for [`serve`].
pub struct MediaTask {
    socket: UdpSocket,
    candidate: SocketAddr,
    commands: mpsc::Receiver<Command>,
}

/// Binds the media socket on `addr` (port 0 picks a free one). Returns the signalling handle,
/// the task to [`serve`], and the bound address; answers name `candidate_ip` and the bound port.
pub async fn bind(
    addr: SocketAddr,
    candidate_ip: IpAddr,
    hub: Hub,
) -> std::io::Result<(RtcServer, MediaTask, SocketAddr)> {
    let socket = UdpSocket::bind(addr).await?;
    let sock = socket2::SockRef::from(&socket);
    // Keyframes come as bursts of packets; failing to get bigger buffers is not fatal.
    if let Err(e) = sock.set_recv_buffer_size(UDP_BUFFER) {
        tracing::debug!("WebRTC receive buffer: {e}");
    }
    if let Err(e) = sock.set_send_buffer_size(UDP_BUFFER) {
        tracing::debug!("WebRTC send buffer: {e}");
    }
    let local = socket.local_addr()?;
    let candidate = SocketAddr::new(candidate_ip, local.port());
    let (tx, rx) = mpsc::channel(64);
    let server = RtcServer {
        commands: tx,
        hub,
        candidate,
        sessions: Arc::new(AtomicUsize::new(0)),
    };
    let task = MediaTask {
        socket,
        candidate,
        commands: rx,
    };
    Ok((server, task, local))
}

/// Runs the media task until every [`RtcServer`] handle is gone.
pub async fn serve(task: MediaTask) {
    let MediaTask {
        socket,
        candidate,
        mut commands,
    } = task;
    let mut sfu = Sfu {
        socket,
        candidate,
        sessions: HashMap::new(),
        rooms: HashMap::new(),
        routes: HashMap::new(),
        events: VecDeque::new(),
    };
    let mut buf = vec![0u8; DATAGRAM_MAX];
    loop {
        let now = Instant::now();
        let deadline = sfu
            .sessions
            .values()
            .map(|s| s.next_timeout)
            .fold(now + TICK, Instant::min);
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
        tokio::select! {
            received = sfu.socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => {
                    if let Some(datagram) = buf.get(..n) {
                        sfu.receive(datagram, source);
                    }
                }
                // ICMP errors from a gone peer show up here; they concern one peer only.
                Err(e) => tracing::debug!("WebRTC socket: {e}"),
            },
            command = commands.recv() => match command {
                Some(command) => sfu.command(command),
                None => return,
            },
            () = sleep => {}
        }
        sfu.timeouts(Instant::now());
    }
}

struct Sfu {
    socket: UdpSocket,
    candidate: SocketAddr,
    sessions: HashMap<String, Session>,
    rooms: HashMap<StreamKey, Room>,
    /// Source address to session id, checked with `Rtc::accepts` before use.
    routes: HashMap<SocketAddr, String>,
    /// Events polled from sessions and not yet handled.
    events: VecDeque<(String, Event)>,
}

impl Sfu {
    fn command(&mut self, command: Command) {
        match command {
            Command::Add(session) => self.add(*session),
            Command::Close {
                id,
                role,
                key,
                reply,
            } => {
                let found = self
                    .sessions
                    .get_mut(&id)
                    .filter(|s| s.role == role && s.key == key);
                let closed = match found {
                    Some(session) => {
                        session.span.in_scope(|| tracing::info!("closed by DELETE"));
                        session.rtc.disconnect();
                        self.drive(&id);
                        self.remove(&id);
                        true
                    }
                    None => false,
                };
                let _ = reply.send(closed);
            }
        }
    }

    fn add(&mut self, session: Session) {
        session.span.in_scope(|| tracing::info!("session opened"));
        let id = session.id.clone();
        let room = self.rooms.entry(session.key.clone()).or_default();
        match session.role {
            Role::Publish => {
                room.publisher = Some(id.clone());
                // A new source: every player restarts at its first keyframe.
                for player in &room.players {
                    if let Some(p) = self.sessions.get_mut(player) {
                        p.needs_keyframe = true;
                    }
                }
            }
            Role::Play => room.players.push(id.clone()),
        }
        self.sessions.insert(id.clone(), session);
        self.update_clients(&id);
        self.drive(&id);
        self.handle_events();
    }

    /// Hands a datagram to the session it belongs to.
    fn receive(&mut self, datagram: &[u8], source: SocketAddr) {
        let Ok(contents) = datagram.try_into() else {
            return;
        };
        let now = Instant::now();
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                // The address the peer sent to; the socket may be bound to all interfaces.
                destination: self.candidate,
                contents,
            },
        );
        let cached = self
            .routes
            .get(&source)
            .filter(|id| {
                self.sessions
                    .get(*id)
                    .is_some_and(|s| s.rtc.accepts(&input))
            })
            .cloned();
        let Some(id) = cached.or_else(|| {
            self.sessions
                .values()
                .find(|s| s.rtc.accepts(&input))
                .map(|s| s.id.clone())
        }) else {
            tracing::trace!(%source, "datagram for no session");
            return;
        };
        if self.routes.len() >= ROUTES_MAX {
            self.routes.clear();
        }
        self.routes.insert(source, id.clone());
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        session.last_input = now;
        if let Err(e) = session.rtc.handle_input(input) {
            session
                .span
                .in_scope(|| tracing::info!("bad input, closing: {e}"));
            session.rtc.disconnect();
        }
        self.drive(&id);
        self.handle_events();
    }

    /// Drives the sessions whose timeout is due and closes idle and dead ones.
    fn timeouts(&mut self, now: Instant) {
        let due: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.next_timeout <= now || now.duration_since(s.last_input) > IDLE_TIMEOUT)
            .map(|s| s.id.clone())
            .collect();
        for id in due {
            let Some(session) = self.sessions.get_mut(&id) else {
                continue;
            };
            if now.duration_since(session.last_input) > IDLE_TIMEOUT {
                session
                    .span
                    .in_scope(|| tracing::info!(timeout = ?IDLE_TIMEOUT, "no datagram, closed"));
                session.rtc.disconnect();
            } else if let Err(e) = session.rtc.handle_input(Input::Timeout(now)) {
                session.span.in_scope(|| tracing::info!("failed: {e}"));
                session.rtc.disconnect();
            }
            self.drive(&id);
        }
        self.handle_events();
        let dead: Vec<String> = self
            .sessions
            .values()
            .filter(|s| !s.rtc.is_alive())
            .map(|s| s.id.clone())
            .collect();
        for id in dead {
            self.remove(&id);
        }
    }

    /// Polls a session until it wants a timeout: sends its datagrams, queues its events.
    fn drive(&mut self, id: &str) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        loop {
            if !session.rtc.is_alive() {
                session.next_timeout = Instant::now();
                return;
            }
            match session.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    session.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    // A full send buffer drops the datagram, as the network would.
                    if let Err(e) = self.socket.try_send_to(&t.contents, t.destination) {
                        tracing::debug!(to = %t.destination, "WebRTC send: {e}");
                    }
                }
                Ok(Output::Event(event)) => self.events.push_back((id.to_string(), event)),
                Err(e) => {
                    session.span.in_scope(|| tracing::info!("failed: {e}"));
                    session.rtc.disconnect();
                }
            }
        }
    }

    fn handle_events(&mut self) {
        while let Some((id, event)) = self.events.pop_front() {
            self.handle_event(&id, event);
        }
    }

    fn handle_event(&mut self, id: &str, event: Event) {
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        match event {
            Event::IceConnectionStateChange(state) => {
                session
                    .span
                    .in_scope(|| tracing::info!(?state, "ICE state"));
                if state == IceConnectionState::Disconnected {
                    session.rtc.disconnect();
                }
            }
            // DTLS is up: a new player can take media, starting at a keyframe.
            Event::Connected if session.role == Role::Play => {
                session.span.in_scope(|| tracing::info!("connected"));
                let key = session.key.clone();
                self.request_keyframe(&key, KeyframeRequestKind::Pli);
            }
            Event::MediaAdded(added) => {
                session.mids.push((added.mid, added.kind, added.direction));
            }
            Event::MediaData(data) if session.role == Role::Publish => self.forward(id, data),
            Event::KeyframeRequest(request) if session.role == Role::Play => {
                let key = session.key.clone();
                self.request_keyframe(&key, request.kind);
            }
            _ => {}
        }
    }

    /// Sends one of a publisher's frames to every player of its stream.
    fn forward(&mut self, publisher: &str, data: MediaData) {
        let Some(session) = self.sessions.get_mut(publisher) else {
            return;
        };
        let Some(kind) = session.rtc.media(data.mid).map(|m| m.kind()) else {
            return;
        };
        let key = session.key.clone();
        let len = data.data.len() as u64;
        if let Some(p) = &session.publisher {
            let codec = codec_name(data.params.spec().codec);
            p.update(|s| {
                s.recv_bytes += len;
                if kind == MediaKind::Video {
                    s.frames += 1;
                    s.video_codec = s.video_codec.or(codec);
                } else {
                    s.audio_codec = s.audio_codec.or(codec);
                }
            });
        }
        if kind == MediaKind::Video && !data.contiguous {
            // Lost packets: players cannot decode on until the next keyframe.
            self.request_keyframe(&key, KeyframeRequestKind::Fir);
        }
        let players = self
            .rooms
            .get(&key)
            .map(|r| r.players.clone())
            .unwrap_or_default();
        let mut sent = 0u64;
        for player in &players {
            let Some(p) = self.sessions.get_mut(player) else {
                continue;
            };
            if kind == MediaKind::Video && p.needs_keyframe {
                if !data.is_keyframe() {
                    continue;
                }
                p.needs_keyframe = false;
            }
            let Some(mid) = p.mid_of(kind) else {
                continue;
            };
            let Some(writer) = p.rtc.writer(mid) else {
                continue;
            };
            // The player's payload type for the publisher's codec; none: it cannot take it.
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            match writer.write(pt, data.network_time, data.time, data.data.clone()) {
                Ok(()) => sent += len,
                Err(e) => {
                    p.span
                        .in_scope(|| tracing::info!("write failed, closing: {e}"));
                    p.rtc.disconnect();
                }
            }
            self.drive(player);
        }
        if let Some(p) = self
            .sessions
            .get(publisher)
            .and_then(|s| s.publisher.as_ref())
        {
            p.update(|s| s.send_bytes += sent);
        }
    }

    /// Asks the publisher of `key`, if any, for a keyframe, at most every
    /// [`KEYFRAME_REQUEST_GAP`].
    fn request_keyframe(&mut self, key: &StreamKey, kind: KeyframeRequestKind) {
        let Some(id) = self.rooms.get(key).and_then(|r| r.publisher.clone()) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let now = Instant::now();
        if session
            .last_keyframe_request
            .is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_GAP)
        {
            return;
        }
        let Some(mid) = session.mid_of(MediaKind::Video) else {
            return;
        };
        let Some(mut writer) = session.rtc.writer(mid) else {
            return;
        };
        if !writer.is_request_keyframe_possible(kind) {
            return;
        }
        match writer.request_keyframe(None, kind) {
            Ok(()) => {
                session.last_keyframe_request = Some(now);
                session
                    .span
                    .in_scope(|| tracing::debug!(?kind, "keyframe requested"));
            }
            Err(e) => session
                .span
                .in_scope(|| tracing::debug!("keyframe request failed: {e}")),
        }
        self.drive(&id);
    }

    fn remove(&mut self, id: &str) {
        let Some(session) = self.sessions.remove(id) else {
            return;
        };
        session.span.in_scope(|| tracing::info!("session ended"));
        self.routes.retain(|_, v| v != id);
        if let Some(room) = self.rooms.get_mut(&session.key) {
            if room.publisher.as_deref() == Some(id) {
                room.publisher = None;
            }
            room.players.retain(|p| p != id);
            if room.publisher.is_none() && room.players.is_empty() {
                self.rooms.remove(&session.key);
            }
        }
        if session.role == Role::Play {
            if let Some(publisher) = self
                .rooms
                .get(&session.key)
                .and_then(|r| r.publisher.clone())
            {
                self.update_clients(&publisher);
            }
        }
    }

    /// Updates the API's client count (publisher plus players) of the stream of session `id`.
    fn update_clients(&self, id: &str) {
        let Some(session) = self.sessions.get(id) else {
            return;
        };
        let Some(room) = self.rooms.get(&session.key) else {
            return;
        };
        let publisher = room
            .publisher
            .as_ref()
            .and_then(|p| self.sessions.get(p))
            .and_then(|p| p.publisher.as_ref());
        if let Some(p) = publisher {
            let clients = room.players.len() + 1;
            p.update(|s| s.clients = clients);
        }
    }
}

/// SRS's name of a codec, for the API.
fn codec_name(codec: Codec) -> Option<&'static str> {
    match codec {
        Codec::H264 => Some("H264"),
        Codec::Vp8 => Some("VP8"),
        Codec::Opus => Some("Opus"),
        _ => None,
    }
}
