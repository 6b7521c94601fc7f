//! The stream hub: one publisher per stream, fan-out to many players, and a GOP cache so a late
//! player starts with metadata, sequence headers and the current GOP and decodes at once.
//!
//! Each stream also feeds its HLS segmenter ([`crate::hls`]) as messages arrive, so playlists
//! and segments are ready in memory whenever a client asks.
//!
//! Streams published over SRT are MPEG-TS rather than FLV messages: the hub keeps them apart
//! ([`Hub::publish_ts`], [`Hub::play_ts`]) and fans their packets out as they come, with a start
//! cache of their own ([`crate::ts_cache`]). Both kinds share one key space: a key has one
//! publisher, whatever its protocol.
//!
//! WebRTC streams are forwarded by the SFU ([`crate::rtc`]) itself; the hub only reserves their
//! key ([`Hub::publish_rtc`]) and lists them for the API.
//!
//! The hub is plain data behind short-held locks; it never awaits while holding one. Each player
//! has a bounded queue: a player that falls too far behind is dropped, so it can never slow the
//! publisher or the other players.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::Notify;

use crate::hls::{Hls, HlsSettings};
use crate::media::{self, Media, MediaKind};
use crate::ts_cache::{Framer, TsCache};
use srs_cluster::StreamKey;

/// Bounds of the hub's buffers.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Messages a player may lag behind before it is dropped.
    pub player_queue: usize,
    /// Largest GOP cache in payload bytes; past it the cache waits for the next keyframe.
    pub gop_max_bytes: usize,
    /// Largest GOP cache in messages; past it the cache waits for the next keyframe.
    pub gop_max_messages: usize,
    /// Chunks (of up to 1316 bytes) an MPEG-TS player may lag behind before it is dropped.
    pub ts_player_queue: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        Self {
            // About 15 s of 25 fps video plus AAC audio.
            player_queue: 1024,
            gop_max_bytes: 8 * 1024 * 1024,
            gop_max_messages: 2000,
            // About 20 s of a 2 Mbit/s stream.
            ts_player_queue: 4096,
        }
    }
}

/// Errors of the hub.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubError {
    /// Another publisher owns the stream.
    #[error("stream {0} already publishing")]
    AlreadyPublishing(String),
}

/// Who publishes a stream, for the API.
#[derive(Debug, Clone, Default)]
pub struct PublishInfo {
    /// Connection id of the publisher.
    pub cid: String,
    /// The publisher's tcUrl (empty when unknown).
    pub tc_url: String,
}

/// A snapshot of one stream for the API.
#[derive(Debug, Clone)]
pub struct StreamStats {
    /// Stream id, random per publish.
    pub id: String,
    /// The stream's key.
    pub key: StreamKey,
    /// Who publishes it.
    pub publish: PublishInfo,
    /// Players plus the publisher.
    pub clients: usize,
    /// Video frames received.
    pub frames: u64,
    /// Payload bytes received from the publisher.
    pub recv_bytes: u64,
    /// Payload bytes queued to players.
    pub send_bytes: u64,
    /// Video codec name, once seen.
    pub video_codec: Option<&'static str>,
    /// Audio codec name, once seen.
    pub audio_codec: Option<&'static str>,
    /// When publishing started, in milliseconds since the Unix epoch.
    pub start_ms: u64,
}

/// The registry of live streams. Cloning shares it.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Default)]
struct HubInner {
    /// FLV streams. Lock order: this map, then `ts_streams`, then `rtc_streams`.
    streams: Mutex<HashMap<StreamKey, Arc<Mutex<Stream>>>>,
    /// MPEG-TS streams (SRT publishers).
    ts_streams: Mutex<HashMap<StreamKey, Arc<Mutex<TsStream>>>>,
    /// WebRTC streams: only their API figures, which the SFU keeps current.
    rtc_streams: Mutex<HashMap<StreamKey, Arc<Mutex<StreamStats>>>>,
    /// Woken whenever a stream starts publishing, for players waiting for one.
    published: Notify,
    next_id: AtomicU64,
    limits: HubLimits,
    hls: HlsSettings,
}

