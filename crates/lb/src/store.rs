//! The load-balancer store: which origins are alive and which origin owns each stream (SPEC §5).
//!
//! [`MemoryStore`] is the single-proxy implementation. Memory bounds: when `pick` finds a stream's
//! owner dead or unknown, every assignment of that owner is dropped at once; an origin whose last
//! heartbeat is older than [`PRUNE_FACTOR`] × `alive` is forgotten (record and assignments) at the
//! next `register` or `pick`, until then `origins` still lists it as dead for operators.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::time::Instant;

use crate::key::StreamKey;
use crate::register::OriginInfo;

/// Dead origins are forgotten after this many alive durations without a heartbeat.
pub const PRUNE_FACTOR: u32 = 10;

/// What a request needs from an origin (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RTMP publish or play: an `rtmp` endpoint.
    Rtmp,
    /// HTTP-FLV, HTTP-TS, HLS: an `http` endpoint.
    Http,
    /// SRT publish or play: an `srt` endpoint.
    Srt,
    /// WHIP/WHEP: an `api` endpoint for signalling and an `rtc` endpoint for media.
    Rtc,
}

impl fmt::Display for Protocol {
    /// Lowercase name of what is needed: `rtmp`, `http`, `srt`, `api+rtc`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Http => "http",
            Protocol::Srt => "srt",
            Protocol::Rtc => "api+rtc",
        })
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
    /// True while set aside after a failed dial ([`Store::set_aside`]).
    pub aside: bool,
    /// Number of streams currently assigned to it.
    pub streams: usize,
    /// Whether it is the PROXY_DEFAULT_BACKEND_* origin.
    pub is_default: bool,
}

/// Why no origin could be chosen (SPEC §5). The proxy turns these into protocol errors.
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

/// Shared state of origins and stream owners (SPEC §5). Implementations must make `pick`
/// atomic: two proxies picking the same unowned stream must get the same origin.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records a heartbeat: inserts the origin or refreshes it. A record with the same `server`
    /// but another id (new service or pid: a restart) is replaced, and its streams are
    /// re-assigned on their next pick.
    ///
    /// Errors: [`StoreError::Unavailable`] when the backend is down.
    async fn register(&self, info: OriginInfo) -> Result<(), StoreError>;

    /// The origin for `key`: its live owner when there is one, else a newly assigned live origin
    /// offering `protocol` with the fewest streams (ties at random).
    ///
    /// Errors: [`StoreError::OwnerLacksProtocol`] when the live owner cannot serve `protocol`;
    /// [`StoreError::NoOrigin`] when no live origin offers it; [`StoreError::Unavailable`].
    async fn pick(&self, key: &StreamKey, protocol: Protocol) -> Result<OriginInfo, StoreError>;

    /// Every known origin, the default backend first, then by id.
    ///
    /// Errors: [`StoreError::Unavailable`] when the backend is down.
    async fn origins(&self) -> Result<Vec<OriginStatus>, StoreError>;

    /// Sets an origin aside for `duration` after a refused or timed-out dial (SPEC §5): while
    /// aside it is no candidate, and streams it owns are re-assigned on their next pick, without
    /// waiting for its heartbeat to expire. A registration under a new id (a restarted process:
    /// new `service` or `pid`) is not affected. Unknown ids are ignored.
    async fn set_aside(&self, origin_id: &str, duration: Duration) -> Result<(), StoreError>;
}

/// The in-process [`Store`] for `PROXY_LOAD_BALANCER_TYPE=memory` (SPEC §5).
pub struct MemoryStore {
    alive: Duration,
    default_backend: Option<OriginInfo>,
    inner: Mutex<Inner>,
}

struct Record {
    info: OriginInfo,
    last_seen: Instant,
}

#[derive(Default)]
struct Inner {
    /// Registered origins by id.
    origins: HashMap<String, Record>,
    /// Stream → owner id.
    owners: HashMap<StreamKey, String>,
    /// Owner id → number of streams it owns in `owners`.
    counts: HashMap<String, usize>,
    /// Origins set aside after a failed dial, with the instant the quarantine ends.
    aside: HashMap<String, Instant>,
}

