//! The transport stream layer (ISO/IEC 13818-1): one program with at most one video and one audio
//! elementary stream, PAT and PMT sections, PES packets cut into 188-byte TS packets.
//!
//! PIDs follow SRS: PMT 0x1001, video 0x100, audio 0x101. The PCR travels on the video PID, or on
//! the audio PID for audio-only programs, in the first packet of every PES.

/// Size of every transport stream packet (ISO/IEC 13818-1 2.4.3.2).
pub const PACKET_SIZE: usize = 188;
/// First byte of every transport stream packet (ISO/IEC 13818-1 2.4.3.3).
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the program association table (ISO/IEC 13818-1 Table 2-3).
pub const PAT_PID: u16 = 0x0000;
/// PID of the program map table, as SRS uses.
pub const PMT_PID: u16 = 0x1001;
/// PID of the video elementary stream, as SRS uses.
pub const VIDEO_PID: u16 = 0x0100;
/// PID of the audio elementary stream, as SRS uses.
pub const AUDIO_PID: u16 = 0x0101;
/// PTS, DTS and PCR bases are 33-bit counters of a 90 kHz clock (ISO/IEC 13818-1 2.4.3.7).
pub const TIMESTAMP_MASK: u64 = (1 << 33) - 1;

const PROGRAM_NUMBER: u16 = 1;
const TRANSPORT_STREAM_ID: u16 = 1;
/// The PCR_PID of a program without a PCR (ISO/IEC 13818-1 2.4.4.9).
const NO_PCR_PID: u16 = 0x1fff;
const HEADER_SIZE: usize = 4;
const PAYLOAD_SIZE: usize = PACKET_SIZE - HEADER_SIZE;

/// The codec of an elementary stream, as the PMT names it (ISO/IEC 13818-1 Table 2-34).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// H.264 / AVC video in Annex B byte-stream form (stream_type 0x1b).
    H264,
    /// AAC audio in ADTS frames (stream_type 0x0f).
    Aac,
}

impl StreamType {
    /// The PMT `stream_type` value.
    pub fn code(self) -> u8 {
        match self {
            StreamType::H264 => 0x1b,
            StreamType::Aac => 0x0f,
        }
    }
}

/// Which elementary stream a PES belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// The video stream, PID [`VIDEO_PID`], PES stream_id 0xe0.
    Video,
    /// The audio stream, PID [`AUDIO_PID`], PES stream_id 0xc0.
    Audio,
}

impl Track {
    /// The track's PID.
    pub fn pid(self) -> u16 {
        match self {
            Track::Video => VIDEO_PID,
            Track::Audio => AUDIO_PID,
        }
    }

    /// The PES `stream_id`: the first video / audio stream number (ISO/IEC 13818-1 Table 2-22).
    fn stream_id(self) -> u8 {
        match self {
            Track::Video => 0xe0,
            Track::Audio => 0xc0,
        }
    }
}

/// One access unit to write as a PES packet. Timestamps are in 90 kHz units and are wrapped to
/// 33 bits when written.
#[derive(Debug, Clone, Copy)]
pub struct Pes<'a> {
    /// Presentation time stamp.
    pub pts: u64,
    /// Decoding time stamp; equal to `pts` when the stream has no reordering.
    pub dts: u64,
    /// A decoder can start here (an IDR picture): sets the adaptation field's
    /// random_access_indicator (ISO/IEC 13818-1 2.4.3.5).
    pub random_access: bool,
    /// The elementary stream bytes (Annex B H.264, ADTS AAC).
    pub data: &'a [u8],
}

/// A transport stream writer for one program. It keeps the continuity counters and the PMT
/// version, so one `Muxer` must write one continuous stream.
#[derive(Debug, Clone, Default)]
pub struct Muxer {
    video: Option<StreamType>,
    audio: Option<StreamType>,
    version: u8,
    pat_cc: u8,
    pmt_cc: u8,
    video_cc: u8,
    audio_cc: u8,
}

impl Muxer {
    /// A muxer with no elementary streams yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The video and audio stream types the PMT lists.
    pub fn streams(&self) -> (Option<StreamType>, Option<StreamType>) {
        (self.video, self.audio)
    }

