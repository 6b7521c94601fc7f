//! The load-balancer store: which origins are alive and which origin owns each stream
//! (docs/design.md §5), plus the session records every proxy must see ([`SessionRecord`]: HLS,
//! WebRTC).
//!
//! Stream ownership is a lease: [`Store::pick`] takes or refreshes it, [`Store::refresh_leases`]
//! keeps the streams of active sessions owned, and an owner not refreshed for
//! [`StoreConfig::lease`] is forgotten, so the next request chooses again. Only unexpired leases
//! count towards an origin's load.
//!
//! [`MemoryStore`] is the single-proxy implementation; [`crate::redis::RedisStore`] the shared
//! one. Memory bounds of [`MemoryStore`]: leases expire; when `pick` finds a stream's owner dead or
//! unknown, every assignment of that owner is dropped at once; an origin whose last heartbeat is
//! older than [`PRUNE_FACTOR`] × `alive` is forgotten (record and assignments) at the next
//! `register` or `pick`, until then `origins` still lists it as dead for operators; expired
//! session records (of every kind, in one map) are swept when the map has doubled since the last
//! sweep.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::time::Instant;

use srs_cluster::{OriginInfo, Protocol, StreamKey};

/// Dead origins are forgotten after this many alive durations without a heartbeat.
pub const PRUNE_FACTOR: u32 = 10;

/// Default [`StoreConfig::lease`]: 15 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// Default [`StoreConfig::hls_alive`] (PROXY_HLS_ALIVE_DURATION, docs/design.md §2): 120 s.
pub const DEFAULT_HLS_ALIVE: Duration = Duration::from_secs(120);

/// Default [`StoreConfig::rtc_alive`] (PROXY_RTC_ALIVE_DURATION, docs/design.md §2): 120 s.
pub const DEFAULT_RTC_ALIVE: Duration = Duration::from_secs(120);

/// Session maps are not swept below this many entries.
const MIN_SWEEP: usize = 64;

/// What a store runs on, where its data is written, and whether it answers now (docs/design.md
/// §9), for the `store_primary` metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// `memory`, `redis` (one node), `sentinel` or `cluster`.
    pub mode: &'static str,
    /// `host:port` of the node taking the writes: the configured node, the primary the
    /// Sentinels named, or the cluster primary serving the fleet's hash slot. The last known
    /// one while the store does not answer; empty for memory or when never known.
    pub primary: String,
    /// Whether a primary answered within 1 s (`ROLE` says primary; `PING` on a cluster);
    /// always `true` for memory.
    pub up: bool,
}

impl StoreHealth {
    /// The health of a [`MemoryStore`]: always up, no primary.
    pub fn memory() -> StoreHealth {
        StoreHealth {
            mode: "memory",
            primary: String::new(),
            up: true,
        }
    }
}

/// One origin as the store sees it, for the system API and metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OriginStatus {
    /// What it registered (or the default backend's configuration).
    pub info: OriginInfo,
    /// Milliseconds since its last heartbeat; 0 for the default backend.
    pub age_ms: u64,
    /// Whether it had a heartbeat within the alive duration (always true for the default backend).
    pub alive: bool,
    /// True while it is no candidate: set aside after a failed dial ([`Store::set_aside`]), or
    /// not probed yet (`unverified`).
    pub aside: bool,
    /// True while its new endpoints await their first reachability probe
    /// ([`StoreConfig::probe_hold`], [`Store::probe_result`]).
    pub unverified: bool,
    /// The endpoint kinds (`rtmp`, `http`, `api`) its last probe could not reach: it is no
    /// candidate for the protocols that need them.
    pub down: Vec<String>,
    /// Number of streams it holds an unexpired lease on.
    pub streams: usize,
    /// Whether it is the PROXY_DEFAULT_BACKEND_* origin.
    pub is_default: bool,
}

/// Which protocol a session record belongs to; also the Redis key part
/// (docs/design.md §9: `{prefix}{kind}:{id}`). A new protocol whose sessions must be found by id
/// on every proxy adds a variant here and an alive duration in [`StoreConfig::session_alive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// An HLS player, by the `spbhid` of its playlist and segment URLs (docs/design.md §6).
    Hls,
    /// A WebRTC session, by its ICE username fragment (docs/design.md §6, §8).
    Rtc,
}

impl SessionKind {
    /// `"hls"` or `"rtc"`: the serialized form and the Redis key part.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Hls => "hls",
            SessionKind::Rtc => "rtc",
        }
    }
}

