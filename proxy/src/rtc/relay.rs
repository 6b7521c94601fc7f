//! The WebRTC media relay on PROXY_WEBRTC_SERVER (docs/design.md §6.5): one UDP port for every
//! session, each session routed to the origin its signalling recorded.
//!
//! - A STUN Binding request from an address the relay does not know names its session in
//!   USERNAME (`answerUfrag:offerUfrag`, RFC 8445 §7.2.2). The session is looked up locally, else
//!   in the store (any proxy on the store may have signalled it); the request must carry a
//!   MESSAGE-INTEGRITY made with the password the origin answered (RFC 8489 §14.5), so a
//!   forged USERNAME cannot steal a session's media. Then the address is bound to the session.
//! - Every later datagram from a bound address (DTLS, SRTP, SRTCP, consent checks; RFC 7983)
//!   goes to the session's origin leg, a UDP socket of its own connected to the origin's media
//!   address. The origin's datagrams go back to the client address the client last used, and a
//!   STUN response to the address that sent the request it answers (by transaction id), so
//!   connectivity checks from several client candidates all get their answers.
//! - An address changes (NAT rebinding, another candidate pair): the next Binding request from
//!   the new address binds it. A session ends when none of its addresses has sent anything for
//!   PROXY_RTC_ALIVE_DURATION, when its origin leg fails or goes silent as long, or on DELETE.
//! - Unknown usernames get no answer and are remembered for a few seconds, so forged requests
//!   cost no store round trip each; non-STUN datagrams from unknown addresses are dropped with
//!   a log line a second at most.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use srs_lb::{SessionKind, SessionRecord};
use srs_rtc::stun::looks_like_stun;
use srs_rtc::{split_username, Message};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{debug, info, info_span, warn, Instrument};

use super::RtcEvent;
use crate::metrics::UdpCounters;
use crate::ratelimit::OncePerSecond;
use crate::session::{ClientProtocol, Direction, Session};
use crate::state::State;
use crate::udp::flow::FlowTable;
use crate::udp::{origin_leg, DatagramHandler, Outbox, UdpEndpoint};

/// Sessions at most (each has a socket); a new session beyond it is refused.
pub const MAX_SESSIONS: usize = 10_000;
/// Store lookups of unknown usernames in flight at most; requests beyond are dropped.
pub const MAX_LOOKUPS: usize = 256;
/// Datagrams held per lookup in flight (the client retransmits its checks anyway).
const MAX_QUEUED: usize = 4;
/// Client addresses bound to one session at most (its candidates); the oldest goes first.
const MAX_ADDRS: usize = 8;
/// Recent check transaction ids remembered per session, to route responses.
const MAX_CHECKS: usize = 16;
/// How long an unknown username is remembered as unknown.
const UNKNOWN_TTL: Duration = Duration::from_secs(5);
/// Unknown usernames remembered at most.
const MAX_UNKNOWN: usize = 4096;
/// Largest datagram relayed from an origin: WebRTC packets stay within one path MTU.
const MAX_PACKET: usize = 2048;

/// One session's routing state, shared by the relay and the session's origin-leg task.
struct Shared {
    /// The ICE username of the session's checks, its id in the store.
    id: Arc<str>,
    /// The origin's `ice-pwd`: the MESSAGE-INTEGRITY key of the client's checks.
    pwd: String,
    /// The origin leg.
    socket: Arc<UdpSocket>,
    route: Mutex<Route>,
    session: Session,
}

/// Where the origin's datagrams go.
struct Route {
    /// The client address of the selected pair: the nominating check's (USE-CANDIDATE), else
    /// the last to send media or, before any nomination, a check.
    client: SocketAddr,
    nominated: bool,
    /// Recent checks' transaction ids and senders, newest last.
    checks: VecDeque<([u8; 12], SocketAddr)>,
    /// When the store record's life was last extended.
    refreshed: Instant,
}

impl Route {
    fn checked(&mut self, from: SocketAddr, check: &Message<'_>) {
        if self.checks.len() >= MAX_CHECKS {
            self.checks.pop_front();
        }
        self.checks.push_back((check.transaction_id(), from));
        if check.use_candidate() {
            self.client = from;
            self.nominated = true;
        } else if !self.nominated {
            self.client = from;
        }
    }

