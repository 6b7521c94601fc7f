//! The pre-encoded FLV file publishers replay, held in memory.

use std::path::Path;

use anyhow::{bail, Context};
use bytes::Bytes;
use srs_rtmp::flv::{self, FlvReader, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};

/// One FLV tag ready to be sent as an RTMP message.
#[derive(Debug, Clone)]
pub struct MediaTag {
    /// RTMP message type: 8 audio, 9 video, 18 data.
    pub type_id: u8,
    /// Timestamp in ms relative to the file's first tag.
    pub ts: u32,
    /// Message body (for data, with `@setDataFrame` in front as encoders send it).
    pub payload: Bytes,
    /// Metadata and sequence headers: sent on the first lap only, as a live encoder does.
    pub first_lap_only: bool,
}

/// A whole FLV file.
#[derive(Debug)]
pub struct Media {
    /// Tags in file order.
    pub tags: Vec<MediaTag>,
    /// Length of one lap in ms: the next lap's timestamps continue from here.
    pub lap_ms: u32,
    /// Average payload bit rate of one lap.
    pub bits_per_second: f64,
}

/// AMF0 string `@setDataFrame`, which publishers put before `onMetaData`.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

impl Media {
    /// Reads and indexes an FLV file.
    ///
    /// Errors: unreadable file, malformed FLV, or a file without video.
    pub fn load(path: &Path) -> anyhow::Result<Media> {
        let bytes = std::fs::read(path).with_context(|| {
            format!("cannot read {} (`make bench` prepares it)", path.display())
        })?;
        let mut reader = FlvReader::new();
        reader.feed(&bytes);
        let mut raw = Vec::new();
        while let Some(tag) = reader
            .next_tag()
            .with_context(|| format!("{}: bad FLV", path.display()))?
        {
            raw.push(tag);
        }
        let first_ts = raw.first().map_or(0, |t| t.timestamp);
        let mut tags = Vec::with_capacity(raw.len());
        for tag in raw {
            let (first_lap_only, payload) = match tag.tag_type {
                TAG_SCRIPT => {
                    let mut p = SET_DATA_FRAME.to_vec();
                    p.extend_from_slice(&tag.payload);
                    (true, Bytes::from(p))
                }
                TAG_VIDEO => (flv::is_video_sequence_header(&tag.payload), tag.payload),
                TAG_AUDIO => (flv::is_audio_sequence_header(&tag.payload), tag.payload),
                _ => continue,
            };
            tags.push(MediaTag {
                type_id: tag.tag_type,
                ts: tag.timestamp.wrapping_sub(first_ts),
                payload,
                first_lap_only,
            });
        }
        let video: Vec<u32> = tags
            .iter()
            .filter(|t| t.type_id == TAG_VIDEO && !t.first_lap_only)
            .map(|t| t.ts)
            .collect();
        let (Some(&first), Some(&last)) = (video.first(), video.last()) else {
            bail!("{}: no video frames", path.display());
        };
        // One frame interval after the last frame, so laps join at the frame rate.
        let frame_ms = (last - first) / (video.len() as u32 - 1).max(1);
        let lap_ms = tags.iter().map(|t| t.ts).max().unwrap_or(0).max(last) + frame_ms.max(1);
        let lap_bytes: usize = tags
            .iter()
            .filter(|t| !t.first_lap_only)
            .map(|t| t.payload.len())
            .sum();
        Ok(Media {
            tags,
            lap_ms,
            bits_per_second: lap_bytes as f64 * 8.0 * 1000.0 / f64::from(lap_ms),
        })
    }
}