impl fmt::Display for SessionKind {
    /// Same as [`SessionKind::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session that must be found by id on every proxy (docs/design.md §6): the HLS `spbhid`, a
/// WebRTC ICE ufrag, ..., so that requests or packets of one session reaching any proxy go to the
/// same origin. Stored as JSON in Redis.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    /// The protocol the session belongs to; ids of different kinds never collide.
    pub kind: SessionKind,
    /// The session id within its kind.
    pub id: String,
    /// The stream published or played.
    pub key: StreamKey,
    /// The origin's id (`server/service/pid`).
    pub origin_id: String,
    /// The origin address the session's traffic goes to (`host:port`: HTTP for HLS, UDP media
    /// for WebRTC).
    pub origin_addr: String,
    /// Publish or play, for protocols that have both (WebRTC); `None` for HLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<srs_cluster::Direction>,
    /// The origin's signalling address (`host:port`; WebRTC: its HTTP API, where the session's
    /// DELETE goes); `None` for HLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_api: Option<String>,
    /// What the session's packets must prove they know (WebRTC: the ICE password the origin
    /// answered with, the key of STUN MESSAGE-INTEGRITY); `None` for HLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Settings shared by every [`Store`] (docs/design.md §2, §5).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// An origin with no heartbeat for this long is dead (PROXY_SERVER_ALIVE_DURATION).
    pub alive: Duration,
    /// A stream's owner is forgotten this long after its last pick or lease refresh
    /// ([`DEFAULT_LEASE`]).
    pub lease: Duration,
    /// An HLS session record is forgotten this long after its last put or get
    /// (PROXY_HLS_ALIVE_DURATION, [`DEFAULT_HLS_ALIVE`]).
    pub hls_alive: Duration,
    /// A WebRTC session record is forgotten this long after its last put or get
    /// (PROXY_RTC_ALIVE_DURATION, [`DEFAULT_RTC_ALIVE`]).
    pub rtc_alive: Duration,
    /// The always-alive PROXY_DEFAULT_BACKEND_* origin, which competes for streams like any
    /// origin; `None` when disabled.
    pub default_backend: Option<OriginInfo>,
    /// PROXY_ORIGIN_LOAD_LIMIT: an origin whose load per CPU ([`OriginInfo::load`]) is above it
    /// gets no new stream while a candidate is not above it; `None`: loads are not compared.
    pub load_limit: Option<f64>,
    /// When set, a registration whose endpoints the store has not seen for that origin id (a
    /// new origin, a restart, moved endpoints) is no candidate until it was probed
    /// ([`Store::probe_result`]), and endpoint kinds a probe could not reach stay out of the
    /// picks for this long after each failed probe (docs/design.md §3); `None`: every
    /// registration is a candidate at once.
    pub probe_hold: Option<Duration>,
}

/// What [`Store::register`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// The origin's endpoints are new to the store and it awaits a reachability probe
    /// ([`StoreConfig::probe_hold`]).
    pub unverified: bool,
}

/// The endpoints of `info` as one string, to tell whether a heartbeat moved them.
pub(crate) fn endpoints_fingerprint(info: &OriginInfo) -> String {
    let lists = [&info.rtmp, &info.http, &info.api, &info.srt, &info.rtc];
    lists
        .iter()
        .map(|l| l.join(","))
        .collect::<Vec<_>>()
        .join("|")
}

impl StoreConfig {
    /// `alive` and the default backend as given; the lease and session lifetimes at their
    /// defaults.
    pub fn new(alive: Duration, default_backend: Option<OriginInfo>) -> Self {
        StoreConfig {
            alive,
            lease: DEFAULT_LEASE,
            hls_alive: DEFAULT_HLS_ALIVE,
            rtc_alive: DEFAULT_RTC_ALIVE,
            default_backend,
            load_limit: None,
            probe_hold: None,
        }
    }

    /// Whether `origin` reported a load above [`StoreConfig::load_limit`]; an origin that
    /// reports none is never above it.
    pub fn over_load_limit(&self, origin: &OriginInfo) -> bool {
        matches!((self.load_limit, origin.load), (Some(limit), Some(load)) if load > limit)
    }

    /// How long a session record of `kind` lives after its last put or get:
    /// [`StoreConfig::hls_alive`] or [`StoreConfig::rtc_alive`].
    pub fn session_alive(&self, kind: SessionKind) -> Duration {
        match kind {
            SessionKind::Hls => self.hls_alive,
            SessionKind::Rtc => self.rtc_alive,
        }
    }
}

/// Why no origin could be chosen (docs/design.md §5). The proxy turns these into protocol errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No live origin offers what the protocol needs.
    #[error("no live origin offers {protocol}")]
    NoOrigin {
        /// The protocol asked for.
        protocol: Protocol,
    },
    /// The stream's live owner does not offer the protocol; moving the stream would break it.
    #[error("the stream's origin {owner} does not offer {protocol}")]
    OwnerLacksProtocol {
        /// The owner's id (`server/service/pid`).
        owner: String,
        /// The protocol asked for.
        protocol: Protocol,
    },
    /// The shared backend (e.g. Redis) cannot be reached; the payload says why.
    #[error("load-balancer store unavailable: {0}")]
    Unavailable(String),
}

