//! Media messages as the hub carries them: FLV/RTMP tag bodies with a timestamp.

use bytes::Bytes;
use srs_rtmp::flv;

/// What a media message carries; the values are the FLV tag / RTMP message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// Audio tag body (RTMP type 8).
    Audio,
    /// Video tag body (RTMP type 9).
    Video,
    /// AMF0 data, e.g. `onMetaData` (RTMP type 18).
    Data,
}

impl MediaKind {
    /// The FLV tag type and RTMP message type id.
    pub fn type_id(self) -> u8 {
        match self {
            MediaKind::Audio => 8,
            MediaKind::Video => 9,
            MediaKind::Data => 18,
        }
    }
}

/// One audio, video or data message; cloning shares the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Kind of payload.
    pub kind: MediaKind,
    /// Timestamp in milliseconds, as the publisher sent it.
    pub timestamp: u32,
    /// The FLV tag body (or AMF0 values for data).
    pub payload: Bytes,
}

impl Media {
    /// Creates a message.
    pub fn new(kind: MediaKind, timestamp: u32, payload: Bytes) -> Self {
        Self {
            kind,
            timestamp,
            payload,
        }
    }

    /// A video keyframe that is not a sequence header: a decoder can start here.
    pub fn is_keyframe(&self) -> bool {
        self.kind == MediaKind::Video
            && flv::is_keyframe(&self.payload)
            && !flv::is_video_sequence_header(&self.payload)
    }

    /// A video sequence header (e.g. AVCDecoderConfigurationRecord).
    pub fn is_video_sequence_header(&self) -> bool {
        self.kind == MediaKind::Video && flv::is_video_sequence_header(&self.payload)
    }

    /// An audio sequence header (e.g. AAC AudioSpecificConfig).
    pub fn is_audio_sequence_header(&self) -> bool {
        self.kind == MediaKind::Audio && flv::is_audio_sequence_header(&self.payload)
    }
}

/// AMF0 encoding of the string `@setDataFrame` (marker, u16 length, bytes).
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";
/// AMF0 encoding of the string `onMetaData`.
const ON_METADATA: &[u8] = b"\x02\x00\x0aonMetaData";

/// Drops a leading `@setDataFrame` value, which publishers use to ask the server to keep the
/// rest (usually `onMetaData`, {...}) as the stream's metadata; players must see only the rest.
pub fn strip_set_data_frame(payload: &Bytes) -> Bytes {
    if payload.starts_with(SET_DATA_FRAME) {
        payload.slice(SET_DATA_FRAME.len()..)
    } else {
        payload.clone()
    }
}

/// Whether AMF0 data starts with the string `onMetaData`.
pub fn is_on_metadata(payload: &[u8]) -> bool {
    payload.starts_with(ON_METADATA)
}

/// SRS's name of the video codec of a video tag body, when known.
pub fn video_codec(payload: &[u8]) -> Option<&'static str> {
    let first = *payload.first()?;
    if first & 0x80 != 0 {
        // Enhanced RTMP: a FourCC follows the header byte.
        return match payload.get(1..5)? {
            b"avc1" => Some("H264"),
            b"hvc1" => Some("H265"),
            b"av01" => Some("AV1"),
            b"vp09" => Some("VP9"),
            _ => None,
        };
    }
    match first & 0x0f {
        7 => Some("H264"),
        12 => Some("H265"),
        13 => Some("AV1"),
        _ => None,
    }
}

/// SRS's name of the audio codec of an audio tag body, when known.
pub fn audio_codec(payload: &[u8]) -> Option<&'static str> {
    match payload.first()? >> 4 {
        10 => Some("AAC"),
        2 => Some("MP3"),
        13 => Some("Opus"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_data_frame_is_stripped() {
        let mut p = SET_DATA_FRAME.to_vec();
        p.extend_from_slice(ON_METADATA);
        p.extend_from_slice(&[0x03, 0x00, 0x00, 0x09]);
        let stripped = strip_set_data_frame(&Bytes::from(p));
        assert!(is_on_metadata(&stripped));
        assert_eq!(stripped.len(), ON_METADATA.len() + 4);
        let plain = Bytes::from_static(b"\x02\x00\x0aonMetaData\x05");
        assert_eq!(strip_set_data_frame(&plain), plain);
    }

    #[test]
    fn codecs() {
        assert_eq!(video_codec(&[0x17, 0x00]), Some("H264"));
        assert_eq!(video_codec(&[0x27, 0x01]), Some("H264"));
        assert_eq!(video_codec(&[0x90, b'h', b'v', b'c', b'1']), Some("H265"));
        assert_eq!(video_codec(&[]), None);
        assert_eq!(audio_codec(&[0xaf, 0x00]), Some("AAC"));
        assert_eq!(audio_codec(&[0x2f]), Some("MP3"));
        assert_eq!(audio_codec(&[0x00]), None);
    }
}
