//! The SRT handshake control packet (draft-sharabayko-srt 3.2.1) as a view over received bytes,
//! its extensions (3.2.1.1–3.2.1.3), the stream id (3.2.1.3), and the handshakes a relay builds.
//!
//! Layout of the control information field (CIF), after the 16-byte header:
//!
//! | offset | field |
//! |---|---|
//! | 0 | version (32) |
//! | 4 | encryption field (16), extension field (16) |
//! | 8 | initial packet sequence number (32) |
//! | 12 | maximum transmission unit size (32) |
//! | 16 | maximum flow window size (32) |
//! | 20 | handshake type (32) |
//! | 24 | SRT socket id (32) |
//! | 28 | SYN cookie (32) |
//! | 32 | peer IP address (128) |
//! | 48 | extensions: type (16), length in 32-bit words (16), contents |

use std::net::IpAddr;

use crate::{CONTROL_HANDSHAKE, HEADER_LEN};

/// Bytes of the handshake CIF before its extensions.
pub const CIF_LEN: usize = 48;
/// Largest stream id, in bytes (draft-sharabayko-srt 3.2.1.3).
pub const MAX_STREAM_ID: usize = 512;
/// The extension field of a listener's induction response: the SRT magic (draft 4.3.1.1).
pub const SRT_MAGIC: u16 = 0x4A17;
/// Extension type of the stream id (SRT_CMD_SID).
pub const EXT_STREAM_ID: u16 = 5;
/// The extension field of a caller's induction request (UDT's datagram socket type, draft
/// 4.3.1.1).
const UDT_DGRAM: u16 = 2;

const OFF_VERSION: usize = HEADER_LEN;
const OFF_EXTENSION: usize = HEADER_LEN + 6;
const OFF_INITIAL_SEQ: usize = HEADER_LEN + 8;
const OFF_MTU: usize = HEADER_LEN + 12;
const OFF_FLOW_WINDOW: usize = HEADER_LEN + 16;
const OFF_TYPE: usize = HEADER_LEN + 20;
const OFF_SOCKET_ID: usize = HEADER_LEN + 24;
const OFF_COOKIE: usize = HEADER_LEN + 28;
const OFF_PEER_IP: usize = HEADER_LEN + 32;
const OFF_EXTENSIONS: usize = HEADER_LEN + CIF_LEN;

/// Why bytes are not a usable handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Shorter than a header and a handshake CIF.
    #[error("handshake is {0} bytes; at least 64 are needed")]
    TooShort(usize),
    /// Not a control packet of type handshake.
    #[error("not a handshake control packet")]
    NotHandshake,
    /// An extension's length runs past the end of the packet; `offset` is where it starts.
    #[error("handshake extension at byte {offset} runs past the end of the packet")]
    BadExtension {
        /// Byte offset of the extension in the packet.
        offset: usize,
    },
    /// The stream id extension is longer than [`MAX_STREAM_ID`] bytes.
    #[error("stream id is {0} bytes; at most 512 are allowed")]
    StreamIdTooLong(usize),
    /// The stream id is not UTF-8.
    #[error("stream id is not UTF-8")]
    StreamIdNotUtf8,
}

/// The handshake type field (draft-sharabayko-srt 3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeType {
    /// 0: done.
    Done,
    /// 1: induction.
    Induction,
    /// 0xFFFFFFFF (-1): conclusion.
    Conclusion,
    /// 0xFFFFFFFE (-2): agreement.
    Agreement,
    /// 0xFFFFFFFD (-3): wave-a-hand (rendezvous).
    WaveAHand,
    /// 1000 + reason: the peer rejected the connection.
    Rejected(Rejection),
    /// Anything else.
    Other(u32),
}

impl HandshakeType {
    /// The type of a field value.
    pub fn from_u32(v: u32) -> HandshakeType {
        match v {
            0 => HandshakeType::Done,
            1 => HandshakeType::Induction,
            0xFFFF_FFFF => HandshakeType::Conclusion,
            0xFFFF_FFFE => HandshakeType::Agreement,
            0xFFFF_FFFD => HandshakeType::WaveAHand,
            1000..=2999 => HandshakeType::Rejected(Rejection(v - 1000)),
            other => HandshakeType::Other(other),
        }
    }
}