/// Shared state of origins, stream owners and sessions (docs/design.md §5). Implementations must
/// make `pick` atomic: two proxies picking the same unowned stream must get the same origin.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records a heartbeat: inserts the origin or refreshes it. A record with the same `server`
    /// but another id (new service or pid: a restart) is replaced, and its streams are
    /// re-assigned on their next pick. With [`StoreConfig::probe_hold`], a heartbeat whose
    /// endpoints are new for its id makes the origin no candidate until
    /// [`Store::probe_result`] reports its probe ([`Registered::unverified`]).
    ///
    /// Errors: [`StoreError::Unavailable`] when the backend is down.
    async fn register(&self, info: OriginInfo) -> Result<Registered, StoreError>;

    /// The origin for `key`: its live owner when there is one (its lease is refreshed), else a
    /// newly assigned live origin offering `protocol` with the fewest unexpired leases (ties at
    /// random), which takes the lease.
    ///
    /// Errors: [`StoreError::OwnerLacksProtocol`] when the live owner cannot serve `protocol`;
    /// [`StoreError::NoOrigin`] when no live origin offers it; [`StoreError::Unavailable`].
    async fn pick(&self, key: &StreamKey, protocol: Protocol) -> Result<OriginInfo, StoreError>;

    /// Every known origin, the default backend first, then by id. [`MemoryStore`] lists dead
    /// origins until it forgets them; the Redis store lists live ones only, since a dead
    /// origin's record expires.
    ///
    /// Errors: [`StoreError::Unavailable`] when the backend is down.
    async fn origins(&self) -> Result<Vec<OriginStatus>, StoreError>;

    /// Sets an origin aside for `duration` after a refused or timed-out dial (docs/design.md §5):
    /// while aside it is no candidate, and streams it owns are re-assigned on their next pick,
    /// without waiting for its heartbeat to expire. A registration under a new id (a restarted
    /// process: new `service` or `pid`) is not affected. Unknown ids are ignored.
    ///
    /// Errors: [`StoreError::Unavailable`] when the backend is down.
    async fn set_aside(&self, origin_id: &str, duration: Duration) -> Result<(), StoreError>;

    /// Records a reachability probe of a live origin's TCP endpoints (docs/design.md §3): it
    /// ends an unverified hold (not a set-aside after a failed dial, which runs its course),
    /// and `down` (endpoint kinds that did not answer: `rtmp`, `http`, `api`) replaces the
    /// kinds held out: for [`StoreConfig::probe_hold`] from now the origin is no candidate for
    /// a protocol needing one of them, and a stream it owns moves on its next pick of such a
    /// protocol. Without `probe_hold`, or for unknown ids, nothing happens.
    ///
    /// Errors: [`StoreError::Unavailable`] when the backend is down.
    async fn probe_result(&self, origin_id: &str, down: &[&str]) -> Result<(), StoreError>;

    /// Stream ownership is a lease (docs/design.md §5): `pick` takes or refreshes it, and the proxy
    /// calls this for the streams of its active sessions, each with the origin id it is relaying
    /// to. Each lease whose current owner is still that origin is extended to
    /// [`StoreConfig::lease`] from now; a lease that vanished (expired, or lost with the backend's
    /// data) is taken again when that origin is live and not set aside; pairs whose stream moved
    /// are ignored.
    ///
    /// Errors: [`StoreError::Unavailable`] when the backend is down.
    async fn refresh_leases(&self, leases: &[(StreamKey, String)]) -> Result<(), StoreError>;

    /// Like [`Store::refresh_leases`], for the streams of active *publisher* sessions: a
    /// publisher's session is proof of where its stream is, so each origin takes the stream's
    /// lease even from another owner (e.g. one a player's pick chose while the store had lost its
    /// data), when that origin is live and not set aside.
    ///
    /// Errors: [`StoreError::Unavailable`] when the backend is down.
    async fn claim_leases(&self, leases: &[(StreamKey, String)]) -> Result<(), StoreError>;

    /// Stores `record` under (`record.kind`, `record.id`) for
    /// [`StoreConfig::session_alive`] of its kind, replacing any record there.
    ///
    /// Errors: [`StoreError::Unavailable`] when the backend is down.
    async fn put_session(&self, record: &SessionRecord) -> Result<(), StoreError>;

    /// The store's mode and current primary, and whether it answers within 1 s. Never fails:
    /// an unreachable store is reported with `up: false`.
    async fn health(&self) -> StoreHealth;

    /// The session record of `kind` with `id`, if stored and not expired; a hit extends its life
    /// to [`StoreConfig::session_alive`] of `kind` from now.
    ///
    /// Errors: [`StoreError::Unavailable`] when the backend is down or the record is corrupt.
    async fn get_session(
        &self,
        kind: SessionKind,
        id: &str,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Forgets the session record of `kind` with `id`; nothing happens when there is none.
    ///
    /// Errors: [`StoreError::Unavailable`] when the backend is down.
    async fn delete_session(&self, kind: SessionKind, id: &str) -> Result<(), StoreError>;
}

/// The in-process [`Store`] for `PROXY_LOAD_BALANCER_TYPE=memory` (docs/design.md §5).
pub struct MemoryStore {
    config: StoreConfig,
    inner: Mutex<Inner>,
    sessions: Mutex<Sessions>,
}

struct Record {
    info: OriginInfo,
    last_seen: Instant,
    /// [`endpoints_fingerprint`] of the last heartbeat.
    endpoints: String,
    /// Endpoint kinds the last probe could not reach, and until when that holds.
    down: Vec<String>,
    down_until: Option<Instant>,
}

impl Record {
    /// The endpoint kinds held out at `now`.
    fn down_at(&self, now: Instant) -> &[String] {
        match self.down_until {
            Some(until) if until > now => &self.down,
            _ => &[],
        }
    }
}

/// Whether `info` can serve `protocol` with none of its endpoints held `down`.
fn serves(info: &OriginInfo, protocol: Protocol, down: &[String]) -> bool {
    info.has(protocol)
        && !protocol
            .required_endpoints()
            .iter()
            .any(|kind| down.iter().any(|d| d == kind))
}

/// Why an origin is out of the picks for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aside {
    /// A dial failed or went unanswered ([`Store::set_aside`]).
    Failed,
    /// Its endpoints are not proven reachable yet ([`Store::probe_result`]).
    Unverified,
}

/// A stream's owner until `until`.
struct Lease {
    owner: String,
    until: Instant,
}

#[derive(Default)]
struct Inner {
    /// Registered origins by id.
    origins: HashMap<String, Record>,
    /// Stream → unexpired lease (expired ones are removed by [`Inner::expire`]).
    owners: HashMap<StreamKey, Lease>,
    /// Owner id → number of streams it owns in `owners`.
    counts: HashMap<String, usize>,
    /// Origins out of the picks, with the instant that ends and why.
    aside: HashMap<String, (Instant, Aside)>,
    /// Every lease end ever set, earliest first. An entry whose lease was since extended, moved
    /// or dropped no longer matches `owners` and is discarded when it comes up.
    expiries: BinaryHeap<Reverse<(Instant, StreamKey)>>,
}

