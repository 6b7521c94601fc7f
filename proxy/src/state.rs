//! State shared by every listener of one proxy process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use srs_cluster::OriginInfo;
use srs_cluster::Protocol;
use srs_cluster::StreamKey;
use srs_lb::store::{Store, StoreError};

use crate::config::Config;
use crate::leases::Leases;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;

/// Timeout of a TCP dial to an origin.
pub const ORIGIN_DIAL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an origin whose dial was refused or timed out is set aside (docs/design.md §5).
pub const SET_ASIDE: Duration = Duration::from_secs(15);
/// Origins tried for one request before giving up (each failed dial sets one aside).
pub const MAX_DIAL_ATTEMPTS: usize = 3;

/// Body type of requests the proxy sends to origins.
pub type OriginBody = BoxBody<Bytes, hyper::Error>;

/// Everything a session needs: configuration, the store and the origin HTTP client.
pub struct Inner {
    /// The validated configuration.
    pub config: Config,
    /// Origins and stream ownership.
    pub store: Arc<dyn Store>,
    /// Shutdown coordination.
    pub lifecycle: Lifecycle,
    /// HTTP client for origin requests (HTTP-FLV, HTTP-TS).
    pub http: Client<HttpConnector, OriginBody>,
    /// Stream leases held by active sessions.
    pub leases: Arc<Leases>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    next_session: AtomicU64,
}

/// Cheaply clonable handle to the shared state.
pub type State = Arc<Inner>;

impl Inner {
    /// A new state; see [`State`].
    pub fn new(config: Config, store: Arc<dyn Store>, lifecycle: Lifecycle) -> State {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(ORIGIN_DIAL_TIMEOUT));
        connector.set_nodelay(true);
        let http = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Arc::new(Inner {
            config,
            store,
            lifecycle,
            http,
            leases: Arc::new(Leases::default()),
            metrics: Arc::new(Metrics::default()),
            next_session: AtomicU64::new(1),
        })
    }

    /// The stream's owner origin ([`Store::pick`]), counting store outages in the metrics.
    pub async fn pick(
        &self,
        key: &StreamKey,
        protocol: Protocol,
    ) -> Result<OriginInfo, StoreError> {
        let picked = self.store.pick(key, protocol).await;
        if let Err(StoreError::Unavailable(_)) = &picked {
            self.metrics.store_failed();
        }
        picked
    }

    /// A dial to the origin was refused or timed out: counts it and sets the origin aside for
    /// [`SET_ASIDE`] (docs/design.md §5), so this and every other proxy re-pick at once.
    pub async fn origin_unreachable(&self, origin_id: &str) {
        self.metrics.dial_failed();
        if let Err(e) = self.store.set_aside(origin_id, SET_ASIDE).await {
            tracing::warn!(origin = %origin_id, error = %e, "cannot set the origin aside");
        }
    }

    /// A process-unique session id for logs.
    pub fn session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}
