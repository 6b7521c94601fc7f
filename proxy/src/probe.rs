//! Origins prove they are reachable (docs/design.md §3): a registration whose endpoints are new
//! is no candidate until this proxy probed them (a TCP connect to each `rtmp`, `http` and `api`
//! endpoint); an endpoint kind that did not answer keeps the origin out of the picks of the
//! protocols that need it. Origins out of the picks, or with kinds held down, are probed again
//! every [`PROBE_INTERVAL`], so one whose heartbeat keeps coming from an address the proxy cannot
//! reach is never chosen, and one that became reachable comes back. UDP endpoints (`srt`, `rtc`)
//! cannot be probed without a session: a failed session sets the origin aside as usual.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use srs_cluster::OriginInfo;
use srs_lb::Store;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::state::ORIGIN_DIAL_TIMEOUT;

/// How long an origin stays out of the picks after a registration with new endpoints (unless
/// probed first), and an endpoint kind after a failed probe.
pub const PROBE_HOLD: Duration = Duration::from_secs(60);
/// How often the origins out of the picks are probed again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// Probes in flight at once (each is a few TCP connects).
const MAX_PROBES: usize = 32;
/// How long a register request waits for the probe its heartbeat started, so that a reachable
/// origin is a candidate by the time it is answered.
pub const REGISTER_PROBE_WAIT: Duration = Duration::from_secs(1);

/// The last probe of one origin by this proxy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeResult {
    /// Whether every TCP endpoint accepted a connection.
    pub reachable: bool,
    /// The endpoint kinds (`rtmp`, `http`, `api`) with an endpoint that did not.
    pub down: Vec<&'static str>,
    /// The first failure, `endpoint: error`; empty when reachable.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// When it ran.
    #[serde(skip)]
    pub at: Instant,
}

/// Probes origins and records the results in the store and the metrics.
pub struct Prober {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    /// The last result per origin id, for `/api/v1/origins`; holds only origins the store
    /// still lists (pruned each round).
    results: Mutex<HashMap<String, ProbeResult>>,
    slots: Semaphore,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The TCP endpoints of `info` with their kinds.
fn tcp_endpoints(info: &OriginInfo) -> Vec<(&'static str, &str)> {
    let kinds: [(&'static str, &[String]); 3] = [
        ("rtmp", &info.rtmp),
        ("http", &info.http),
        ("api", &info.api),
    ];
    kinds
        .into_iter()
        .flat_map(|(kind, list)| list.iter().map(move |e| (kind, e.as_str())))
        .collect()
}

/// Connects to `endpoint` once within [`ORIGIN_DIAL_TIMEOUT`].
///
/// Errors: the dial's error, or a timeout.
async fn reach(endpoint: &str) -> Result<(), String> {
    match tokio::time::timeout(ORIGIN_DIAL_TIMEOUT, TcpStream::connect(endpoint)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{endpoint}: {e}")),
        Err(_) => Err(format!("{endpoint}: no answer in {ORIGIN_DIAL_TIMEOUT:?}")),
    }
}

impl Prober {
    /// A prober over `store`, counting in `metrics`.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Prober {
        Prober {
            store,
            metrics,
            results: Mutex::new(HashMap::new()),
            slots: Semaphore::new(MAX_PROBES),
        }
    }

    /// This proxy's last probe of `origin_id`, if any.
    pub fn last(&self, origin_id: &str) -> Option<ProbeResult> {
        lock(&self.results).get(origin_id).cloned()
    }

    /// Probes every TCP endpoint of `info` at once and tells the store; returns the endpoint
    /// kinds that did not answer (empty: all did). Waits for a free slot when [`MAX_PROBES`]
    /// are in flight.
    pub async fn probe(&self, info: &OriginInfo) -> Vec<&'static str> {
        let Ok(_slot) = self.slots.acquire().await else {
            return Vec::new();
        };
        let endpoints = tcp_endpoints(info);
        let dials = endpoints.iter().map(|(_, e)| reach(e));
        let results = futures_util::future::join_all(dials).await;
        let mut down: Vec<&'static str> = Vec::new();
        let mut error = String::new();
        for ((kind, _), result) in endpoints.iter().zip(results) {
            if let Err(e) = result {
                if !down.contains(kind) {
                    down.push(kind);
                }
                if error.is_empty() {
                    error = e;
                }
            }
        }
        let reachable = down.is_empty();
        self.metrics.origin_probed(reachable);
        if reachable {
            debug!(origin = %info.id, "origin endpoints reachable");
        } else {
            warn!(origin = %info.id, ?down, %error, "origin endpoints unreachable; no streams of the protocols that need them");
        }
        if let Err(e) = self.store.probe_result(&info.id, &down).await {
            warn!(origin = %info.id, error = %e, "cannot record the probe");
        }
        lock(&self.results).insert(
            info.id.clone(),
            ProbeResult {
                reachable,
                down: down.clone(),
                error,
                at: Instant::now(),
            },
        );
        down
    }

