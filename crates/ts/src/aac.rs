//! AAC from the raw frames FLV and RTMP carry (configuration in a separate AudioSpecificConfig)
//! to ADTS frames, each with its own header, which MPEG-TS carries (stream_type 0x0f).

use crate::CodecError;

/// Size of an ADTS header without CRC (ISO/IEC 13818-7 6.2.1).
pub const ADTS_HEADER_SIZE: usize = 7;
/// Largest ADTS frame: aac_frame_length is 13 bits (ISO/IEC 13818-7 6.2.2).
const MAX_FRAME: usize = (1 << 13) - 1;

/// The parts of an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) an ADTS header needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type of the core coder: 1 Main, 2 LC, 3 SSR, 4 LTP.
    pub object_type: u8,
    /// samplingFrequencyIndex of the core coder (ISO/IEC 14496-3 Table 1.18).
    pub sampling_index: u8,
    /// channelConfiguration (ISO/IEC 14496-3 Table 1.19).
    pub channels: u8,
}

impl AacConfig {
    /// Parses an AudioSpecificConfig, the body of an FLV AAC sequence header after its 2-byte
    /// tag header. HE-AAC (SBR, PS) configurations give their AAC core, which is what ADTS
    /// signals (implicit SBR).
    ///
    /// Errors: [`CodecError::Truncated`] for fewer than 2 bytes (4 for SBR/PS);
    /// [`CodecError::Unsupported`] for object types ADTS cannot signal, an explicit sampling
    /// frequency, or a channel configuration carried in a program config element (0).
    pub fn parse(asc: &[u8]) -> Result<Self, CodecError> {
        let mut bits = Bits::new(asc);
        let mut object_type = bits.read(5)?;
        let sampling_index = bits.read(4)?;
        check_sampling_index(sampling_index)?;
        let channels = bits.read(4)?;
        if object_type == 5 || object_type == 29 {
            // SBR / PS: the output sampling index, then the core's object type. ADTS signals the
            // core's rate and type; decoders find the SBR data in the frames.
            let extension_index = bits.read(4)?;
            check_sampling_index(extension_index)?;
            object_type = bits.read(5)?;
        }
        if !(1..=4).contains(&object_type) {
            return Err(CodecError::Unsupported {
                what: "AAC audio object type",
                value: u32::from(object_type),
            });
        }
        if channels == 0 || channels > 7 {
            return Err(CodecError::Unsupported {
                what: "AAC channel configuration",
                value: u32::from(channels),
            });
        }
        Ok(Self {
            object_type,
            sampling_index,
            channels,
        })
    }

    /// Sampling rate in Hz of the core coder (ISO/IEC 14496-3 Table 1.18).
    pub fn sample_rate(&self) -> u32 {
        const RATES: [u32; 13] = [
            96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
        ];
        RATES[usize::from(self.sampling_index).min(RATES.len() - 1)]
    }

    /// The 7-byte ADTS header (no CRC) of a frame whose raw payload is `payload_len` bytes
    /// (ISO/IEC 13818-7 6.2.1, 6.2.2).
    ///
    /// Errors: [`CodecError::Unsupported`] when header plus payload exceed the 13-bit
    /// aac_frame_length.
    pub fn adts_header(&self, payload_len: usize) -> Result<[u8; ADTS_HEADER_SIZE], CodecError> {
        let len = ADTS_HEADER_SIZE + payload_len;
        if len > MAX_FRAME {
            return Err(CodecError::Unsupported {
                what: "AAC frame length",
                value: u32::try_from(len).unwrap_or(u32::MAX),
            });
        }
        let profile = self.object_type - 1;
        Ok([
            0xff,
            // syncword end, ID 0 (MPEG-4), layer 00, protection_absent 1.
            0xf1,
            profile << 6 | self.sampling_index << 2 | (self.channels >> 2) & 0x01,
            (self.channels & 0x03) << 6 | (len >> 11) as u8 & 0x03,
            (len >> 3) as u8,
            // aac_frame_length low bits, adts_buffer_fullness 0x7ff (variable rate).
            (len as u8 & 0x07) << 5 | 0x1f,
            // buffer fullness low bits, one raw data block.
            0xfc,
        ])
    }
}

fn check_sampling_index(index: u8) -> Result<(), CodecError> {
    if index > 12 {
        return Err(CodecError::Unsupported {
            what: "AAC sampling frequency index",
            value: u32::from(index),
        });
    }
    Ok(())
}

/// A big-endian bit reader.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn read(&mut self, n: usize) -> Result<u8, CodecError> {
        let mut v = 0u8;
        for _ in 0..n {
            let byte = self
                .data
                .get(self.pos / 8)
                .ok_or(CodecError::Truncated("AudioSpecificConfig"))?;
            v = v << 1 | (byte >> (7 - self.pos % 8)) & 1;
            self.pos += 1;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lc_and_he_aac() {
        // LC, 44.1 kHz, stereo: what ffmpeg's aac encoder sends.
        let lc = AacConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            lc,
            AacConfig {
                object_type: 2,
                sampling_index: 4,
                channels: 2
            }
        );
        assert_eq!(lc.sample_rate(), 44100);
        // HE-AAC: SBR at 24 kHz core, 48 kHz extension, core LC.
        let he = AacConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(he.object_type, 2);
        assert_eq!(he.sampling_index, 6);
        assert_eq!(he.channels, 2);
        assert!(AacConfig::parse(&[0x12]).is_err());
        assert!(
            AacConfig::parse(&[0xf8, 0, 0]).is_err(),
            "escape object type"
        );
        assert!(
            AacConfig::parse(&[0x17, 0x80]).is_err(),
            "explicit frequency"
        );
    }

    #[test]
    fn adts_header_fields() {
        let c = AacConfig::parse(&[0x12, 0x10]).unwrap();
        let h = c.adts_header(100).unwrap();
        assert_eq!(h[0], 0xff);
        assert_eq!(h[1] & 0xf6, 0xf0, "syncword, MPEG-4, layer 0");
        assert_eq!(h[2] >> 6, 1, "profile LC");
        assert_eq!((h[2] >> 2) & 0x0f, 4, "44.1 kHz");
        assert_eq!((h[2] & 1) << 2 | h[3] >> 6, 2, "stereo");
        let len = usize::from(h[3] & 3) << 11 | usize::from(h[4]) << 3 | usize::from(h[5] >> 5);
        assert_eq!(len, 107);
        assert!(c.adts_header(MAX_FRAME).is_err());
    }
}
