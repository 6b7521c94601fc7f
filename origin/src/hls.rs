//! Live HLS (RFC 8216, version 3) from a published stream, in memory.
//!
//! Every audio/video message of the stream is remuxed to MPEG-TS ([`srs_ts::Remuxer`]) into the
//! segment being built. A segment is cut at the first keyframe (audio frame, for streams
//! without video) at least `fragment` after its start, so each one starts with PAT, PMT and a
//! keyframe with its SPS/PPS and decodes on its own. The playlist lists the newest segments
//! covering about `window`; a few older ones stay fetchable for players that read the playlist
//! just before it moved on; everything older is dropped. Segment count and bytes are capped, so
//! memory stays bounded however long the stream runs.
//!
//! Segment names are `<stream>-<seq>.ts`, relative to the playlist; with SRS's `hls_ctx` (see
//! [`master_playlist`]) the session id rides along as a query.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use srs_ts::{RemuxError, Remuxer};
use tokio::sync::Notify;

use crate::media::{Media, MediaKind};

/// Finished segments kept beyond the playlist, for players that fetch them a little late.
const EXTRA_SEGMENTS: usize = 3;
/// Most finished segments kept per stream, whatever the window.
const MAX_SEGMENTS: usize = 128;
/// Most bytes of finished segments kept per stream; past it the oldest go first.
const MAX_BYTES: usize = 128 * 1024 * 1024;
/// A segment that grows past this (no keyframe to cut at for a long time) is dropped, and the
/// next one starts at the next keyframe.
const MAX_SEGMENT_BYTES: usize = 32 * 1024 * 1024;

/// How HLS is produced and served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HlsSettings {
    /// Target segment length; segments are cut at the first keyframe after it.
    pub fragment: Duration,
    /// About how much time the playlist lists.
    pub window: Duration,
    /// Serve SRS's `hls_ctx` master playlist first (SRS `hls_ctx on`).
    pub ctx: bool,
}

impl Default for HlsSettings {
    fn default() -> Self {
        Self {
            fragment: Duration::from_secs(2),
            window: Duration::from_secs(10),
            ctx: true,
        }
    }
}

/// A finished segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Media sequence number (RFC 8216 4.3.3.2), from 0 per publish.
    pub seq: u64,
    /// Duration in milliseconds: from its first keyframe to the next segment's.
    pub duration_ms: u64,
    /// The MPEG-TS bytes.
    pub data: Bytes,
}

/// The segment being built.
struct Building {
    seq: u64,
    start_ms: u32,
    last_ms: u32,
    data: Vec<u8>,
}

/// One stream's HLS state: the remuxer, the segment being built and the finished ones.
pub struct Hls {
    settings: HlsSettings,
    remuxer: Remuxer,
    current: Option<Building>,
    segments: VecDeque<Segment>,
    bytes: usize,
    next_seq: u64,
    /// Woken when a segment is finished (and, by the hub, when the stream ends), for playlist
    /// requests that wait for the first one.
    ready: Arc<Notify>,
    remux_warned: bool,
}

impl Hls {
    /// HLS state for a stream that has just started publishing.
    pub fn new(settings: HlsSettings) -> Self {
        Self {
            settings,
            remuxer: Remuxer::new(),
            current: None,
            segments: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
            ready: Arc::new(Notify::new()),
            remux_warned: false,
        }
    }

    /// Feeds one message of the stream, in publish order.
    pub fn push(&mut self, m: &Media) {
        let header = match m.kind {
            MediaKind::Data => return,
            MediaKind::Video => m.is_video_sequence_header(),
            MediaKind::Audio => m.is_audio_sequence_header(),
        };
        if !header {
            let cut_point = if self.remuxer.has_video() {
                m.is_keyframe()
            } else {
                m.kind == MediaKind::Audio
            };
            if cut_point {
                self.cut(m.timestamp);
            }
        }
        // Before the first segment only sequence headers matter; frames cannot start one.
        let mut discard = Vec::new();
        let out = match &mut self.current {
            Some(segment) => {
                segment.last_ms = m.timestamp;
                &mut segment.data
            }
            None if header => &mut discard,
            None => return,
        };
        let result = match m.kind {
            MediaKind::Video => self.remuxer.push_video(m.timestamp, &m.payload, out),
            _ => self.remuxer.push_audio(m.timestamp, &m.payload, out),
        };
        if let Err(e) = result {
            self.remux_failed(&e);
        }
        if let Some(segment) = &self.current {
            if segment.data.len() > MAX_SEGMENT_BYTES {
                tracing::warn!(
                    bytes = segment.data.len(),
                    "HLS segment too large without a keyframe, dropped"
                );
                self.next_seq = segment.seq;
                self.current = None;
            }
        }
    }