impl Inner {
    fn assign(&mut self, key: StreamKey, id: &str, until: Instant) {
        self.expiries.push(Reverse((until, key.clone())));
        let lease = Lease {
            owner: id.to_owned(),
            until,
        };
        if let Some(old) = self.owners.insert(key, lease) {
            self.uncount(&old.owner);
        }
        *self.counts.entry(id.to_owned()).or_default() += 1;
    }

    /// Moves the end of `key`'s lease, if it has one, to `until`.
    fn extend(&mut self, key: &StreamKey, until: Instant) {
        if let Some(lease) = self.owners.get_mut(key) {
            lease.until = until;
            self.expiries.push(Reverse((until, key.clone())));
        }
    }

    /// Drops every lease that ended at or before `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((until, _))) = self.expiries.peek() {
            if *until > now {
                break;
            }
            let Some(Reverse((until, key))) = self.expiries.pop() else {
                break;
            };
            if self.owners.get(&key).is_some_and(|l| l.until == until) {
                if let Some(lease) = self.owners.remove(&key) {
                    self.uncount(&lease.owner);
                }
            }
        }
    }

    fn uncount(&mut self, id: &str) {
        if let Some(n) = self.counts.get_mut(id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.counts.remove(id);
            }
        }
    }

    /// Drops every assignment owned by `id`.
    fn release(&mut self, id: &str) {
        if self.counts.remove(id).is_some() {
            self.owners.retain(|_, lease| lease.owner != id);
        }
    }

    fn forget(&mut self, id: &str) {
        self.origins.remove(id);
        self.aside.remove(id);
        self.release(id);
    }

    /// Forgets origins silent for longer than `horizon`.
    fn prune(&mut self, now: Instant, horizon: Duration) {
        let stale: Vec<String> = self
            .origins
            .iter()
            .filter(|(_, r)| now.duration_since(r.last_seen) > horizon)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            tracing::info!(origin = %id, "forgetting origin silent for {horizon:?}");
            self.forget(&id);
        }
    }
}

/// Session records by kind and id, each alive its kind's duration after its last put or get.
struct Sessions {
    entries: HashMap<(SessionKind, String), (SessionRecord, Instant)>,
    /// Sweep expired entries when the map reaches this size: amortised O(1) per put.
    sweep_at: usize,
}

impl Sessions {
    fn new() -> Self {
        Sessions {
            entries: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }

    fn put(&mut self, record: SessionRecord, until: Instant, now: Instant) {
        if self.entries.len() >= self.sweep_at {
            self.entries.retain(|_, (_, until)| *until > now);
            self.sweep_at = MIN_SWEEP.max(self.entries.len() * 2);
        }
        self.entries
            .insert((record.kind, record.id.clone()), (record, until));
    }

    fn get(
        &mut self,
        kind: SessionKind,
        id: &str,
        ttl: Duration,
        now: Instant,
    ) -> Option<SessionRecord> {
        let key = (kind, id.to_owned());
        match self.entries.get_mut(&key) {
            Some((record, until)) if *until > now => {
                *until = now + ttl;
                Some(record.clone())
            }
            Some(_) => {
                self.entries.remove(&key);
                None
            }
            None => None,
        }
    }
}

impl MemoryStore {
    /// A store where an origin is alive while its last heartbeat is younger than `alive`
    /// (PROXY_SERVER_ALIVE_DURATION), with an optional always-alive default backend
    /// (PROXY_DEFAULT_BACKEND_*), which competes for streams like any origin. Leases and session
    /// lifetimes take their defaults ([`StoreConfig::new`]).
    pub fn new(alive: Duration, default_backend: Option<OriginInfo>) -> Self {
        Self::with_config(StoreConfig::new(alive, default_backend))
    }

    /// A store with every setting given.
    pub fn with_config(config: StoreConfig) -> Self {
        MemoryStore {
            config,
            inner: Mutex::new(Inner::default()),
            sessions: Mutex::new(Sessions::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    fn is_alive(&self, r: &Record, now: Instant) -> bool {
        now.duration_since(r.last_seen) < self.config.alive
    }

    fn is_aside(inner: &Inner, id: &str, now: Instant) -> bool {
        inner.aside.get(id).is_some_and(|(until, _)| *until > now)
    }

    /// The endpoint kinds of `id` held out at `now` (none for unknown ids).
    fn down_of(inner: &Inner, id: &str, now: Instant) -> Vec<String> {
        inner
            .origins
            .get(id)
            .map(|r| r.down_at(now).to_vec())
            .unwrap_or_default()
    }

    fn is_unverified(inner: &Inner, id: &str, now: Instant) -> bool {
        inner
            .aside
            .get(id)
            .is_some_and(|(until, why)| *until > now && *why == Aside::Unverified)
    }

    /// The live origin with this id, if any; one set aside counts as not live.
    fn live<'a>(&'a self, inner: &'a Inner, id: &str, now: Instant) -> Option<&'a OriginInfo> {
        if Self::is_aside(inner, id, now) {
            return None;
        }
        match &self.config.default_backend {
            Some(d) if d.id == id => Some(d),
            _ => inner
                .origins
                .get(id)
                .filter(|r| self.is_alive(r, now))
                .map(|r| &r.info),
        }
    }

    /// Locks the state, prunes long-dead origins and drops expired leases.
    fn lock_at(&self, now: Instant) -> MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        inner.prune(now, self.config.alive.saturating_mul(PRUNE_FACTOR));
        inner.expire(now);
        inner
    }
}

/// Locks `m`; the data stays consistent even if a holder panicked: every update is a few map
/// writes.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn register(&self, info: OriginInfo) -> Result<Registered, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock_at(now);
        let replaced: Vec<String> = inner
            .origins
            .values()
            .filter(|r| r.info.server == info.server && r.info.id != info.id)
            .map(|r| r.info.id.clone())
            .collect();
        for old in replaced {
            tracing::info!(old = %old, new = %info.id, "origin restarted; dropping its streams");
            inner.forget(&old);
        }
        if !inner.origins.contains_key(&info.id) {
            tracing::info!(origin = %info.id, rtmp = ?info.rtmp, "origin registered");
        }
        let endpoints = endpoints_fingerprint(&info);
        let moved = inner
            .origins
            .get(&info.id)
            .is_none_or(|r| r.endpoints != endpoints);
        let unverified = match self.config.probe_hold {
            Some(hold) if moved => {
                inner
                    .aside
                    .insert(info.id.clone(), (now + hold, Aside::Unverified));
                true
            }
            _ => false,
        };
        let (down, down_until) = match inner.origins.remove(&info.id) {
            Some(old) if !moved => (old.down, old.down_until),
            _ => (Vec::new(), None),
        };
        inner.origins.insert(
            info.id.clone(),
            Record {
                info,
                last_seen: now,
                endpoints,
                down,
                down_until,
            },
        );
        Ok(Registered { unverified })
    }