/// One live stream's state.
struct Stream {
    id: String,
    key: StreamKey,
    publish: PublishInfo,
    start_ms: u64,
    metadata: Option<Media>,
    video_sequence_header: Option<Media>,
    audio_sequence_header: Option<Media>,
    gop: GopCache,
    last_timestamp: u32,
    players: Vec<Slot<Media>>,
    frames: u64,
    recv_bytes: u64,
    send_bytes: u64,
    video_codec: Option<&'static str>,
    audio_codec: Option<&'static str>,
    limits: HubLimits,
    hls: Hls,
}

/// One player's queue in a stream's fan-out: RTMP/FLV messages or MPEG-TS chunks.
struct Slot<T> {
    id: u64,
    tx: mpsc::Sender<T>,
}

/// Offers `item` (`len` bytes) to every player's queue; a player whose queue is full is too far
/// behind and is dropped, so it never slows the publisher. Returns the bytes queued.
fn fan_out<T: Clone>(key: &StreamKey, players: &mut Vec<Slot<T>>, item: &T, len: u64) -> u64 {
    let mut sent = 0u64;
    players.retain(|p| match p.tx.try_send(item.clone()) {
        Ok(()) => {
            sent += len;
            true
        }
        Err(TrySendError::Full(_)) => {
            tracing::warn!(stream = %key, player = p.id, "player too far behind, dropped");
            false
        }
        Err(TrySendError::Closed(_)) => false,
    });
    sent
}

/// A stream a player can leave: [`Subscription`]'s drop removes its slot.
trait Roster: Send {
    fn leave(&mut self, id: u64);
}

impl Roster for Stream {
    fn leave(&mut self, id: u64) {
        self.players.retain(|p| p.id != id);
    }
}

impl Roster for TsStream {
    fn leave(&mut self, id: u64) {
        self.players.retain(|p| p.id != id);
    }
}

/// Messages from the last keyframe on, bounded in bytes and count.
#[derive(Debug, Default)]
struct GopCache {
    messages: Vec<Media>,
    bytes: usize,
    /// The cache holds a GOP that starts at a keyframe; without one nothing is cached, because
    /// frames before a keyframe cannot be decoded.
    started: bool,
}

impl GopCache {
    fn clear(&mut self) {
        self.messages.clear();
        self.bytes = 0;
        self.started = false;
    }

    fn push(&mut self, m: &Media, limits: &HubLimits) {
        if m.is_keyframe() {
            self.clear();
            self.started = true;
        }
        if !self.started {
            return;
        }
        self.messages.push(m.clone());
        self.bytes += m.payload.len();
        if self.bytes > limits.gop_max_bytes || self.messages.len() > limits.gop_max_messages {
            // A GOP this long costs too much memory; late players wait for the next keyframe.
            self.clear();
        }
    }
}

impl Hub {
    /// A hub with the given limits, making HLS with the given settings.
    pub fn new(limits: HubLimits, hls: HlsSettings) -> Self {
        Self {
            inner: Arc::new(HubInner {
                limits,
                hls,
                ..HubInner::default()
            }),
        }
    }

    /// Starts publishing `key`; refused when the stream already has a publisher. The stream is
    /// removed, and its players end, when the returned handle is dropped.
    pub fn publish(&self, key: StreamKey, info: PublishInfo) -> Result<Publisher, HubError> {
        let mut streams = lock(&self.inner.streams);
        if streams.contains_key(&key)
            || lock(&self.inner.ts_streams).contains_key(&key)
            || lock(&self.inner.rtc_streams).contains_key(&key)
        {
            return Err(HubError::AlreadyPublishing(key.to_string()));
        }
        let stream = Arc::new(Mutex::new(Stream {
            id: format!("vid-{}", crate::config::random_id(7)),
            key: key.clone(),
            publish: info,
            start_ms: now_ms(),
            metadata: None,
            video_sequence_header: None,
            audio_sequence_header: None,
            gop: GopCache::default(),
            last_timestamp: 0,
            players: Vec::new(),
            frames: 0,
            recv_bytes: 0,
            send_bytes: 0,
            video_codec: None,
            audio_codec: None,
            limits: self.inner.limits,
            hls: Hls::new(self.inner.hls),
        }));
        streams.insert(key.clone(), stream.clone());
        drop(streams);
        self.inner.published.notify_waiters();
        Ok(Publisher {
            hub: self.clone(),
            key,
            stream,
        })
    }

