//! Prometheus metrics of one proxy process, served at `GET /metrics` on the system API
//! (OpenMetrics text format, via `prometheus-client`).

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use srs_lb::store::OriginStatus;

/// What a relayed session is, for the `protocol` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// An RTMP publisher.
    RtmpPublish,
    /// An RTMP player.
    RtmpPlay,
    /// An HTTP-FLV player.
    HttpFlv,
    /// An HTTP-TS player.
    HttpTs,
    /// One relayed HLS request (playlist or segment).
    Hls,
}

impl SessionKind {
    fn label(self) -> &'static str {
        match self {
            SessionKind::RtmpPublish => "rtmp_publish",
            SessionKind::RtmpPlay => "rtmp_play",
            SessionKind::HttpFlv => "http_flv",
            SessionKind::HttpTs => "http_ts",
            SessionKind::Hls => "hls",
        }
    }
}

impl EncodeLabelValue for SessionKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.label(), encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: SessionKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DirectionLabel {
    direction: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OriginLabel {
    origin: String,
    device_id: String,
}

/// The proxy's counters and gauges.
pub struct Metrics {
    registry: Registry,
    sessions_active: Family<ProtocolLabel, Gauge>,
    sessions: Family<ProtocolLabel, Counter>,
    client_bytes: Family<DirectionLabel, Counter>,
    dial_failures: Counter,
    store_errors: Counter,
    origins: Family<StateLabel, Gauge>,
    origin_streams: Family<OriginLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("srs_proxy");
        let m = Metrics {
            registry: Registry::default(),
            sessions_active: Family::default(),
            sessions: Family::default(),
            client_bytes: Family::default(),
            dial_failures: Counter::default(),
            store_errors: Counter::default(),
            origins: Family::default(),
            origin_streams: Family::default(),
        };
        registry.register(
            "sessions_active",
            "Sessions being relayed now, by protocol",
            m.sessions_active.clone(),
        );
        registry.register(
            "sessions",
            "Sessions relayed since start, by protocol (HLS: each relayed request)",
            m.sessions.clone(),
        );
        registry.register(
            "client_bytes",
            "Bytes relayed to (out) and from (in) clients, counted when each session ends",
            m.client_bytes.clone(),
        );
        registry.register(
            "origin_dial_failures",
            "Refused or timed-out dials to origins (each sets the origin aside)",
            m.dial_failures.clone(),
        );
        registry.register(
            "store_errors",
            "Requests that failed because the load-balancer store was unavailable",
            m.store_errors.clone(),
        );
        registry.register(
            "origins",
            "Origins known to the store, by state (alive, aside, dead)",
            m.origins.clone(),
        );
        registry.register(
            "origin_streams",
            "Streams leased to each live origin",
            m.origin_streams.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Counts a new session of `kind`; it stays active until the guard drops.
    pub fn session(self: &Arc<Self>, kind: SessionKind) -> SessionGuard {
        let label = ProtocolLabel { protocol: kind };
        self.sessions.get_or_create(&label).inc();
        self.sessions_active.get_or_create(&label).inc();
        SessionGuard {
            metrics: Arc::clone(self),
            kind,
        }
    }

    /// Counts a refused or timed-out dial to an origin.
    pub fn dial_failed(&self) {
        self.dial_failures.inc();
    }

    /// Counts a request that failed on an unavailable store.
    pub fn store_failed(&self) {
        self.store_errors.inc();
    }

    /// The metrics in the OpenMetrics text format, with the origin gauges taken from `origins`.
    pub fn encode(&self, origins: &[OriginStatus]) -> String {
        self.origins.clear();
        self.origin_streams.clear();
        for state in ["alive", "aside", "dead"] {
            self.origins
                .get_or_create(&StateLabel {
                    state: state.to_string(),
                })
                .set(0);
        }
        for o in origins {
            let state = match (o.alive, o.aside) {
                (_, true) => "aside",
                (true, false) => "alive",
                (false, false) => "dead",
            };
            self.origins
                .get_or_create(&StateLabel {
                    state: state.to_string(),
                })
                .inc();
            if o.alive {
                let label = OriginLabel {
                    origin: o.info.id.clone(),
                    device_id: o.info.device_id.clone().unwrap_or_default(),
                };
                self.origin_streams
                    .get_or_create(&label)
                    .set(i64::try_from(o.streams).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One active session in the metrics; add its byte counts before it ends.
pub struct SessionGuard {
    metrics: Arc<Metrics>,
    kind: SessionKind,
}

impl SessionGuard {
    /// Adds the session's bytes to the totals.
    pub fn add_bytes(&self, to_client: u64, from_client: u64) {
        let count = |direction: &str, n: u64| {
            self.metrics
                .client_bytes
                .get_or_create(&DirectionLabel {
                    direction: direction.to_string(),
                })
                .inc_by(n);
        };
        count("out", to_client);
        count("in", from_client);
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.metrics
            .sessions_active
            .get_or_create(&ProtocolLabel {
                protocol: self.kind,
            })
            .dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_bytes_and_origins_are_exposed() {
        let m = Arc::new(Metrics::default());
        let a = m.session(SessionKind::RtmpPublish);
        let b = m.session(SessionKind::HttpFlv);
        b.add_bytes(1000, 0);
        drop(b);
        m.dial_failed();
        let text = m.encode(&[]);
        assert!(
            text.contains("srs_proxy_sessions_active{protocol=\"rtmp_publish\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("srs_proxy_sessions_active{protocol=\"http_flv\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("srs_proxy_sessions_total{protocol=\"http_flv\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("srs_proxy_client_bytes_total{direction=\"out\"} 1000"),
            "{text}"
        );
        assert!(
            text.contains("srs_proxy_origin_dial_failures_total 1"),
            "{text}"
        );
        assert!(
            text.contains("srs_proxy_origins{state=\"alive\"} 0"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        drop(a);
    }
}