    async fn pick(&self, key: &StreamKey, protocol: Protocol) -> Result<OriginInfo, StoreError> {
        let now = Instant::now();
        let until = now + self.config.lease;
        let mut inner = self.lock_at(now);

        if let Some(owner) = inner.owners.get(key).map(|l| l.owner.clone()) {
            let down = Self::down_of(&inner, &owner, now);
            let usable = self.live(&inner, &owner, now).filter(|info| {
                !protocol
                    .required_endpoints()
                    .iter()
                    .any(|kind| down.iter().any(|d| d == kind))
                    || !info.has(protocol)
            });
            if let Some(info) = usable.cloned() {
                inner.extend(key, until);
                return if info.has(protocol) {
                    Ok(info)
                } else {
                    Err(StoreError::OwnerLacksProtocol { owner, protocol })
                };
            }
            tracing::info!(origin = %owner, %protocol, "owner is dead, gone or unreachable for the protocol; re-assigning its streams");
            inner.release(&owner);
        }

        let mut candidates: Vec<(&OriginInfo, usize)> = self
            .config
            .default_backend
            .iter()
            .chain(
                inner
                    .origins
                    .values()
                    .filter(|r| self.is_alive(r, now))
                    .filter(|r| serves(&r.info, protocol, r.down_at(now)))
                    .map(|r| &r.info),
            )
            .filter(|info| info.has(protocol) && !Self::is_aside(&inner, &info.id, now))
            .map(|info| (info, inner.counts.get(&info.id).copied().unwrap_or(0)))
            .collect();
        // Overloaded origins compete only when every candidate is (docs/design.md §5.1).
        if candidates
            .iter()
            .any(|(info, _)| !self.config.over_load_limit(info))
        {
            candidates.retain(|(info, _)| !self.config.over_load_limit(info));
        }
        let fewest = candidates.iter().map(|(_, n)| *n).min();
        let least_loaded: Vec<&OriginInfo> = candidates
            .iter()
            .filter(|(_, n)| Some(*n) == fewest)
            .map(|(info, _)| *info)
            .collect();
        let chosen = least_loaded
            .choose(&mut rand::thread_rng())
            .map(|info| (*info).clone())
            .ok_or(StoreError::NoOrigin { protocol })?;

        tracing::debug!(stream = %key, origin = %chosen.id, "stream assigned");
        inner.assign(key.clone(), &chosen.id, until);
        Ok(chosen)
    }

    async fn origins(&self) -> Result<Vec<OriginStatus>, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.expire(now);
        let streams = |id: &str| inner.counts.get(id).copied().unwrap_or(0);
        let mut records: Vec<&Record> = inner.origins.values().collect();
        records.sort_by(|a, b| a.info.id.cmp(&b.info.id));
        let default = self.config.default_backend.iter().map(|info| OriginStatus {
            info: info.clone(),
            age_ms: 0,
            alive: true,
            aside: Self::is_aside(&inner, &info.id, now),
            unverified: false,
            down: Vec::new(),
            streams: streams(&info.id),
            is_default: true,
        });
        let registered = records.into_iter().map(|r| OriginStatus {
            info: r.info.clone(),
            age_ms: u64::try_from(now.duration_since(r.last_seen).as_millis()).unwrap_or(u64::MAX),
            alive: self.is_alive(r, now),
            aside: Self::is_aside(&inner, &r.info.id, now),
            unverified: Self::is_unverified(&inner, &r.info.id, now),
            down: r.down_at(now).to_vec(),
            streams: streams(&r.info.id),
            is_default: false,
        });
        Ok(default.chain(registered).collect())
    }

    async fn set_aside(&self, origin_id: &str, duration: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.aside.retain(|_, (until, _)| *until > now);
        let known = inner.origins.contains_key(origin_id)
            || self
                .config
                .default_backend
                .as_ref()
                .is_some_and(|d| d.id == origin_id);
        if known {
            tracing::warn!(origin = %origin_id, ?duration, "origin set aside after a failed dial");
            inner
                .aside
                .insert(origin_id.to_owned(), (now + duration, Aside::Failed));
            inner.release(origin_id);
        }
        Ok(())
    }