/// A rejection reason: libsrt's `SRT_REJ_*` system codes below 1000, its `SRT_REJX_*`
/// application codes (HTTP-like, 1000 + status) above; in the handshake type field as
/// 1000 + reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection(pub u32);

impl Rejection {
    /// SRT_REJ_ROGUE: the handshake is malformed.
    pub const ROGUE: Rejection = Rejection(4);
    /// SRT_REJ_RESOURCE: the listener is out of resources (its session table is full).
    pub const RESOURCE: Rejection = Rejection(3);
    /// SRT_REJ_PEER: the origin rejected the connection.
    pub const PEER: Rejection = Rejection(2);
    /// SRT_REJX_BAD_REQUEST: the stream id is missing or malformed.
    pub const BAD_REQUEST: Rejection = Rejection(1400);
    /// SRT_REJX_FORBIDDEN.
    pub const FORBIDDEN: Rejection = Rejection(1403);
    /// SRT_REJX_NOTFOUND: no origin serves the stream.
    pub const NOT_FOUND: Rejection = Rejection(1404);
    /// SRT_REJX_CONFLICT: the stream already has a publisher.
    pub const CONFLICT: Rejection = Rejection(1409);
    /// SRT_REJX_DOWN: no origin is available, or the origin did not answer.
    pub const DOWN: Rejection = Rejection(1503);

    /// The handshake type field value, 1000 + reason.
    pub fn handshake_type(self) -> u32 {
        1000 + self.0
    }
}

/// A handshake packet, read in place.
#[derive(Debug, Clone, Copy)]
pub struct Handshake<'a> {
    bytes: &'a [u8],
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

impl<'a> Handshake<'a> {
    /// Reads `datagram` (header and CIF) as a handshake.
    ///
    /// Errors: [`HandshakeError::TooShort`], [`HandshakeError::NotHandshake`].
    pub fn parse(datagram: &'a [u8]) -> Result<Handshake<'a>, HandshakeError> {
        if datagram.len() < OFF_EXTENSIONS {
            return Err(HandshakeError::TooShort(datagram.len()));
        }
        if be32(datagram, 0) >> 16 != 0x8000 | u32::from(CONTROL_HANDSHAKE) {
            return Err(HandshakeError::NotHandshake);
        }
        Ok(Handshake { bytes: datagram })
    }

    /// The whole packet.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The header's destination socket id.
    pub fn dst_socket_id(&self) -> u32 {
        be32(self.bytes, 12)
    }

    /// The handshake version: 4 in a caller's induction, 5 afterwards (HSv5).
    pub fn version(&self) -> u32 {
        be32(self.bytes, OFF_VERSION)
    }

    /// The extension field: flags in a conclusion, [`SRT_MAGIC`] in an induction response.
    pub fn extension_field(&self) -> u16 {
        be16(self.bytes, OFF_EXTENSION)
    }

    /// The handshake type.
    pub fn handshake_type(&self) -> HandshakeType {
        HandshakeType::from_u32(be32(self.bytes, OFF_TYPE))
    }

    /// The sender's socket id.
    pub fn socket_id(&self) -> u32 {
        be32(self.bytes, OFF_SOCKET_ID)
    }

    /// The SYN cookie.
    pub fn syn_cookie(&self) -> u32 {
        be32(self.bytes, OFF_COOKIE)
    }

    /// The peer IP address field: the address the sender sees its peer at.
    pub fn peer_ip(&self) -> [u8; 16] {
        let mut f = [0u8; 16];
        f.copy_from_slice(&self.bytes[OFF_PEER_IP..OFF_PEER_IP + 16]);
        f
    }

    /// The extensions after the CIF, as (type, contents) pairs, in order.
    pub fn extensions(&self) -> Extensions<'a> {
        Extensions {
            bytes: self.bytes,
            at: OFF_EXTENSIONS,
        }
    }

    /// The stream id extension, decoded; `None` when there is none.
    ///
    /// Errors: a malformed extension list, [`HandshakeError::StreamIdTooLong`],
    /// [`HandshakeError::StreamIdNotUtf8`].
    pub fn stream_id(&self) -> Result<Option<String>, HandshakeError> {
        for ext in self.extensions() {
            let (kind, contents) = ext?;
            if kind == EXT_STREAM_ID {
                return decode_stream_id(contents).map(Some);
            }
        }
        Ok(None)
    }
}