    /// Sets the elementary streams of the program. Returns whether they changed, in which case
    /// the PMT version is bumped and the caller should write the tables again before more PES.
    pub fn set_streams(&mut self, video: Option<StreamType>, audio: Option<StreamType>) -> bool {
        if (video, audio) == (self.video, self.audio) {
            return false;
        }
        self.video = video;
        self.audio = audio;
        // version_number is 5 bits (ISO/IEC 13818-1 2.4.4.9).
        self.version = (self.version + 1) & 0x1f;
        true
    }

    /// The PID that carries the PCR: video when there is video, else audio.
    pub fn pcr_pid(&self) -> u16 {
        if self.video.is_some() {
            VIDEO_PID
        } else if self.audio.is_some() {
            AUDIO_PID
        } else {
            NO_PCR_PID
        }
    }

    /// Appends one PAT packet and one PMT packet (ISO/IEC 13818-1 2.4.4.3, 2.4.4.8).
    pub fn write_tables(&mut self, out: &mut Vec<u8>) {
        let pat = section(
            0x00,
            TRANSPORT_STREAM_ID,
            self.version,
            &[
                (PROGRAM_NUMBER >> 8) as u8,
                PROGRAM_NUMBER as u8,
                0xe0 | (PMT_PID >> 8) as u8,
                PMT_PID as u8,
            ],
        );
        let cc = next(&mut self.pat_cc);
        write_section_packet(out, PAT_PID, cc, &pat);

        let pcr_pid = self.pcr_pid();
        // PCR_PID, then program_info_length 0 (each with its reserved bits set).
        let mut body = vec![0xe0 | (pcr_pid >> 8) as u8, pcr_pid as u8, 0xf0, 0x00];
        let streams = [(self.video, VIDEO_PID), (self.audio, AUDIO_PID)];
        for (stream_type, pid) in streams {
            if let Some(t) = stream_type {
                // stream_type, elementary_PID, ES_info_length 0.
                body.extend_from_slice(&[t.code(), 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0]);
            }
        }
        let pmt = section(0x02, PROGRAM_NUMBER, self.version, &body);
        let cc = next(&mut self.pmt_cc);
        write_section_packet(out, PMT_PID, cc, &pmt);
    }

    /// Appends one PES packet (ISO/IEC 13818-1 2.4.3.6) cut into TS packets. The first packet
    /// carries the PCR (set to the DTS) when `track` is the PCR PID, and the random access flag
    /// when asked; the last one is padded with adaptation field stuffing.
    pub fn write_pes(&mut self, out: &mut Vec<u8>, track: Track, pes: &Pes<'_>) {
        let pid = track.pid();
        let with_pcr = pid == self.pcr_pid();
        let (header, header_len) = pes_header(track, pes);
        let mut src = Chain {
            head: &header[..header_len],
            tail: pes.data,
        };
        let mut first = true;
        while first || src.remaining() > 0 {
            let cc = match track {
                Track::Video => next(&mut self.video_cc),
                Track::Audio => next(&mut self.audio_cc),
            };
            let pcr = first && with_pcr;
            let random_access = first && pes.random_access;
            // Adaptation field bytes after its length byte: flags, then the PCR.
            let fields_len = match (pcr, random_access) {
                (true, _) => 7,
                (false, true) => 1,
                (false, false) => 0,
            };
            let af_len = if fields_len > 0 { 1 + fields_len } else { 0 };
            let payload_len = src.remaining().min(PAYLOAD_SIZE - af_len);
            let stuffing = PAYLOAD_SIZE - af_len - payload_len;

            let has_af = af_len + stuffing > 0;
            out.push(SYNC_BYTE);
            out.push(if first { 0x40 } else { 0 } | (pid >> 8) as u8 & 0x1f);
            out.push(pid as u8);
            out.push(if has_af { 0x30 } else { 0x10 } | cc);
            if fields_len > 0 {
                out.push((fields_len + stuffing) as u8);
                out.push(if pcr { 0x10 } else { 0 } | if random_access { 0x40 } else { 0 });
                if pcr {
                    out.extend_from_slice(&pcr_bytes(pes.dts));
                }
                out.resize(out.len() + stuffing, 0xff);
            } else if stuffing == 1 {
                // An adaptation field of length 0 is exactly one byte of stuffing.
                out.push(0);
            } else if stuffing > 1 {
                out.push((stuffing - 1) as u8);
                out.push(0);
                out.resize(out.len() + stuffing - 2, 0xff);
            }
            src.copy_to(out, payload_len);
            first = false;
        }
    }
}

