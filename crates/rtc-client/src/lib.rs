//! A WHIP/WHEP WebRTC client built on str0m, for end-to-end tests and benchmarks.
//!
//! [`publish`] POSTs a sendonly audio+video offer (WHIP, RFC 9725, or SRS's JSON API), runs
//! ICE, DTLS and SRTP over a UDP socket on 127.0.0.1, and sends a looped H.264 clip (25 fps,
//! one-second GOP) and Opus audio (20 ms packets) in real time, generated once per process with
//! ffmpeg. [`play`] POSTs a recvonly offer (WHEP) and counts what arrives. Both run in a tokio
//! task until closed or dropped; every wait is bounded.
//!
//! ```no_run
//! # async fn demo() -> Result<(), srs_rtc_client::ClientError> {
//! use std::time::Duration;
//! use srs_rtc_client::{play, publish, Options};
//! let base = "http://127.0.0.1:1985/rtc/v1";
//! let publisher = publish(Options::whip(format!("{base}/whip/?app=live&stream=s"))).await?;
//! let player = play(Options::whip(format!("{base}/whep/?app=live&stream=s"))).await?;
//! player.wait_frames(50, Duration::from_secs(10)).await?;
//! player.close().await?;
//! publisher.close().await?;
//! # Ok(()) }
//! ```

mod http;
pub mod media;
mod session;

use std::net::SocketAddr;
use std::sync::Once;
use std::time::{Duration, Instant};

use ::http::{HeaderMap, StatusCode};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::{Candidate, IceConnectionState, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use crate::http::{delete, post_offer, resolve, Reply, REQUEST_TIMEOUT};

/// How long [`Publisher::close`] and [`Player::close`] wait for the media task to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL cannot be used.
    #[error("bad URL: {0}")]
    Url(String),
    /// The HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// The server refused the offer: its status and body.
    #[error("server answered {status}: {body}")]
    Refused {
        /// The status code.
        status: StatusCode,
        /// The body text.
        body: String,
    },
    /// The answer or the offer is not usable SDP, or str0m refused it.
    #[error("SDP: {0}")]
    Sdp(String),
    /// A UDP socket operation failed.
    #[error("UDP: {0}")]
    Io(#[from] std::io::Error),
    /// str0m failed while running the session.
    #[error("WebRTC: {0}")]
    Rtc(#[from] str0m::RtcError),
    /// Generating the media with ffmpeg failed.
    #[error("media: {0}")]
    Ffmpeg(String),
    /// A bounded wait ran out; says what for.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The session ended before the wait was over.
    #[error("the session ended: {0:?}")]
    Ended(Stats),
}

/// Which signalling to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signalling {
    /// WHIP or WHEP: POST `application/sdp`, 201 with the answer and a `Location` to DELETE.
    Whip,
    /// SRS's JSON API (`/rtc/v1/publish/`, `/rtc/v1/play/`) with this `webrtc://host/app/stream`
    /// URL; no session resource, so closing sends no DELETE.
    SrsJson {
        /// The `streamurl` field.
        streamurl: String,
    },
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Options {
    /// The full signalling URL, e.g. `http://127.0.0.1:1985/rtc/v1/whip/?app=live&stream=s`.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` on every request, when set.
    pub token: Option<String>,
    /// The signalling protocol.
    pub signalling: Signalling,
    /// Send media to this address instead of the answer's candidates (a test of a relay that
    /// routes a session signalled elsewhere); `None`: the answer's.
    pub media_to: Option<SocketAddr>,
}

impl Options {
    /// WHIP or WHEP at `url`, without a token.
    pub fn whip(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            signalling: Signalling::Whip,
            media_to: None,
        }
    }

    /// SRS's JSON API at `url` (e.g. `http://127.0.0.1:1985/rtc/v1/play/`) for `streamurl`.
    pub fn srs_json(url: impl Into<String>, streamurl: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            signalling: Signalling::SrsJson {
                streamurl: streamurl.into(),
            },
            media_to: None,
        }
    }

    /// The same options, sending media to `addr` whatever the answer's candidates say.
    pub fn with_media_to(mut self, addr: SocketAddr) -> Self {
        self.media_to = Some(addr);
        self
    }

    /// The same options with a bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

/// What the signalling exchange returned.
#[derive(Debug, Clone)]
pub struct Signalled {
    /// The response status (201 for WHIP/WHEP, 200 for the JSON API).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The SDP answer text.
    pub answer: String,
    /// The session resource (`Location`, resolved against the POST URL); `None` for the JSON
    /// API.
    pub location: Option<String>,
    /// The JSON API's `sessionid`; `None` for WHIP/WHEP.
    pub session_id: Option<String>,
}

/// A session's progress. Publishers count what they sent, players what they received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// The ICE connection state.
    pub ice: IceConnectionState,
    /// DTLS and SRTP are up: media flows.
    pub connected: bool,
    /// Video frames (access units) sent or received.
    pub video_frames: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// Audio frames (Opus packets) sent or received.
    pub audio_frames: u64,
    /// Media payload bytes sent or received.
    pub bytes: u64,
    /// Players: whether the first video frame was a keyframe (`None` before one).
    pub first_frame_keyframe: Option<bool>,
    /// Players: time from the first video frame to the first keyframe.
    pub keyframe_delay: Option<Duration>,
    /// Publishers: keyframe requests (PLI/FIR) received.
    pub keyframe_requests: u64,
    /// UDP datagrams sent (STUN, DTLS, SRTP, SRTCP).
    pub datagrams_sent: u64,
    /// Bytes of the datagrams sent.
    pub datagram_bytes_sent: u64,
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// Bytes of the datagrams received.
    pub datagram_bytes_received: u64,
    /// The media task has stopped.
    pub ended: bool,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            ice: IceConnectionState::New,
            connected: false,
            video_frames: 0,
            keyframes: 0,
            audio_frames: 0,
            bytes: 0,
            first_frame_keyframe: None,
            keyframe_delay: None,
            keyframe_requests: 0,
            datagrams_sent: 0,
            datagram_bytes_sent: 0,
            datagrams_received: 0,
            datagram_bytes_received: 0,
            ended: false,
        }
    }
}