    /// The client address an origin datagram goes to.
    fn destination(&self, packet: &[u8]) -> SocketAddr {
        if looks_like_stun(packet) {
            if let Some((_, addr)) = self.checks.iter().rev().find(|(t, _)| packet[8..20] == *t) {
                return *addr;
            }
        }
        self.client
    }
}

fn lock(route: &Mutex<Route>) -> MutexGuard<'_, Route> {
    route.lock().unwrap_or_else(|p| p.into_inner())
}

/// A session in the relay's table.
struct Entry {
    shared: Arc<Shared>,
    /// Client addresses bound to it, oldest first.
    addrs: Vec<SocketAddr>,
    _leg: LegTask,
}

/// Aborts the origin leg's task when the session goes.
struct LegTask(AbortHandle);

impl Drop for LegTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The WebRTC listener's handler; see the module docs.
pub struct RtcRelay {
    state: State,
    endpoint: Arc<UdpEndpoint>,
    events: mpsc::Sender<RtcEvent>,
    sessions: HashMap<Arc<str>, Entry>,
    addrs: FlowTable<Arc<Shared>>,
    /// Usernames being looked up in the store, with the datagrams that asked.
    pending: HashMap<String, Vec<(SocketAddr, Vec<u8>)>>,
    unknown: FlowTable<(), String>,
    counters: UdpCounters,
    admitting: bool,
    drop_log: OncePerSecond,
}

impl RtcRelay {
    /// The handler of the WebRTC listener on `endpoint`; its tasks report on `events`.
    pub fn new(state: State, endpoint: Arc<UdpEndpoint>, events: mpsc::Sender<RtcEvent>) -> Self {
        let counters = state.metrics.udp("webrtc");
        let idle = state.config.rtc_alive;
        RtcRelay {
            state,
            endpoint,
            events,
            sessions: HashMap::new(),
            addrs: FlowTable::new(MAX_SESSIONS * 2, idle),
            pending: HashMap::new(),
            unknown: FlowTable::new(MAX_UNKNOWN, UNKNOWN_TTL),
            counters,
            admitting: true,
            drop_log: OncePerSecond::default(),
        }
    }

    fn drop_packet(&mut self, now: Instant, from: SocketAddr, why: &str) {
        self.counters.dropped();
        if self.drop_log.due(now) {
            info!(client = %from, why, "WebRTC datagram dropped (one line a second at most)");
        }
    }

    /// Binds `from` to the session `id`, taking it from any session it was bound to.
    fn attach(&mut self, id: &str, from: SocketAddr, now: Instant) {
        let previous = self.addrs.get(&from).map(|s| Arc::clone(&s.id));
        if let Some(previous) = previous {
            if &*previous == id {
                return;
            }
            if let Some(entry) = self.sessions.get_mut(&previous) {
                entry.addrs.retain(|a| *a != from);
            }
        }
        let Some(entry) = self.sessions.get_mut(id) else {
            return;
        };
        if entry.addrs.len() >= MAX_ADDRS {
            let oldest = entry.addrs.remove(0);
            self.addrs.remove(&oldest);
        }
        if self
            .addrs
            .insert(from, Arc::clone(&entry.shared), now)
            .is_ok()
        {
            entry.addrs.push(from);
        }
    }

    fn remove_session(&mut self, id: &str, reason: &str) {
        let Some(entry) = self.sessions.remove(id) else {
            return;
        };
        for addr in &entry.addrs {
            if self
                .addrs
                .get(addr)
                .is_some_and(|s| Arc::ptr_eq(s, &entry.shared))
            {
                self.addrs.remove(addr);
            }
        }
        info!(ice_username = %entry.shared.id, reason, "WebRTC session ended");
        self.counters.set_flows(self.sessions.len());
    }

