//! FLV file format (Adobe FLV spec v10.1, Annex E): header and tag writer, a
//! sans-IO tag reader, and codec header inspection for RTMP audio/video
//! payloads (which are FLV tag bodies).

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub use crate::error::FlvError;

/// FLV tag type of audio (Annex E.4.1).
pub const TAG_AUDIO: u8 = 8;
/// FLV tag type of video (Annex E.4.1).
pub const TAG_VIDEO: u8 = 9;
/// FLV tag type of script data (Annex E.4.1).
pub const TAG_SCRIPT: u8 = 18;

/// Size of a tag header in bytes (Annex E.4.1).
const TAG_HEADER_SIZE: usize = 11;
/// Largest DataSize the 24-bit field can hold.
const MAX_TAG_SIZE: u32 = 0xFF_FFFF;
/// Largest header DataOffset we skip (the spec's header is 9 bytes).
const MAX_HEADER_SIZE: u32 = 1024;

/// FLV header with audio and video flags set, followed by PreviousTagSize0
/// (Annex E.2, E.3): "FLV", version 1, flags 0x05, DataOffset 9, 0.
pub const FLV_HEADER_AUDIO_VIDEO: [u8; 13] = [
    b'F', b'L', b'V', 0x01, 0x05, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00,
];

/// The 9-byte FLV header plus the 4-byte PreviousTagSize0, with the audio
/// (0x04) and video (0x01) flags as given (Annex E.2).
pub fn flv_header(has_audio: bool, has_video: bool) -> [u8; 13] {
    let mut header = FLV_HEADER_AUDIO_VIDEO;
    header[4] = (u8::from(has_audio) << 2) | u8::from(has_video);
    header
}

/// Appends one tag: 11-byte header (type, DataSize, 24-bit timestamp in ms
/// plus the extended upper byte, StreamID 0), the payload, and the 4-byte
/// PreviousTagSize (Annex E.3, E.4.1). A payload above 0xFFFFFF bytes
/// cannot be expressed; it is dropped with a warning.
pub fn write_tag(out: &mut BytesMut, tag_type: u8, timestamp: u32, payload: &[u8]) {
    let Some(size) = u32::try_from(payload.len())
        .ok()
        .filter(|&s| s <= MAX_TAG_SIZE)
    else {
        tracing::warn!(len = payload.len(), "dropping oversized FLV tag");
        return;
    };
    out.reserve(TAG_HEADER_SIZE + payload.len() + 4);
    out.put_u8(tag_type & 0x1F);
    out.put_uint(u64::from(size), 3);
    out.put_uint(u64::from(timestamp & 0xFF_FFFF), 3);
    out.put_u8((timestamp >> 24) as u8);
    out.put_uint(0, 3);
    out.put_slice(payload);
    out.put_u32(size + TAG_HEADER_SIZE as u32);
}

/// One FLV tag.
#[derive(Debug, Clone, PartialEq)]
pub struct FlvTag {
    /// Tag type: 8 audio, 9 video, 18 script data.
    pub tag_type: u8,
    /// Timestamp in milliseconds (with the extended byte applied).
    pub timestamp: u32,
    /// Tag body (AUDIODATA, VIDEODATA or SCRIPTDATA).
    pub payload: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Header,
    Tags,
}

/// Sans-IO FLV reader: [`FlvReader::feed`] bytes, then take tags with
/// [`FlvReader::next_tag`]. The header is validated before any tag.
#[derive(Debug)]
pub struct FlvReader {
    buf: BytesMut,
    state: ReadState,
    max_tag_size: u32,
}

impl Default for FlvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvReader {
    /// A reader accepting tags up to 8 MiB.
    pub fn new() -> Self {
        Self::with_max_tag_size(8 * 1024 * 1024)
    }

