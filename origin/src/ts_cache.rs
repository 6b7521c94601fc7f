//! MPEG-TS as SRT publishers send it, sans-IO: their messages cut into whole 188-byte packets
//! ([`Framer`]), and just enough inspection of those packets ([`TsCache`]) to give a late player
//! PAT, PMT and the packets from the last video keyframe on, so it decodes at once.
//!
//! Only the PAT, the PMT and the first packet of each video PES are looked at; everything else
//! passes through untouched.

use bytes::{Bytes, BytesMut};

/// Size of one transport stream packet.
pub const PACKET_SIZE: usize = srs_ts::PACKET_SIZE;

/// Largest chunk handed on: 7 packets, the payload SRT live mode carries in one message.
pub const CHUNK_SIZE: usize = 7 * PACKET_SIZE;

const SYNC: u8 = srs_ts::SYNC_BYTE;

/// Cuts a publisher's byte stream into chunks of whole packets of at most [`CHUNK_SIZE`]
/// bytes, each starting at a sync byte. Well-formed messages (whole packets) are sliced
/// without copying; otherwise bytes before a sync byte are skipped and a packet split across
/// messages is joined (at most one packet is held back).
#[derive(Debug, Default)]
pub struct Framer {
    partial: BytesMut,
    skipped: u64,
}

impl Framer {
    /// The chunks of whole packets that `data` completes.
    pub fn push(&mut self, data: &Bytes) -> Vec<Bytes> {
        if self.partial.is_empty() && is_whole_packets(data) {
            return split_chunks(data.clone());
        }
        let mut buf = std::mem::take(&mut self.partial);
        buf.extend_from_slice(data);
        let mut packets = BytesMut::with_capacity(buf.len());
        let mut at = 0;
        while at < buf.len() {
            if buf[at] != SYNC {
                at += 1;
                self.skipped += 1;
                continue;
            }
            if buf.len() - at < PACKET_SIZE {
                break;
            }
            packets.extend_from_slice(&buf[at..at + PACKET_SIZE]);
            at += PACKET_SIZE;
        }
        self.partial = BytesMut::from(&buf[at..]);
        split_chunks(packets.freeze())
    }

    /// Bytes skipped so far because they were not inside a packet.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

fn is_whole_packets(data: &[u8]) -> bool {
    !data.is_empty()
        && data.len().is_multiple_of(PACKET_SIZE)
        && data.chunks(PACKET_SIZE).all(|p| p[0] == SYNC)
}

fn split_chunks(mut data: Bytes) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(data.len().div_ceil(CHUNK_SIZE));
    while !data.is_empty() {
        out.push(data.split_to(data.len().min(CHUNK_SIZE)));
    }
    out
}

/// What the PAT and PMT say, and the start a late player needs.
#[derive(Debug)]
pub struct TsCache {
    max_bytes: usize,
    pat: Option<Bytes>,
    pmt: Option<Bytes>,
    pmt_pid: Option<u16>,
    video: Option<(u16, u8)>,
    audio_type: Option<u8>,
    /// Chunks from the last video keyframe on; empty until one is seen.
    gop: Vec<Bytes>,
    gop_bytes: usize,
    frames: u64,
}