    /// A Binding request from an address bound to no session.
    fn on_unbound_check(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut Outbox,
    ) {
        let check = match Message::parse(datagram) {
            Ok(m) if m.is_binding_request() => m,
            Ok(_) => {
                return self.drop_packet(
                    now,
                    from,
                    "STUN other than a Binding request from an unknown address",
                )
            }
            Err(e) => return self.drop_packet(now, from, &e.to_string()),
        };
        let Some(username) = check.username().filter(|u| split_username(u).is_some()) else {
            return self.drop_packet(now, from, "Binding request without an ICE USERNAME");
        };
        if let Some(entry) = self.sessions.get(username) {
            if !check.verify_integrity(entry.shared.pwd.as_bytes()) {
                return self.drop_packet(
                    now,
                    from,
                    "Binding request with a wrong MESSAGE-INTEGRITY",
                );
            }
            let shared = Arc::clone(&entry.shared);
            self.attach(username, from, now);
            lock(&shared.route).checked(from, &check);
            return self.forward(&shared, datagram, out);
        }
        if !self.admitting {
            return self.drop_packet(now, from, "draining: no new WebRTC session");
        }
        if self.unknown.get(username).is_some() {
            return self.counters.dropped();
        }
        if let Some(queued) = self.pending.get_mut(username) {
            if queued.len() < MAX_QUEUED {
                queued.push((from, datagram.to_vec()));
            }
            return;
        }
        if self.pending.len() >= MAX_LOOKUPS {
            return self.drop_packet(now, from, "too many WebRTC session lookups in flight");
        }
        self.pending
            .insert(username.to_string(), vec![(from, datagram.to_vec())]);
        let task = lookup(
            self.state.clone(),
            username.to_string(),
            self.events.clone(),
        );
        tokio::spawn(task);
    }

    fn forward(&self, shared: &Shared, datagram: &[u8], out: &mut Outbox) {
        out.push_to(&shared.socket, datagram);
        self.counters.to_origin();
        shared.session.received_from_client(datagram.len() as u64);
    }

    fn on_resolved(
        &mut self,
        now: Instant,
        username: String,
        result: Result<Option<(SessionRecord, Arc<UdpSocket>)>, String>,
        out: &mut Outbox,
    ) {
        let queued = self.pending.remove(&username).unwrap_or_default();
        let asked_by = queued.first().map(|(from, _)| *from);
        let (record, socket) = match result {
            Ok(Some(found)) => found,
            Ok(None) => {
                debug!(ice_username = %username, "Binding request for no known session; not answered");
                let _ = self.unknown.insert(username, (), now);
                self.counters.dropped();
                return;
            }
            Err(e) => {
                warn!(ice_username = %username, error = %e, "cannot look the WebRTC session up");
                self.counters.dropped();
                return;
            }
        };
        let Some(pwd) = record.secret.clone() else {
            warn!(ice_username = %username, "WebRTC session record without an ICE password");
            return;
        };
        let verified: Vec<(SocketAddr, Vec<u8>)> = queued
            .into_iter()
            .filter(|(_, d)| Message::parse(d).is_ok_and(|m| m.verify_integrity(pwd.as_bytes())))
            .collect();
        let Some(&(first, _)) = verified.first() else {
            if let Some(from) = asked_by {
                self.drop_packet(now, from, "Binding request with a wrong MESSAGE-INTEGRITY");
            }
            return;
        };
        if self.sessions.len() >= MAX_SESSIONS {
            warn!(ice_username = %username, limit = MAX_SESSIONS, "WebRTC session refused: table full");
            return self.counters.dropped();
        }
        let direction = record.direction.unwrap_or(Direction::Play);
        let session = self.state.open_session(
            ClientProtocol::WebRtc,
            direction,
            record.key.clone(),
            record.origin_id.clone(),
        );
        let id: Arc<str> = Arc::from(username.as_str());
        let shared = Arc::new(Shared {
            id: Arc::clone(&id),
            pwd,
            socket,
            route: Mutex::new(Route {
                client: first,
                nominated: false,
                checks: VecDeque::with_capacity(MAX_CHECKS),
                refreshed: now,
            }),
            session,
        });
        let span = info_span!("rtc", ice_username = %id, stream = %record.key, %direction);
        let task = relay_origin_to_client(
            Arc::clone(&shared),
            Arc::clone(&self.endpoint),
            self.counters.clone(),
            self.state.config.rtc_alive,
            self.events.clone(),
        );
        let leg = LegTask(tokio::spawn(task.instrument(span.clone())).abort_handle());
        span.in_scope(|| info!(origin = %record.origin_id, origin_udp = %record.origin_addr, client = %first, "WebRTC session started"));
        self.sessions.insert(
            Arc::clone(&id),
            Entry {
                shared: Arc::clone(&shared),
                addrs: Vec::new(),
                _leg: leg,
            },
        );
        self.counters.set_flows(self.sessions.len());
        for (from, datagram) in verified {
            self.attach(&id, from, now);
            if let Ok(check) = Message::parse(&datagram) {
                lock(&shared.route).checked(from, &check);
            }
            self.forward(&shared, &datagram, out);
        }
    }

