//! The publisher's media: a short H.264 clip (Annex B, split into access units) and Opus packets
//! (from Ogg), generated once per process with ffmpeg and looped.

use std::sync::Arc;

use tokio::process::Command;
use tokio::sync::OnceCell;

use crate::ClientError;

/// Video frame rate of the clip, frames per second.
pub const VIDEO_FPS: u32 = 25;
/// Duration of one Opus packet of the clip, in milliseconds.
pub const AUDIO_FRAME_MS: u32 = 20;
/// Length of the generated clip, in seconds; its GOP is one second, so it holds keyframes at
/// 0, 25, 50, ... frames.
const CLIP_SECONDS: u32 = 2;

/// A looped clip: H.264 access units (Annex B) and Opus packets.
#[derive(Debug)]
pub struct Clip {
    /// Access units in decoding order, each with its start codes.
    pub video: Vec<AccessUnit>,
    /// Opus packets, [`AUDIO_FRAME_MS`] each.
    pub audio: Vec<Vec<u8>>,
}

/// One H.264 access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The NAL units, each preceded by a 4-byte start code.
    pub data: Vec<u8>,
    /// Holds an IDR slice (NAL type 5).
    pub keyframe: bool,
}

/// The process's clip, generated with ffmpeg on first use.
///
/// Errors: [`ClientError::Ffmpeg`] when ffmpeg is missing, fails, or yields no frames.
pub async fn clip() -> Result<Arc<Clip>, ClientError> {
    static CLIP: OnceCell<Arc<Clip>> = OnceCell::const_new();
    CLIP.get_or_try_init(|| async {
        let seconds = CLIP_SECONDS.to_string();
        let h264 = ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc=size=320x240:rate={VIDEO_FPS}"),
            "-t",
            &seconds,
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
            "-g",
            &VIDEO_FPS.to_string(),
            "-bf",
            "0",
            "-f",
            "h264",
            "-",
        ])
        .await?;
        let ogg = ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &seconds,
            "-c:a",
            "libopus",
            "-b:a",
            "48k",
            "-frame_duration",
            &AUDIO_FRAME_MS.to_string(),
            "-f",
            "ogg",
            "-",
        ])
        .await?;
        let video = access_units(&h264);
        let audio = ogg_packets(&ogg)
            .into_iter()
            // The first two packets are the OpusHead and OpusTags headers (RFC 7845 §3).
            .skip(2)
            .collect::<Vec<_>>();
        if !video.first().is_some_and(|au| au.keyframe) || audio.is_empty() {
            return Err(ClientError::Ffmpeg(format!(
                "unusable clip: {} access units, {} Opus packets",
                video.len(),
                audio.len()
            )));
        }
        Ok(Arc::new(Clip { video, audio }))
    })
    .await
    .cloned()
}