    /// At a point where a segment may start: finishes the current segment when it is long
    /// enough (or time went backwards) and starts the next one.
    fn cut(&mut self, now_ms: u32) {
        let fragment_ms = self.settings.fragment.as_millis();
        if let Some(segment) = &self.current {
            // Signed: a timestamp that went backwards ends the segment too.
            let elapsed = i64::from(now_ms.wrapping_sub(segment.start_ms) as i32);
            if elapsed >= 0 && (elapsed as u128) < fragment_ms {
                return;
            }
            let duration_ms = if elapsed >= 0 {
                elapsed
            } else {
                i64::from(segment.last_ms.wrapping_sub(segment.start_ms) as i32).max(0)
            };
            if let Some(done) = self.current.take() {
                if done.data.is_empty() {
                    // Nothing could be remuxed (unsupported codec): list nothing, reuse the number.
                    self.next_seq = done.seq;
                } else {
                    self.finish(done, duration_ms as u64);
                }
            }
        }
        self.current = Some(Building {
            seq: self.next_seq,
            start_ms: now_ms,
            last_ms: now_ms,
            data: Vec::new(),
        });
        self.next_seq += 1;
        self.remuxer.request_tables();
    }

    fn finish(&mut self, done: Building, duration_ms: u64) {
        self.bytes += done.data.len();
        self.segments.push_back(Segment {
            seq: done.seq,
            duration_ms,
            data: Bytes::from(done.data),
        });
        let keep = (self.listed_count() + EXTRA_SEGMENTS).min(MAX_SEGMENTS);
        while self.segments.len() > keep || (self.bytes > MAX_BYTES && self.segments.len() > 1) {
            if let Some(old) = self.segments.pop_front() {
                self.bytes -= old.data.len();
            }
        }
        self.ready.notify_waiters();
    }

    fn remux_failed(&mut self, e: &RemuxError) {
        // A publisher sending an unsupported codec would otherwise log every frame.
        if self.remux_warned {
            tracing::debug!(error = %e, "HLS: message skipped");
        } else {
            self.remux_warned = true;
            tracing::warn!(error = %e, "HLS: message skipped (further ones logged at debug)");
        }
    }

    /// How many of the newest segments the playlist lists: enough to cover the window, at
    /// least one.
    fn listed_count(&self) -> usize {
        let window_ms = self.settings.window.as_millis();
        let mut total = 0u128;
        let mut n = 0;
        for s in self.segments.iter().rev() {
            if n > 0 && total >= window_ms {
                break;
            }
            total += u128::from(s.duration_ms);
            n += 1;
        }
        n
    }

    /// Whether a segment is finished, so a playlist can list one.
    pub fn has_segments(&self) -> bool {
        !self.segments.is_empty()
    }

    /// Notified when a segment is finished or the stream ends.
    pub fn ready(&self) -> Arc<Notify> {
        self.ready.clone()
    }

    /// The bytes of segment `seq`, while it is kept.
    pub fn segment(&self, seq: u64) -> Option<Bytes> {
        self.segments
            .iter()
            .find(|s| s.seq == seq)
            .map(|s| s.data.clone())
    }

    /// Sequence numbers of all kept segments, listed or not.
    #[cfg(test)]
    fn kept(&self) -> Vec<u64> {
        self.segments.iter().map(|s| s.seq).collect()
    }