    /// Joins `key` as a player, when it has a publisher. The player first gets the stream's
    /// start sequence (metadata, sequence headers, current GOP), then live messages.
    pub fn play(&self, key: &StreamKey) -> Option<Player> {
        let stream = lock(&self.inner.streams).get(key)?.clone();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.inner.limits.player_queue.max(1));
        let mut s = lock(&stream);
        let initial = s.start_sequence();
        s.send_bytes += initial.iter().map(|m| m.payload.len() as u64).sum::<u64>();
        s.players.push(Slot { id, tx });
        drop(s);
        Some(Subscription {
            id,
            stream,
            initial: initial.into(),
            rx,
        })
    }

    /// Like [`Hub::play`], but waits up to `wait` for a publisher to appear.
    pub async fn play_or_wait(&self, key: &StreamKey, wait: Duration) -> Option<Player> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register for the wake-up before looking, so a publish in between is not missed.
            let notified = self.inner.published.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(player) = self.play(key) {
                return Some(player);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Runs `f` on the HLS state of `key`, when the stream is published.
    pub fn with_hls<R>(&self, key: &StreamKey, f: impl FnOnce(&Hls) -> R) -> Option<R> {
        let stream = lock(&self.inner.streams).get(key)?.clone();
        let s = lock(&stream);
        Some(f(&s.hls))
    }

    /// Waits up to `wait` for `key` to have a finished HLS segment. False when the stream is not
    /// published, stops, or has none by then.
    pub async fn hls_ready(&self, key: &StreamKey, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let Some(ready) = self.with_hls(key, Hls::ready) else {
                return false;
            };
            // Register for the wake-up before looking, so a segment finished in between counts.
            let notified = ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.with_hls(key, Hls::has_segments) {
                None => return false,
                Some(true) => return true,
                Some(false) => {}
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Snapshots of all live streams, sorted by key.
    pub fn stats(&self) -> Vec<StreamStats> {
        let streams: Vec<_> = lock(&self.inner.streams).values().cloned().collect();
        let mut out: Vec<StreamStats> = streams
            .iter()
            .map(|s| {
                let s = lock(s);
                StreamStats {
                    id: s.id.clone(),
                    key: s.key.clone(),
                    publish: s.publish.clone(),
                    clients: s.players.len() + 1,
                    frames: s.frames,
                    recv_bytes: s.recv_bytes,
                    send_bytes: s.send_bytes,
                    video_codec: s.video_codec,
                    audio_codec: s.audio_codec,
                    start_ms: s.start_ms,
                }
            })
            .collect();
        let ts_streams: Vec<_> = lock(&self.inner.ts_streams).values().cloned().collect();
        out.extend(ts_streams.iter().map(|s| lock(s).stats()));
        let rtc_streams: Vec<_> = lock(&self.inner.rtc_streams).values().cloned().collect();
        out.extend(rtc_streams.iter().map(|s| lock(s).clone()));
        out.sort_by_key(|s| s.key.to_string());
        out
    }

    /// Starts publishing `key` as MPEG-TS; refused when the stream already has a publisher of
    /// any kind. The stream is removed, and its players end, when the returned handle is dropped.
    pub fn publish_ts(&self, key: StreamKey, info: PublishInfo) -> Result<TsPublisher, HubError> {
        let streams = lock(&self.inner.streams);
        let mut ts_streams = lock(&self.inner.ts_streams);
        if streams.contains_key(&key)
            || ts_streams.contains_key(&key)
            || lock(&self.inner.rtc_streams).contains_key(&key)
        {
            return Err(HubError::AlreadyPublishing(key.to_string()));
        }
        let stream = Arc::new(Mutex::new(TsStream {
            id: format!("vid-{}", crate::config::random_id(7)),
            key: key.clone(),
            publish: info,
            start_ms: now_ms(),
            cache: TsCache::new(self.inner.limits.gop_max_bytes),
            players: Vec::new(),
            recv_bytes: 0,
            send_bytes: 0,
        }));
        ts_streams.insert(key.clone(), stream.clone());
        Ok(TsPublisher {
            hub: self.clone(),
            key,
            stream,
            framer: Framer::default(),
        })
    }

    /// Joins the MPEG-TS stream `key` as a player, when it has a publisher. The player first
    /// gets PAT, PMT and the packets from the last keyframe on, then live chunks as they come.
    pub fn play_ts(&self, key: &StreamKey) -> Option<TsPlayer> {
        let stream = lock(&self.inner.ts_streams).get(key)?.clone();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.inner.limits.ts_player_queue.max(1));
        let mut s = lock(&stream);
        let initial = s.cache.start_sequence();
        s.send_bytes += initial.iter().map(|c| c.len() as u64).sum::<u64>();
        s.players.push(Slot { id, tx });
        drop(s);
        Some(Subscription {
            id,
            stream,
            initial: initial.into(),
            rx,
        })
    }

    /// Reserves `key` for a WebRTC publisher; refused when the stream already has a publisher
    /// of any kind. The key is free again, and the stream leaves the API, when the returned
    /// handle is dropped.
    pub fn publish_rtc(&self, key: StreamKey, info: PublishInfo) -> Result<RtcPublisher, HubError> {
        let streams = lock(&self.inner.streams);
        let ts_streams = lock(&self.inner.ts_streams);
        let mut rtc_streams = lock(&self.inner.rtc_streams);
        if streams.contains_key(&key)
            || ts_streams.contains_key(&key)
            || rtc_streams.contains_key(&key)
        {
            return Err(HubError::AlreadyPublishing(key.to_string()));
        }
        let stats = Arc::new(Mutex::new(StreamStats {
            id: format!("vid-{}", crate::config::random_id(7)),
            key: key.clone(),
            publish: info,
            clients: 1,
            frames: 0,
            recv_bytes: 0,
            send_bytes: 0,
            video_codec: None,
            audio_codec: None,
            start_ms: now_ms(),
        }));
        rtc_streams.insert(key.clone(), stats.clone());
        Ok(RtcPublisher {
            hub: self.clone(),
            key,
            stats,
        })
    }

    fn unpublish_ts(&self, key: &StreamKey, stream: &Arc<Mutex<TsStream>>) {
        let mut ts_streams = lock(&self.inner.ts_streams);
        if ts_streams.get(key).is_some_and(|s| Arc::ptr_eq(s, stream)) {
            ts_streams.remove(key);
        }
        drop(ts_streams);
        lock(stream).players.clear();
    }

    fn unpublish(&self, key: &StreamKey, stream: &Arc<Mutex<Stream>>) {
        let mut streams = lock(&self.inner.streams);
        if streams.get(key).is_some_and(|s| Arc::ptr_eq(s, stream)) {
            streams.remove(key);
        }
        drop(streams);
        let mut s = lock(stream);
        // Dropping the senders ends every player once it has drained its queue.
        s.players.clear();
        // Playlist requests waiting for a first segment learn at once that none will come.
        s.hls.ready().notify_waiters();
    }
}

impl Stream {
    /// What a new player gets first: metadata, sequence headers and the current GOP. Metadata
    /// goes at timestamp 0 (ffmpeg takes an `onMetaData` at any other time for a subtitle
    /// stream); headers take the GOP's first timestamp so timestamps never go backwards.
    fn start_sequence(&self) -> Vec<Media> {
        let start_ts = self
            .gop
            .messages
            .first()
            .map_or(self.last_timestamp, |m| m.timestamp);
        let metadata = self.metadata.iter().map(|m| Media {
            timestamp: 0,
            ..m.clone()
        });
        let headers = [&self.video_sequence_header, &self.audio_sequence_header]
            .into_iter()
            .flatten()
            .map(|m| Media {
                timestamp: start_ts,
                ..m.clone()
            });
        metadata
            .chain(headers)
            .chain(self.gop.messages.iter().cloned())
            .collect()
    }

    fn push(&mut self, m: Media) {
        self.recv_bytes += m.payload.len() as u64;
        self.hls.push(&m);
        self.last_timestamp = m.timestamp;
        match m.kind {
            MediaKind::Video if m.is_video_sequence_header() => {
                self.video_codec = media::video_codec(&m.payload).or(self.video_codec);
                // Old frames do not decode with a new header: restart the GOP.
                self.gop.clear();
                self.video_sequence_header = Some(m.clone());
            }
            MediaKind::Audio if m.is_audio_sequence_header() => {
                self.audio_codec = media::audio_codec(&m.payload).or(self.audio_codec);
                self.audio_sequence_header = Some(m.clone());
            }
            MediaKind::Data if media::is_on_metadata(&m.payload) => {
                self.metadata = Some(m.clone());
            }
            kind => {
                if kind == MediaKind::Video {
                    self.frames += 1;
                    self.video_codec = self.video_codec.or_else(|| media::video_codec(&m.payload));
                } else if kind == MediaKind::Audio {
                    self.audio_codec = self.audio_codec.or_else(|| media::audio_codec(&m.payload));
                }
                self.gop.push(&m, &self.limits);
            }
        }
        let len = m.payload.len() as u64;
        self.send_bytes += fan_out(&self.key, &mut self.players, &m, len);
    }
}

/// The publishing side of a stream. Dropping it ends the stream.
pub struct Publisher {
    hub: Hub,
    key: StreamKey,
    stream: Arc<Mutex<Stream>>,
}

impl Publisher {
    /// Sends one message to every player and updates the caches. Data messages have a leading
    /// `@setDataFrame` removed, and an `onMetaData` becomes the stream's metadata.
    pub fn push(&self, mut m: Media) {
        if m.kind == MediaKind::Data {
            m.payload = media::strip_set_data_frame(&m.payload);
        }
        lock(&self.stream).push(m);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.hub.unpublish(&self.key, &self.stream);
    }
}

/// The playing side of a stream: first the start sequence, then live items (RTMP/FLV messages
/// for a [`Player`], chunks of whole MPEG-TS packets for a [`TsPlayer`]). Dropping it leaves the
/// stream.
pub struct Subscription<T> {
    id: u64,
    stream: Arc<Mutex<dyn Roster>>,
    initial: VecDeque<T>,
    rx: mpsc::Receiver<T>,
}

/// A player of an RTMP-published stream.
pub type Player = Subscription<Media>;
/// A player of an MPEG-TS (SRT-published) stream.
pub type TsPlayer = Subscription<Bytes>;

impl<T> Subscription<T> {
    /// The next item: first the start sequence, then live ones. `None` when the publisher has
    /// left (or this player was dropped for being too slow) and the queue is drained.
    pub async fn recv(&mut self) -> Option<T> {
        match self.initial.pop_front() {
            Some(m) => Some(m),
            None => self.rx.recv().await,
        }
    }

    /// The next item if one is ready now, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.initial.pop_front().or_else(|| self.rx.try_recv().ok())
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        lock(&self.stream).leave(self.id);
    }
}