    async fn probe_result(&self, origin_id: &str, down: &[&str]) -> Result<(), StoreError> {
        let Some(hold) = self.config.probe_hold else {
            return Ok(());
        };
        let now = Instant::now();
        let mut inner = self.lock();
        if Self::is_unverified(&inner, origin_id, now) {
            inner.aside.remove(origin_id);
            tracing::info!(origin = %origin_id, ?down, "origin probed; now a candidate");
        }
        if let Some(record) = inner.origins.get_mut(origin_id) {
            record.down = down.iter().map(|d| d.to_string()).collect();
            record.down_until = (!down.is_empty()).then_some(now + hold);
        }
        Ok(())
    }

    async fn refresh_leases(&self, leases: &[(StreamKey, String)]) -> Result<(), StoreError> {
        let now = Instant::now();
        let until = now + self.config.lease;
        let mut inner = self.lock();
        inner.expire(now);
        for (key, id) in leases {
            match inner.owners.get(key) {
                Some(lease) if lease.owner == *id => inner.extend(key, until),
                Some(_) => {}
                // The lease vanished while a session still relays it: take it again.
                None if self.live(&inner, id, now).is_some() => {
                    inner.assign(key.clone(), id, until)
                }
                None => {}
            }
        }
        Ok(())
    }

    async fn claim_leases(&self, leases: &[(StreamKey, String)]) -> Result<(), StoreError> {
        let now = Instant::now();
        let until = now + self.config.lease;
        let mut inner = self.lock();
        inner.expire(now);
        for (key, id) in leases {
            if inner.owners.get(key).is_some_and(|l| l.owner == *id) {
                inner.extend(key, until);
            } else if self.live(&inner, id, now).is_some() {
                inner.assign(key.clone(), id, until);
            }
        }
        Ok(())
    }

    async fn health(&self) -> StoreHealth {
        StoreHealth::memory()
    }

