//! Prometheus metrics of one proxy process, served at `GET /metrics` on the system API
//! (OpenMetrics text format, via `prometheus-client`).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use srs_lb::store::{OriginStatus, StoreHealth};

use crate::session::{ClientProtocol, Direction};

/// The labels of every session metric: the client's protocol and the session's direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SessionLabels {
    protocol: &'static str,
    direction: &'static str,
}

impl SessionLabels {
    fn new(protocol: ClientProtocol, direction: Direction) -> Self {
        SessionLabels {
            protocol: protocol.as_str(),
            direction: direction.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UdpLabels {
    listener: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProbeLabel {
    outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    mode: String,
    primary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OriginLabel {
    origin: String,
    device_id: String,
}

/// The proxy's counters and gauges.
pub struct Metrics {
    registry: Registry,
    sessions_active: Family<SessionLabels, Gauge>,
    sessions: Family<SessionLabels, Counter>,
    received: Family<SessionLabels, Counter>,
    sent: Family<SessionLabels, Counter>,
    dial_failures: Counter,
    probes: Family<ProbeLabel, Counter>,
    store_errors: Counter,
    udp_datagrams: Family<UdpLabels, Counter>,
    udp_flows: Family<ListenerLabel, Gauge>,
    connections_refused: Family<ListenerLabel, Counter>,
    origins: Family<StateLabel, Gauge>,
    origin_streams: Family<OriginLabel, Gauge>,
    origin_load: Family<OriginLabel, Gauge<f64, AtomicU64>>,
    store_primary: Family<StoreLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("srs_proxy");
        let m = Metrics {
            registry: Registry::default(),
            sessions_active: Family::default(),
            sessions: Family::default(),
            received: Family::default(),
            sent: Family::default(),
            dial_failures: Counter::default(),
            probes: Family::default(),
            store_errors: Counter::default(),
            udp_datagrams: Family::default(),
            udp_flows: Family::default(),
            connections_refused: Family::default(),
            origins: Family::default(),
            origin_streams: Family::default(),
            origin_load: Family::default(),
            store_primary: Family::default(),
        };
        registry.register(
            "sessions_active",
            "Sessions being relayed now, by client protocol and direction",
            m.sessions_active.clone(),
        );
        registry.register(
            "sessions",
            "Sessions relayed since start, by client protocol and direction (HLS: each relayed request)",
            m.sessions.clone(),
        );
        registry.register(
            "client_bytes_received",
            "Bytes received from clients, counted as they arrive",
            m.received.clone(),
        );
        registry.register(
            "client_bytes_sent",
            "Bytes sent to clients, counted as they go",
            m.sent.clone(),
        );
        registry.register(
            "origin_dial_failures",
            "Refused or timed-out dials to origins, and origins silent after the dial (each sets the origin aside)",
            m.dial_failures.clone(),
        );
        registry.register(
            "origin_probes",
            "Reachability probes of origins out of the picks (new endpoints, failed dials), by outcome: reachable, unreachable",
            m.probes.clone(),
        );
        registry.register(
            "store_errors",
            "Requests that failed because the load-balancer store was unavailable",
            m.store_errors.clone(),
        );
        registry.register(
            "udp_datagrams",
            "Datagrams of the UDP listeners by listener and outcome: dropped, to_origin (a client's, forwarded), to_client (an origin's, forwarded)",
            m.udp_datagrams.clone(),
        );
        registry.register(
            "udp_flows",
            "Client flows (addresses) in each UDP listener's flow table",
            m.udp_flows.clone(),
        );
        registry.register(
            "connections_refused",
            "TCP connections closed at accept because the listener had PROXY_MAX_CONNECTIONS open",
            m.connections_refused.clone(),
        );
        registry.register(
            "origins",
            "Origins known to the store, by state (alive; aside: after a failed dial; unverified: new endpoints not probed yet; endpoints_down: a probe could not reach some endpoints, no streams of the protocols needing them; dead)",
            m.origins.clone(),
        );
        registry.register(
            "origin_streams",
            "Streams leased to each live origin",
            m.origin_streams.clone(),
        );
        registry.register(
            "origin_load",
            "Load per CPU each live origin reported in its heartbeat (absent: none reported)",
            m.origin_load.clone(),
        );
        registry.register(
            "store_primary",
            "The load-balancer store's mode and the primary taking its writes; 1 while it answers",
            m.store_primary.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Counts a new session; it stays active until the returned handle drops.
    pub fn session(
        self: &Arc<Self>,
        protocol: ClientProtocol,
        direction: Direction,
    ) -> SessionMetrics {
        let labels = SessionLabels::new(protocol, direction);
        self.sessions.get_or_create(&labels).inc();
        let active = self.sessions_active.get_or_create(&labels).clone();
        active.inc();
        SessionMetrics {
            active,
            received: self.received.get_or_create(&labels).clone(),
            sent: self.sent.get_or_create(&labels).clone(),
        }
    }

    /// The counters of the UDP listener `listener` (`srt`, `webrtc`).
    pub fn udp(&self, listener: &'static str) -> UdpCounters {
        let outcome = |outcome| {
            self.udp_datagrams
                .get_or_create(&UdpLabels { listener, outcome })
                .clone()
        };
        UdpCounters {
            dropped: outcome("dropped"),
            to_origin: outcome("to_origin"),
            to_client: outcome("to_client"),
            flows: self
                .udp_flows
                .get_or_create(&ListenerLabel { listener })
                .clone(),
        }
    }

    /// The counter of connections refused by the limit of the TCP listener `listener`.
    pub fn connections_refused(&self, listener: &'static str) -> Counter {
        self.connections_refused
            .get_or_create(&ListenerLabel { listener })
            .clone()
    }

    /// Counts a reachability probe of an origin ([`crate::probe`]).
    pub fn origin_probed(&self, reachable: bool) {
        let outcome = if reachable {
            "reachable"
        } else {
            "unreachable"
        };
        self.probes
            .get_or_create(&ProbeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts a refused or timed-out dial to an origin, or one silent after the dial.
    pub fn dial_failed(&self) {
        self.dial_failures.inc();
    }

    /// Counts a request that failed on an unavailable store.
    pub fn store_failed(&self) {
        self.store_errors.inc();
    }

    /// The metrics in the OpenMetrics text format, with the origin gauges taken from `origins`
    /// and the store gauge from `store`.
    pub fn encode(&self, origins: &[OriginStatus], store: &StoreHealth) -> String {
        self.store_primary.clear();
        self.store_primary
            .get_or_create(&StoreLabels {
                mode: store.mode.to_string(),
                primary: store.primary.clone(),
            })
            .set(i64::from(store.up));
        self.origins.clear();
        self.origin_streams.clear();
        self.origin_load.clear();
        for state in ["alive", "aside", "unverified", "endpoints_down", "dead"] {
            self.origins
                .get_or_create(&StateLabel {
                    state: state.to_string(),
                })
                .set(0);
        }
        for o in origins {
            let state = match (o.alive, o.aside, o.unverified) {
                (_, _, true) => "unverified",
                (_, true, false) => "aside",
                (true, false, false) if !o.down.is_empty() => "endpoints_down",
                (true, false, false) => "alive",
                (false, false, false) => "dead",
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
                if let Some(load) = o.info.load {
                    self.origin_load.get_or_create(&label).set(load);
                }
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One active session in the metrics, with its byte counters resolved once so that counting
/// bytes as they flow is one atomic add.
pub struct SessionMetrics {
    active: Gauge,
    received: Counter,
    sent: Counter,
}

impl SessionMetrics {
    /// Counts `n` bytes sent to the client.
    pub fn sent_to_client(&self, n: u64) {
        self.sent.inc_by(n);
    }

    /// Counts `n` bytes received from the client.
    pub fn received_from_client(&self, n: u64) {
        self.received.inc_by(n);
    }
}

impl Drop for SessionMetrics {
    fn drop(&mut self) {
        self.active.dec();
    }
}

/// The counters of one UDP listener, resolved once; clones count into the same series.
#[derive(Clone)]
pub struct UdpCounters {
    dropped: Counter,
    to_origin: Counter,
    to_client: Counter,
    flows: Gauge,
}

impl UdpCounters {
    /// Counts a datagram dropped.
    pub fn dropped(&self) {
        self.dropped.inc();
    }

    /// Counts a client's datagram forwarded to its origin.
    pub fn to_origin(&self) {
        self.to_origin.inc();
    }

    /// Counts an origin's datagram forwarded to its client.
    pub fn to_client(&self) {
        self.to_client.inc();
    }

    /// Sets the number of flows in the listener's table.
    pub fn set_flows(&self, n: usize) {
        self.flows.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_bytes_and_origins_are_exposed() {
        let m = Arc::new(Metrics::default());
        let a = m.session(ClientProtocol::Rtmp, Direction::Publish);
        let b = m.session(ClientProtocol::HttpFlv, Direction::Play);
        b.sent_to_client(1000);
        a.received_from_client(7);
        drop(b);
        m.dial_failed();
        let store = StoreHealth {
            mode: "sentinel",
            primary: "10.0.0.2:6379".into(),
            up: true,
        };
        let text = m.encode(&[], &store);
        assert!(
            text.contains("srs_proxy_store_primary{mode=\"sentinel\",primary=\"10.0.0.2:6379\"} 1"),
            "{text}"
        );
        // After a failover only the new primary is listed; 0 while it does not answer.
        let store = StoreHealth {
            mode: "sentinel",
            primary: "10.0.0.3:6379".into(),
            up: false,
        };
        let text = m.encode(&[], &store);
        assert!(!text.contains("10.0.0.2:6379"), "{text}");
        assert!(
            text.contains("srs_proxy_store_primary{mode=\"sentinel\",primary=\"10.0.0.3:6379\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("srs_proxy_sessions_active{protocol=\"rtmp\",direction=\"publish\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("srs_proxy_sessions_active{protocol=\"http_flv\",direction=\"play\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("srs_proxy_sessions_total{protocol=\"http_flv\",direction=\"play\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "srs_proxy_client_bytes_sent_total{protocol=\"http_flv\",direction=\"play\"} 1000"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "srs_proxy_client_bytes_received_total{protocol=\"rtmp\",direction=\"publish\"} 7"
            ),
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

    #[test]
    fn origin_load_is_exposed_when_reported() {
        let m = Metrics::default();
        let status = |id: &str, load: Option<f64>| OriginStatus {
            info: srs_cluster::OriginInfo {
                load,
                ..srs_cluster::OriginInfo::new("10.0.0.1", id, "svc", "1")
            },
            age_ms: 0,
            alive: true,
            aside: false,
            unverified: false,
            down: Vec::new(),
            streams: 2,
            is_default: false,
        };
        let store = StoreHealth {
            mode: "memory",
            primary: String::new(),
            up: true,
        };
        let text = m.encode(&[status("a", Some(0.75)), status("b", None)], &store);
        assert!(
            text.contains("srs_proxy_origin_load{origin=\"a/svc/1\",device_id=\"\"} 0.75"),
            "{text}"
        );
        assert!(
            !text.contains("srs_proxy_origin_load{origin=\"b/svc/1\""),
            "{text}"
        );
    }
}