/// One live MPEG-TS stream's state.
struct TsStream {
    id: String,
    key: StreamKey,
    publish: PublishInfo,
    start_ms: u64,
    cache: TsCache,
    players: Vec<Slot<Bytes>>,
    recv_bytes: u64,
    send_bytes: u64,
}

impl TsStream {
    fn push(&mut self, chunk: Bytes) {
        self.recv_bytes += chunk.len() as u64;
        self.cache.push(&chunk);
        let len = chunk.len() as u64;
        self.send_bytes += fan_out(&self.key, &mut self.players, &chunk, len);
    }

    fn stats(&self) -> StreamStats {
        StreamStats {
            id: self.id.clone(),
            key: self.key.clone(),
            publish: self.publish.clone(),
            clients: self.players.len() + 1,
            frames: self.cache.frames(),
            recv_bytes: self.recv_bytes,
            send_bytes: self.send_bytes,
            video_codec: self.cache.video_codec(),
            audio_codec: self.cache.audio_codec(),
            start_ms: self.start_ms,
        }
    }
}

/// The publishing side of an MPEG-TS stream. Dropping it ends the stream.
pub struct TsPublisher {
    hub: Hub,
    key: StreamKey,
    stream: Arc<Mutex<TsStream>>,
    framer: Framer,
}