/// Whether an offer sends or receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// sendonly audio and video.
    Publish,
    /// recvonly audio and video.
    Play,
}

/// A running session: the media task and its figures. Dropping it stops the task without a
/// DELETE.
#[derive(Debug)]
struct Running {
    options: Options,
    signalled: Signalled,
    stats: watch::Receiver<Stats>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ClientError>>>,
}

impl Running {
    async fn wait(
        &self,
        what: &'static str,
        timeout: Duration,
        done: impl Fn(&Stats) -> bool,
    ) -> Result<Stats, ClientError> {
        let mut rx = self.stats.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|s| done(s) || s.ended)).await;
        let stats = match waited {
            Ok(Ok(s)) => *s,
            Ok(Err(_)) => *self.stats.borrow(),
            Err(_) => return Err(ClientError::Timeout(what)),
        };
        if done(&stats) {
            Ok(stats)
        } else {
            Err(ClientError::Ended(stats))
        }
    }

    /// Stops the media task, then DELETEs the session resource (WHIP/WHEP).
    async fn close(mut self) -> Result<Option<Reply>, ClientError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(STOP_TIMEOUT, task).await {
                Ok(Ok(Err(e))) => tracing::debug!("media task had failed: {e}"),
                Ok(_) => {}
                Err(_) => return Err(ClientError::Timeout("the media task to stop")),
            }
        }
        match &self.signalled.location {
            Some(url) => Ok(Some(delete(url, self.options.token.as_deref()).await?)),
            None => Ok(None),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A publishing session, sending the clip in real time until closed.
#[derive(Debug)]
pub struct Publisher(Running);

/// A playing session, counting what it receives until closed.
#[derive(Debug)]
pub struct Player(Running);

impl Publisher {
    /// The signalling exchange's result.
    pub fn signalled(&self) -> &Signalled {
        &self.0.signalled
    }

    /// What has been sent so far.
    pub fn stats(&self) -> Stats {
        *self.0.stats.borrow()
    }

    /// Waits until media flows (DTLS up). Errors: [`ClientError::Timeout`],
    /// [`ClientError::Ended`].
    pub async fn wait_connected(&self, timeout: Duration) -> Result<Stats, ClientError> {
        self.0
            .wait("the connection", timeout, |s| s.connected)
            .await
    }

    /// Waits until `n` keyframe requests have arrived. Errors: as [`Self::wait_connected`].
    pub async fn wait_keyframe_requests(
        &self,
        n: u64,
        timeout: Duration,
    ) -> Result<Stats, ClientError> {
        self.0
            .wait("keyframe requests", timeout, |s| s.keyframe_requests >= n)
            .await
    }

    /// Stops sending and DELETEs the session resource; returns the DELETE's reply (`None` for
    /// the JSON API). Errors: [`ClientError::Timeout`] and the HTTP errors of [`delete`].
    pub async fn close(self) -> Result<Option<Reply>, ClientError> {
        self.0.close().await
    }
}

impl Player {
    /// The signalling exchange's result.
    pub fn signalled(&self) -> &Signalled {
        &self.0.signalled
    }

    /// What has been received so far.
    pub fn stats(&self) -> Stats {
        *self.0.stats.borrow()
    }

    /// The ICE connection state.
    pub fn ice_state(&self) -> IceConnectionState {
        self.0.stats.borrow().ice
    }

    /// Waits until media flows (DTLS up). Errors: [`ClientError::Timeout`],
    /// [`ClientError::Ended`].
    pub async fn wait_connected(&self, timeout: Duration) -> Result<Stats, ClientError> {
        self.0
            .wait("the connection", timeout, |s| s.connected)
            .await
    }

    /// Waits until at least `n` video frames have arrived; returns the count. Errors:
    /// [`ClientError::Timeout`], [`ClientError::Ended`] when the session stops first.
    pub async fn wait_frames(&self, n: u64, timeout: Duration) -> Result<u64, ClientError> {
        let stats = self
            .0
            .wait("video frames", timeout, |s| s.video_frames >= n)
            .await?;
        Ok(stats.video_frames)
    }

    /// Waits until at least `n` audio frames have arrived; returns the count. Errors: as
    /// [`Self::wait_frames`].
    pub async fn wait_audio_frames(&self, n: u64, timeout: Duration) -> Result<u64, ClientError> {
        let stats = self
            .0
            .wait("audio frames", timeout, |s| s.audio_frames >= n)
            .await?;
        Ok(stats.audio_frames)
    }

    /// Stops and DELETEs the session resource; returns the DELETE's reply (`None` for the JSON
    /// API). Errors: as [`Publisher::close`].
    pub async fn close(self) -> Result<Option<Reply>, ClientError> {
        self.0.close().await
    }
}

/// Publishes the generated clip (H.264 + Opus) per `options`.
///
/// Errors: [`ClientError::Refused`] when the server does not answer 201 (WHIP) or 200 with
/// `code` 0 (JSON API); [`ClientError::Sdp`], [`ClientError::Ffmpeg`], HTTP and socket errors.
pub async fn publish(options: Options) -> Result<Publisher, ClientError> {
    let clip = media::clip().await?;
    start(options, Role::Publish, Some(clip))
        .await
        .map(Publisher)
}

/// Plays per `options`, counting received frames.
///
/// Errors: as [`publish`], without ffmpeg.
pub async fn play(options: Options) -> Result<Player, ClientError> {
    start(options, Role::Play, None).await.map(Player)
}

/// An SDP offer (sendonly or recvonly audio+video, H.264/VP8/Opus, one host candidate on
/// 127.0.0.1:9) that no session stands behind, for requests that test the server's checks.
///
/// Errors: [`ClientError::Sdp`] when str0m cannot make one.
pub fn build_offer(role: Role) -> Result<String, ClientError> {
    let local = SocketAddr::from(([127, 0, 0, 1], 9));
    Ok(new_session(local, role)?.offer.to_sdp_string())
}

/// A client [`Rtc`] before the answer.
struct Offered {
    rtc: Rtc,
    offer: SdpOffer,
    pending: SdpPendingOffer,
    /// The media lines of the offer.
    mids: Vec<(Mid, MediaKind)>,
}

/// A client [`Rtc`] with one host candidate at `local`, and its offer.
fn new_session(local: SocketAddr, role: Role) -> Result<Offered, ClientError> {
    install_crypto();
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_h264(true)
        .enable_vp8(true)
        .build(Instant::now());
    let candidate =
        Candidate::host(local, "udp").map_err(|e| ClientError::Sdp(format!("candidate: {e}")))?;
    rtc.add_local_candidate(candidate);
    let direction = match role {
        Role::Publish => Direction::SendOnly,
        Role::Play => Direction::RecvOnly,
    };
    let mut api = rtc.sdp_api();
    let mids = [MediaKind::Audio, MediaKind::Video]
        .into_iter()
        .map(|kind| (api.add_media(kind, direction, None, None, None), kind))
        .collect();
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| ClientError::Sdp("no offer to make".into()))?;
    Ok(Offered {
        rtc,
        offer,
        pending,
        mids,
    })
}