/// The extensions of a handshake; see [`Handshake::extensions`].
pub struct Extensions<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Result<(u16, &'a [u8]), HandshakeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at + 4 > self.bytes.len() {
            return None;
        }
        let start = self.at;
        let kind = be16(self.bytes, start);
        let len = usize::from(be16(self.bytes, start + 2)) * 4;
        let Some(contents) = self.bytes.get(start + 4..start + 4 + len) else {
            self.at = self.bytes.len();
            return Some(Err(HandshakeError::BadExtension { offset: start }));
        };
        self.at = start + 4 + len;
        Some(Ok((kind, contents)))
    }
}

/// Decodes a stream id extension: UTF-8 in 32-bit words, each word's bytes in little-endian
/// order, zero-padded (draft-sharabayko-srt 3.2.1.3).
///
/// Errors: [`HandshakeError::StreamIdTooLong`], [`HandshakeError::StreamIdNotUtf8`].
pub fn decode_stream_id(contents: &[u8]) -> Result<String, HandshakeError> {
    if contents.len() > MAX_STREAM_ID {
        return Err(HandshakeError::StreamIdTooLong(contents.len()));
    }
    let mut bytes: Vec<u8> = contents
        .chunks(4)
        .flat_map(|w| w.iter().rev().copied())
        .collect();
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    String::from_utf8(bytes).map_err(|_| HandshakeError::StreamIdNotUtf8)
}

/// Encodes `stream_id` as the contents of a stream id extension (see [`decode_stream_id`]).
pub fn encode_stream_id(stream_id: &str) -> Vec<u8> {
    let mut padded = stream_id.as_bytes().to_vec();
    padded.resize(stream_id.len().div_ceil(4) * 4, 0);
    padded
        .chunks(4)
        .flat_map(|w| w.iter().rev().copied())
        .collect()
}

/// Replaces the SYN cookie of the handshake in `datagram` (a conclusion forwarded to another
/// listener carries that listener's cookie). Does nothing to a packet too short to be one.
pub fn set_syn_cookie(datagram: &mut [u8], cookie: u32) {
    if let Some(field) = datagram.get_mut(OFF_COOKIE..OFF_COOKIE + 4) {
        field.copy_from_slice(&cookie.to_be_bytes());
    }
}

/// Replaces the destination socket id in the header of `datagram` (a conclusion forwarded to
/// another listener goes to its socket 0, as a caller's does). Does nothing to a packet too short.
pub fn set_dst_socket_id(datagram: &mut [u8], socket_id: u32) {
    if let Some(field) = datagram.get_mut(12..16) {
        field.copy_from_slice(&socket_id.to_be_bytes());
    }
}

/// The 128-bit peer IP address field for `ip` as libsrt writes it: four 32-bit words, each in
/// little-endian byte order (so 127.0.0.1 is `01 00 00 7f`); IPv4 fills the first word only.
fn peer_ip_field(ip: IpAddr) -> [u8; 16] {
    let mut f = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => f[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => f = v6.octets(),
    }
    for word in f.chunks_mut(4) {
        word.reverse();
    }
    f
}

/// The fields of a handshake to build.
struct Build {
    dst_socket_id: u32,
    version: u32,
    extension_field: u16,
    initial_seq: u32,
    mtu: u32,
    flow_window: u32,
    handshake_type: u32,
    socket_id: u32,
    cookie: u32,
    peer_ip: [u8; 16],
}

impl Build {
    fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&(0x8000_0000u32 | u32::from(CONTROL_HANDSHAKE) << 16).to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&self.dst_socket_id.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&self.extension_field.to_be_bytes());
        out.extend_from_slice(&self.initial_seq.to_be_bytes());
        out.extend_from_slice(&self.mtu.to_be_bytes());
        out.extend_from_slice(&self.flow_window.to_be_bytes());
        out.extend_from_slice(&self.handshake_type.to_be_bytes());
        out.extend_from_slice(&self.socket_id.to_be_bytes());
        out.extend_from_slice(&self.cookie.to_be_bytes());
        out.extend_from_slice(&self.peer_ip);
    }

    /// The answer fields to `request`, from `socket_id`, addressed to the requester.
    fn answer(request: &Handshake<'_>, socket_id: u32, peer: IpAddr) -> Build {
        Build {
            dst_socket_id: request.socket_id(),
            version: 5,
            extension_field: 0,
            initial_seq: be32(request.bytes, OFF_INITIAL_SEQ),
            mtu: be32(request.bytes, OFF_MTU),
            flow_window: be32(request.bytes, OFF_FLOW_WINDOW),
            handshake_type: 0,
            socket_id,
            cookie: 0,
            peer_ip: peer_ip_field(peer),
        }
    }
}