async fn ffmpeg(args: &[&str]) -> Result<Vec<u8>, ClientError> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| ClientError::Ffmpeg(format!("cannot run ffmpeg: {e}")))?;
    if !out.status.success() {
        return Err(ClientError::Ffmpeg(format!(
            "ffmpeg failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// The NAL units of an Annex B byte stream (ITU-T H.264 Annex B), without start codes.
pub fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(stream.len(), |&next| next - 3);
        // A 4-byte start code leaves a zero byte before the 3-byte one; trailing zeros too.
        while end > start && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > start {
            out.push(&stream[start..end]);
        }
    }
    out
}

/// Groups an Annex B stream's NAL units into access units (H.264 §7.4.1.2.3): a new one starts
/// at an access unit delimiter, SPS, PPS or SEI after a slice, or at a slice whose
/// `first_mb_in_slice` is 0 after a slice.
pub fn access_units(stream: &[u8]) -> Vec<AccessUnit> {
    let mut out = Vec::new();
    let mut current = AccessUnit {
        data: Vec::new(),
        keyframe: false,
    };
    let mut has_slice = false;
    for nal in nal_units(stream) {
        let kind = nal[0] & 0x1f;
        let is_slice = matches!(kind, 1 | 5);
        // first_mb_in_slice is ue(v): 0 is the single bit 1.
        let first_slice = is_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_new = matches!(kind, 6..=9) || first_slice;
        if starts_new && has_slice {
            out.push(std::mem::replace(
                &mut current,
                AccessUnit {
                    data: Vec::new(),
                    keyframe: false,
                },
            ));
            has_slice = false;
        }
        current.data.extend_from_slice(&[0, 0, 0, 1]);
        current.data.extend_from_slice(nal);
        current.keyframe |= kind == 5;
        has_slice |= is_slice;
    }
    if has_slice {
        out.push(current);
    }
    out
}

/// The packets of an Ogg stream (RFC 3533 §6): pages' segments joined by lacing. Stops at the
/// first malformed page.
pub fn ogg_packets(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut packet = Vec::new();
    let mut pos = 0;
    while let Some(header) = stream.get(pos..pos + 27) {
        if &header[..4] != b"OggS" {
            break;
        }
        let segments = usize::from(header[26]);
        let Some(table) = stream.get(pos + 27..pos + 27 + segments) else {
            break;
        };
        let mut body = pos + 27 + segments;
        for &len in table {
            let len = usize::from(len);
            let Some(segment) = stream.get(body..body + len) else {
                return packets;
            };
            packet.extend_from_slice(segment);
            body += len;
            // A segment shorter than 255 bytes ends its packet.
            if len < 255 {
                packets.push(std::mem::take(&mut packet));
            }
        }
        pos = body;
    }
    packets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_splits_into_access_units() {
        let sps = [0x67, 0x42, 0xc0, 0x1e];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let idr = [0x65, 0x88, 0x84, 0x21];
        let p1 = [0x41, 0x9a, 0x02];
        let p2 = [0x41, 0x9a, 0x04];
        let mut stream = Vec::new();
        for (nal, four) in [
            (&sps[..], true),
            (&pps, false),
            (&idr, true),
            (&p1, true),
            (&p2, false),
        ] {
            stream.extend_from_slice(if four { &[0, 0, 0, 1] } else { &[0, 0, 1] });
            stream.extend_from_slice(nal);
        }
        assert_eq!(nal_units(&stream), [&sps[..], &pps, &idr, &p1, &p2]);
        let aus = access_units(&stream);
        assert_eq!(aus.len(), 3);
        assert!(aus[0].keyframe && !aus[1].keyframe && !aus[2].keyframe);
        assert_eq!(nal_units(&aus[0].data), [&sps[..], &pps, &idr]);
        assert_eq!(nal_units(&aus[2].data), [&p2[..]]);
        // A second slice of the same picture (first_mb_in_slice != 0) stays in its unit.
        let mut two_slices = aus[1].data.clone();
        two_slices.extend_from_slice(&[0, 0, 1, 0x41, 0x40, 0x01]);
        assert_eq!(access_units(&two_slices).len(), 1);
        assert!(access_units(&[]).is_empty());
    }

    fn page(segments: &[u8], body: &[u8]) -> Vec<u8> {
        let mut p = b"OggS".to_vec();
        p.extend_from_slice(&[0; 22]);
        p.push(segments.len() as u8);
        p.extend_from_slice(segments);
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn ogg_pages_yield_laced_packets() {
        let big = vec![7u8; 300];
        let mut stream = page(&[3], b"abc");
        // 300 bytes: a 255 segment then a 45 one; then a 2-byte packet.
        let mut body = big.clone();
        body.extend_from_slice(b"xy");
        stream.extend(page(&[255, 45, 2], &body));
        let packets = ogg_packets(&stream);
        assert_eq!(packets, [b"abc".to_vec(), big, b"xy".to_vec()]);
        // Truncated input yields what came before.
        assert_eq!(ogg_packets(&stream[..stream.len() - 1]).len(), 2);
        assert!(ogg_packets(b"not ogg").is_empty());
    }
}