impl TsPublisher {
    /// Sends the whole packets of one publisher message to every player, in chunks of at most
    /// 1316 bytes that start at a packet boundary, and updates the start cache.
    pub fn push(&mut self, message: &Bytes) {
        let chunks = self.framer.push(message);
        if chunks.is_empty() {
            return;
        }
        let mut s = lock(&self.stream);
        for chunk in chunks {
            s.push(chunk);
        }
    }

    /// Bytes of the publisher's messages skipped because they were not inside a TS packet.
    pub fn skipped(&self) -> u64 {
        self.framer.skipped()
    }
}

impl Drop for TsPublisher {
    fn drop(&mut self) {
        self.hub.unpublish_ts(&self.key, &self.stream);
    }
}

/// A WebRTC stream's reservation of its key and its API figures. Dropping it ends the stream.
pub struct RtcPublisher {
    hub: Hub,
    key: StreamKey,
    stats: Arc<Mutex<StreamStats>>,
}

impl RtcPublisher {
    /// Updates the figures the API shows for this stream.
    pub fn update(&self, f: impl FnOnce(&mut StreamStats)) {
        f(&mut lock(&self.stats));
    }
}

impl Drop for RtcPublisher {
    fn drop(&mut self) {
        let mut rtc_streams = lock(&self.hub.inner.rtc_streams);
        if rtc_streams
            .get(&self.key)
            .is_some_and(|s| Arc::ptr_eq(s, &self.stats))
        {
            rtc_streams.remove(&self.key);
        }
    }
}

