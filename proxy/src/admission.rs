//! Connection limits per TCP listener (PROXY_MAX_CONNECTIONS, docs/design.md §7): a semaphore
//! of permits per listener. Over the limit a new connection is closed at once and counted;
//! connections already open are unaffected.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use crate::metrics::Metrics;
use crate::ratelimit::OncePerSecond;

/// The open-connection limit of one listener.
pub struct ConnectionLimit {
    listener: &'static str,
    max: usize,
    permits: Arc<Semaphore>,
    refused: Counter,
    log: Mutex<OncePerSecond>,
}

impl ConnectionLimit {
    /// A limit of `max` open connections for `listener` (the metric's label: `rtmp`, `http`,
    /// `api`, `system`).
    pub fn new(listener: &'static str, max: usize, metrics: &Metrics) -> ConnectionLimit {
        ConnectionLimit {
            listener,
            max,
            permits: Arc::new(Semaphore::new(max)),
            refused: metrics.connections_refused(listener),
            log: Mutex::new(OncePerSecond::default()),
        }
    }

    /// A permit for a connection from `peer`, held as long as the connection; `None` when the
    /// listener is at its limit (counted, and logged at most once a second).
    pub fn admit(&self, peer: SocketAddr) -> Option<OwnedSemaphorePermit> {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                self.refused.inc();
                let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
                if log.due(Instant::now()) {
                    warn!(listener = self.listener, client = %peer, limit = self.max, "connection refused: the listener is at PROXY_MAX_CONNECTIONS (one line a second at most)");
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_come_back_when_connections_close() {
        let metrics = Metrics::default();
        let limit = ConnectionLimit::new("rtmp", 2, &metrics);
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let a = limit.admit(peer).unwrap();
        let _b = limit.admit(peer).unwrap();
        assert!(limit.admit(peer).is_none());
        assert_eq!(limit.refused.get(), 1);
        drop(a);
        assert!(limit.admit(peer).is_some());
    }
}
