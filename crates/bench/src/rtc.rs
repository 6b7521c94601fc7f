//! WebRTC clients (srs-rtc-client: str0m, in-process): one WHIP publisher sending the client's
//! looped 320x240 H.264 clip + Opus in real time, and WHEP players counting what arrives.
//! Counts come from the clients' [`Stats`], snapshotted at the window's edges.

use std::time::Duration;

use anyhow::{anyhow, bail};
use futures_util::stream::{self, StreamExt};
use srs_rtc_client::{play, publish, Options, Player, Publisher, Stats};

/// Bound on signalling + ICE/DTLS of one client, and on its first frames.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on making the publisher's clip.
const CLIP_TIMEOUT: Duration = Duration::from_secs(120);
/// Video frames a player must get to count as playing (one second of the clip).
const FIRST_FRAMES: u64 = 25;
/// Players set up at once.
const SETUP_CONCURRENCY: usize = 8;
/// Bound on closing every client (DELETE included).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Error messages kept for the report.
const MAX_ERROR_SAMPLES: usize = 5;

/// Counts of one side (what the publisher sent, or what players received).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Video frames (access units).
    pub video: u64,
    /// Opus packets.
    pub audio: u64,
    /// Media payload bytes.
    pub bytes: u64,
    /// UDP datagrams.
    pub datagrams: u64,
    /// Bytes of those datagrams (SRTP and the rest, without IP/UDP headers).
    pub wire_bytes: u64,
}

impl Totals {
    fn sent(s: &Stats) -> Self {
        Self {
            video: s.video_frames,
            audio: s.audio_frames,
            bytes: s.bytes,
            datagrams: s.datagrams_sent,
            wire_bytes: s.datagram_bytes_sent,
        }
    }

    fn received(s: &Stats) -> Self {
        Self {
            video: s.video_frames,
            audio: s.audio_frames,
            bytes: s.bytes,
            datagrams: s.datagrams_received,
            wire_bytes: s.datagram_bytes_received,
        }
    }

    fn add(self, o: Self) -> Self {
        Self {
            video: self.video + o.video,
            audio: self.audio + o.audio,
            bytes: self.bytes + o.bytes,
            datagrams: self.datagrams + o.datagrams,
            wire_bytes: self.wire_bytes + o.wire_bytes,
        }
    }

    fn since(self, start: Self) -> Self {
        Self {
            video: self.video.saturating_sub(start.video),
            audio: self.audio.saturating_sub(start.audio),
            bytes: self.bytes.saturating_sub(start.bytes),
            datagrams: self.datagrams.saturating_sub(start.datagrams),
            wire_bytes: self.wire_bytes.saturating_sub(start.wire_bytes),
        }
    }

    /// Video frames + Opus packets.
    pub fn frames(&self) -> u64 {
        self.video + self.audio
    }
}

/// What the window measured.
#[derive(Debug, Default, Clone, Copy)]
pub struct Window {
    /// What the publisher sent.
    pub publisher: Totals,
    /// What every player received, summed.
    pub players: Totals,
    /// Players playing when the window began.
    pub playing: usize,
    /// Of those, players that ended or got no video frame in the window.
    pub stalled: usize,
}

impl Window {
    /// Video frames the players should have got: every one the publisher sent, each.
    pub fn expected_video(&self) -> u64 {
        self.publisher.video * self.playing as u64
    }
}

/// A running WebRTC load.
pub struct RtcLoad {
    publisher: Publisher,
    players: Vec<Player>,
    /// Players that failed to set up or got no first frames.
    pub failed: usize,
    /// The first errors.
    pub error_samples: Vec<String>,
    start: Option<(Totals, Vec<Totals>)>,
}

impl RtcLoad {
    /// Publishes at the WHIP URL `whip` and waits until media flows.
    pub async fn publish(whip: &str) -> anyhow::Result<Self> {
        // The clip is made with ffmpeg once per process; not part of the set-up bound.
        tokio::time::timeout(CLIP_TIMEOUT, srs_rtc_client::media::clip())
            .await
            .map_err(|_| anyhow!("ffmpeg did not make the clip within {CLIP_TIMEOUT:?}"))??;
        let publisher = tokio::time::timeout(SETUP_TIMEOUT, publish(Options::whip(whip)))
            .await
            .map_err(|_| anyhow!("WHIP publish to {whip} timed out"))??;
        publisher.wait_connected(SETUP_TIMEOUT).await?;
        Ok(Self {
            publisher,
            players: Vec::new(),
            failed: 0,
            error_samples: Vec::new(),
            start: None,
        })
    }

    /// Starts `n` WHEP players at `whep` and waits until each got its first frames or failed.
    pub async fn play(&mut self, whep: &str, n: usize) {
        let results: Vec<anyhow::Result<Player>> = stream::iter(0..n)
            .map(|_| one_player(whep))
            .buffer_unordered(SETUP_CONCURRENCY)
            .collect()
            .await;
        for r in results {
            match r {
                Ok(p) => self.players.push(p),
                Err(e) => {
                    self.failed += 1;
                    self.error(format!("WHEP player: {e:#}"));
                }
            }
        }
    }

    /// Players playing.
    pub fn playing(&self) -> usize {
        self.players.len()
    }

    fn error(&mut self, e: String) {
        if self.error_samples.len() < MAX_ERROR_SAMPLES {
            self.error_samples.push(e);
        }
    }

    /// Starts the window: snapshots every client's counts.
    pub fn begin_window(&mut self) {
        let players = self
            .players
            .iter()
            .map(|p| Totals::received(&p.stats()))
            .collect();
        self.start = Some((Totals::sent(&self.publisher.stats()), players));
    }

    /// Ends the window and returns its counts.
    pub fn end_window(&mut self) -> Window {
        let (pub0, players0) = self.start.take().unwrap_or_default();
        let mut w = Window {
            publisher: Totals::sent(&self.publisher.stats()).since(pub0),
            playing: players0.len(),
            ..Window::default()
        };
        for (player, start) in self.players.iter().zip(&players0) {
            let stats = player.stats();
            let got = Totals::received(&stats).since(*start);
            if stats.ended || got.video == 0 {
                w.stalled += 1;
            }
            w.players = w.players.add(got);
        }
        if w.stalled > 0 {
            self.error(format!("{} players stalled in the window", w.stalled));
        }
        w
    }

    /// Closes every client (DELETE), bounded.
    pub async fn close(self) {
        let players = futures_util::future::join_all(self.players.into_iter().map(Player::close));
        let all = async {
            players.await;
            let _ = self.publisher.close().await;
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, all).await.is_err() {
            eprintln!("WebRTC clients did not close within {CLOSE_TIMEOUT:?}");
        }
    }
}

async fn one_player(whep: &str) -> anyhow::Result<Player> {
    let player = tokio::time::timeout(SETUP_TIMEOUT, play(Options::whip(whep)))
        .await
        .map_err(|_| anyhow!("WHEP play timed out"))??;
    match player.wait_frames(FIRST_FRAMES, SETUP_TIMEOUT).await {
        Ok(_) => Ok(player),
        Err(e) => {
            let stats = player.stats();
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, player.close()).await;
            bail!("{e} ({stats:?})")
        }
    }
}