impl TsCache {
    /// A cache holding at most `max_bytes` of packets after a keyframe; past that it empties and
    /// waits for the next keyframe.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            pat: None,
            pmt: None,
            pmt_pid: None,
            video: None,
            audio_type: None,
            gop: Vec::new(),
            gop_bytes: 0,
            frames: 0,
        }
    }

    /// Looks at one chunk of whole packets (from [`Framer`]) and caches it as needed.
    pub fn push(&mut self, chunk: &Bytes) {
        let mut keyframe_at = None;
        for (i, p) in chunk.chunks_exact(PACKET_SIZE).enumerate() {
            let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
            let unit_start = p[1] & 0x40 != 0;
            if !unit_start {
                continue;
            }
            if pid == 0 {
                if let Some(pmt_pid) = parse_pat(p) {
                    self.pmt_pid = Some(pmt_pid);
                    self.pat = Some(chunk.slice(i * PACKET_SIZE..(i + 1) * PACKET_SIZE));
                }
            } else if Some(pid) == self.pmt_pid {
                if let Some((video, audio)) = parse_pmt(p) {
                    self.video = video;
                    self.audio_type = audio;
                    self.pmt = Some(chunk.slice(i * PACKET_SIZE..(i + 1) * PACKET_SIZE));
                }
            } else if let Some((video_pid, stream_type)) = self.video {
                if pid == video_pid {
                    self.frames += 1;
                    if keyframe_at.is_none() && is_keyframe_start(p, stream_type) {
                        keyframe_at = Some(i);
                    }
                }
            }
        }
        match keyframe_at {
            Some(i) => {
                self.gop.clear();
                let rest = chunk.slice(i * PACKET_SIZE..);
                self.gop_bytes = rest.len();
                self.gop.push(rest);
            }
            None if !self.gop.is_empty() => {
                self.gop_bytes += chunk.len();
                self.gop.push(chunk.clone());
            }
            None => {}
        }
        if self.gop_bytes > self.max_bytes {
            // A GOP this long costs too much memory; late players wait for the next keyframe.
            self.gop.clear();
            self.gop_bytes = 0;
        }
    }

    /// What a new player gets first: PAT and PMT, then the packets from the last keyframe on.
    pub fn start_sequence(&self) -> Vec<Bytes> {
        let mut tables = BytesMut::new();
        for table in [&self.pat, &self.pmt].into_iter().flatten() {
            tables.extend_from_slice(table);
        }
        let tables = (!tables.is_empty()).then(|| tables.freeze());
        tables.into_iter().chain(self.gop.iter().cloned()).collect()
    }

    /// Video PES packets started so far (frames, for the API).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// SRS's name of the video codec the PMT announces, once seen.
    pub fn video_codec(&self) -> Option<&'static str> {
        match self.video?.1 {
            STREAM_H264 => Some("H264"),
            STREAM_H265 => Some("H265"),
            _ => None,
        }
    }

    /// SRS's name of the audio codec the PMT announces, once seen.
    pub fn audio_codec(&self) -> Option<&'static str> {
        match self.audio_type? {
            0x0f => Some("AAC"),
            0x03 | 0x04 => Some("MP3"),
            _ => None,
        }
    }
}

const STREAM_H264: u8 = 0x1b;
const STREAM_H265: u8 = 0x24;

/// The payload of a packet: after the header and any adaptation field.
fn payload(p: &[u8]) -> Option<&[u8]> {
    let control = (p[3] >> 4) & 0x3;
    let start = match control {
        1 => 4,
        3 => 5 + usize::from(p[4]),
        _ => return None,
    };
    p.get(start..)
}

/// The section of a PSI packet that starts one: the bytes from `table_id` to the end of the
/// section (or of the packet, when the section goes on in the next one).
fn section(p: &[u8], table_id: u8) -> Option<&[u8]> {
    let payload = payload(p)?;
    let pointer = usize::from(*payload.first()?);
    let s = payload.get(1 + pointer..)?;
    if *s.first()? != table_id {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*s.get(1)? & 0x0f, *s.get(2)?]));
    // Without the CRC-32 at the end.
    s.get(..(3 + len).saturating_sub(4).min(s.len()))
}

/// The PMT PID of the first program in a PAT packet.
fn parse_pat(p: &[u8]) -> Option<u16> {
    let s = section(p, 0x00)?;
    s.get(8..)?.chunks_exact(4).find_map(|entry| {
        let program = u16::from_be_bytes([entry[0], entry[1]]);
        (program != 0).then(|| u16::from_be_bytes([entry[2] & 0x1f, entry[3]]))
    })
}