    /// The media playlist (RFC 8216 4.3.3): the listed segments as `<name>-<seq>.ts`, followed by
    /// `?<query>` when `query` is given. `name` is the stream's name as it appeared, encoded, in
    /// the request path, so the relative URIs resolve next to the playlist.
    pub fn media_playlist(&self, name: &str, query: Option<&str>) -> String {
        let skip = self.segments.len() - self.listed_count();
        let listed = || self.segments.iter().skip(skip);
        let first = listed().next().map_or(self.next_seq, |s| s.seq);
        // RFC 8216 4.3.3.1: each EXTINF rounded must not exceed it; ceil is on the safe side.
        let target = listed()
            .map(|s| s.duration_ms.div_ceil(1000))
            .max()
            .unwrap_or_else(|| self.settings.fragment.as_secs().max(1))
            .max(1);
        let mut out = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
        );
        for s in listed() {
            let _ = write!(
                out,
                "#EXTINF:{}.{:03},\n{name}-{}.ts",
                s.duration_ms / 1000,
                s.duration_ms % 1000,
                s.seq
            );
            if let Some(q) = query.filter(|q| !q.is_empty()) {
                out.push('?');
                out.push_str(q);
            }
            out.push('\n');
        }
        out
    }
}

/// SRS's one-variant master playlist for a new `hls_ctx` session: it points back at the same
/// path with `hls_ctx=<ctx>` and the request's other query parameters (SRS
/// `SrsHlsStream::serve_new_session`). `path` is the request path as sent.
pub fn master_playlist(path: &str, ctx: &str, other_query: Option<&str>) -> String {
    let mut uri = format!("{path}?hls_ctx={ctx}");
    if let Some(q) = other_query.filter(|q| !q.is_empty()) {
        uri.push('&');
        uri.push_str(q);
    }
    format!("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,AVERAGE-BANDWIDTH=1\n{uri}\n")
}