/// Locks a mutex, recovering from poisoning: the hub's state stays consistent between
/// statements, so a panic elsewhere must not take every stream down.
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> StreamKey {
        StreamKey {
            vhost: "__defaultVhost__".into(),
            app: "live".into(),
            stream: name.into(),
        }
    }

    fn video(ts: u32, key: bool) -> Media {
        let first = if key { 0x17 } else { 0x27 };
        Media::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![first, 0x01, 0, 0, 0, 0xaa]),
        )
    }

    fn video_sh(ts: u32) -> Media {
        Media::new(
            MediaKind::Video,
            ts,
            Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 1, 2]),
        )
    }

    fn audio(ts: u32) -> Media {
        Media::new(
            MediaKind::Audio,
            ts,
            Bytes::from_static(&[0xaf, 0x01, 0x21]),
        )
    }

    fn audio_sh(ts: u32) -> Media {
        Media::new(
            MediaKind::Audio,
            ts,
            Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]),
        )
    }

    fn set_data_frame() -> Media {
        let mut p = b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData".to_vec();
        p.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 9]);
        Media::new(MediaKind::Data, 0, Bytes::from(p))
    }

    fn drain(p: &mut Player) -> Vec<Media> {
        std::iter::from_fn(|| p.try_recv()).collect()
    }

    #[test]
    fn late_joiner_gets_metadata_headers_and_current_gop() {
        let hub = Hub::default();
        let publisher = hub.publish(key("s"), PublishInfo::default()).unwrap();
        publisher.push(set_data_frame());
        publisher.push(video_sh(0));
        publisher.push(audio_sh(0));
        publisher.push(video(0, true));
        publisher.push(audio(10));
        publisher.push(video(40, false));
        publisher.push(video(80, true));
        publisher.push(audio(90));
        publisher.push(video(120, false));

        let mut player = hub.play(&key("s")).unwrap();
        let got = drain(&mut player);
        assert_eq!(got.len(), 6);
        assert_eq!(got[0].kind, MediaKind::Data);
        assert!(
            media::is_on_metadata(&got[0].payload),
            "metadata without @setDataFrame"
        );
        assert!(got[1].is_video_sequence_header());
        assert!(got[2].is_audio_sequence_header());
        assert_eq!(got[0].timestamp, 0, "metadata at 0");
        assert!(
            got[1..3].iter().all(|m| m.timestamp == 80),
            "headers at GOP start"
        );
        assert!(got[3].is_keyframe());
        assert_eq!(got[3].timestamp, 80);
        assert_eq!(got[4], audio(90));
        assert_eq!(got[5], video(120, false));

        publisher.push(audio(130));
        assert_eq!(drain(&mut player), vec![audio(130)]);
    }

    #[test]
    fn gop_cache_is_bounded_and_waits_for_next_keyframe() {
        let hub = Hub::new(
            HubLimits {
                player_queue: 16,
                gop_max_bytes: 1 << 20,
                gop_max_messages: 3,
                ..HubLimits::default()
            },
            HlsSettings::default(),
        );
        let publisher = hub.publish(key("s"), PublishInfo::default()).unwrap();
        publisher.push(video(0, false));
        assert!(
            drain(&mut hub.play(&key("s")).unwrap()).is_empty(),
            "no GOP before a keyframe"
        );

        publisher.push(video(40, true));
        publisher.push(video(80, false));
        publisher.push(video(120, false));
        assert_eq!(drain(&mut hub.play(&key("s")).unwrap()).len(), 3);
        publisher.push(video(160, false));
        assert!(
            drain(&mut hub.play(&key("s")).unwrap()).is_empty(),
            "overflow drops the cache"
        );
        publisher.push(video(200, false));
        assert!(
            drain(&mut hub.play(&key("s")).unwrap()).is_empty(),
            "still waiting"
        );
        publisher.push(video(240, true));
        let got = drain(&mut hub.play(&key("s")).unwrap());
        assert_eq!(got, vec![video(240, true)]);
    }

    #[test]
    fn second_publisher_is_refused_until_first_leaves() {
        let hub = Hub::default();
        let first = hub.publish(key("s"), PublishInfo::default()).unwrap();
        assert!(matches!(
            hub.publish(key("s"), PublishInfo::default()),
            Err(HubError::AlreadyPublishing(_))
        ));
        assert!(hub.publish(key("other"), PublishInfo::default()).is_ok());
        drop(first);
        assert!(hub.publish(key("s"), PublishInfo::default()).is_ok());
    }

    #[tokio::test]
    async fn players_end_when_publisher_leaves_and_stream_is_removed() {
        let hub = Hub::default();
        let publisher = hub.publish(key("s"), PublishInfo::default()).unwrap();
        let mut player = hub.play(&key("s")).unwrap();
        publisher.push(audio(1));
        drop(publisher);
        assert_eq!(
            player.recv().await,
            Some(audio(1)),
            "queued messages are still delivered"
        );
        assert_eq!(player.recv().await, None);
        assert!(hub.stats().is_empty());
        assert!(hub.play(&key("s")).is_none());
    }

    #[tokio::test]
    async fn slow_player_is_dropped_without_affecting_others() {
        let hub = Hub::new(
            HubLimits {
                player_queue: 4,
                ..HubLimits::default()
            },
            HlsSettings::default(),
        );
        let publisher = hub.publish(key("s"), PublishInfo::default()).unwrap();
        let mut slow = hub.play(&key("s")).unwrap();
        let mut fast = hub.play(&key("s")).unwrap();
        for ts in 0..10 {
            publisher.push(audio(ts));
            assert_eq!(fast.recv().await, Some(audio(ts)));
        }
        assert_eq!(hub.stats()[0].clients, 2, "publisher + fast player");
        assert_eq!(drain(&mut slow).len(), 4);
        assert_eq!(slow.recv().await, None, "dropped player ends");
    }

    #[tokio::test]
    async fn player_leaving_is_removed() {
        let hub = Hub::default();
        let _publisher = hub.publish(key("s"), PublishInfo::default()).unwrap();
        let player = hub.play(&key("s")).unwrap();
        assert_eq!(hub.stats()[0].clients, 2);
        drop(player);
        assert_eq!(hub.stats()[0].clients, 1);
    }

    #[tokio::test]
    async fn play_or_wait_sees_a_later_publisher() {
        let hub = Hub::default();
        assert!(hub
            .play_or_wait(&key("s"), Duration::from_millis(20))
            .await
            .is_none());
        let h = hub.clone();
        let waiter = tokio::spawn(async move {
            h.play_or_wait(&key("s"), Duration::from_secs(5))
                .await
                .is_some()
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _publisher = hub.publish(key("s"), PublishInfo::default()).unwrap();
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn hls_ready_waits_for_the_first_segment() {
        let hub = Hub::new(
            HubLimits::default(),
            HlsSettings {
                fragment: Duration::from_millis(100),
                ..HlsSettings::default()
            },
        );
        let wait = Duration::from_secs(5);
        assert!(
            !hub.hls_ready(&key("none"), wait).await,
            "not published: at once"
        );
        let publisher = hub.publish(key("s"), PublishInfo::default()).unwrap();
        // An AVC sequence header with SPS 67 and PPS 68, then one-NAL frames.
        let sh = [
            0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 1, 0x67, 1, 0, 1, 0x68,
        ];
        publisher.push(Media::new(MediaKind::Video, 0, Bytes::copy_from_slice(&sh)));
        let frame = |ts| {
            Media::new(
                MediaKind::Video,
                ts,
                Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]),
            )
        };
        publisher.push(frame(0));
        let h = hub.clone();
        let waiter = tokio::spawn(async move { h.hls_ready(&key("s"), wait).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        publisher.push(frame(100));
        assert!(waiter.await.unwrap());
        assert!(hub.with_hls(&key("s"), |h| h.segment(0).is_some()).unwrap());

        let other = hub.publish(key("t"), PublishInfo::default()).unwrap();
        let h = hub.clone();
        let waiter = tokio::spawn(async move { h.hls_ready(&key("t"), wait).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = tokio::time::Instant::now();
        drop(other);
        assert!(!waiter.await.unwrap(), "unpublished: no segment will come");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn stats_track_codecs_and_bytes() {
        let hub = Hub::default();
        let publisher = hub
            .publish(
                key("s"),
                PublishInfo {
                    cid: "c1".into(),
                    tc_url: String::new(),
                },
            )
            .unwrap();
        publisher.push(video_sh(0));
        publisher.push(audio_sh(0));
        publisher.push(video(0, true));
        let s = &hub.stats()[0];
        assert_eq!(s.video_codec, Some("H264"));
        assert_eq!(s.audio_codec, Some("AAC"));
        assert_eq!(s.frames, 1);
        assert_eq!(s.recv_bytes, 7 + 4 + 6);
        assert_eq!(s.publish.cid, "c1");
    }

    /// A chunk of `n` TS packets whose payload bytes are all `tag`.
    fn ts_chunk(n: usize, tag: u8) -> Bytes {
        let mut p = vec![0x47, 0x41, 0x01, 0x10];
        p.resize(188, tag);
        Bytes::from(p.repeat(n))
    }

    #[tokio::test]
    async fn ts_streams_fan_out_and_share_the_key_space() {
        let hub = Hub::new(
            HubLimits {
                ts_player_queue: 2,
                ..HubLimits::default()
            },
            HlsSettings::default(),
        );
        let mut publisher = hub.publish_ts(key("s"), PublishInfo::default()).unwrap();
        assert!(matches!(
            hub.publish_ts(key("s"), PublishInfo::default()),
            Err(HubError::AlreadyPublishing(_))
        ));
        assert!(
            hub.publish(key("s"), PublishInfo::default()).is_err(),
            "an RTMP publisher of an SRT stream"
        );
        let rtmp = hub.publish(key("r"), PublishInfo::default()).unwrap();
        assert!(
            hub.publish_ts(key("r"), PublishInfo::default()).is_err(),
            "an SRT publisher of an RTMP stream"
        );
        assert!(
            hub.play_ts(&key("r")).is_none(),
            "no TS play of FLV streams"
        );
        assert!(hub.play(&key("s")).is_none(), "no FLV play of TS streams");

        let mut fast = hub.play_ts(&key("s")).unwrap();
        let mut slow = hub.play_ts(&key("s")).unwrap();
        for tag in 0..4 {
            publisher.push(&ts_chunk(7, tag));
            assert_eq!(fast.recv().await, Some(ts_chunk(7, tag)));
        }
        assert_eq!(
            hub.stats().iter().map(|s| s.clients).collect::<Vec<_>>(),
            [1, 2],
            "r: publisher; s: publisher + fast"
        );
        assert_eq!(slow.try_recv(), Some(ts_chunk(7, 0)));
        assert_eq!(slow.try_recv(), Some(ts_chunk(7, 1)));
        assert_eq!(slow.recv().await, None, "dropped when its queue was full");

        drop(rtmp);
        drop(publisher);
        assert_eq!(fast.recv().await, None);
        assert!(hub.stats().is_empty());
        assert!(hub.publish(key("s"), PublishInfo::default()).is_ok());
    }

    #[test]
    fn rtc_streams_share_the_key_space_and_show_in_stats() {
        let hub = Hub::default();
        let rtc = hub.publish_rtc(key("w"), PublishInfo::default()).unwrap();
        assert!(hub.publish_rtc(key("w"), PublishInfo::default()).is_err());
        assert!(hub.publish(key("w"), PublishInfo::default()).is_err());
        assert!(hub.publish_ts(key("w"), PublishInfo::default()).is_err());
        let _rtmp = hub.publish(key("r"), PublishInfo::default()).unwrap();
        assert!(hub.publish_rtc(key("r"), PublishInfo::default()).is_err());
        rtc.update(|s| {
            s.clients = 3;
            s.video_codec = Some("H264");
        });
        let stats = hub.stats();
        let w = stats.iter().find(|s| s.key == key("w")).unwrap();
        assert_eq!((w.clients, w.video_codec), (3, Some("H264")));
        drop(rtc);
        assert_eq!(hub.stats().len(), 1);
        assert!(hub.publish(key("w"), PublishInfo::default()).is_ok());
    }
}