    /// A reader accepting tags up to `max_tag_size` bytes.
    pub fn with_max_tag_size(max_tag_size: u32) -> Self {
        FlvReader {
            buf: BytesMut::new(),
            state: ReadState::Header,
            max_tag_size,
        }
    }

    /// Appends bytes of the FLV stream.
    pub fn feed(&mut self, input: &[u8]) {
        self.buf.extend_from_slice(input);
    }

    /// The next complete tag, or `Ok(None)` if more bytes are needed.
    ///
    /// Errors: [`FlvError::BadSignature`] / [`FlvError::BadHeaderSize`] for
    /// a bad header, [`FlvError::TagTooLarge`] for a tag over the limit.
    pub fn next_tag(&mut self) -> Result<Option<FlvTag>, FlvError> {
        if self.state == ReadState::Header {
            if self.buf.is_empty() {
                return Ok(None);
            }
            let sig_len = self.buf.len().min(3);
            if self.buf[..sig_len] != b"FLV"[..sig_len] {
                return Err(FlvError::BadSignature);
            }
            let Some(offset) = self.buf.get(5..9) else {
                return Ok(None);
            };
            let offset = u32::from_be_bytes([offset[0], offset[1], offset[2], offset[3]]);
            if !(9..=MAX_HEADER_SIZE).contains(&offset) {
                return Err(FlvError::BadHeaderSize(offset));
            }
            // Header plus PreviousTagSize0.
            let skip = offset as usize + 4;
            if self.buf.len() < skip {
                return Ok(None);
            }
            self.buf.advance(skip);
            self.state = ReadState::Tags;
        }
        let Some(header) = self.buf.get(..TAG_HEADER_SIZE) else {
            return Ok(None);
        };
        let size =
            (u32::from(header[1]) << 16) | (u32::from(header[2]) << 8) | u32::from(header[3]);
        if size > self.max_tag_size {
            return Err(FlvError::TagTooLarge {
                size,
                limit: self.max_tag_size,
            });
        }
        let tag_type = header[0] & 0x1F;
        let timestamp = (u32::from(header[7]) << 24)
            | (u32::from(header[4]) << 16)
            | (u32::from(header[5]) << 8)
            | u32::from(header[6]);
        let total = TAG_HEADER_SIZE + size as usize + 4;
        if self.buf.len() < total {
            return Ok(None);
        }
        self.buf.advance(TAG_HEADER_SIZE);
        let payload = self.buf.split_to(size as usize).freeze();
        // PreviousTagSize is redundant; writers get it wrong often enough
        // that we do not check it.
        self.buf.advance(4);
        Ok(Some(FlvTag {
            tag_type,
            timestamp,
            payload,
        }))
    }
}

/// Whether a video payload is a decoder configuration record: AVC (codec
/// 7) or HEVC (codec 12, the common extension) with AVCPacketType 0
/// (Annex E.4.3.1), or an enhanced-RTMP ex-header with PacketType
/// SequenceStart (0).
pub fn is_video_sequence_header(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    if first & 0x80 != 0 {
        return first & 0x0F == 0;
    }
    matches!(first & 0x0F, 7 | 12) && payload.get(1) == Some(&0)
}

/// Whether an audio payload is an AAC AudioSpecificConfig: SoundFormat 10
/// with AACPacketType 0 (Annex E.4.2.1), or an enhanced-RTMP ex-header
/// (SoundFormat 9) with AudioPacketType SequenceStart (0).
pub fn is_audio_sequence_header(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first >> 4 {
        10 => payload.get(1) == Some(&0),
        9 => first & 0x0F == 0,
        _ => false,
    }
}

