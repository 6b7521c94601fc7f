//! WebRTC through the proxy (docs/design.md §6.5): [`signalling`] relays WHIP, WHEP and SRS's
//! JSON API to the stream's owner and records each session in the store under its ICE username;
//! [`relay`] routes every UDP datagram of those sessions between the proxy's one WebRTC port and
//! the origins. The sans-IO parts (STUN, demultiplexing, SDP rewriting) are in `srs-rtc`.

pub mod relay;
pub mod signalling;

use std::sync::Arc;

use srs_lb::SessionRecord;
use tokio::net::UdpSocket;

pub use relay::RtcRelay;

/// Events queued for the relay at most (lookups, DELETEs, legs that ended).
pub const EVENT_QUEUE: usize = 1024;

/// What the signalling and the relay's tasks tell the relay.
#[derive(Debug)]
pub enum RtcEvent {
    /// A store lookup of `username` (the ICE username of a Binding request) ended: the record
    /// and an origin leg for it, no such session, or why it failed.
    Resolved {
        /// The ICE username looked up.
        username: String,
        /// The session and its origin leg, `None` when unknown, or the error.
        result: Result<Option<(SessionRecord, Arc<UdpSocket>)>, String>,
    },
    /// The session `id` was deleted through the proxy (WHIP/WHEP `DELETE`).
    Deleted {
        /// The session's ICE username.
        id: String,
    },
    /// The origin leg of session `id` ended.
    LegClosed {
        /// The session's ICE username.
        id: String,
        /// Why, for the log.
        reason: String,
    },
}
