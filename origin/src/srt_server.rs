//! The SRT listener (live mode, MPEG-TS payload), built on `srt-tokio`.
//!
//! Each connection request is decided from its stream id before the handshake completes
//! ([`ConnectionRequest::accept`] / [`ConnectionRequest::reject`]):
//! - `m=publish` publishes the stream as MPEG-TS ([`Hub::publish_ts`]); a stream that already
//!   has a publisher (SRT or RTMP) is rejected with [`ServerRejectReason::Conflict`].
//! - `m=request`, or no `m`, plays it; a stream nobody publishes over SRT is rejected at once
//!   with [`ServerRejectReason::Notfound`] (the handshake cannot wait as an RTMP play does).
//! - A stream id that is missing or does not name a stream: [`ServerRejectReason::BadRequest`];
//!   more than [`MAX_SESSIONS`] sessions: [`ServerRejectReason::Overload`].
//!
//! The codes go on the wire as srt-protocol numbers them (2000 + HTTP status: 2409, 2404,
//! 2400, 2402); libsrt callers report them as `SRT_REJX_*` (1000 + HTTP status: 1409, ...).
//!
//! srt-tokio announces its maximum payload size in the handshake's MSS field, where libsrt puts
//! its whole MSS (1500 with IP, UDP and SRT headers); a libsrt peer that takes the field as an
//! MSS caps its payloads at it minus 44 bytes (1272 for srt-tokio's 1316). The listener announces
//! [`HANDSHAKE_MSS`], as libsrt does, and sends players chunks of at most 1316 bytes (7 TS
//! packets). (With libsrt 1.5.1, 1316-byte messages stayed whole in both directions either way.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::options::PacketSize;
use srt_tokio::{ConnectionRequest, SrtIncoming, SrtListener, SrtSocket};
use tokio::net::UdpSocket;
use tracing::Instrument;

use crate::hub::{Hub, PublishInfo, TsPlayer, TsPublisher};
use srs_cluster::{Direction, StreamKey};

/// Concurrent SRT sessions (publishers and players) at most; more are rejected as overload.
pub const MAX_SESSIONS: usize = 1024;

/// The MSS the listener announces in the handshake: libsrt's default, so libsrt peers keep
/// their usual 1456-byte payload limit.
pub const HANDSHAKE_MSS: u64 = 1500;

/// UDP socket buffer sizes asked for; the kernel may grant less.
const UDP_BUFFER: usize = 4 * 1024 * 1024;

/// `accept` returns before the listener task has sent the handshake's conclusion response; data
/// that overtakes it makes a libsrt caller drop the connection ("received DATA while HANDSHAKE
/// expected"), so players get their first chunk after this pause.
const FIRST_DATA_DELAY: Duration = Duration::from_millis(50);

/// srt-tokio's sender stalls for good when handed a burst of messages at once (a late player's
/// start: a whole GOP), so chunks go out at most [`PACE_BURST`] per [`PACE_PAUSE`] (about
/// 40 Mbit/s).
const PACE_BURST: u64 = 4;
const PACE_PAUSE: Duration = Duration::from_millis(1);

/// A player whose connection cannot take a chunk for this long is closed.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Behaviour settings of the SRT server.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// A publisher that sends no data for this long is closed.
    pub publish_timeout: Duration,
}

/// A bound SRT listener, ready for [`serve`].
pub struct Bound {
    listener: SrtListener,
    incoming: SrtIncoming,
}

/// Binds the SRT listener on `addr` (port 0 picks a free port) and returns it with the real
/// address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(Bound, SocketAddr)> {
    let socket = UdpSocket::bind(addr).await?;
    let sock = socket2::SockRef::from(&socket);
    // Bigger buffers ride out bursts (a keyframe in one go); failing to get them is not fatal.
    if let Err(e) = sock.set_recv_buffer_size(UDP_BUFFER) {
        tracing::debug!("SRT receive buffer: {e}");
    }
    if let Err(e) = sock.set_send_buffer_size(UDP_BUFFER) {
        tracing::debug!("SRT send buffer: {e}");
    }
    let local = socket.local_addr()?;
    let (listener, incoming) = SrtListener::builder()
        .socket(socket)
        .set(|o| o.sender.max_payload_size = PacketSize(HANDSHAKE_MSS))
        .bind(local)
        .await?;
    Ok((Bound { listener, incoming }, local))
}

/// Decides connection requests forever, one task per accepted connection.
pub async fn serve(bound: Bound, hub: Hub, settings: Settings) {
    // The listener's task ends when this handle is dropped.
    let Bound {
        listener: _listener,
        mut incoming,
    } = bound;
    let sessions = Arc::new(AtomicUsize::new(0));
    while let Some(request) = incoming.incoming().next().await {
        let cid = crate::config::random_id(8);
        let span = tracing::info_span!(
            "srt",
            id = %cid,
            peer = %request.remote(),
            stream = tracing::field::Empty,
            direction = tracing::field::Empty,
        );
        let hub = hub.clone();
        let sessions = sessions.clone();
        // Accepting waits for the listener task, which waits for this loop: never inline.
        tokio::spawn(
            async move { handle(request, hub, settings, cid, sessions).await }.instrument(span),
        );
    }
    tracing::error!("SRT listener stopped");
}