/// Post-increments a 4-bit continuity counter (ISO/IEC 13818-1 2.4.3.3).
fn next(cc: &mut u8) -> u8 {
    let now = *cc;
    *cc = (now + 1) & 0x0f;
    now
}

/// The PES header up to the end of the PTS/DTS fields (ISO/IEC 13818-1 2.4.3.6, 2.4.3.7).
fn pes_header(track: Track, pes: &Pes<'_>) -> ([u8; 19], usize) {
    let mut h = [0u8; 19];
    let has_dts = pes.dts & TIMESTAMP_MASK != pes.pts & TIMESTAMP_MASK;
    let header_data_len: usize = if has_dts { 10 } else { 5 };
    h[..4].copy_from_slice(&[0, 0, 1, track.stream_id()]);
    // PES_packet_length counts the bytes after it; 0 ("unbounded") is allowed only for video,
    // and is what video frames larger than 64 KiB need.
    let len = 3 + header_data_len + pes.data.len();
    let len = if track == Track::Video || len > 0xffff {
        0
    } else {
        len
    };
    h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    // '10' marker bits, no scrambling, priority, alignment, copyright or original flags.
    h[6] = 0x80;
    h[7] = if has_dts { 0xc0 } else { 0x80 };
    h[8] = header_data_len as u8;
    if has_dts {
        h[9..14].copy_from_slice(&timestamp_bytes(0b0011, pes.pts));
        h[14..19].copy_from_slice(&timestamp_bytes(0b0001, pes.dts));
    } else {
        h[9..14].copy_from_slice(&timestamp_bytes(0b0010, pes.pts));
    }
    (h, 9 + header_data_len)
}

/// A 33-bit PTS or DTS with its 4-bit prefix and marker bits (ISO/IEC 13818-1 2.4.3.7).
fn timestamp_bytes(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & TIMESTAMP_MASK;
    [
        prefix << 4 | ((ts >> 30) as u8 & 0x07) << 1 | 1,
        (ts >> 22) as u8,
        ((ts >> 15) as u8 & 0x7f) << 1 | 1,
        (ts >> 7) as u8,
        (ts as u8 & 0x7f) << 1 | 1,
    ]
}

/// A PCR with the given 90 kHz base and a zero 27 MHz extension (ISO/IEC 13818-1 2.4.3.5).
fn pcr_bytes(base: u64) -> [u8; 6] {
    let base = base & TIMESTAMP_MASK;
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        // Low base bit, 6 reserved bits set, extension high bit 0.
        (base as u8 & 1) << 7 | 0x7e,
        0,
    ]
}

/// A long-form PSI section with its CRC (ISO/IEC 13818-1 2.4.4.10): table_id, the 16-bit id
/// (transport_stream_id or program_number), version, one section, then `body`.
fn section(table_id: u8, id: u16, version: u8, body: &[u8]) -> Vec<u8> {
    // Bytes after section_length: 5 header bytes, the body, the CRC.
    let section_length = 5 + body.len() + 4;
    let mut s = Vec::with_capacity(3 + section_length);
    s.push(table_id);
    // section_syntax_indicator 1, '0', reserved '11', section_length (12 bits).
    s.push(0xb0 | (section_length >> 8) as u8 & 0x0f);
    s.push(section_length as u8);
    s.extend_from_slice(&id.to_be_bytes());
    // reserved '11', version_number, current_next_indicator 1.
    s.push(0xc0 | (version & 0x1f) << 1 | 1);
    // section_number, last_section_number.
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// Appends a TS packet carrying one whole section after a zero pointer_field, padded with 0xff
/// (ISO/IEC 13818-1 2.4.4.2).
fn write_section_packet(out: &mut Vec<u8>, pid: u16, cc: u8, section: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[
        SYNC_BYTE,
        0x40 | (pid >> 8) as u8 & 0x1f,
        pid as u8,
        0x10 | cc,
        0,
    ]);
    out.extend_from_slice(section);
    out.resize(start + PACKET_SIZE, 0xff);
}