async fn start(
    options: Options,
    role: Role,
    clip: Option<std::sync::Arc<media::Clip>>,
) -> Result<Running, ClientError> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let Offered {
        mut rtc,
        offer,
        pending,
        mids,
    } = new_session(local, role)?;
    let signalled = signal(&options, &offer.to_sdp_string()).await?;
    let answer_text = match options.media_to {
        Some(addr) => with_candidates_at(&signalled.answer, addr),
        None => signalled.answer.clone(),
    };
    let answer = SdpAnswer::from_sdp_string(&answer_text)
        .map_err(|e| ClientError::Sdp(format!("the answer: {e}")))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| ClientError::Sdp(format!("the answer: {e}")))?;
    let (stats_tx, stats) = watch::channel(Stats::default());
    let (stop, stop_rx) = oneshot::channel();
    let span = tracing::info_span!("rtc-client", ?role, %local, url = %options.url);
    let task = tokio::spawn(tracing::Instrument::instrument(
        session::run(rtc, socket, mids, clip, stats_tx, stop_rx),
        span,
    ));
    Ok(Running {
        options,
        signalled,
        stats,
        stop: Some(stop),
        task: Some(task),
    })
}

/// `sdp` with every candidate's address and port (RFC 8839 §5.1, fields 5 and 6) set to `addr`.
fn with_candidates_at(sdp: &str, addr: SocketAddr) -> String {
    sdp.split_inclusive('\n')
        .map(|line| {
            let body = line.trim_end_matches(['\r', '\n']);
            if !body.starts_with("a=candidate:") {
                return line.to_string();
            }
            let mut fields: Vec<String> = body.split(' ').map(str::to_string).collect();
            if fields.len() > 5 {
                fields[4] = addr.ip().to_string();
                fields[5] = addr.port().to_string();
            }
            format!("{}{}", fields.join(" "), &line[body.len()..])
        })
        .collect()
}