/// Whether a video payload is a keyframe: FrameType 1 (Annex E.4.3.1; in
/// enhanced-RTMP ex-headers the frame type is 3 bits).
pub fn is_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let frame_type = if first & 0x80 != 0 {
        (first >> 4) & 0x07
    } else {
        first >> 4
    };
    frame_type == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_flags() {
        assert_eq!(flv_header(true, true), FLV_HEADER_AUDIO_VIDEO);
        assert_eq!(flv_header(true, false)[4], 0x04);
        assert_eq!(flv_header(false, true)[4], 0x01);
    }

    #[test]
    fn writer_reader_roundtrip() {
        let tags = vec![
            FlvTag {
                tag_type: TAG_SCRIPT,
                timestamp: 0,
                payload: Bytes::from_static(&[2, 0, 1, b'x']),
            },
            FlvTag {
                tag_type: TAG_VIDEO,
                timestamp: 40,
                payload: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
            },
            FlvTag {
                tag_type: TAG_AUDIO,
                timestamp: 0x1234_5678,
                payload: Bytes::from(vec![0xAF; 1000]),
            },
            FlvTag {
                tag_type: TAG_AUDIO,
                timestamp: 1,
                payload: Bytes::new(),
            },
        ];
        let mut out = BytesMut::from(&flv_header(true, true)[..]);
        for t in &tags {
            write_tag(&mut out, t.tag_type, t.timestamp, &t.payload);
        }
        assert_eq!(&out[13 + 11 + 4..13 + 11 + 4 + 4], &[0, 0, 0, 15]);
        // Byte at a time.
        let mut reader = FlvReader::new();
        let mut got = vec![];
        for &b in out.iter() {
            reader.feed(&[b]);
            while let Some(tag) = reader.next_tag().unwrap() {
                got.push(tag);
            }
        }
        assert_eq!(got, tags);
    }

    #[test]
    fn reader_errors() {
        let mut reader = FlvReader::new();
        reader.feed(b"FLX");
        assert_eq!(reader.next_tag(), Err(FlvError::BadSignature));
        let mut reader = FlvReader::new();
        reader.feed(b"F");
        assert_eq!(reader.next_tag(), Ok(None));
        let mut reader = FlvReader::new();
        reader.feed(&[b'F', b'L', b'V', 1, 5, 0, 0, 0, 3]);
        assert_eq!(reader.next_tag(), Err(FlvError::BadHeaderSize(3)));
        let mut reader = FlvReader::with_max_tag_size(100);
        reader.feed(&FLV_HEADER_AUDIO_VIDEO);
        reader.feed(&[9, 0, 0, 101, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            reader.next_tag(),
            Err(FlvError::TagTooLarge {
                size: 101,
                limit: 100
            })
        );
    }

    #[test]
    fn codec_inspection() {
        assert!(is_video_sequence_header(&[0x17, 0, 0, 0, 0]));
        assert!(is_video_sequence_header(&[0x1C, 0, 0, 0, 0]));
        assert!(!is_video_sequence_header(&[0x17, 1, 0, 0, 0]));
        assert!(!is_video_sequence_header(&[0x12, 0]));
        // Enhanced RTMP: IsExHeader | FrameType 1 | SequenceStart, FourCC.
        assert!(is_video_sequence_header(&[0x90, b'h', b'v', b'c', b'1']));
        assert!(!is_video_sequence_header(&[0x91, b'h', b'v', b'c', b'1']));
        assert!(!is_video_sequence_header(&[]));
        assert!(is_audio_sequence_header(&[0xAF, 0, 0x12, 0x10]));
        assert!(!is_audio_sequence_header(&[0xAF, 1]));
        assert!(!is_audio_sequence_header(&[0x2F, 0]));
        assert!(is_audio_sequence_header(&[0x90, b'O', b'p', b'u', b's']));
        assert!(!is_audio_sequence_header(&[]));
        assert!(is_keyframe(&[0x17, 1]));
        assert!(!is_keyframe(&[0x27, 1]));
        assert!(is_keyframe(&[0x91, b'a', b'v', b'0', b'1']));
        assert!(!is_keyframe(&[0xA1, b'a', b'v', b'0', b'1']));
        assert!(!is_keyframe(&[]));
    }
}