    /// Every [`PROBE_INTERVAL`], probes each live registered origin that is out of the picks
    /// (unverified, or set aside after a failed dial) or has endpoint kinds held down, and was
    /// not probed in the last interval.
    /// Runs until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            tokio::time::sleep(PROBE_INTERVAL).await;
            let origins = match self.store.origins().await {
                Ok(list) => list,
                Err(e) => {
                    debug!(error = %e, "cannot list origins to probe");
                    continue;
                }
            };
            {
                let mut results = lock(&self.results);
                results.retain(|id, _| origins.iter().any(|o| &o.info.id == id));
            }
            let mut round = JoinSet::new();
            for o in origins {
                if !o.alive || o.is_default || (!o.aside && o.down.is_empty()) {
                    continue;
                }
                let recent = self
                    .last(&o.info.id)
                    .is_some_and(|r| r.at.elapsed() < PROBE_INTERVAL);
                if recent {
                    continue;
                }
                let prober = Arc::clone(&self);
                round.spawn(async move { prober.probe(&o.info).await });
            }
            let probed = round.len();
            while round.join_next().await.is_some() {}
            if probed > 0 {
                debug!(probed, "probed origins out of the picks");
            }
        }
    }

    /// Probes a registration that the store marked unverified, waiting at most
    /// [`REGISTER_PROBE_WAIT`]; the probe goes on in the background after that.
    pub async fn probe_registration(self: &Arc<Self>, info: OriginInfo) {
        let prober = Arc::clone(self);
        let id = info.id.clone();
        let probe = tokio::spawn(async move { prober.probe(&info).await.is_empty() });
        if tokio::time::timeout(REGISTER_PROBE_WAIT, probe)
            .await
            .is_err()
        {
            info!(origin = %id, "origin probe still running; it becomes a candidate once it answers");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_reachable_origins_become_candidates() {
        let store: Arc<dyn Store> =
            Arc::new(srs_lb::MemoryStore::with_config(srs_lb::StoreConfig {
                probe_hold: Some(PROBE_HOLD),
                ..srs_lb::StoreConfig::new(Duration::from_secs(30), None)
            }));
        let prober = Prober::new(store.clone(), Arc::new(Metrics::default()));
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        let origin = |server: &str, rtmp: String| OriginInfo {
            rtmp: vec![rtmp],
            ..OriginInfo::new("127.0.0.1", server, "s", "1")
        };
        let good = origin("good", open.local_addr().unwrap().to_string());
        let bad = origin("bad", closed_addr.clone());
        for info in [&good, &bad] {
            assert!(store.register(info.clone()).await.unwrap().unverified);
        }
        assert!(prober.probe(&good).await.is_empty());
        assert_eq!(prober.probe(&bad).await, ["rtmp"]);
        let last = prober.last(&bad.id).unwrap();
        assert!(last.error.starts_with(&closed_addr), "{last:?}");
        let key = srs_cluster::StreamKey::from_rtmp("rtmp://h/live", "s").unwrap();
        for _ in 0..8 {
            let picked = store.pick(&key, srs_cluster::Protocol::Rtmp).await.unwrap();
            assert_eq!(picked.id, good.id);
        }
        let udp_only = OriginInfo {
            srt: vec!["127.0.0.1:1".into()],
            ..OriginInfo::new("127.0.0.1", "udp", "s", "1")
        };
        assert!(tcp_endpoints(&udp_only).is_empty());
        assert!(prober.probe(&udp_only).await.is_empty());
        // One kind down: the origin serves the others.
        let half = OriginInfo {
            http: vec![open.local_addr().unwrap().to_string()],
            ..origin("half", closed_addr.clone())
        };
        assert!(store.register(half.clone()).await.unwrap().unverified);
        assert_eq!(prober.probe(&half).await, ["rtmp"]);
        let hls = srs_cluster::StreamKey::from_rtmp("rtmp://h/live", "h").unwrap();
        let picked = store.pick(&hls, srs_cluster::Protocol::Http).await.unwrap();
        assert_eq!(picked.id, half.id);
    }
}
