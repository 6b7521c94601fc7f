//! Stream ownership leases held by this proxy's active sessions.
//!
//! A stream's owner is a lease in the store (docs/design.md §5): taken by `pick`, kept while any session of
//! the stream is active on any proxy, and gone soon after the last one ends, so that an idle
//! stream can move to a less loaded origin next time. Each session holds a [`LeaseGuard`]; one
//! task per proxy refreshes every held lease in one batch every third of the lease. Publisher
//! sessions *claim* their leases instead: the stream is wherever its publisher is, even if the
//! store lost its data and a player's pick meanwhile chose another origin.
//!
//! The same one record per stream answers `GET /api/v1/streams`: its sessions here by origin,
//! protocol and direction, and since when (docs/design.md §7).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use srs_cluster::StreamKey;
use tracing::{info, warn};

use crate::session::{ClientProtocol, Direction};
use crate::state::State;

/// The sessions of one stream on this proxy that share an origin, protocol and direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionGroup {
    /// The origin they relay to.
    pub origin: String,
    /// The client protocol (`rtmp`, `http_flv`, ...).
    pub protocol: &'static str,
    /// `publish` or `play`.
    pub direction: Direction,
    /// How many sessions.
    pub sessions: usize,
    /// When the oldest of them started, unix milliseconds.
    pub since_ms: u64,
}

/// One stream with sessions on this proxy: what `GET /api/v1/streams` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamSessions {
    /// The stream's vhost.
    pub vhost: String,
    /// Its app (may contain slashes).
    pub app: String,
    /// Its name.
    pub stream: String,
    /// The origin of its publisher here, else of its oldest group.
    pub origin: String,
    /// Since when the stream has had sessions here without a gap, unix milliseconds.
    pub since_ms: u64,
    /// The sessions by origin, protocol and direction.
    pub groups: Vec<SessionGroup>,
}

/// One stream's record: since when, and its session groups (a handful: protocols × directions,
/// two origins at most while a stream moves).
struct Record {
    since_ms: u64,
    groups: Vec<SessionGroup>,
}

/// Which group a guard counts in.
type GroupId = (String, ClientProtocol, Direction);

/// The leases this proxy's sessions hold, one record per stream; bounded by the sessions.
#[derive(Default)]
pub struct Leases {
    held: Mutex<HashMap<StreamKey, Record>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn is(group: &SessionGroup, id: &GroupId) -> bool {
    group.origin == id.0 && group.protocol == id.1.as_str() && group.direction == id.2
}

impl Leases {
    /// Marks one more `protocol` session of `key` relaying to `origin_id`; released when the
    /// guard drops.
    pub fn hold(
        self: &Arc<Self>,
        key: StreamKey,
        origin_id: String,
        protocol: ClientProtocol,
        direction: Direction,
    ) -> LeaseGuard {
        let now = now_ms();
        let id = (origin_id, protocol, direction);
        {
            let mut held = self.lock();
            let record = held.entry(key.clone()).or_insert_with(|| Record {
                since_ms: now,
                groups: Vec::new(),
            });
            match record.groups.iter_mut().find(|g| is(g, &id)) {
                Some(group) => group.sessions += 1,
                None => record.groups.push(SessionGroup {
                    origin: id.0.clone(),
                    protocol: protocol.as_str(),
                    direction,
                    sessions: 1,
                    since_ms: now,
                }),
            }
        }
        LeaseGuard {
            leases: Arc::clone(self),
            entry: Some((key, id)),
        }
    }

    /// Every (stream, origin id) pair with at least one active session in `direction`.
    pub fn snapshot(&self, direction: Direction) -> Vec<(StreamKey, String)> {
        let held = self.lock();
        let mut out: Vec<(StreamKey, String)> = Vec::new();
        for (key, record) in held.iter() {
            let first = out.len();
            for g in record.groups.iter().filter(|g| g.direction == direction) {
                // One lease per origin, whatever the protocols.
                if !out[first..].iter().any(|(_, id)| *id == g.origin) {
                    out.push((key.clone(), g.origin.clone()));
                }
            }
        }
        out
    }