/// What a connection request turned into once decided.
enum Role {
    Publish(TsPublisher),
    Play(TsPlayer),
}

async fn handle(
    request: ConnectionRequest,
    hub: Hub,
    settings: Settings,
    cid: String,
    sessions: Arc<AtomicUsize>,
) {
    let slot = SessionSlot::take(sessions, MAX_SESSIONS);
    let decision = slot
        .as_ref()
        .ok_or(ServerRejectReason::Overload)
        .and_then(|_| decide(&request, &hub, &cid));
    let role = match decision {
        Ok(role) => role,
        Err(reason) => {
            tracing::info!(code = reason as i32, "rejected: {reason}");
            if let Err(e) = request.reject(RejectReason::Server(reason)).await {
                tracing::debug!("rejection not sent: {e}");
            }
            return;
        }
    };
    let socket = match request.accept(None).await {
        Ok(socket) => socket,
        Err(e) => {
            tracing::info!("handshake did not complete: {e}");
            return;
        }
    };
    tracing::info!(
        latency_ms = socket.settings().recv_tsbpd_latency.as_millis() as u64,
        payload = socket.settings().max_packet_size.0,
        "connected"
    );
    match role {
        Role::Publish(publisher) => publish(socket, publisher, settings).await,
        Role::Play(player) => play(socket, player).await,
    }
}

/// Maps the request's stream id to a publisher or player, or the reason to reject it.
fn decide(request: &ConnectionRequest, hub: &Hub, cid: &str) -> Result<Role, ServerRejectReason> {
    let Some(stream_id) = request.stream_id() else {
        tracing::info!("no stream id");
        return Err(ServerRejectReason::BadRequest);
    };
    let (key, direction) = StreamKey::from_srt_streamid(stream_id).map_err(|e| {
        tracing::info!(streamid = %stream_id.as_str(), "bad stream id: {e}");
        ServerRejectReason::BadRequest
    })?;
    let span = tracing::Span::current();
    span.record("stream", tracing::field::display(&key));
    span.record("direction", tracing::field::debug(direction));
    match direction {
        Direction::Publish => {
            let info = PublishInfo {
                cid: cid.to_string(),
                tc_url: format!("srt://{}", request.remote()),
            };
            hub.publish_ts(key, info)
                .map(Role::Publish)
                .map_err(|_| ServerRejectReason::Conflict)
        }
        Direction::Play => hub
            .play_ts(&key)
            .map(Role::Play)
            .ok_or(ServerRejectReason::Notfound),
    }
}

/// Reads the publisher's messages into the hub until it leaves or goes silent.
async fn publish(mut socket: SrtSocket, mut publisher: TsPublisher, settings: Settings) {
    let mut warned = false;
    loop {
        match tokio::time::timeout(settings.publish_timeout, socket.next()).await {
            Err(_) => {
                tracing::info!(timeout = ?settings.publish_timeout, "publisher sent nothing, closed");
                break;
            }
            Ok(None) => {
                tracing::info!("publisher left");
                break;
            }
            Ok(Some(Err(e))) => {
                tracing::info!("publisher connection failed: {e}");
                break;
            }
            Ok(Some(Ok((_, message)))) => {
                publisher.push(&message);
                if !warned && publisher.skipped() > 0 {
                    warned = true;
                    tracing::warn!("publisher sends bytes outside TS packets; they are skipped");
                }
            }
        }
    }
    let _ = socket.close().await;
}

/// Sends the stream's chunks to the player until the stream ends, the player is dropped for
/// lagging, or its connection stalls or closes.
async fn play(mut socket: SrtSocket, mut player: TsPlayer) {
    tokio::time::sleep(FIRST_DATA_DELAY).await;
    let mut sent = 0u64;
    loop {
        tokio::select! {
            chunk = player.recv() => {
                let Some(chunk) = chunk else {
                    tracing::info!("stream ended");
                    break;
                };
                match tokio::time::timeout(SEND_TIMEOUT, socket.send((Instant::now(), chunk))).await {
                    Ok(Ok(())) => {
                        sent += 1;
                        if sent.is_multiple_of(PACE_BURST) {
                            tokio::time::sleep(PACE_PAUSE).await;
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::info!("player connection closed: {e}");
                        break;
                    }
                    Err(_) => {
                        tracing::info!("player stalled, closed");
                        break;
                    }
                }
            }
            // Players send no data; this notices the connection closing.
            incoming = socket.next() => {
                if incoming.is_none() {
                    tracing::info!("player left");
                    break;
                }
            }
        }
    }
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.close()).await;
}

/// One of a bounded number of session slots (SRT, WebRTC), given back when dropped.
pub struct SessionSlot(Arc<AtomicUsize>);

impl SessionSlot {
    /// Takes a slot when fewer than `limit` of `sessions` are taken.
    pub fn take(sessions: Arc<AtomicUsize>, limit: usize) -> Option<Self> {
        let taken = sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| Self(sessions))
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
