//! Stream ownership leases held by this proxy's active sessions.
//!
//! A stream's owner is a lease in the store (docs/design.md §5): taken by `pick`, kept while any session of
//! the stream is active on any proxy, and gone soon after the last one ends, so that an idle
//! stream can move to a less loaded origin next time. Each session holds a [`LeaseGuard`]; one
//! task per proxy refreshes every held lease in one batch every third of the lease. Publisher
//! sessions *claim* their leases instead: the stream is wherever its publisher is, even if the
//! store lost its data and a player's pick meanwhile chose another origin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use srs_cluster::StreamKey;
use tracing::{info, warn};

use crate::session::Direction;
use crate::state::State;

/// A held lease: stream, origin id, and the direction that decides how it is kept (publishers
/// claim, players refresh).
type Entry = (StreamKey, String, Direction);

/// The leases this proxy's sessions hold: (stream, origin id, direction) → number of sessions.
#[derive(Default)]
pub struct Leases {
    held: Mutex<HashMap<Entry, usize>>,
}

impl Leases {
    /// Marks one more session of `key` relaying to `origin_id`; released when the guard drops.
    pub fn hold(
        self: &Arc<Self>,
        key: StreamKey,
        origin_id: String,
        direction: Direction,
    ) -> LeaseGuard {
        let entry = (key, origin_id, direction);
        *self.lock().entry(entry.clone()).or_default() += 1;
        LeaseGuard {
            leases: Arc::clone(self),
            entry: Some(entry),
        }
    }

    /// Every (stream, origin id) pair with at least one active session in `direction`.
    pub fn snapshot(&self, direction: Direction) -> Vec<(StreamKey, String)> {
        self.lock()
            .keys()
            .filter(|(_, _, r)| *r == direction)
            .map(|(k, id, _)| (k.clone(), id.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Entry, usize>> {
        // The map stays consistent even if a holder panicked: each update is one entry.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One session's hold on its stream's lease.
pub struct LeaseGuard {
    leases: Arc<Leases>,
    entry: Option<Entry>,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        let mut held = self.leases.lock();
        if let Some(n) = held.get_mut(&entry) {
            *n -= 1;
            if *n == 0 {
                held.remove(&entry);
            }
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
        let a = leases.hold(key("s"), "o1".into(), Direction::Play);
        let b = leases.hold(key("s"), "o1".into(), Direction::Play);
        let c = leases.hold(key("t"), "o2".into(), Direction::Play);
        let p = leases.hold(key("s"), "o1".into(), Direction::Publish);
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
        drop(p);
        assert!(leases.snapshot(Direction::Publish).is_empty());
    }
}