impl Inner {
    fn assign(&mut self, key: StreamKey, id: &str) {
        if let Some(old) = self.owners.insert(key, id.to_owned()) {
            self.uncount(&old);
        }
        *self.counts.entry(id.to_owned()).or_default() += 1;
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
            self.owners.retain(|_, owner| owner != id);
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

impl MemoryStore {
    /// A store where an origin is alive while its last heartbeat is younger than `alive`
    /// (PROXY_SERVER_ALIVE_DURATION), with an optional always-alive default backend
    /// (PROXY_DEFAULT_BACKEND_*), which competes for streams like any origin.
    pub fn new(alive: Duration, default_backend: Option<OriginInfo>) -> Self {
        MemoryStore {
            alive,
            default_backend,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent even if a holder panicked: every update is a few map writes.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_alive(&self, r: &Record, now: Instant) -> bool {
        now.duration_since(r.last_seen) < self.alive
    }

    fn is_aside(inner: &Inner, id: &str, now: Instant) -> bool {
        inner.aside.get(id).is_some_and(|until| *until > now)
    }

    /// The live origin with this id, if any; one set aside counts as not live.
    fn live<'a>(&'a self, inner: &'a Inner, id: &str, now: Instant) -> Option<&'a OriginInfo> {
        if Self::is_aside(inner, id, now) {
            return None;
        }
        match &self.default_backend {
            Some(d) if d.id == id => Some(d),
            _ => inner
                .origins
                .get(id)
                .filter(|r| self.is_alive(r, now))
                .map(|r| &r.info),
        }
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn register(&self, info: OriginInfo) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.prune(now, self.alive.saturating_mul(PRUNE_FACTOR));
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
        inner.origins.insert(
            info.id.clone(),
            Record {
                info,
                last_seen: now,
            },
        );
        Ok(())
    }

    async fn pick(&self, key: &StreamKey, protocol: Protocol) -> Result<OriginInfo, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.prune(now, self.alive.saturating_mul(PRUNE_FACTOR));

        if let Some(owner) = inner.owners.get(key).cloned() {
            if let Some(info) = self.live(&inner, &owner, now) {
                return if info.has(protocol) {
                    Ok(info.clone())
                } else {
                    Err(StoreError::OwnerLacksProtocol { owner, protocol })
                };
            }
            tracing::info!(origin = %owner, "owner is dead or gone; re-assigning its streams");
            inner.release(&owner);
        }

        let candidates: Vec<(&OriginInfo, usize)> = self
            .default_backend
            .iter()
            .chain(
                inner
                    .origins
                    .values()
                    .filter(|r| self.is_alive(r, now))
                    .map(|r| &r.info),
            )
            .filter(|info| info.has(protocol) && !Self::is_aside(&inner, &info.id, now))
            .map(|info| (info, inner.counts.get(&info.id).copied().unwrap_or(0)))
            .collect();
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
        inner.assign(key.clone(), &chosen.id);
        Ok(chosen)
    }

    async fn origins(&self) -> Result<Vec<OriginStatus>, StoreError> {
        let now = Instant::now();
        let inner = self.lock();
        let streams = |id: &str| inner.counts.get(id).copied().unwrap_or(0);
        let mut records: Vec<&Record> = inner.origins.values().collect();
        records.sort_by(|a, b| a.info.id.cmp(&b.info.id));
        let default = self.default_backend.iter().map(|info| OriginStatus {
            info: info.clone(),
            age_ms: 0,
            alive: true,
            aside: Self::is_aside(&inner, &info.id, now),
            streams: streams(&info.id),
            is_default: true,
        });
        let registered = records.into_iter().map(|r| OriginStatus {
            info: r.info.clone(),
            age_ms: u64::try_from(now.duration_since(r.last_seen).as_millis()).unwrap_or(u64::MAX),
            alive: self.is_alive(r, now),
            aside: Self::is_aside(&inner, &r.info.id, now),
            streams: streams(&r.info.id),
            is_default: false,
        });
        Ok(default.chain(registered).collect())
    }

    async fn set_aside(&self, origin_id: &str, duration: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.aside.retain(|_, until| *until > now);
        let known = inner.origins.contains_key(origin_id)
            || self.default_backend.as_ref().is_some_and(|d| d.id == origin_id);
        if known {
            tracing::warn!(origin = %origin_id, ?duration, "origin set aside after a failed dial");
            inner.aside.insert(origin_id.to_owned(), now + duration);
            inner.release(origin_id);
        }
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
            id: format!("{server}/svc/{pid}"),
            device_id: None,
            ip: ip.into(),
            server: server.into(),
            service: "svc".into(),
            pid: pid.into(),
            rtmp: vec![format!("{ip}:1935")],
            http: if http {
                vec![format!("{ip}:8080")]
            } else {
                vec![]
            },
            api: vec![],
            srt: vec![],
            rtc: vec![],
        }
    }

    fn stream(name: &str) -> StreamKey {
        StreamKey {
            vhost: crate::key::DEFAULT_VHOST.into(),
            app: "live".into(),
            stream: name.into(),
        }
    }

    async fn store_with(origins: &[OriginInfo]) -> MemoryStore {
        let store = MemoryStore::new(ALIVE, None);
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
        store.set_aside(&first.id, Duration::from_secs(10)).await.unwrap();
        // Still heartbeating, but set aside: the stream moves now, and new streams avoid it.
        store.register(first.clone()).await.unwrap();
        assert_eq!(store.pick(&stream("s"), Protocol::Rtmp).await.unwrap().id, other.id);
        for i in 0..4 {
            let o = store.pick(&stream(&format!("n{i}")), Protocol::Rtmp).await.unwrap();
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
        store.set_aside("a/svc/1", Duration::from_secs(60)).await.unwrap();
        assert!(store.pick(&stream("s"), Protocol::Rtmp).await.is_err());
        store.register(origin("a", "2", true)).await.unwrap();
        let o = store.pick(&stream("s"), Protocol::Rtmp).await.unwrap();
        assert_eq!(o.id, "a/svc/2");
    }
}