/// Writes into `out` a listener's induction response to `request` (draft-sharabayko-srt
/// 4.3.1.1): version 5, extension field [`SRT_MAGIC`], the SYN `cookie`, from `socket_id`, with
/// the caller's address `peer`.
pub fn induction_response(
    request: &Handshake<'_>,
    cookie: u32,
    socket_id: u32,
    peer: IpAddr,
    out: &mut Vec<u8>,
) {
    Build {
        extension_field: SRT_MAGIC,
        handshake_type: 1,
        cookie,
        ..Build::answer(request, socket_id, peer)
    }
    .write(out);
}

/// Writes into `out` a rejection of `request` for `reason` (handshake type 1000 + reason, draft
/// 4.3.1.2 and libsrt's rejection codes), from `socket_id`, to the caller at `peer`.
pub fn rejection(
    request: &Handshake<'_>,
    reason: Rejection,
    socket_id: u32,
    peer: IpAddr,
    out: &mut Vec<u8>,
) {
    Build {
        handshake_type: reason.handshake_type(),
        cookie: request.syn_cookie(),
        ..Build::answer(request, socket_id, peer)
    }
    .write(out);
}

/// Writes into `out` a caller's induction request (version 4, destination socket 0, cookie 0,
/// draft 4.3.1.1) carrying the socket id, initial sequence number, MTU and flow window of the
/// client's `conclusion`, for the listener at `listener`: the relay opens the origin leg as the
/// client itself would have.
pub fn induction_request(conclusion: &Handshake<'_>, listener: IpAddr, out: &mut Vec<u8>) {
    Build {
        dst_socket_id: 0,
        version: 4,
        extension_field: UDT_DGRAM,
        initial_seq: be32(conclusion.bytes, OFF_INITIAL_SEQ),
        mtu: be32(conclusion.bytes, OFF_MTU),
        flow_window: be32(conclusion.bytes, OFF_FLOW_WINDOW),
        handshake_type: 1,
        socket_id: conclusion.socket_id(),
        cookie: 0,
        peer_ip: peer_ip_field(listener),
    }
    .write(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller's HSv5 conclusion: HSREQ, then the stream id `#!::r=live/s,m=publish`.
    fn conclusion(stream_id: &str) -> Vec<u8> {
        let mut p = Vec::new();
        let req = Handshake {
            bytes: &[0u8; OFF_EXTENSIONS],
        };
        Build {
            dst_socket_id: 0,
            version: 5,
            extension_field: 0x0005,
            initial_seq: 0x1234,
            mtu: 1500,
            flow_window: 8192,
            handshake_type: 0xFFFF_FFFF,
            socket_id: 0x0bad_cafe,
            cookie: 0x600d_1dea,
            ..Build::answer(&req, 0, IpAddr::from([127, 0, 0, 1]))
        }
        .write(&mut p);
        // HSREQ: 3 words (version, flags, latencies).
        p.extend_from_slice(&[0, 1, 0, 3]);
        p.extend_from_slice(&[0, 1, 5, 0, 0, 0, 0, 0xbf, 0, 0x78, 0, 0x78]);
        let sid = encode_stream_id(stream_id);
        p.extend_from_slice(&EXT_STREAM_ID.to_be_bytes());
        p.extend_from_slice(&((sid.len() / 4) as u16).to_be_bytes());
        p.extend_from_slice(&sid);
        p
    }

    #[test]
    fn reads_a_conclusion() {
        let p = conclusion("#!::r=live/s,m=publish");
        let hs = Handshake::parse(&p).unwrap();
        assert_eq!(hs.version(), 5);
        assert_eq!(hs.handshake_type(), HandshakeType::Conclusion);
        assert_eq!(hs.socket_id(), 0x0bad_cafe);
        assert_eq!(hs.syn_cookie(), 0x600d_1dea);
        let kinds: Vec<u16> = hs.extensions().map(|e| e.unwrap().0).collect();
        assert_eq!(kinds, [1, EXT_STREAM_ID]);
        assert_eq!(
            hs.stream_id().unwrap().as_deref(),
            Some("#!::r=live/s,m=publish")
        );
    }

    #[test]
    fn stream_id_words_are_byte_swapped_and_padded() {
        // "#!::r=a" as libsrt puts it on the wire.
        let wire = [b':', b':', b'!', b'#', 0, b'a', b'=', b'r'];
        assert_eq!(decode_stream_id(&wire).unwrap(), "#!::r=a");
        assert_eq!(encode_stream_id("#!::r=a"), wire);
        assert_eq!(
            decode_stream_id(&[0; 516]),
            Err(HandshakeError::StreamIdTooLong(516))
        );
        assert_eq!(
            decode_stream_id(&[0, 0, 0xff, 0xfe]),
            Err(HandshakeError::StreamIdNotUtf8)
        );
    }

    #[test]
    fn malformed_handshakes_are_errors() {
        let p = conclusion("live/s");
        assert_eq!(
            Handshake::parse(&p[..63]).unwrap_err(),
            HandshakeError::TooShort(63)
        );
        let mut data = p.clone();
        data[0] = 0x00;
        assert_eq!(
            Handshake::parse(&data).unwrap_err(),
            HandshakeError::NotHandshake
        );
        let mut keepalive = p.clone();
        keepalive[1] = 0x01;
        assert!(Handshake::parse(&keepalive).is_err());
        // An extension claiming more words than there are bytes.
        let mut bad = p[..OFF_EXTENSIONS].to_vec();
        bad.extend_from_slice(&[0, EXT_STREAM_ID as u8, 0, 9, b'x', b'y']);
        let hs = Handshake::parse(&bad).unwrap();
        assert_eq!(
            hs.stream_id(),
            Err(HandshakeError::BadExtension {
                offset: OFF_EXTENSIONS
            })
        );
    }

    #[test]
    fn builds_induction_response_rejection_and_request() {
        let p = conclusion("live/s");
        let hs = Handshake::parse(&p).unwrap();
        let peer = IpAddr::from([127, 0, 0, 1]);
        let mut out = Vec::new();
        induction_response(&hs, 0xc00c_1e00, 77, peer, &mut out);
        let r = Handshake::parse(&out).unwrap();
        assert_eq!(
            (r.version(), r.extension_field(), r.handshake_type()),
            (5, SRT_MAGIC, HandshakeType::Induction)
        );
        assert_eq!((r.syn_cookie(), r.socket_id()), (0xc00c_1e00, 77));
        assert_eq!(r.dst_socket_id(), 0x0bad_cafe);
        assert_eq!(out.len(), HEADER_LEN + CIF_LEN);

        rejection(&hs, Rejection::NOT_FOUND, 77, peer, &mut out);
        let r = Handshake::parse(&out).unwrap();
        assert_eq!(
            r.handshake_type(),
            HandshakeType::Rejected(Rejection::NOT_FOUND)
        );
        assert_eq!(be32(&out, OFF_TYPE), 2404);

        induction_request(&hs, IpAddr::from([10, 0, 0, 9]), &mut out);
        let r = Handshake::parse(&out).unwrap();
        assert_eq!(
            (r.version(), r.handshake_type(), r.syn_cookie()),
            (4, HandshakeType::Induction, 0)
        );
        assert_eq!((r.socket_id(), r.dst_socket_id()), (0x0bad_cafe, 0));
        assert_eq!(&r.peer_ip()[..4], &[9, 0, 0, 10]);
        assert_eq!(be32(&out, OFF_MTU), 1500);
    }

    #[test]
    fn the_cookie_is_the_only_change_to_a_forwarded_conclusion() {
        let p = conclusion("live/s");
        let mut fwd = p.clone();
        set_syn_cookie(&mut fwd, 0x0102_0304);
        assert_eq!(Handshake::parse(&fwd).unwrap().syn_cookie(), 0x0102_0304);
        let changed: Vec<usize> = (0..p.len()).filter(|&i| p[i] != fwd[i]).collect();
        assert!(changed
            .iter()
            .all(|i| (OFF_COOKIE..OFF_COOKIE + 4).contains(i)));
    }
}