    async fn put_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let now = Instant::now();
        let until = now + self.config.session_alive(record.kind);
        lock(&self.sessions).put(record.clone(), until, now);
        Ok(())
    }

    async fn get_session(
        &self,
        kind: SessionKind,
        id: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let ttl = self.config.session_alive(kind);
        Ok(lock(&self.sessions).get(kind, id, ttl, Instant::now()))
    }

    async fn delete_session(&self, kind: SessionKind, id: &str) -> Result<(), StoreError> {
        lock(&self.sessions).entries.remove(&(kind, id.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const ALIVE: Duration = Duration::from_secs(30);

    fn origin(server: &str, pid: &str, http: bool) -> OriginInfo {
        let ip = "10.0.0.1";
        OriginInfo {
            rtmp: vec![format!("{ip}:1935")],
            http: if http {
                vec![format!("{ip}:8080")]
            } else {
                vec![]
            },
            ..OriginInfo::new(ip, server, "svc", pid)
        }
    }

    fn stream(name: &str) -> StreamKey {
        StreamKey {
            vhost: srs_cluster::DEFAULT_VHOST.into(),
            app: "live".into(),
            stream: name.into(),
        }
    }

    /// A store whose leases outlive every test, so only liveness moves streams.
    async fn store_with(origins: &[OriginInfo]) -> MemoryStore {
        let store = MemoryStore::with_config(StoreConfig {
            lease: Duration::from_secs(3600),
            ..StoreConfig::new(ALIVE, None)
        });
        for o in origins {
            store.register(o.clone()).await.unwrap();
        }
        store
    }

    async fn counts(store: &MemoryStore) -> Vec<(String, usize)> {
        let list = store.origins().await.unwrap();
        list.into_iter().map(|s| (s.info.id, s.streams)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn owner_is_sticky() {
        let store = store_with(&[origin("a", "1", true), origin("b", "1", true)]).await;
        let first = store.pick(&stream("s"), Protocol::Rtmp).await.unwrap();
        for _ in 0..20 {
            let again = store.pick(&stream("s"), Protocol::Http).await.unwrap();
            assert_eq!(again.id, first.id);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fewest_streams_spreads_evenly() {
        let store = store_with(&[origin("a", "1", true), origin("b", "1", true)]).await;
        for i in 0..10 {
            store
                .pick(&stream(&format!("s{i}")), Protocol::Rtmp)
                .await
                .unwrap();
        }
        assert_eq!(
            counts(&store).await,
            [("a/svc/1".to_string(), 5), ("b/svc/1".to_string(), 5)]
        );
        // A newcomer takes the next streams until it catches up.
        store.register(origin("c", "1", true)).await.unwrap();
        for i in 10..15 {
            let o = store
                .pick(&stream(&format!("s{i}")), Protocol::Rtmp)
                .await
                .unwrap();
            assert_eq!(o.id, "c/svc/1");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ties_are_broken_at_random() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let store = store_with(&[origin("a", "1", true), origin("b", "1", true)]).await;
            seen.insert(store.pick(&stream("s"), Protocol::Rtmp).await.unwrap().id);
        }
        assert_eq!(seen.len(), 2, "both origins should win some ties: {seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn capability_filtering() {
        let store = store_with(&[origin("a", "1", false), origin("b", "1", true)]).await;
        for i in 0..5 {
            let o = store
                .pick(&stream(&format!("s{i}")), Protocol::Http)
                .await
                .unwrap();
            assert_eq!(o.id, "b/svc/1");
        }
        assert_eq!(
            store.pick(&stream("x"), Protocol::Srt).await,
            Err(StoreError::NoOrigin {
                protocol: Protocol::Srt
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn owner_lacking_protocol_is_an_error() {
        let store = store_with(&[origin("a", "1", false)]).await;
        store.pick(&stream("s"), Protocol::Rtmp).await.unwrap();
        store.register(origin("b", "1", true)).await.unwrap();
        let err = store.pick(&stream("s"), Protocol::Http).await.unwrap_err();
        assert_eq!(
            err,
            StoreError::OwnerLacksProtocol {
                owner: "a/svc/1".into(),
                protocol: Protocol::Http
            }
        );
        assert_eq!(
            err.to_string(),
            "the stream's origin a/svc/1 does not offer http"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dead_owner_is_replaced() {
        let store = store_with(&[origin("a", "1", true)]).await;
        store.pick(&stream("s"), Protocol::Rtmp).await.unwrap();
        store.pick(&stream("t"), Protocol::Rtmp).await.unwrap();
        advance(Duration::from_secs(20)).await;
        store.register(origin("b", "1", true)).await.unwrap();
        // Still alive at 20 s: sticky.
        let o = store.pick(&stream("s"), Protocol::Rtmp).await.unwrap();
        assert_eq!(o.id, "a/svc/1");
        advance(Duration::from_secs(10)).await;
        let o = store.pick(&stream("s"), Protocol::Rtmp).await.unwrap();
        assert_eq!(o.id, "b/svc/1");
        // All of a's assignments went with it.
        let status = store.origins().await.unwrap();
        assert!(!status[0].alive && status[0].streams == 0 && status[0].age_ms == 30_000);
        assert_eq!(status[1].streams, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn restart_with_new_pid_reassigns() {
        let store = store_with(&[origin("a", "1", true), origin("b", "1", true)]).await;
        let mut on_a = None;
        for i in 0..4 {
            let key = stream(&format!("s{i}"));
            if store.pick(&key, Protocol::Rtmp).await.unwrap().id == "a/svc/1" {
                on_a = Some(key);
            }
        }
        let on_a = on_a.unwrap();
        store.register(origin("a", "2", true)).await.unwrap();
        let ids: Vec<String> = counts(&store).await.into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["a/svc/2", "b/svc/1"]);
        // b holds 2 streams, the restarted a none: the orphan goes to the new a.
        let o = store.pick(&on_a, Protocol::Rtmp).await.unwrap();
        assert_eq!(o.id, "a/svc/2");
    }

    #[tokio::test(start_paused = true)]
    async fn no_live_origin() {
        let store = MemoryStore::new(ALIVE, None);
        assert_eq!(
            store.pick(&stream("s"), Protocol::Rtmp).await,
            Err(StoreError::NoOrigin {
                protocol: Protocol::Rtmp
            })
        );
        store.register(origin("a", "1", true)).await.unwrap();
        advance(ALIVE).await;
        assert!(matches!(
            store.pick(&stream("s"), Protocol::Rtmp).await,
            Err(StoreError::NoOrigin { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn default_backend() {
        let default = origin("default", "0", true);
        let store = MemoryStore::new(ALIVE, Some(default.clone()));
        advance(Duration::from_secs(3600)).await;
        let o = store.pick(&stream("s"), Protocol::Http).await.unwrap();
        assert_eq!(o, default);
        // It competes like any origin: a newcomer gets the next stream.
        store.register(origin("a", "1", true)).await.unwrap();
        let o = store.pick(&stream("t"), Protocol::Rtmp).await.unwrap();
        assert_eq!(o.id, "a/svc/1");
        let status = store.origins().await.unwrap();
        assert!(status[0].is_default && status[0].alive && status[0].streams == 1);
        assert!(!status[1].is_default);
    }

    #[tokio::test(start_paused = true)]
    async fn long_dead_origins_are_forgotten() {
        let store = store_with(&[origin("a", "1", true)]).await;
        store.pick(&stream("s"), Protocol::Rtmp).await.unwrap();
        advance(ALIVE * PRUNE_FACTOR).await;
        assert_eq!(store.origins().await.unwrap().len(), 1);
        advance(Duration::from_secs(1)).await;
        store.register(origin("b", "1", true)).await.unwrap();
        assert_eq!(counts(&store).await, [("b/svc/1".to_string(), 0)]);
        let inner = store.lock();
        assert!(inner.owners.is_empty() && inner.counts.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_refreshes() {
        let store = store_with(&[origin("a", "1", true)]).await;
        for _ in 0..5 {
            advance(Duration::from_secs(20)).await;
            store.register(origin("a", "1", true)).await.unwrap();
        }
        let status = store.origins().await.unwrap();
        assert_eq!(status.len(), 1);
        assert!(status[0].alive && status[0].age_ms == 0);
        assert!(store.pick(&stream("s"), Protocol::Rtmp).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn set_aside_reassigns_at_once_and_expires() {
        let a = origin("a", "1", true);
        let b = origin("b", "1", true);
        let store = store_with(&[a.clone(), b.clone()]).await;
        let first = store.pick(&stream("s"), Protocol::Rtmp).await.unwrap();
        let other = if first.id == a.id { &b } else { &a };
        store
            .set_aside(&first.id, Duration::from_secs(10))
            .await
            .unwrap();
        // Still heartbeating, but set aside: the stream moves now, and new streams avoid it.
        store.register(first.clone()).await.unwrap();
        assert_eq!(
            store.pick(&stream("s"), Protocol::Rtmp).await.unwrap().id,
            other.id
        );
        for i in 0..4 {
            let o = store
                .pick(&stream(&format!("n{i}")), Protocol::Rtmp)
                .await
                .unwrap();
            assert_eq!(o.id, other.id);
        }
        let status = store.origins().await.unwrap();
        assert!(status.iter().any(|s| s.info.id == first.id && s.aside));
        advance(Duration::from_secs(11)).await;
        store.register(first.clone()).await.unwrap();
        store.register(other.clone()).await.unwrap();
        // Quarantine over: the fewest-streams choice prefers the emptied origin again.
        let o = store.pick(&stream("later"), Protocol::Rtmp).await.unwrap();
        assert_eq!(o.id, first.id);
    }

    #[tokio::test(start_paused = true)]
    async fn restarted_origin_is_not_aside() {
        let store = store_with(&[origin("a", "1", true)]).await;
        store
            .set_aside("a/svc/1", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.pick(&stream("s"), Protocol::Rtmp).await.is_err());
        store.register(origin("a", "2", true)).await.unwrap();
        let o = store.pick(&stream("s"), Protocol::Rtmp).await.unwrap();
        assert_eq!(o.id, "a/svc/2");
    }

    #[tokio::test(start_paused = true)]
    async fn leases_expire_unless_refreshed() {
        let store = MemoryStore::new(Duration::from_secs(3600), None);
        store.register(origin("a", "1", true)).await.unwrap();
        store.pick(&stream("kept"), Protocol::Rtmp).await.unwrap();
        store
            .pick(&stream("dropped"), Protocol::Rtmp)
            .await
            .unwrap();
        for _ in 0..3 {
            advance(DEFAULT_LEASE - Duration::from_secs(1)).await;
            let leases = [
                (stream("kept"), "a/svc/1".to_string()),
                // Not the owner: ignored.
                (stream("dropped"), "b/svc/1".to_string()),
            ];
            store.refresh_leases(&leases).await.unwrap();
        }
        assert_eq!(counts(&store).await, [("a/svc/1".to_string(), 1)]);
        let inner = store.lock();
        assert!(inner.owners.contains_key(&stream("kept")));
        // One live entry per refresh, and the dropped lease's entry is gone.
        assert!(inner.expiries.len() <= 4, "{}", inner.expiries.len());
    }

    fn record(kind: SessionKind, id: &str) -> SessionRecord {
        SessionRecord {
            kind,
            id: id.into(),
            key: stream("s"),
            origin_id: "a/svc/1".into(),
            origin_addr: "10.0.0.1:8080".into(),
            direction: None,
            origin_api: None,
            secret: None,
        }
    }

    #[test]
    fn session_kinds_and_lifetimes() {
        let config = StoreConfig {
            hls_alive: Duration::from_secs(7),
            rtc_alive: Duration::from_secs(9),
            ..StoreConfig::new(ALIVE, None)
        };
        assert_eq!(
            config.session_alive(SessionKind::Hls),
            Duration::from_secs(7)
        );
        assert_eq!(
            config.session_alive(SessionKind::Rtc),
            Duration::from_secs(9)
        );
        for kind in [SessionKind::Hls, SessionKind::Rtc] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(kind.to_string(), kind.as_str());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_expire_unless_read() {
        let store = MemoryStore::new(ALIVE, None);
        let h1 = record(SessionKind::Hls, "h1");
        store.put_session(&h1).await.unwrap();
        store
            .put_session(&record(SessionKind::Hls, "h2"))
            .await
            .unwrap();
        for _ in 0..3 {
            advance(DEFAULT_HLS_ALIVE - Duration::from_secs(1)).await;
            let got = store.get_session(SessionKind::Hls, "h1").await.unwrap();
            assert_eq!(got.as_ref(), Some(&h1));
        }
        assert_eq!(
            store.get_session(SessionKind::Hls, "h2").await.unwrap(),
            None
        );
        // Same id, other kind: a different record.
        assert_eq!(
            store.get_session(SessionKind::Rtc, "h1").await.unwrap(),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn kinds_do_not_collide_and_live_their_own_time() {
        let store = MemoryStore::with_config(StoreConfig {
            hls_alive: Duration::from_secs(10),
            rtc_alive: Duration::from_secs(60),
            ..StoreConfig::new(ALIVE, None)
        });
        let hls = record(SessionKind::Hls, "same");
        let rtc = SessionRecord {
            origin_addr: "10.0.0.1:8000".into(),
            ..record(SessionKind::Rtc, "same")
        };
        store.put_session(&hls).await.unwrap();
        store.put_session(&rtc).await.unwrap();
        assert_eq!(
            store.get_session(SessionKind::Hls, "same").await.unwrap(),
            Some(hls)
        );
        advance(Duration::from_secs(11)).await;
        assert_eq!(
            store.get_session(SessionKind::Hls, "same").await.unwrap(),
            None
        );
        assert_eq!(
            store.get_session(SessionKind::Rtc, "same").await.unwrap(),
            Some(rtc)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn session_map_is_swept() {
        let store = MemoryStore::new(ALIVE, None);
        for i in 0..MIN_SWEEP {
            let kind = if i % 2 == 0 {
                SessionKind::Hls
            } else {
                SessionKind::Rtc
            };
            store
                .put_session(&record(kind, &format!("u{i}")))
                .await
                .unwrap();
        }
        advance(DEFAULT_RTC_ALIVE.max(DEFAULT_HLS_ALIVE)).await;
        store
            .put_session(&record(SessionKind::Rtc, "fresh"))
            .await
            .unwrap();
        assert_eq!(lock(&store.sessions).entries.len(), 1);
    }
}
