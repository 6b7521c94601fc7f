//! The media task of one client session: drives str0m with the socket and the clock, sends the
//! clip (publishers) and counts what arrives (players).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};

use crate::media::{Clip, AUDIO_FRAME_MS, VIDEO_FPS};
use crate::{ClientError, Stats};

/// Largest datagram read.
const DATAGRAM_MAX: usize = 2048;

/// A publisher that falls further behind than this skips ahead rather than burst.
const MAX_LAG: Duration = Duration::from_millis(500);

/// Runs the session until `stop` fires (or its sender is dropped) or str0m ends it; `stats`
/// gets every change.
pub async fn run(
    mut rtc: Rtc,
    socket: UdpSocket,
    mids: Vec<(Mid, MediaKind)>,
    clip: Option<Arc<Clip>>,
    stats: watch::Sender<Stats>,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), ClientError> {
    let local = socket.local_addr()?;
    let mut sender = clip.map(|clip| Sender::new(clip, &mids));
    let mut player = Counter {
        mids,
        first_frame: None,
    };
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let result = loop {
        let timeout = match drain(&mut rtc, &socket, &stats, &mut sender, &mut player).await {
            Ok(Some(t)) => t,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let wake = sender
            .as_ref()
            .and_then(Sender::next_due)
            .map_or(timeout, |due| due.min(timeout));
        tokio::select! {
            _ = &mut stop => break Ok(()),
            received = socket.recv_from(&mut buf) => {
                let (n, source) = match received {
                    Ok(r) => r,
                    Err(e) => break Err(e.into()),
                };
                stats.send_modify(|s| {
                    s.datagrams_received += 1;
                    s.datagram_bytes_received += n as u64;
                });
                if let Err(e) = receive(&mut rtc, &buf[..n], source, local) {
                    break Err(e);
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let now = Instant::now();
                if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                    break Err(e.into());
                }
                if let Some(s) = sender.as_mut() {
                    s.send_due(&mut rtc, now, &stats);
                }
            }
        }
    };
    rtc.disconnect();
    // Let str0m send what disconnecting queued (DTLS close), without waiting for answers.
    let _ = drain(&mut rtc, &socket, &stats, &mut sender, &mut player).await;
    stats.send_modify(|s| s.ended = true);
    result
}

fn receive(
    rtc: &mut Rtc,
    datagram: &[u8],
    source: SocketAddr,
    local: SocketAddr,
) -> Result<(), ClientError> {
    let Ok(contents) = datagram.try_into() else {
        return Ok(());
    };
    let input = Input::Receive(
        Instant::now(),
        Receive {
            proto: Protocol::Udp,
            source,
            destination: local,
            contents,
        },
    );
    if rtc.accepts(&input) {
        rtc.handle_input(input)?;
    }
    Ok(())
}

/// Polls str0m until it wants a timeout (returned) or has ended (`None`).
async fn drain(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    stats: &watch::Sender<Stats>,
    sender: &mut Option<Sender>,
    player: &mut Counter,
) -> Result<Option<Instant>, ClientError> {
    loop {
        if !rtc.is_alive() {
            return Ok(None);
        }
        match rtc.poll_output()? {
            Output::Timeout(t) => return Ok(Some(t)),
            Output::Transmit(t) => {
                socket.send_to(&t.contents, t.destination).await?;
                let n = t.contents.len() as u64;
                stats.send_modify(|s| {
                    s.datagrams_sent += 1;
                    s.datagram_bytes_sent += n;
                });
            }
            Output::Event(event) => match event {
                Event::IceConnectionStateChange(state) => {
                    tracing::debug!(?state, "ICE state");
                    stats.send_modify(|s| s.ice = state);
                    if state == IceConnectionState::Disconnected {
                        return Ok(None);
                    }
                }
                Event::Connected => {
                    tracing::debug!("connected");
                    stats.send_modify(|s| s.connected = true);
                    if let Some(s) = sender.as_mut() {
                        s.start(rtc, Instant::now());
                    }
                }
                Event::KeyframeRequest(request) => {
                    tracing::debug!(kind = ?request.kind, "keyframe requested");
                    stats.send_modify(|s| s.keyframe_requests += 1);
                    if let Some(s) = sender.as_mut() {
                        s.restart = true;
                    }
                }
                Event::MediaData(data) => player.count(rtc, &data, stats),
                _ => {}
            },
        }
    }
}

/// Counts a player's frames.
struct Counter {
    mids: Vec<(Mid, MediaKind)>,
    first_frame: Option<Instant>,
}

impl Counter {
    fn count(&mut self, rtc: &Rtc, data: &str0m::media::MediaData, stats: &watch::Sender<Stats>) {
        let kind = self
            .mids
            .iter()
            .find(|(m, _)| *m == data.mid)
            .map(|(_, k)| *k)
            .or_else(|| rtc.media(data.mid).map(|m| m.kind()));
        let keyframe = data.is_keyframe();
        let len = data.data.len() as u64;
        let now = Instant::now();
        let first = *self.first_frame.get_or_insert(now);
        stats.send_modify(|s| {
            s.bytes += len;
            match kind {
                Some(MediaKind::Video) => {
                    s.video_frames += 1;
                    s.first_frame_keyframe.get_or_insert(keyframe);
                    if keyframe {
                        s.keyframes += 1;
                        s.keyframe_delay.get_or_insert(now.duration_since(first));
                    }
                }
                Some(MediaKind::Audio) => s.audio_frames += 1,
                None => {}
            }
        });
    }
}

/// A publisher's clock and position in the clip.
struct Sender {
    clip: Arc<Clip>,
    video_mid: Option<Mid>,
    audio_mid: Option<Mid>,
    video_pt: Option<Pt>,
    audio_pt: Option<Pt>,
    started: Option<Instant>,
    /// Frames and packets sent so far; the RTP clocks derive from them.
    video_sent: u64,
    audio_sent: u64,
    /// Next access unit of the clip to send.
    position: usize,
    /// A keyframe was asked for: go back to the clip's first (key) frame.
    restart: bool,
}

impl Sender {
    fn new(clip: Arc<Clip>, mids: &[(Mid, MediaKind)]) -> Self {
        let mid = |kind| mids.iter().find(|(_, k)| *k == kind).map(|(m, _)| *m);
        Self {
            clip,
            video_mid: mid(MediaKind::Video),
            audio_mid: mid(MediaKind::Audio),
            video_pt: None,
            audio_pt: None,
            started: None,
            video_sent: 0,
            audio_sent: 0,
            position: 0,
            restart: false,
        }
    }

    /// Starts the clock once media can flow, with the negotiated payload types.
    fn start(&mut self, rtc: &mut Rtc, now: Instant) {
        let pt = |rtc: &mut Rtc, mid: Option<Mid>, codec: Codec| {
            let writer = rtc.writer(mid?)?;
            let mut params = writer.payload_params().filter(|p| p.spec().codec == codec);
            let all: Vec<_> = params.by_ref().collect();
            // H.264 needs packetization-mode 1 (FU-A) for frames larger than a packet.
            all.iter()
                .find(|p| codec != Codec::H264 || p.spec().format.packetization_mode == Some(1))
                .or(all.first())
                .map(|p| p.pt())
        };
        self.video_pt = pt(rtc, self.video_mid, Codec::H264);
        self.audio_pt = pt(rtc, self.audio_mid, Codec::Opus);
        if self.video_pt.is_none() {
            tracing::warn!("the answer accepts no H.264: sending no video");
        }
        self.started = Some(now);
    }

    fn video_due(&self, started: Instant) -> Instant {
        started + Duration::from_millis(self.video_sent * 1000 / u64::from(VIDEO_FPS))
    }

    fn audio_due(&self, started: Instant) -> Instant {
        started + Duration::from_millis(self.audio_sent * u64::from(AUDIO_FRAME_MS))
    }

    /// When the next frame or packet is due; `None` before the start.
    fn next_due(&self) -> Option<Instant> {
        let started = self.started?;
        let video = self.video_pt.map(|_| self.video_due(started));
        let audio = self.audio_pt.map(|_| self.audio_due(started));
        video.into_iter().chain(audio).min()
    }

    /// Sends every frame and packet due by `now`.
    fn send_due(&mut self, rtc: &mut Rtc, now: Instant, stats: &watch::Sender<Stats>) {
        let Some(started) = self.started else {
            return;
        };
        if let (Some(mid), Some(pt)) = (self.video_mid, self.video_pt) {
            while self.video_due(started) <= now {
                if now.duration_since(self.video_due(started)) > MAX_LAG {
                    // Behind (a stalled runtime): skip frames, keep the clock.
                    self.video_sent += 1;
                    continue;
                }
                if std::mem::take(&mut self.restart) {
                    self.position = 0;
                }
                let Some(au) = self.clip.video.get(self.position) else {
                    self.position = 0;
                    continue;
                };
                let time = MediaTime::from_90khz(self.video_sent * 90_000 / u64::from(VIDEO_FPS));
                let Some(writer) = rtc.writer(mid) else {
                    break;
                };
                if let Err(e) = writer.write(pt, now, time, au.data.clone()) {
                    tracing::warn!("video write failed: {e}");
                }
                let (len, keyframe) = (au.data.len() as u64, au.keyframe);
                stats.send_modify(|s| {
                    s.video_frames += 1;
                    s.keyframes += u64::from(keyframe);
                    s.bytes += len;
                });
                self.video_sent += 1;
                self.position = (self.position + 1) % self.clip.video.len();
            }
        }
        if let (Some(mid), Some(pt)) = (self.audio_mid, self.audio_pt) {
            while self.audio_due(started) <= now {
                if now.duration_since(self.audio_due(started)) > MAX_LAG {
                    self.audio_sent += 1;
                    continue;
                }
                let index = (self.audio_sent % self.clip.audio.len() as u64) as usize;
                let time = MediaTime::new(
                    self.audio_sent * u64::from(AUDIO_FRAME_MS) * 48,
                    str0m::media::Frequency::FORTY_EIGHT_KHZ,
                );
                self.audio_sent += 1;
                let Some(packet) = self.clip.audio.get(index) else {
                    break;
                };
                let Some(writer) = rtc.writer(mid) else {
                    break;
                };
                if let Err(e) = writer.write(pt, now, time, packet.clone()) {
                    tracing::warn!("audio write failed: {e}");
                }
                let len = packet.len() as u64;
                stats.send_modify(|s| {
                    s.audio_frames += 1;
                    s.bytes += len;
                });
            }
        }
    }
}