/// CRC-32/MPEG-2 of PSI sections (ISO/IEC 13818-1 Annex A): polynomial 0x04c11db7, initial value
/// 0xffffffff, no reflection, no final XOR.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Two byte slices read as one: the PES header, then the elementary stream data.
struct Chain<'a> {
    head: &'a [u8],
    tail: &'a [u8],
}

impl Chain<'_> {
    fn remaining(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    fn copy_to(&mut self, out: &mut Vec<u8>, mut n: usize) {
        let from_head = n.min(self.head.len());
        out.extend_from_slice(&self.head[..from_head]);
        self.head = &self.head[from_head..];
        n -= from_head;
        out.extend_from_slice(&self.tail[..n]);
        self.tail = &self.tail[n..];
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One parsed TS packet: the fields the tests check.
    #[derive(Debug)]
    pub(crate) struct Packet<'a> {
        pub pid: u16,
        pub start: bool,
        pub cc: u8,
        pub adaptation: Option<&'a [u8]>,
        pub payload: &'a [u8],
    }

    /// Splits a stream into packets, checking size, sync byte and header consistency.
    pub(crate) fn packets(ts: &[u8]) -> Vec<Packet<'_>> {
        assert_eq!(ts.len() % PACKET_SIZE, 0, "whole packets");
        ts.chunks(PACKET_SIZE)
            .map(|p| {
                assert_eq!(p[0], SYNC_BYTE);
                assert_eq!(p[1] & 0x80, 0, "no transport error");
                let control = (p[3] >> 4) & 0x03;
                assert!(control == 1 || control == 3, "payload present");
                let (adaptation, payload) = if control == 3 {
                    let len = p[4] as usize;
                    assert!(len <= 183);
                    (Some(&p[5..5 + len]), &p[5 + len..])
                } else {
                    (None, &p[4..])
                };
                Packet {
                    pid: u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]),
                    start: p[1] & 0x40 != 0,
                    cc: p[3] & 0x0f,
                    adaptation,
                    payload,
                }
            })
            .collect()
    }

    /// Checks that each PID's continuity counter goes up by one per packet.
    pub(crate) fn assert_continuity(packets: &[Packet<'_>]) {
        let mut last = std::collections::HashMap::new();
        for p in packets {
            if let Some(prev) = last.insert(p.pid, p.cc) {
                assert_eq!(p.cc, (prev + 1) & 0x0f, "pid {:#x}", p.pid);
            }
        }
    }

    /// The section in a PSI packet, with its CRC checked.
    pub(crate) fn section_of<'a>(p: &Packet<'a>) -> &'a [u8] {
        assert!(p.start);
        assert_eq!(p.payload[0], 0, "pointer_field");
        let s = &p.payload[1..];
        let len = (usize::from(s[1] & 0x0f) << 8) | usize::from(s[2]);
        let s = &s[..3 + len];
        assert_eq!(crc32_mpeg2(s), 0, "CRC over a section with its CRC is 0");
        s
    }

    fn read_timestamp(b: &[u8]) -> u64 {
        (u64::from(b[0] >> 1) & 0x07) << 30
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1)
    }

    #[test]
    fn crc32_mpeg2_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn tables_list_the_streams() {
        let mut m = Muxer::new();
        assert!(m.set_streams(Some(StreamType::H264), Some(StreamType::Aac)));
        assert!(!m.set_streams(Some(StreamType::H264), Some(StreamType::Aac)));
        let mut out = Vec::new();
        m.write_tables(&mut out);
        let ps = packets(&out);
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].pid, PAT_PID);
        let pat = section_of(&ps[0]);
        assert_eq!(pat[0], 0x00);
        assert_eq!(
            &pat[8..12],
            &[0, 1, 0xf0, 0x01],
            "program 1 on PMT PID 0x1001"
        );
        assert_eq!(ps[1].pid, PMT_PID);
        let pmt = section_of(&ps[1]);
        assert_eq!(pmt[0], 0x02);
        assert_eq!(u16::from(pmt[8] & 0x1f) << 8 | u16::from(pmt[9]), VIDEO_PID);
        assert_eq!(&pmt[12..17], &[0x1b, 0xe1, 0x00, 0xf0, 0]);
        assert_eq!(&pmt[17..22], &[0x0f, 0xe1, 0x01, 0xf0, 0]);

        // Audio only: the PCR moves to the audio PID and the version changes.
        let version = (pmt[5] >> 1) & 0x1f;
        assert!(m.set_streams(None, Some(StreamType::Aac)));
        let mut out = Vec::new();
        m.write_tables(&mut out);
        let ps = packets(&out);
        let pmt = section_of(&ps[1]);
        assert_eq!(u16::from(pmt[8] & 0x1f) << 8 | u16::from(pmt[9]), AUDIO_PID);
        assert_eq!((pmt[5] >> 1) & 0x1f, version + 1);
        assert_eq!(pmt.len(), 12 + 5 + 4);
    }

    #[test]
    fn pes_round_trips_with_pcr_stuffing_and_continuity() {
        let mut m = Muxer::new();
        m.set_streams(Some(StreamType::H264), Some(StreamType::Aac));
        for size in [0usize, 1, 150, 164, 165, 166, 170, 183, 184, 1000, 70_000] {
            let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let mut out = Vec::new();
            let pts = (1u64 << 33) + 3600;
            m.write_pes(
                &mut out,
                Track::Video,
                &Pes {
                    pts,
                    dts: 1800,
                    random_access: true,
                    data: &data,
                },
            );
            m.write_pes(
                &mut out,
                Track::Audio,
                &Pes {
                    pts: 900,
                    dts: 900,
                    random_access: false,
                    data: &data[..size.min(5000)],
                },
            );
            let ps = packets(&out);
            assert_continuity(&ps);
            let video: Vec<_> = ps.iter().filter(|p| p.pid == VIDEO_PID).collect();
            let af = video[0]
                .adaptation
                .expect("first video packet has an adaptation field");
            assert_eq!(af[0] & 0x50, 0x50, "random access + PCR flags");
            let pcr = u64::from_be_bytes([0, 0, 0, af[1], af[2], af[3], af[4], af[5]]) >> 7;
            assert_eq!(pcr, 1800, "PCR is the DTS");
            assert!(video[0].start && video[1..].iter().all(|p| !p.start));
            let pes: Vec<u8> = video.iter().flat_map(|p| p.payload.to_vec()).collect();
            assert_eq!(&pes[..4], &[0, 0, 1, 0xe0]);
            assert_eq!(&pes[4..6], &[0, 0], "unbounded video PES");
            assert_eq!(pes[7], 0xc0, "PTS and DTS");
            assert_eq!(read_timestamp(&pes[9..14]), 3600, "PTS wrapped to 33 bits");
            assert_eq!(read_timestamp(&pes[14..19]), 1800);
            assert_eq!(&pes[19..], &data[..], "size {size}");

            let audio: Vec<_> = ps.iter().filter(|p| p.pid == AUDIO_PID).collect();
            let pcr_on_audio = audio[0]
                .adaptation
                .is_some_and(|a| !a.is_empty() && a[0] & 0x10 != 0);
            assert!(!pcr_on_audio, "PCR only on the video PID");
            let pes: Vec<u8> = audio.iter().flat_map(|p| p.payload.to_vec()).collect();
            assert_eq!(pes[3], 0xc0);
            let len = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
            assert_eq!(len, pes.len() - 6, "bounded audio PES length");
            assert_eq!(pes[7], 0x80, "PTS only");
            assert_eq!(read_timestamp(&pes[9..14]), 900);
            assert_eq!(&pes[14..], &data[..size.min(5000)]);
        }
    }
}