    /// Extends the store record's life while the session is in use, at most every third of it.
    fn refresh_record(&self, shared: &Shared, now: Instant) {
        let every = self.state.config.rtc_alive / 3;
        {
            let mut route = lock(&shared.route);
            if now.duration_since(route.refreshed) < every {
                return;
            }
            route.refreshed = now;
        }
        let state = self.state.clone();
        let id = shared.id.to_string();
        tokio::spawn(async move {
            if let Err(e) = state.store.get_session(SessionKind::Rtc, &id).await {
                debug!(ice_username = %id, error = %e, "cannot refresh the WebRTC session record");
            }
        });
    }
}

impl DatagramHandler for RtcRelay {
    type Event = RtcEvent;

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], out: &mut Outbox) {
        let Some(shared) = self.addrs.get_mut(&from, now) else {
            if looks_like_stun(datagram) {
                return self.on_unbound_check(now, from, datagram, out);
            }
            return self.drop_packet(now, from, "not STUN, from an address of no session");
        };
        let shared = Arc::clone(shared);
        if looks_like_stun(datagram) {
            let check = match Message::parse(datagram) {
                Ok(m) if m.is_binding_request() => m,
                // Responses and indications of the client's own (e.g. to the origin's consent
                // checks) pass through.
                Ok(_) => return self.forward(&shared, datagram, out),
                Err(e) => return self.drop_packet(now, from, &e.to_string()),
            };
            if check.username() != Some(&*shared.id) {
                // New credentials (an ICE restart): find the session they name.
                return self.on_unbound_check(now, from, datagram, out);
            }
            if !check.verify_integrity(shared.pwd.as_bytes()) {
                return self.drop_packet(
                    now,
                    from,
                    "Binding request with a wrong MESSAGE-INTEGRITY",
                );
            }
            lock(&shared.route).checked(from, &check);
            self.refresh_record(&shared, now);
        } else {
            let mut route = lock(&shared.route);
            if route.client != from {
                route.client = from;
            }
        }
        self.forward(&shared, datagram, out);
    }

    fn on_event(&mut self, now: Instant, event: RtcEvent, out: &mut Outbox) {
        match event {
            RtcEvent::Resolved { username, result } => self.on_resolved(now, username, result, out),
            RtcEvent::Deleted { id } => self.remove_session(&id, "DELETE"),
            RtcEvent::LegClosed { id, reason } => self.remove_session(&id, &reason),
        }
    }

    fn on_timeout(&mut self, now: Instant, _out: &mut Outbox) {
        let mut idle = Vec::new();
        self.addrs
            .expire(now, |addr, shared| idle.push((addr, shared)));
        for (addr, shared) in idle {
            let empty = match self.sessions.get_mut(&shared.id) {
                Some(entry) if Arc::ptr_eq(&entry.shared, &shared) => {
                    entry.addrs.retain(|a| *a != addr);
                    entry.addrs.is_empty()
                }
                _ => false,
            };
            if empty {
                self.remove_session(&shared.id, "idle");
            }
        }
        self.unknown.expire(now, |_, _| {});
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.addrs.next_deadline(), self.unknown.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn stop_admitting(&mut self) {
        self.admitting = false;
    }
}

/// Looks `username` up in the store and opens an origin leg for it; reports to the relay.
async fn lookup(state: State, username: String, events: mpsc::Sender<RtcEvent>) {
    let result = async {
        let Some(record) = state
            .store
            .get_session(SessionKind::Rtc, &username)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let origin = tokio::net::lookup_host(&record.origin_addr)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                format!(
                    "cannot resolve the origin's media address {}",
                    record.origin_addr
                )
            })?;
        let socket = origin_leg(origin)
            .await
            .map_err(|e| format!("cannot open a socket to {origin}: {e}"))?;
        Ok(Some((record, Arc::new(socket))))
    }
    .await;
    let _ = events.send(RtcEvent::Resolved { username, result }).await;
}

