//! WebRTC publish (WHIP, RFC 9725) and play (WHEP), and SRS's older JSON API.
//!
//! Signalling runs on the HTTP API listener ([`signalling`]); media on one UDP socket that all
//! sessions share ([`sfu`]). As in SRS, the origin is an ICE-lite agent (RFC 8445 §2.5) with
//! one host candidate, `ORIGIN_CANDIDATE` and the bound port; datagrams find their session with
//! str0m's `Rtc::accepts`.
//!
//! Behaviour:
//! - One publisher per stream, whatever the protocol ([`Hub::publish_rtc`]): a second one gets
//!   409.
//! - A player of a stream nobody publishes is answered at once (the answer depends only on its
//!   offer) and gets media as soon as a publisher arrives. When the publisher leaves, its players
//!   stay and wait for the next one.
//! - Frames are forwarded as they are (no transcoding: H.264, VP8, Opus); a player gets video
//!   from a keyframe on, and a keyframe is asked of the publisher when a player connects and
//!   when a player asks for one (PLI/FIR), at most every [`KEYFRAME_REQUEST_GAP`].
//! - Sessions end on DELETE, on ICE disconnect, and after [`IDLE_TIMEOUT`] without a datagram
//!   from the peer (also when ICE never completes).

pub mod sfu;
pub mod signalling;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use srs_cluster::StreamKey;
use str0m::change::SdpOffer;
use str0m::{Candidate, Rtc};
use tokio::sync::{mpsc, oneshot};

use crate::hub::{Hub, PublishInfo};
use crate::srt_server::SessionSlot;

/// Concurrent WebRTC sessions (publishers and players) at most; more get 503.
pub const MAX_SESSIONS: usize = 1024;

/// Largest SDP offer accepted, in bytes; a larger body gets 413.
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// A session that receives no datagram for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Keyframe requests to one publisher are sent at most this often.
pub const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(500);

/// What a session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends media (WHIP, `/rtc/v1/publish/`).
    Publish,
    /// Receives media (WHEP, `/rtc/v1/play/`).
    Play,
}

/// Why a session could not be opened; each maps to an HTTP status in [`signalling`].
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The offer is not usable SDP, or does not fit the role.
    #[error("bad SDP offer: {0}")]
    BadSdp(String),
    /// The stream already has a publisher.
    #[error("stream {0} is already published")]
    AlreadyPublishing(String),
    /// [`MAX_SESSIONS`] sessions are open.
    #[error("too many WebRTC sessions (at most {MAX_SESSIONS})")]
    Busy,
    /// The media task has stopped.
    #[error("the WebRTC media task has stopped")]
    Stopped,
}

/// A session just opened: its id and the SDP answer.
#[derive(Debug)]
pub struct Opened {
    /// Session id, 16 lowercase letters and digits.
    pub id: String,
    /// The SDP answer text.
    pub answer: String,
}

/// Requests from signalling to the media task.
enum Command {
    /// Adds a negotiated session.
    Add(Box<sfu::Session>),
    /// Ends session `id` if it has this role and key; replies whether it did.
    Close {
        id: String,
        role: Role,
        key: StreamKey,
        reply: oneshot::Sender<bool>,
    },
}

/// The signalling side's handle on the media task. Cloning shares it.
#[derive(Clone)]
pub struct RtcServer {
    commands: mpsc::Sender<Command>,
    hub: Hub,
    /// The host candidate: `ORIGIN_CANDIDATE` and the bound UDP port.
    candidate: SocketAddr,
    sessions: Arc<AtomicUsize>,
}

impl RtcServer {
    /// Negotiates a session for `key` from an SDP offer and hands it to the media task.
    ///
    /// Errors: [`OpenError::BadSdp`] for an offer that does not parse or has no media for the
    /// role, [`OpenError::AlreadyPublishing`], [`OpenError::Busy`], [`OpenError::Stopped`].
    pub async fn open(
        &self,
        role: Role,
        key: StreamKey,
        offer: &str,
        peer: SocketAddr,
    ) -> Result<Opened, OpenError> {
        let slot = SessionSlot::take(self.sessions.clone(), MAX_SESSIONS).ok_or(OpenError::Busy)?;
        signalling::check_offer(offer, role).map_err(|e| OpenError::BadSdp(e.to_string()))?;
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| OpenError::BadSdp(e.to_string()))?;
        let id = crate::config::random_id(16);
        let publisher = match role {
            Role::Publish => {
                let info = PublishInfo {
                    cid: id.clone(),
                    tc_url: format!("webrtc://{peer}"),
                };
                let p = self
                    .hub
                    .publish_rtc(key.clone(), info)
                    .map_err(|_| OpenError::AlreadyPublishing(key.to_string()))?;
                Some(p)
            }
            Role::Play => None,
        };
        install_crypto();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_h264(true)
            .enable_vp8(true)
            .set_ice_lite(true)
            .build(Instant::now());
        let candidate = Candidate::host(self.candidate, "udp")
            .map_err(|e| OpenError::BadSdp(format!("host candidate: {e}")))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| OpenError::BadSdp(e.to_string()))?;
        let answer = answer.to_sdp_string();
        let session = sfu::Session::new(id.clone(), role, key, rtc, slot, publisher, peer);
        self.commands
            .send(Command::Add(Box::new(session)))
            .await
            .map_err(|_| OpenError::Stopped)?;
        Ok(Opened { id, answer })
    }

    /// Ends session `id` when it exists with this role and key; false otherwise.
    pub async fn close(&self, id: &str, role: Role, key: StreamKey) -> bool {
        let (reply, answer) = oneshot::channel();
        let command = Command::Close {
            id: id.to_string(),
            role,
            key,
            reply,
        };
        if self.commands.send(command).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

/// Makes str0m's pure-Rust crypto the process default, once.
fn install_crypto() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}
