//! FLV audio and video tag bodies (RTMP messages 8 and 9) to an MPEG-TS stream: H.264 (AVC) video
//! and AAC audio, the codecs HLS version 3 players expect.
//!
//! The remuxer starts the stream at the first video keyframe (at the first audio frame when there
//! is no video) and puts PAT/PMT before the first frame, before every keyframe and whenever the
//! set of streams changes, so a reader can start decoding at any keyframe.

use crate::aac::AacConfig;
use crate::avc::{self, AvcConfig};
use crate::mux::{Muxer, Pes, StreamType, Track, TIMESTAMP_MASK};
use crate::CodecError;

/// 90 kHz clock ticks per FLV millisecond (ISO/IEC 13818-1 2.4.3.7).
const TICKS_PER_MS: i64 = 90;
/// FLV CodecID of AVC (Adobe FLV spec, Annex E.4.3.1).
const CODEC_AVC: u8 = 7;
/// FLV SoundFormat of AAC (Adobe FLV spec, Annex E.4.2.1).
const SOUND_AAC: u8 = 10;

/// Why a tag could not be remuxed. The tag is skipped; the stream goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemuxError {
    /// A tag body shorter than its FLV header.
    #[error("{0} tag truncated")]
    Truncated(&'static str),
    /// A video codec other than H.264 (FLV CodecID, or 0x80 for enhanced RTMP).
    #[error("video codec {0} cannot be muxed to TS here (only H.264)")]
    UnsupportedVideo(u8),
    /// An audio codec other than AAC (FLV SoundFormat).
    #[error("audio format {0} cannot be muxed to TS here (only AAC)")]
    UnsupportedAudio(u8),
    /// Malformed or unsupported codec data.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Turns one publisher's FLV tags into one continuous transport stream.
#[derive(Debug, Clone)]
pub struct Remuxer {
    muxer: Muxer,
    avc: Option<AvcConfig>,
    aac: Option<AacConfig>,
    tables_due: bool,
    video_started: bool,
    scratch: Vec<u8>,
}

impl Default for Remuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Remuxer {
    /// A remuxer that has seen no sequence header yet.
    pub fn new() -> Self {
        Self {
            muxer: Muxer::new(),
            avc: None,
            aac: None,
            tables_due: true,
            video_started: false,
            scratch: Vec::new(),
        }
    }

    /// Whether an AVC sequence header was seen: the stream has video, and starts at keyframes.
    pub fn has_video(&self) -> bool {
        self.avc.is_some()
    }

    /// Whether an AAC sequence header was seen.
    pub fn has_audio(&self) -> bool {
        self.aac.is_some()
    }

    /// Asks for PAT and PMT before the next frame, e.g. at the start of an HLS segment.
    pub fn request_tables(&mut self) {
        self.tables_due = true;
    }

    /// Remuxes one FLV video tag body with its timestamp in milliseconds. Returns whether a
    /// frame was appended to `out`: sequence headers only update the configuration, and frames
    /// before the first keyframe are dropped because they cannot be decoded.
    ///
    /// Errors: see [`RemuxError`]; nothing is appended then.
    pub fn push_video(
        &mut self,
        timestamp: u32,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, RemuxError> {
        let [first, packet_type, c0, c1, c2, data @ ..] = body else {
            return Err(RemuxError::Truncated("video"));
        };
        if first & 0x80 != 0 {
            return Err(RemuxError::UnsupportedVideo(0x80));
        }
        if first & 0x0f != CODEC_AVC {
            return Err(RemuxError::UnsupportedVideo(first & 0x0f));
        }
        match packet_type {
            0 => {
                self.avc = Some(AvcConfig::parse(data)?);
                self.update_streams();
                return Ok(false);
            }
            1 => {}
            // 2 is the end of sequence; others are reserved.
            _ => return Ok(false),
        }
        let frame_type = first >> 4;
        let keyframe = frame_type == 1;
        // Frame type 5 is a video info/command frame, not a picture.
        if frame_type == 5 || !(keyframe || self.video_started) {
            return Ok(false);
        }
        let Some(config) = &self.avc else {
            return Ok(false);
        };
        // CompositionTime is a signed 24-bit offset in milliseconds (FLV spec, E.4.3.1).
        let cts = i32::from_be_bytes([*c0, *c1, *c2, 0]) >> 8;
        self.scratch.clear();
        avc::to_annex_b(config, data, keyframe, &mut self.scratch)?;
        let dts = i64::from(timestamp) * TICKS_PER_MS;
        let pts = dts + i64::from(cts) * TICKS_PER_MS;
        if keyframe {
            self.tables_due = true;
        }
        self.write_tables_if_due(out);
        self.muxer.write_pes(
            out,
            Track::Video,
            &Pes {
                pts: wrap(pts),
                dts: wrap(dts),
                random_access: keyframe,
                data: &self.scratch,
            },
        );
        self.video_started = true;
        Ok(true)
    }

    /// Remuxes one FLV audio tag body with its timestamp in milliseconds. Returns whether a
    /// frame was appended to `out`; with video, audio before the first keyframe is dropped so the
    /// stream starts where a picture can be decoded.
    ///
    /// Errors: see [`RemuxError`]; nothing is appended then.
    pub fn push_audio(
        &mut self,
        timestamp: u32,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, RemuxError> {
        let [first, packet_type, data @ ..] = body else {
            return Err(RemuxError::Truncated("audio"));
        };
        if first >> 4 != SOUND_AAC {
            return Err(RemuxError::UnsupportedAudio(first >> 4));
        }
        if *packet_type == 0 {
            self.aac = Some(AacConfig::parse(data)?);
            self.update_streams();
            return Ok(false);
        }
        let Some(config) = &self.aac else {
            return Ok(false);
        };
        if data.is_empty() || (self.avc.is_some() && !self.video_started) {
            return Ok(false);
        }
        let header = config.adts_header(data.len())?;
        self.scratch.clear();
        self.scratch.extend_from_slice(&header);
        self.scratch.extend_from_slice(data);
        let pts = wrap(i64::from(timestamp) * TICKS_PER_MS);
        self.write_tables_if_due(out);
        self.muxer.write_pes(
            out,
            Track::Audio,
            &Pes {
                pts,
                dts: pts,
                random_access: self.avc.is_none(),
                data: &self.scratch,
            },
        );
        Ok(true)
    }

    fn update_streams(&mut self) {
        let video = self.avc.as_ref().map(|_| StreamType::H264);
        let audio = self.aac.as_ref().map(|_| StreamType::Aac);
        if self.muxer.set_streams(video, audio) {
            self.tables_due = true;
        }
    }

    fn write_tables_if_due(&mut self, out: &mut Vec<u8>) {
        if self.tables_due {
            self.muxer.write_tables(out);
            self.tables_due = false;
        }
    }
}

/// A timestamp in 90 kHz ticks as the 33-bit counter TS carries; negative values (a negative
/// composition offset at the very start) wrap like the counter does.
fn wrap(ticks: i64) -> u64 {
    ticks.rem_euclid(TIMESTAMP_MASK as i64 + 1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::tests::{assert_continuity, packets, section_of};
    use crate::mux::{AUDIO_PID, PAT_PID, PMT_PID, VIDEO_PID};

    const AVC_SH: &[u8] = &[
        0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 2, 0x67, 0xaa, 1, 0, 2, 0x68, 0xbb,
    ];
    const AAC_SH: &[u8] = &[0xaf, 0, 0x12, 0x10];

    fn video(key: bool, cts: u8) -> Vec<u8> {
        let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, cts, 0, 0, 0, 2];
        v.extend_from_slice(if key { &[0x65, 1] } else { &[0x41, 1] });
        v
    }

    #[test]
    fn starts_at_keyframe_with_tables_and_drops_what_cannot_decode() {
        let mut r = Remuxer::new();
        let mut out = Vec::new();
        assert!(
            !r.push_video(0, &video(true, 0), &mut out).unwrap(),
            "no config"
        );
        assert!(!r.push_video(0, AVC_SH, &mut out).unwrap());
        assert!(!r.push_audio(0, AAC_SH, &mut out).unwrap());
        assert!(r.has_video() && r.has_audio());
        assert!(!r.push_video(0, &video(false, 0), &mut out).unwrap());
        assert!(!r.push_audio(10, &[0xaf, 1, 0x21], &mut out).unwrap());
        assert!(out.is_empty());

        assert!(r.push_video(40, &video(true, 80), &mut out).unwrap());
        assert!(r.push_audio(50, &[0xaf, 1, 0x21], &mut out).unwrap());
        assert!(r.push_video(80, &video(false, 0), &mut out).unwrap());
        let ps = packets(&out);
        assert_continuity(&ps);
        let pids: Vec<u16> = ps.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [PAT_PID, PMT_PID, VIDEO_PID, AUDIO_PID, VIDEO_PID]);
        section_of(&ps[1]);
        let pes = ps[2].payload;
        assert_eq!(
            pes[7], 0xc0,
            "PTS and DTS for a frame with a composition offset"
        );
        assert!(
            pes.windows(6).any(|w| w == [0, 0, 0, 1, 0x67, 0xaa]),
            "SPS in-band"
        );
        let adts = &ps[3].payload[14..];
        assert_eq!(&adts[..2], &[0xff, 0xf1]);
        assert_eq!(adts[7], 0x21);
    }

    #[test]
    fn audio_only_starts_at_once_and_bad_tags_are_errors() {
        let mut r = Remuxer::new();
        let mut out = Vec::new();
        r.push_audio(0, AAC_SH, &mut out).unwrap();
        assert!(r.push_audio(0, &[0xaf, 1, 0x21], &mut out).unwrap());
        let ps = packets(&out);
        assert_eq!(ps.len(), 3);
        let pmt = section_of(&ps[1]);
        assert_eq!(u16::from(pmt[8] & 0x1f) << 8 | u16::from(pmt[9]), AUDIO_PID);
        assert!(ps[2].adaptation.is_some_and(|a| a[0] & 0x10 != 0), "PCR");

        assert_eq!(
            r.push_audio(0, &[0x2f, 1, 0], &mut out),
            Err(RemuxError::UnsupportedAudio(2))
        );
        assert_eq!(
            r.push_video(0, &[0x1c, 1, 0, 0, 0], &mut out),
            Err(RemuxError::UnsupportedVideo(12))
        );
        assert_eq!(
            r.push_video(0, &[0x17, 1], &mut out),
            Err(RemuxError::Truncated("video"))
        );
        assert!(matches!(
            r.push_video(0, &[0x17, 0, 0, 0, 0, 1], &mut out),
            Err(RemuxError::Codec(_))
        ));
    }

    #[test]
    fn timestamps_wrap_to_33_bits() {
        assert_eq!(wrap(-90), TIMESTAMP_MASK - 89);
        assert_eq!(
            wrap(i64::from(u32::MAX) * 90),
            (u64::from(u32::MAX) * 90) & TIMESTAMP_MASK
        );
    }
}
