//! Protocol-neutral sessions (docs/design.md §7): every relayed session, whatever its protocol,
//! holds its stream's lease, is counted in the metrics by protocol and direction, counts its
//! bytes as they flow, and is counted by the drain.

use std::fmt;

use crate::leases::LeaseGuard;
use crate::lifecycle::SessionTicket;
use crate::metrics::SessionMetrics;

pub use srs_cluster::Direction;

/// The protocol a client speaks to the proxy, for the `protocol` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientProtocol {
    /// RTMP publish or play.
    Rtmp,
    /// HTTP-FLV play.
    HttpFlv,
    /// HTTP-TS play.
    HttpTs,
    /// HLS play; each relayed request (playlist or segment) is one session.
    Hls,
    /// SRT publish or play.
    Srt,
    /// WebRTC (WHIP publish, WHEP play).
    WebRtc,
}

impl ClientProtocol {
    /// The label value: `rtmp`, `http_flv`, `http_ts`, `hls`, `srt`, `webrtc`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientProtocol::Rtmp => "rtmp",
            ClientProtocol::HttpFlv => "http_flv",
            ClientProtocol::HttpTs => "http_ts",
            ClientProtocol::Hls => "hls",
            ClientProtocol::Srt => "srt",
            ClientProtocol::WebRtc => "webrtc",
        }
    }
}

impl fmt::Display for ClientProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One relayed session: while it lives, its stream's lease is kept, it is active in the
/// metrics, and the drain waits for it. Dropping it ends all three.
pub struct Session {
    metrics: SessionMetrics,
    _lease: LeaseGuard,
    _ticket: SessionTicket,
}

impl Session {
    /// A session from its parts; see [`crate::state::Inner::open_session`].
    pub(crate) fn new(metrics: SessionMetrics, lease: LeaseGuard, ticket: SessionTicket) -> Self {
        Session {
            metrics,
            _lease: lease,
            _ticket: ticket,
        }
    }

    /// Counts `n` bytes sent to the client, as they go.
    pub fn sent_to_client(&self, n: u64) {
        self.metrics.sent_to_client(n);
    }

    /// Counts `n` bytes received from the client, as they come.
    pub fn received_from_client(&self, n: u64) {
        self.metrics.received_from_client(n);
    }
}