    /// Every stream with sessions here, ordered by key.
    pub fn streams(&self) -> Vec<StreamSessions> {
        let mut out: Vec<StreamSessions> = self
            .lock()
            .iter()
            .map(|(key, record)| view(key, record))
            .collect();
        out.sort_by(|a, b| (&a.vhost, &a.app, &a.stream).cmp(&(&b.vhost, &b.app, &b.stream)));
        out
    }

    /// The stream `key` when it has sessions here.
    pub fn stream(&self, key: &StreamKey) -> Option<StreamSessions> {
        self.lock().get(key).map(|record| view(key, record))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Record>> {
        // The map stays consistent even if a holder panicked: each update is one entry.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn view(key: &StreamKey, record: &Record) -> StreamSessions {
    let origin = record
        .groups
        .iter()
        .find(|g| g.direction == Direction::Publish)
        .or_else(|| record.groups.iter().min_by_key(|g| g.since_ms))
        .map(|g| g.origin.clone())
        .unwrap_or_default();
    StreamSessions {
        vhost: key.vhost.clone(),
        app: key.app.clone(),
        stream: key.stream.clone(),
        origin,
        since_ms: record.since_ms,
        groups: record.groups.clone(),
    }
}

/// One session's hold on its stream's lease.
pub struct LeaseGuard {
    leases: Arc<Leases>,
    entry: Option<(StreamKey, GroupId)>,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let Some((key, id)) = self.entry.take() else {
            return;
        };
        let mut held = self.leases.lock();
        let Some(record) = held.get_mut(&key) else {
            return;
        };
        if let Some(at) = record.groups.iter().position(|g| is(g, &id)) {
            record.groups[at].sessions -= 1;
            if record.groups[at].sessions == 0 {
                record.groups.swap_remove(at);
            }
        }
        if record.groups.is_empty() {
            held.remove(&key);
        }
    }
}

/// Refreshes the held leases every third of the lease, for the life of the process.
pub async fn keep_alive(state: State) {
    let period = (state.config.stream_lease / 3).max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        let publishing = state.leases.snapshot(Direction::Publish);
        let playing = state.leases.snapshot(Direction::Play);
        if publishing.is_empty() && playing.is_empty() {
            continue;
        }
        let mut result = state.store.claim_leases(&publishing).await;
        if result.is_ok() {
            result = state.store.refresh_leases(&playing).await;
        }
        let held = publishing.len() + playing.len();
        match result {
            Ok(()) if failing => {
                failing = false;
                info!(leases = held, "lease refresh works again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                warn!(error = %e, leases = held, "cannot refresh stream leases");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> StreamKey {
        StreamKey {
            vhost: "__defaultVhost__".into(),
            app: "live".into(),
            stream: s.into(),
        }
    }

    #[test]
    fn held_while_any_guard_lives() {
        let leases = Arc::new(Leases::default());
        let a = leases.hold(key("s"), "o1".into(), ClientProtocol::Rtmp, Direction::Play);
        let b = leases.hold(
            key("s"),
            "o1".into(),
            ClientProtocol::HttpFlv,
            Direction::Play,
        );
        let c = leases.hold(key("t"), "o2".into(), ClientProtocol::Rtmp, Direction::Play);
        let p = leases.hold(
            key("s"),
            "o1".into(),
            ClientProtocol::Rtmp,
            Direction::Publish,
        );
        let streams = leases.streams();
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0].stream, "s");
        assert_eq!(streams[0].origin, "o1");
        assert_eq!(streams[0].groups.len(), 3);
        assert_eq!(
            leases.stream(&key("t")).map(|s| s.groups[0].sessions),
            Some(1)
        );
        assert_eq!(leases.snapshot(Direction::Play).len(), 2);
        assert_eq!(
            leases.snapshot(Direction::Publish),
            vec![(key("s"), "o1".to_string())]
        );
        drop(a);
        assert_eq!(leases.snapshot(Direction::Play).len(), 2);
        drop(b);
        assert_eq!(
            leases.snapshot(Direction::Play),
            vec![(key("t"), "o2".to_string())]
        );
        drop(c);
        assert!(leases.snapshot(Direction::Play).is_empty());
        assert!(leases.stream(&key("t")).is_none());
        drop(p);
        assert!(leases.snapshot(Direction::Publish).is_empty());
        assert!(leases.streams().is_empty());
    }
}
