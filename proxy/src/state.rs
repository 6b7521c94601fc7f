//! State shared by every listener of one proxy process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use srs_cluster::StreamKey;
use srs_lb::Store;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::http::origin::{self, OriginClient};
use crate::leases::Leases;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::probe::Prober;
use crate::rtc::RtcEvent;
use crate::session::{ClientProtocol, Direction, Session};
use crate::upstream::Upstream;

/// Timeout of a TCP dial to an origin.
pub const ORIGIN_DIAL_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything a session needs: configuration, the store, origin selection and the HTTP client.
pub struct Inner {
    /// The validated configuration.
    pub config: Config,
    /// Origins and stream ownership.
    pub store: Arc<dyn Store>,
    /// Origin selection with failover, shared by every protocol.
    pub upstream: Upstream,
    /// Shutdown coordination.
    pub lifecycle: Lifecycle,
    /// HTTP client for origin requests (HTTP-FLV, HTTP-TS, HLS).
    pub http: OriginClient,
    /// Reachability probes of origins (docs/design.md §3).
    pub prober: Arc<Prober>,
    /// Stream leases held by active sessions.
    pub leases: Arc<Leases>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// This process's id in relayed requests' `Via` (`srs-proxy-<random>`), by which a request
    /// that loops back is recognised (docs/design.md §6.2).
    pub proxy_id: String,
    /// Events for the WebRTC relay (a session deleted through the signalling).
    pub rtc_events: mpsc::Sender<RtcEvent>,
    rtc_receiver: Mutex<Option<mpsc::Receiver<RtcEvent>>>,
    next_session: AtomicU64,
}

/// Cheaply clonable handle to the shared state.
pub type State = Arc<Inner>;

impl Inner {
    /// A new state; see [`State`].
    pub fn new(config: Config, store: Arc<dyn Store>, lifecycle: Lifecycle) -> State {
        let metrics = Arc::new(Metrics::default());
        let (rtc_events, rtc_receiver) = mpsc::channel(crate::rtc::EVENT_QUEUE);
        Arc::new(Inner {
            rtc_events,
            rtc_receiver: Mutex::new(Some(rtc_receiver)),
            proxy_id: format!("srs-proxy-{:016x}", rand::random::<u64>()),
            config,
            upstream: Upstream::new(store.clone(), metrics.clone()),
            prober: Arc::new(Prober::new(store.clone(), metrics.clone())),
            store,
            lifecycle,
            http: origin::client(ORIGIN_DIAL_TIMEOUT),
            leases: Arc::new(Leases::default()),
            metrics,
            next_session: AtomicU64::new(1),
        })
    }

    /// Opens a session of `key` relayed to `origin_id`: it holds the stream's lease, is counted
    /// in the metrics and by the drain until dropped (docs/design.md §7).
    pub fn open_session(
        &self,
        protocol: ClientProtocol,
        direction: Direction,
        key: StreamKey,
        origin_id: String,
    ) -> Session {
        Session::new(
            self.metrics.session(protocol, direction),
            self.leases.hold(key, origin_id, protocol, direction),
            self.lifecycle.session(),
        )
    }

    /// The receiving end of [`Inner::rtc_events`], for the WebRTC relay's task; `None` after
    /// the first call.
    pub fn take_rtc_events(&self) -> Option<mpsc::Receiver<RtcEvent>> {
        self.rtc_receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// A process-unique session id for logs.
    pub fn session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}
