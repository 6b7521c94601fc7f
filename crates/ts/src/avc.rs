//! H.264 from the AVCC form (length-prefixed NAL units, parameter sets in a separate
//! configuration record) that FLV and RTMP carry, to the Annex B byte stream (start codes,
//! parameter sets in-band) that MPEG-TS carries (ISO/IEC 13818-1 2.14).

use crate::CodecError;

/// Annex B start code (ITU-T H.264 B.1).
const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// An access unit delimiter NAL (type 9) with primary_pic_type 7 (any slice type), which
/// ISO/IEC 13818-1 2.14.1 asks to begin every H.264 access unit in a transport stream.
const AUD: [u8; 2] = [0x09, 0xf0];
/// nal_unit_type values (ITU-T H.264 Table 7-1).
const NAL_SPS: u8 = 7;
const NAL_AUD: u8 = 9;

/// The parts of an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) a muxer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// Bytes of each NAL unit length prefix in frames (1, 2 or 4).
    pub length_size: usize,
    /// Sequence parameter set NAL units.
    pub sps: Vec<Vec<u8>>,
    /// Picture parameter set NAL units.
    pub pps: Vec<Vec<u8>>,
}

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1.2), the body of an FLV
    /// AVC sequence header after its 5-byte tag header.
    ///
    /// Errors: [`CodecError::Truncated`] when the record is cut short,
    /// [`CodecError::Unsupported`] for a configurationVersion other than 1 or a length size of 3.
    pub fn parse(record: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader(record);
        let version = r.u8("AVC configuration")?;
        if version != 1 {
            return Err(CodecError::Unsupported {
                what: "AVC configurationVersion",
                value: u32::from(version),
            });
        }
        // Profile, compatibility and level are not needed: the SPS carries them too.
        r.take(3, "AVC configuration")?;
        let length_size = usize::from(r.u8("AVC configuration")? & 0x03) + 1;
        if length_size == 3 {
            return Err(CodecError::Unsupported {
                what: "AVC NAL length size",
                value: 3,
            });
        }
        let sps_count = r.u8("AVC configuration")? & 0x1f;
        let sps = (0..sps_count)
            .map(|_| r.parameter_set())
            .collect::<Result<Vec<_>, _>>()?;
        let pps_count = r.u8("AVC configuration")?;
        let pps = (0..pps_count)
            .map(|_| r.parameter_set())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            length_size,
            sps,
            pps,
        })
    }
}

/// Appends one access unit in Annex B form: an access unit delimiter, then, for a keyframe
/// without in-band SPS, the configuration's SPS and PPS, then the frame's NAL units (its own
/// delimiters dropped). `frame` is the AVCC data after the FLV tag header.
///
/// Errors: [`CodecError::Truncated`] when a length prefix runs past the frame; `out` is then
/// left as it was.
pub fn to_annex_b(
    config: &AvcConfig,
    frame: &[u8],
    keyframe: bool,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let nals = nal_units(frame, config.length_size)?;
    out.reserve(frame.len() + 64);
    out.extend_from_slice(&START_CODE);
    out.extend_from_slice(&AUD);
    let has_sps = nals.iter().any(|n| n[0] & 0x1f == NAL_SPS);
    if keyframe && !has_sps {
        for ps in config.sps.iter().chain(&config.pps) {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(ps);
        }
    }
    for nal in nals.iter().filter(|n| n[0] & 0x1f != NAL_AUD) {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
    }
    Ok(())
}

/// The non-empty NAL units of an AVCC frame.
fn nal_units(frame: &[u8], length_size: usize) -> Result<Vec<&[u8]>, CodecError> {
    let mut r = Reader(frame);
    let mut nals = Vec::new();
    while !r.0.is_empty() {
        let prefix = r.take(length_size, "NAL unit length")?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let nal = r.take(len, "NAL unit")?;
        if !nal.is_empty() {
            nals.push(nal);
        }
    }
    Ok(nals)
}

/// A cursor over bytes that fails instead of reading past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    /// A parameter set: a 16-bit length, then the NAL unit.
    fn parameter_set(&mut self) -> Result<Vec<u8>, CodecError> {
        let len = self.take(2, "AVC parameter set length")?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let nal = self.take(len, "AVC parameter set")?;
        if nal.is_empty() {
            return Err(CodecError::Truncated("AVC parameter set"));
        }
        Ok(nal.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with 4-byte lengths, SPS `67 aa` and PPS `68 bb`.
    const RECORD: &[u8] = &[
        1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 2, 0x67, 0xaa, 1, 0, 2, 0x68, 0xbb,
    ];

    #[test]
    fn parses_the_record() {
        let c = AvcConfig::parse(RECORD).unwrap();
        assert_eq!(c.length_size, 4);
        assert_eq!(c.sps, vec![vec![0x67, 0xaa]]);
        assert_eq!(c.pps, vec![vec![0x68, 0xbb]]);
        for cut in 0..RECORD.len() {
            assert!(AvcConfig::parse(&RECORD[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            AvcConfig::parse(&[2, 0, 0, 0, 0xff, 0xe0, 0]),
            Err(CodecError::Unsupported { .. })
        ));
    }

    #[test]
    fn keyframe_gets_parameter_sets_and_delimiter() {
        let c = AvcConfig::parse(RECORD).unwrap();
        let frame = [0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 3, 0x65, 1, 2, 0, 0, 0, 0];
        let mut out = Vec::new();
        to_annex_b(&c, &frame, true, &mut out).unwrap();
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0xaa, 0, 0, 0, 1, 0x68, 0xbb, 0, 0, 0, 1,
                0x65, 1, 2
            ]
        );
        out.clear();
        to_annex_b(&c, &[0, 0, 0, 2, 0x41, 9], false, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x41, 9]);
    }

    #[test]
    fn in_band_sps_is_not_repeated_and_bad_lengths_fail() {
        let c = AvcConfig::parse(RECORD).unwrap();
        let frame = [0, 0, 0, 1, 0x67, 0, 0, 0, 1, 0x65];
        let mut out = Vec::new();
        to_annex_b(&c, &frame, true, &mut out).unwrap();
        assert_eq!(
            out,
            [0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x67, 0, 0, 0, 1, 0x65]
        );
        let mut out = vec![7];
        assert_eq!(
            to_annex_b(&c, &[0, 0, 0, 9, 0x65], true, &mut out),
            Err(CodecError::Truncated("NAL unit"))
        );
        assert_eq!(out, [7], "nothing appended on error");
    }
}