/// Exchanges the offer for an answer per the options' signalling.
async fn signal(options: &Options, offer: &str) -> Result<Signalled, ClientError> {
    let token = options.token.as_deref();
    match &options.signalling {
        Signalling::Whip => {
            let reply = post_offer(&options.url, offer, token).await?;
            if reply.status != StatusCode::CREATED {
                return Err(ClientError::Refused {
                    status: reply.status,
                    body: reply.body,
                });
            }
            let location = reply
                .headers
                .get(::http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| resolve(&options.url, l));
            Ok(Signalled {
                status: reply.status,
                headers: reply.headers,
                answer: reply.body,
                location,
                session_id: None,
            })
        }
        Signalling::SrsJson { streamurl } => {
            let body = serde_json::json!({
                "api": options.url,
                "streamurl": streamurl,
                "sdp": offer,
                "clientip": null,
                "tid": "srs-rtc-client",
            });
            let reply = http::request(
                ::http::Method::POST,
                &options.url,
                Some("application/json"),
                bytes::Bytes::from(body.to_string()),
                token,
            )
            .await?;
            let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
            let answer = json["sdp"].as_str().filter(|_| json["code"] == 0);
            let (true, Some(answer)) = (reply.status == StatusCode::OK, answer) else {
                return Err(ClientError::Refused {
                    status: reply.status,
                    body: reply.body,
                });
            };
            Ok(Signalled {
                status: reply.status,
                answer: answer.to_string(),
                session_id: json["sessionid"].as_str().map(str::to_string),
                headers: reply.headers,
                location: None,
            })
        }
    }
}

/// Makes str0m's pure-Rust crypto the process default, once.
fn install_crypto() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_made_without_a_server() {
        let publish = build_offer(Role::Publish).unwrap();
        assert!(publish.starts_with("v=0"));
        assert!(publish.contains("m=audio") && publish.contains("m=video"));
        assert_eq!(publish.matches("a=sendonly").count(), 2, "{publish}");
        assert!(publish.contains("H264/90000") && publish.contains("opus/48000/2"));
        assert!(publish.contains("127.0.0.1 9 typ host"), "{publish}");
        let play = build_offer(Role::Play).unwrap();
        assert_eq!(play.matches("a=recvonly").count(), 2, "{play}");
    }
}