/// Relays the origin leg's datagrams to the session's client until the leg fails or the origin
/// is silent for `idle`, then tells the relay.
async fn relay_origin_to_client(
    shared: Arc<Shared>,
    endpoint: Arc<UdpEndpoint>,
    counters: UdpCounters,
    idle: Duration,
    events: mpsc::Sender<RtcEvent>,
) {
    let mut buf = vec![0u8; MAX_PACKET];
    let reason = loop {
        let n = match tokio::time::timeout(idle, shared.socket.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => break format!("origin leg failed: {e}"),
            Err(_) => break format!("origin silent for {idle:?}"),
        };
        let packet = &buf[..n];
        let dest = lock(&shared.route).destination(packet);
        if let Err(e) = endpoint.send_to(dest, packet).await {
            debug!(error = %e, "WebRTC datagram to the client dropped");
            continue;
        }
        counters.to_client();
        shared.session.sent_to_client(n as u64);
    };
    let id = shared.id.to_string();
    drop(shared);
    let _ = events.send(RtcEvent::LegClosed { id, reason }).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::lifecycle::Lifecycle;
    use crate::state::Inner;
    use srs_cluster::StreamKey;
    use srs_lb::{MemoryStore, Store, StoreConfig};
    use srs_rtc::BindingRequest;

    const USERNAME: &str = "835e611f:I9Xw";
    const PWD: &str = "i88l69038v2nnw146o9vme3y048w7j59";

    struct Harness {
        relay: RtcRelay,
        rx: mpsc::Receiver<RtcEvent>,
        endpoint: Arc<UdpEndpoint>,
        origin: UdpSocket,
        store: Arc<dyn Store>,
    }

    async fn harness() -> Harness {
        let config = Config::from_pairs([("PROXY_RTC_ALIVE_DURATION", "10s")]).unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::with_config(StoreConfig::new(
            Duration::from_secs(30),
            None,
        )));
        let state = Inner::new(config, store.clone(), Lifecycle::new());
        let endpoint = Arc::new(UdpEndpoint::bind("127.0.0.1:0".parse().unwrap(), false).unwrap());
        let origin = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (tx, rx) = mpsc::channel(8);
        Harness {
            relay: RtcRelay::new(state, endpoint.clone(), tx),
            rx,
            endpoint,
            origin,
            store,
        }
    }

    impl Harness {
        async fn record(&self) {
            let record = SessionRecord {
                kind: SessionKind::Rtc,
                id: USERNAME.into(),
                key: StreamKey::from_http(None, "/live/s", None).unwrap(),
                origin_id: "o/svc/1".into(),
                origin_addr: self.origin.local_addr().unwrap().to_string(),
                direction: Some(Direction::Play),
                origin_api: Some("127.0.0.1:1985".into()),
                secret: Some(PWD.into()),
            };
            self.store.put_session(&record).await.unwrap();
        }

        /// Delivers `datagram` from `from`, then the lookup's answer if one was started.
        async fn deliver(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
            let mut out = Outbox::default();
            self.relay.on_datagram(now, from, datagram, &mut out);
            if !self.relay.pending.is_empty() {
                let event = tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
                    .await
                    .unwrap()
                    .unwrap();
                self.relay.on_event(now, event, &mut out);
            }
            self.endpoint.send_all(&mut out).await.unwrap();
        }

        /// What reached the origin within 200 ms.
        async fn at_origin(&self) -> Option<(Vec<u8>, SocketAddr)> {
            let mut buf = [0u8; 2048];
            let got =
                tokio::time::timeout(Duration::from_millis(200), self.origin.recv_from(&mut buf))
                    .await;
            got.ok().map(|r| {
                let (n, from) = r.unwrap();
                (buf[..n].to_vec(), from)
            })
        }
    }

    fn check(username: &str, pwd: &str, tid: u8, use_candidate: bool) -> Vec<u8> {
        let mut out = Vec::new();
        BindingRequest {
            username,
            password: pwd,
            transaction_id: [tid; 12],
            use_candidate,
        }
        .encode(&mut out);
        out
    }

    fn client(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn unknown_and_forged_usernames_open_nothing() {
        let mut h = harness().await;
        let now = Instant::now();
        // No record: no session, and the username is remembered as unknown.
        h.deliver(now, client(1), &check(USERNAME, PWD, 1, false))
            .await;
        assert!(h.relay.sessions.is_empty());
        h.relay.on_datagram(
            now,
            client(1),
            &check(USERNAME, PWD, 2, false),
            &mut Outbox::default(),
        );
        assert!(
            h.relay.pending.is_empty(),
            "no second lookup for a known-unknown username"
        );
        // A real session's username with the wrong password: nothing either.
        h.relay.unknown.expire(now + UNKNOWN_TTL, |_, _| {});
        h.record().await;
        h.deliver(
            now,
            client(1),
            &check(USERNAME, "guessed-password-xxxxxx", 3, false),
        )
        .await;
        assert!(h.relay.sessions.is_empty());
        // Media from an unknown address, garbage, other STUN: dropped.
        for d in [&[0x80u8, 0, 0, 0][..], &[22, 254, 253], &[0u8; 20]] {
            h.deliver(now, client(2), d).await;
        }
        assert!(h.at_origin().await.is_none());
        assert!(h.relay.sessions.is_empty() && h.relay.addrs.is_empty());
    }

    #[tokio::test]
    async fn a_session_routes_by_address_and_answers_each_candidate() {
        let mut h = harness().await;
        h.record().await;
        let now = Instant::now();
        let client_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client_b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a, b) = (
            client_a.local_addr().unwrap(),
            client_b.local_addr().unwrap(),
        );
        let first = check(USERNAME, PWD, 1, false);
        h.deliver(now, a, &first).await;
        assert_eq!(h.relay.sessions.len(), 1);
        let (got, leg) = h.at_origin().await.unwrap();
        assert_eq!(got, first, "the check reaches the origin unchanged");
        // Media from the bound address follows; from another address it is dropped.
        h.deliver(now, a, &[0x80, 1, 2, 3]).await;
        assert_eq!(h.at_origin().await.unwrap().0, [0x80, 1, 2, 3]);
        h.deliver(now, b, &[0x80, 9]).await;
        assert!(h.at_origin().await.is_none());
        // A second candidate's nominating check binds it too.
        h.deliver(now, b, &check(USERNAME, PWD, 2, true)).await;
        assert!(h.at_origin().await.is_some());
        assert_eq!(h.relay.sessions[USERNAME].addrs, [a, b]);
        // The origin's answers: a STUN response goes to the sender of its request, media to the
        // nominated address.
        let mut response = check(USERNAME, PWD, 1, false);
        response[0..2].copy_from_slice(&0x0101u16.to_be_bytes());
        h.origin.send_to(&response, leg).await.unwrap();
        h.origin.send_to(&[0x80, 7], leg).await.unwrap();
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(2), client_a.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &response[..]);
        let n = tokio::time::timeout(Duration::from_secs(2), client_b.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &[0x80, 7]);
    }

    #[tokio::test]
    async fn idle_sessions_and_deleted_ones_are_freed() {
        let mut h = harness().await;
        h.record().await;
        let now = Instant::now();
        h.deliver(now, client(1), &check(USERNAME, PWD, 1, true))
            .await;
        assert_eq!(h.relay.sessions.len(), 1);
        let mut out = Outbox::default();
        h.relay.on_timeout(now + Duration::from_secs(9), &mut out);
        assert_eq!(h.relay.sessions.len(), 1);
        h.relay.on_timeout(now + Duration::from_secs(10), &mut out);
        assert!(h.relay.sessions.is_empty() && h.relay.addrs.is_empty());
        h.deliver(now, client(1), &check(USERNAME, PWD, 2, true))
            .await;
        assert_eq!(h.relay.sessions.len(), 1);
        h.relay.on_event(
            now,
            RtcEvent::Deleted {
                id: USERNAME.into(),
            },
            &mut out,
        );
        assert!(h.relay.sessions.is_empty() && h.relay.addrs.is_empty());
    }
}