/// Splits a `.ts` request's stream name into the stream and sequence number of an HLS segment
/// name, `<stream>-<digits>`.
pub fn parse_segment_name(name: &str) -> Option<(&str, u64)> {
    let (stream, seq) = name.rsplit_once('-')?;
    if stream.is_empty() || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stream, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVC_SH: &[u8] = &[
        0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 2, 0x67, 0xaa, 1, 0, 2, 0x68, 0xbb,
    ];

    fn video(ts: u32, key: bool) -> Media {
        let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 2];
        v.extend_from_slice(if key { &[0x65, 1] } else { &[0x41, 1] });
        Media::new(MediaKind::Video, ts, Bytes::from(v))
    }

    fn audio(ts: u32) -> Media {
        Media::new(
            MediaKind::Audio,
            ts,
            Bytes::from_static(&[0xaf, 0x01, 0x21, 0x10]),
        )
    }

    fn audio_sh() -> Media {
        Media::new(
            MediaKind::Audio,
            0,
            Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]),
        )
    }

    fn settings(fragment_ms: u64, window_ms: u64) -> HlsSettings {
        HlsSettings {
            fragment: Duration::from_millis(fragment_ms),
            window: Duration::from_millis(window_ms),
            ctx: true,
        }
    }

    /// Publishes `seconds` of 25 fps video with a keyframe every `gop` frames, plus audio.
    fn publish(hls: &mut Hls, from_frame: u32, frames: u32, gop: u32) {
        for i in from_frame..from_frame + frames {
            hls.push(&video(i * 40, i % gop == 0));
            hls.push(&audio(i * 40 + 10));
        }
    }

    #[test]
    fn segments_start_at_keyframes_and_the_window_slides() {
        let mut hls = Hls::new(settings(1000, 4000));
        hls.push(&Media::new(MediaKind::Video, 0, Bytes::from_static(AVC_SH)));
        hls.push(&audio_sh());
        assert!(!hls.has_segments());
        // 20 s at 25 fps, keyframe every 0.5 s: segments of exactly 1 s.
        publish(&mut hls, 0, 500, 12 + 1);
        let p = hls.media_playlist("s", Some("hls_ctx=abc"));
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[0], "#EXTM3U");
        assert_eq!(lines[1], "#EXT-X-VERSION:3");
        let target: u64 = lines[2]
            .strip_prefix("#EXT-X-TARGETDURATION:")
            .unwrap()
            .parse()
            .unwrap();
        let first: u64 = lines[3]
            .strip_prefix("#EXT-X-MEDIA-SEQUENCE:")
            .unwrap()
            .parse()
            .unwrap();
        let extinf: Vec<f64> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(|l| l.trim_end_matches(',').parse().unwrap())
            .collect();
        assert!(extinf.len() >= 3 && extinf.len() <= 5, "{p}");
        assert!(extinf.iter().all(|d| (1.0..1.6).contains(d)), "{p}");
        assert_eq!(target, 2, "ceil of the longest");
        assert!(first > 5, "old segments left the playlist");
        assert_eq!(lines[5], format!("s-{first}.ts?hls_ctx=abc"));
        let kept = hls.kept();
        assert!(kept.len() <= extinf.len() + EXTRA_SEGMENTS);
        assert_eq!(*kept.last().unwrap(), first + extinf.len() as u64 - 1);
        assert!(
            hls.segment(first - 1).is_some(),
            "a few kept beyond the window"
        );
        assert!(hls.segment(0).is_none(), "old ones dropped");

        // Every segment starts with PAT, PMT and a keyframe.
        for seq in kept {
            let data = hls.segment(seq).unwrap();
            assert_eq!(data.len() % 188, 0);
            assert_eq!(&data[1..3], &[0x40, 0x00], "PAT first");
            assert_eq!(&data[189..191], &[0x50, 0x01], "then the PMT");
            assert_eq!(&data[377..379], &[0x41, 0x00], "then the video PES");
        }
    }

    #[test]
    fn frames_before_the_first_keyframe_are_skipped_and_audio_only_works() {
        let mut hls = Hls::new(settings(1000, 10_000));
        hls.push(&Media::new(MediaKind::Video, 0, Bytes::from_static(AVC_SH)));
        hls.push(&video(0, false));
        hls.push(&video(40, false));
        assert!(hls.current.is_none());
        hls.push(&video(80, true));
        assert!(hls.current.is_some());

        let mut audio_only = Hls::new(settings(1000, 10_000));
        audio_only.push(&audio_sh());
        for i in 0..100 {
            audio_only.push(&audio(i * 23));
        }
        assert!(audio_only.has_segments());
        let p = audio_only.media_playlist("a", None);
        assert!(p.contains("\na-0.ts\n"), "{p}");
        assert!(p.contains("#EXTINF:1.012,"), "{p}");
    }

    #[test]
    fn memory_stays_bounded_over_a_long_stream() {
        let mut hls = Hls::new(settings(1000, 10_000));
        hls.push(&Media::new(MediaKind::Video, 0, Bytes::from_static(AVC_SH)));
        publish(&mut hls, 0, 25 * 600, 25);
        assert!(hls.kept().len() <= 10 + EXTRA_SEGMENTS);
        assert!(hls.bytes <= MAX_BYTES);
        assert_eq!(*hls.kept().last().unwrap(), 598);
    }

    #[test]
    fn master_and_segment_names() {
        assert_eq!(
            master_playlist("/live/s.m3u8", "k3y", None),
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,AVERAGE-BANDWIDTH=1\n/live/s.m3u8?hls_ctx=k3y\n"
        );
        assert!(master_playlist("/live/s.m3u8", "k", Some("token=1"))
            .ends_with("/live/s.m3u8?hls_ctx=k&token=1\n"));
        assert_eq!(parse_segment_name("live-12"), Some(("live", 12)));
        assert_eq!(parse_segment_name("a-b-7"), Some(("a-b", 7)));
        assert_eq!(parse_segment_name("live"), None);
        assert_eq!(parse_segment_name("live-"), None);
        assert_eq!(parse_segment_name("-3"), None);
        assert_eq!(parse_segment_name("x-1a"), None);
        assert_eq!(parse_segment_name("x-+1"), None);
    }
}