/// The video `(PID, stream type)` and the audio stream type a PMT packet lists first.
#[allow(clippy::type_complexity)]
fn parse_pmt(p: &[u8]) -> Option<(Option<(u16, u8)>, Option<u8>)> {
    let s = section(p, 0x02)?;
    let info_len = usize::from(u16::from_be_bytes([*s.get(10)? & 0x0f, *s.get(11)?]));
    let mut rest = s.get(12 + info_len..)?;
    let (mut video, mut audio) = (None, None);
    while rest.len() >= 5 {
        let stream_type = rest[0];
        let pid = u16::from_be_bytes([rest[1] & 0x1f, rest[2]]);
        let es_len = usize::from(u16::from_be_bytes([rest[3] & 0x0f, rest[4]]));
        match stream_type {
            0x01 | 0x02 | STREAM_H264 | STREAM_H265 if video.is_none() => {
                video = Some((pid, stream_type))
            }
            0x03 | 0x04 | 0x0f | 0x11 if audio.is_none() => audio = Some(stream_type),
            _ => {}
        }
        rest = rest.get(5 + es_len..).unwrap_or_default();
    }
    Some((video, audio))
}

/// Whether the first packet of a video PES starts a keyframe: the random access indicator
/// (which ffmpeg and libsrt-based encoders set), or an IDR/SPS (H.264) or IRAP/VPS/SPS (H.265)
/// NAL unit in this packet.
fn is_keyframe_start(p: &[u8], stream_type: u8) -> bool {
    let control = (p[3] >> 4) & 0x3;
    if control == 3 && p[4] > 0 && p[5] & 0x40 != 0 {
        return true;
    }
    let Some(pes) = payload(p) else {
        return false;
    };
    if pes.len() < 9 || pes[..3] != [0, 0, 1] {
        return false;
    }
    let Some(es) = pes.get(9 + usize::from(pes[8])..) else {
        return false;
    };
    es.windows(4)
        .filter(|w| w[..3] == [0, 0, 1])
        .any(|w| match stream_type {
            STREAM_H264 => matches!(w[3] & 0x1f, 5 | 7),
            STREAM_H265 => matches!((w[3] >> 1) & 0x3f, 16..=21 | 32 | 33),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet on `pid` with `payload`, padded with an adaptation field as muxers do.
    fn packet(pid: u16, unit_start: bool, rai: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![SYNC, (pid >> 8) as u8 & 0x1f, pid as u8, 0x30];
        if unit_start {
            p[1] |= 0x40;
        }
        let af_len = PACKET_SIZE - 5 - payload.len();
        p.push(af_len as u8);
        if af_len > 0 {
            p.push(if rai { 0x40 } else { 0 });
            p.resize(5 + af_len, 0xff);
        }
        p.extend_from_slice(payload);
        assert_eq!(p.len(), PACKET_SIZE);
        p
    }

    fn pat() -> Vec<u8> {
        // pointer, table 0, length 13, ts id, version, sections, program 1 -> PMT 0x1000, CRC.
        packet(
            0,
            true,
            false,
            &[
                0, 0x00, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1, 0xf0, 0x00, 1, 2, 3, 4,
            ],
        )
    }

    fn pmt() -> Vec<u8> {
        // PCR PID 0x100, H.264 on 0x100, AAC on 0x101, CRC.
        packet(
            0x1000,
            true,
            false,
            &[
                0, 0x02, 0xb0, 23, 0, 1, 0xc1, 0, 0, 0xe1, 0x00, 0xf0, 0, 0x1b, 0xe1, 0x00, 0xf0,
                0, 0x0f, 0xe1, 0x01, 0xf0, 0, 1, 2, 3, 4,
            ],
        )
    }

    /// The first packet of a video PES holding NAL units of `nal_types`.
    fn video_start(nal_types: &[u8], rai: bool) -> Vec<u8> {
        let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        for t in nal_types {
            pes.extend_from_slice(&[0, 0, 0, 1, *t, 0xaa]);
        }
        packet(0x100, true, rai, &pes)
    }

    fn audio() -> Vec<u8> {
        packet(0x101, true, false, &[0, 0, 1, 0xc0, 0, 0, 0x80, 0x80, 0])
    }

    fn chunk(packets: &[Vec<u8>]) -> Bytes {
        Bytes::from(packets.concat())
    }

    #[test]
    fn framer_slices_whole_messages_and_joins_split_ones() {
        let mut f = Framer::default();
        let seven = chunk(&vec![audio(); 7]);
        assert_eq!(f.push(&seven), vec![seven.clone()]);
        let ten = chunk(&vec![audio(); 10]);
        let got = f.push(&ten);
        assert_eq!(
            got.iter().map(Bytes::len).collect::<Vec<_>>(),
            [CHUNK_SIZE, 3 * PACKET_SIZE]
        );

        // Garbage first, then a packet split over two messages.
        let mut first = vec![0x00, 0x01];
        first.extend_from_slice(&audio());
        first.extend_from_slice(&audio()[..100]);
        let got = f.push(&Bytes::from(first));
        assert_eq!(got, vec![Bytes::from(audio())]);
        assert_eq!(f.skipped(), 2);
        let got = f.push(&Bytes::copy_from_slice(&audio()[100..]));
        assert_eq!(got, vec![Bytes::from(audio())]);
        assert!(f.push(&Bytes::new()).is_empty());
    }

    #[test]
    fn late_player_starts_with_tables_and_the_last_keyframe() {
        let mut c = TsCache::new(1 << 20);
        c.push(&chunk(&[pat(), pmt(), video_start(&[9, 1], false)]));
        assert_eq!(c.video_codec(), Some("H264"));
        assert_eq!(c.audio_codec(), Some("AAC"));
        assert_eq!(
            c.start_sequence(),
            vec![chunk(&[pat(), pmt()])],
            "no keyframe yet: tables only"
        );

        // A keyframe in the middle of a chunk: the cache starts at its packet.
        c.push(&chunk(&[
            audio(),
            video_start(&[9, 7, 8, 5], false),
            audio(),
        ]));
        c.push(&chunk(&[video_start(&[9, 1], false)]));
        assert_eq!(
            c.start_sequence(),
            vec![
                chunk(&[pat(), pmt()]),
                chunk(&[video_start(&[9, 7, 8, 5], false), audio()]),
                chunk(&[video_start(&[9, 1], false)]),
            ]
        );
        assert_eq!(c.frames(), 3);

        // The random access indicator alone marks a keyframe too.
        c.push(&chunk(&[video_start(&[9], true)]));
        assert_eq!(c.start_sequence().len(), 2);
    }

    #[test]
    fn oversized_gop_is_dropped_until_the_next_keyframe() {
        let mut c = TsCache::new(3 * PACKET_SIZE);
        c.push(&chunk(&[pat(), pmt()]));
        c.push(&chunk(&[video_start(&[5], false), audio()]));
        assert_eq!(c.start_sequence().len(), 2);
        c.push(&chunk(&[audio(), audio()]));
        assert_eq!(c.start_sequence().len(), 1, "over the limit: tables only");
        c.push(&chunk(&[audio()]));
        assert_eq!(c.start_sequence().len(), 1, "still waiting");
        c.push(&chunk(&[video_start(&[5], false)]));
        assert_eq!(c.start_sequence().len(), 2);
    }

    #[test]
    fn streams_without_tables_or_video_pass_through() {
        let mut c = TsCache::new(1 << 20);
        c.push(&chunk(&[video_start(&[5], true)]));
        assert!(c.start_sequence().is_empty(), "no PAT/PMT: nothing known");
        assert_eq!(c.video_codec(), None);
        // Truncated or foreign tables do not panic.
        c.push(&chunk(&[packet(0, true, false, &[0, 0x00, 0xb0])]));
        c.push(&chunk(&[packet(0, true, false, &[200])]));
        assert!(c.start_sequence().is_empty());
    }
}
