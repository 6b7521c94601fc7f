//! srs-srt: the parts of SRT (draft-sharabayko-srt) a relay must read and write, sans-IO: the
//! packet header, the handshake control packet with its extensions, the stream id, SYN cookies,
//! and the handshakes the relay builds itself (induction request and response, rejection).
//!
//! A relay reads as little as it can: handshakes are parsed as views over the received bytes,
//! and a conclusion is forwarded to the origin byte for byte except for its SYN cookie, so that
//! every extension the client sent (HSREQ, KMREQ, stream id, congestion, filter) arrives
//! unchanged and encrypted streams work end to end.

pub mod cookie;
pub mod handshake;

pub use cookie::CookieJar;
pub use handshake::{
    decode_stream_id, encode_stream_id, induction_request, induction_response, rejection,
    set_dst_socket_id, set_syn_cookie, Handshake, HandshakeError, HandshakeType, Rejection,
};

/// Bytes of every SRT packet header (draft-sharabayko-srt 3).
pub const HEADER_LEN: usize = 16;

/// Control type of a handshake packet (draft-sharabayko-srt 3.2).
pub const CONTROL_HANDSHAKE: u16 = 0x0000;
/// Control type of a keep-alive packet (draft-sharabayko-srt 3.2.3).
pub const CONTROL_KEEPALIVE: u16 = 0x0001;
/// Control type of a shutdown packet (draft-sharabayko-srt 3.2.7).
pub const CONTROL_SHUTDOWN: u16 = 0x0005;

/// The fields of an SRT packet header that a relay routes by (draft-sharabayko-srt 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `Some(control type)` for a control packet (F bit set), `None` for a data packet.
    pub control_type: Option<u16>,
    /// The timestamp, microseconds since the sender's socket started.
    pub timestamp: u32,
    /// The destination socket id; 0 in a caller's first handshakes.
    pub dst_socket_id: u32,
}

impl Header {
    /// Reads the header of `datagram`; `None` when it is shorter than [`HEADER_LEN`].
    pub fn parse(datagram: &[u8]) -> Option<Header> {
        let word = |i: usize| -> Option<u32> {
            let b = datagram.get(i * 4..i * 4 + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let first = word(0)?;
        let control_type = (first & 0x8000_0000 != 0).then_some(((first >> 16) & 0x7fff) as u16);
        Some(Header {
            control_type,
            timestamp: word(2)?,
            dst_socket_id: word(3)?,
        })
    }

    /// Whether the packet is a control packet of `control_type`.
    pub fn is_control(&self, control_type: u16) -> bool {
        self.control_type == Some(control_type)
    }
}

/// Writes into `out` a SHUTDOWN control packet to the socket `dst_socket_id`
/// (draft-sharabayko-srt 3.2.7): the relay ends a client's session when its origin went away.
pub fn shutdown(dst_socket_id: u32, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&(0x8000_0000u32 | u32::from(CONTROL_SHUTDOWN) << 16).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&dst_socket_id.to_be_bytes());
    // The CIF of a shutdown is one unused word.
    out.extend_from_slice(&[0; 4]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let mut p = [0u8; 20];
        p[0] = 0x80; // control, type 0x0005
        p[1] = 0x05;
        p[8..12].copy_from_slice(&1234u32.to_be_bytes());
        p[12..16].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        let h = Header::parse(&p).unwrap();
        assert_eq!(h.control_type, Some(CONTROL_SHUTDOWN));
        assert!(h.is_control(CONTROL_SHUTDOWN));
        assert_eq!(h.timestamp, 1234);
        assert_eq!(h.dst_socket_id, 0xdead_beef);
        p[0] = 0x12;
        assert_eq!(Header::parse(&p).unwrap().control_type, None);
        assert_eq!(Header::parse(&p[..15]), None);
        let mut out = Vec::new();
        shutdown(77, &mut out);
        let h = Header::parse(&out).unwrap();
        assert!(h.is_control(CONTROL_SHUTDOWN));
        assert_eq!((h.dst_socket_id, out.len()), (77, 20));
    }
}
