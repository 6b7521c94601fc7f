//! The handler of a UDP listener whose protocol the proxy does not relay yet (SRT, WebRTC until
//! their relays land): datagrams are received and dropped, each client flow is logged once and
//! counted, so an operator sees who sends what to the port (docs/design.md §8).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::flow::FlowTable;
use super::{DatagramHandler, Outbox};
use crate::metrics::{Metrics, UdpCounters};

/// Client flows remembered (for the log and the gauge) at most.
const MAX_FLOWS: usize = 4096;
/// A client silent this long is forgotten.
const FLOW_IDLE: Duration = Duration::from_secs(30);

/// Drops every datagram of a listener, counting them and logging each new client once.
pub struct Unrouted {
    protocol: &'static str,
    flows: FlowTable<()>,
    counters: UdpCounters,
    admitting: bool,
    full_logged: bool,
}

impl Unrouted {
    /// The handler of the `protocol` listener (`srt`, `webrtc`: the metrics' `listener` label).
    pub fn new(protocol: &'static str, metrics: &Arc<Metrics>) -> Unrouted {
        Unrouted {
            protocol,
            flows: FlowTable::new(MAX_FLOWS, FLOW_IDLE),
            counters: metrics.udp(protocol),
            admitting: true,
            full_logged: false,
        }
    }
}

impl DatagramHandler for Unrouted {
    type Event = std::convert::Infallible;

    fn on_event(&mut self, _now: Instant, event: Self::Event, _out: &mut Outbox) {
        match event {}
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, _datagram: &[u8], _out: &mut Outbox) {
        self.counters.dropped();
        if self.flows.get_mut(&from, now).is_some() || !self.admitting {
            return;
        }
        match self.flows.insert(from, (), now) {
            Ok(_) => {
                self.counters.set_flows(self.flows.len());
                info!(listener = self.protocol, client = %from, "not relayed by this proxy yet; dropping the client's datagrams");
            }
            Err(e) if !self.full_logged => {
                self.full_logged = true;
                warn!(listener = self.protocol, error = %e, "new clients are not logged");
            }
            Err(_) => {}
        }
    }

    fn on_timeout(&mut self, now: Instant, _out: &mut Outbox) {
        self.flows.expire(now, |_, ()| {});
        self.counters.set_flows(self.flows.len());
        self.full_logged = false;
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.flows.next_deadline()
    }

    fn stop_admitting(&mut self) {
        self.admitting = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn sample(metrics: &Metrics, name: &str) -> String {
        metrics
            .encode(&[], &srs_lb::StoreHealth::memory())
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn counts_drops_tracks_flows_and_stops_admitting() {
        let metrics = Arc::new(Metrics::default());
        let mut h = Unrouted::new("srt", &metrics);
        let mut out = Outbox::default();
        let t0 = Instant::now();
        h.on_datagram(t0, addr(1), b"x", &mut out);
        h.on_datagram(t0, addr(1), b"x", &mut out);
        h.on_datagram(t0, addr(2), b"x", &mut out);
        assert!(out.is_empty(), "nothing is answered");
        assert_eq!(
            sample(&metrics, "srs_proxy_udp_datagrams_total"),
            r#"srs_proxy_udp_datagrams_total{listener="srt",outcome="dropped"} 3"#
        );
        assert_eq!(
            sample(&metrics, "srs_proxy_udp_flows"),
            r#"srs_proxy_udp_flows{listener="srt"} 2"#
        );
        // Client 1 keeps sending; client 2 goes quiet and is forgotten.
        h.on_datagram(t0 + FLOW_IDLE / 2, addr(1), b"x", &mut out);
        assert_eq!(h.poll_timeout(), Some(t0 + FLOW_IDLE));
        h.on_timeout(t0 + FLOW_IDLE, &mut out);
        assert_eq!(h.flows.len(), 1);
        assert!(h.flows.get(&addr(1)).is_some());
        // Draining: datagrams are still counted, new clients no longer tracked.
        h.stop_admitting();
        h.on_datagram(t0 + FLOW_IDLE, addr(3), b"x", &mut out);
        assert_eq!(h.flows.len(), 1);
        assert!(sample(&metrics, "srs_proxy_udp_datagrams_total").ends_with(" 5"));
    }
}
