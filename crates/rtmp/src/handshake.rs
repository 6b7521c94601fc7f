//! RTMP handshake state machines (RTMP spec 5.2), sans-IO.
//!
//! The server answers the Adobe "complex" (digest) handshake used by Flash
//! Player, FMLE, ffmpeg, librtmp and OBS when C1 carries a valid digest, and
//! the simple handshake of the spec otherwise. The client always performs the
//! simple handshake (C1 version bytes zero), which every server accepts.
//!
//! Complex handshake layout of C1/S1 (1536 bytes): time (4) + version (4) +
//! two 764-byte blocks. The digest block starts with 4 offset bytes whose sum
//! modulo 728 locates the 32-byte HMAC-SHA256 digest within the block; the
//! digest covers the other 1504 bytes. "Schema 1" puts the digest block first
//! (block at byte 8), "schema 0" second (block at byte 772).

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub use crate::error::HandshakeError;

/// Size of C1/C2/S1/S2 in bytes (RTMP spec 5.2.3).
pub const HANDSHAKE_SIZE: usize = 1536;

/// The only RTMP version defined (RTMP spec 5.2.2).
const RTMP_VERSION: u8 = 3;

const DIGEST_LEN: usize = 32;

/// Common 32-byte tail of the Flash Player and FMS keys.
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];

/// Text part of the client key; C1 digests use only this (30 bytes).
const PLAYER_KEY_TEXT: &[u8; 30] = b"Genuine Adobe Flash Player 001";

/// Text part of the server key; S1 digests use only this (36 bytes).
const FMS_KEY_TEXT: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";

/// Version we announce in a complex S1; ffmpeg validates S2 only when the
/// first byte is >= 3, which is what we want.
const FMS_VERSION: [u8; 4] = [0x04, 0x05, 0x00, 0x01];

/// Digest block offsets: schema 1 (digest first) then schema 0.
const DIGEST_BLOCKS: [usize; 2] = [8, 772];

fn fms_key_full() -> [u8; 68] {
    let mut key = [0u8; 68];
    key[..36].copy_from_slice(FMS_KEY_TEXT);
    key[36..].copy_from_slice(&KEY_TAIL);
    key
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; DIGEST_LEN],
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Position of the digest inside a 1536-byte C1/S1 whose digest block
/// starts at `block`.
fn digest_pos(packet: &[u8; HANDSHAKE_SIZE], block: usize) -> usize {
    let sum: usize = packet[block..block + 4]
        .iter()
        .map(|&b| usize::from(b))
        .sum();
    block + 4 + sum % 728
}

/// HMAC over the packet with the 32 digest bytes at `pos` left out.
fn packet_digest(packet: &[u8; HANDSHAKE_SIZE], pos: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_sha256(key, &[&packet[..pos], &packet[pos + DIGEST_LEN..]])
}

/// Finds a valid digest in `packet` keyed with `key`, trying schema 1 then
/// schema 0; returns the digest's position.
fn find_digest(packet: &[u8; HANDSHAKE_SIZE], key: &[u8]) -> Option<usize> {
    DIGEST_BLOCKS.iter().find_map(|&block| {
        let pos = digest_pos(packet, block);
        let expected = packet_digest(packet, pos, key);
        (packet[pos..pos + DIGEST_LEN] == expected).then_some(pos)
    })
}

/// Writes a digest keyed with `key` into `packet` using the digest block at
/// `block`; returns the digest's position.
fn imprint_digest(packet: &mut [u8; HANDSHAKE_SIZE], block: usize, key: &[u8]) -> usize {
    let pos = digest_pos(packet, block);
    let digest = packet_digest(packet, pos, key);
    packet[pos..pos + DIGEST_LEN].copy_from_slice(&digest);
    pos
}

fn random_packet() -> Box<[u8; HANDSHAKE_SIZE]> {
    let mut packet = Box::new([0u8; HANDSHAKE_SIZE]);
    rand::thread_rng().fill_bytes(&mut packet[..]);
    packet
}

/// Builds S1 and S2 for the client's C1 (complex form if C1 has a valid
/// digest, simple form otherwise).
fn server_response(
    c1: &[u8; HANDSHAKE_SIZE],
    time: u32,
) -> (Box<[u8; HANDSHAKE_SIZE]>, Box<[u8; HANDSHAKE_SIZE]>) {
    let mut s1 = random_packet();
    s1[..4].copy_from_slice(&time.to_be_bytes());
    let Some(c1_pos) = find_digest(c1, PLAYER_KEY_TEXT) else {
        s1[4..8].fill(0);
        return (s1, Box::new(*c1));
    };
    s1[4..8].copy_from_slice(&FMS_VERSION);
    // Answer in the same schema the client used.
    let block = if c1_pos < DIGEST_BLOCKS[1] {
        DIGEST_BLOCKS[0]
    } else {
        DIGEST_BLOCKS[1]
    };
    imprint_digest(&mut s1, block, FMS_KEY_TEXT);

    let mut s2 = random_packet();
    let temp_key = hmac_sha256(&fms_key_full(), &[&c1[c1_pos..c1_pos + DIGEST_LEN]]);
    let sig_at = HANDSHAKE_SIZE - DIGEST_LEN;
    let signature = hmac_sha256(&temp_key, &[&s2[..sig_at]]);
    s2[sig_at..].copy_from_slice(&signature);
    (s1, s2)
}

/// Accumulates exactly `want` bytes of a handshake packet from fed input.
#[derive(Debug)]
struct Collector {
    buf: Vec<u8>,
}

impl Collector {
    fn new() -> Self {
        Collector { buf: Vec::new() }
    }

    /// Takes up to `want - collected` bytes from `input`; returns how many.
    fn fill(&mut self, input: &[u8], want: usize) -> usize {
        let n = want.saturating_sub(self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..n]);
        n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    WaitC0C1,
    WaitC2,
    Done,
}

/// Server side of the handshake: reads C0+C1, queues S0+S1+S2, then reads
/// (and ignores the contents of) C2.
#[derive(Debug)]
pub struct ServerHandshake {
    state: ServerState,
    time: u32,
    collected: Collector,
    output: BytesMut,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A server handshake whose S1 time field is 0.
    pub fn new() -> Self {
        Self::with_time(0)
    }

    /// A server handshake whose S1 time field is `time` (milliseconds of
    /// the server's epoch, RTMP spec 5.2.3).
    pub fn with_time(time: u32) -> Self {
        ServerHandshake {
            state: ServerState::WaitC0C1,
            time,
            collected: Collector::new(),
            output: BytesMut::new(),
        }
    }

    /// Feeds bytes from the client; returns how many were consumed. Bytes
    /// after C2 are not consumed: they belong to the chunk stream.
    ///
    /// Errors: [`HandshakeError::UnsupportedVersion`] if C0 is not 3.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        let mut consumed = 0;
        if self.state == ServerState::WaitC0C1 {
            consumed += self.collected.fill(input, 1 + HANDSHAKE_SIZE);
            if let Some(&version) = self.collected.buf.first() {
                if version != RTMP_VERSION {
                    return Err(HandshakeError::UnsupportedVersion(version));
                }
            }
            let Ok(c1) =
                <&[u8; HANDSHAKE_SIZE]>::try_from(self.collected.buf.get(1..).unwrap_or(&[]))
            else {
                return Ok(consumed);
            };
            let (s1, s2) = server_response(c1, self.time);
            self.output.reserve(1 + 2 * HANDSHAKE_SIZE);
            self.output.put_u8(RTMP_VERSION);
            self.output.put_slice(&s1[..]);
            self.output.put_slice(&s2[..]);
            self.collected = Collector::new();
            self.state = ServerState::WaitC2;
        }
        if self.state == ServerState::WaitC2 {
            consumed += self.collected.fill(&input[consumed..], HANDSHAKE_SIZE);
            if self.collected.buf.len() == HANDSHAKE_SIZE {
                self.collected = Collector::new();
                self.state = ServerState::Done;
            }
        }
        Ok(consumed)
    }

    /// Bytes to send to the client now (S0+S1+S2 once C1 is in); empty when
    /// nothing is pending.
    pub fn take_output(&mut self) -> Bytes {
        self.output.split().freeze()
    }

    /// True once C2 has been received.
    pub fn is_done(&self) -> bool {
        self.state == ServerState::Done
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    WaitS0S1,
    WaitS2,
    Done,
}

/// Client side of the simple handshake: queues C0+C1 at once, answers S1
/// with C2 (an echo of S1), and is done once S2 has arrived. S2 is not
/// validated.
#[derive(Debug)]
pub struct ClientHandshake {
    state: ClientState,
    collected: Collector,
    output: BytesMut,
}

impl Default for ClientHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientHandshake {
    /// A client handshake with C0+C1 (time 0, version 0, random) queued.
    pub fn new() -> Self {
        let mut c1 = random_packet();
        c1[..8].fill(0);
        let mut output = BytesMut::with_capacity(1 + HANDSHAKE_SIZE);
        output.put_u8(RTMP_VERSION);
        output.put_slice(&c1[..]);
        ClientHandshake {
            state: ClientState::WaitS0S1,
            collected: Collector::new(),
            output,
        }
    }

    /// Feeds bytes from the server; returns how many were consumed. Bytes
    /// after S2 are not consumed: they belong to the chunk stream.
    ///
    /// Errors: [`HandshakeError::UnsupportedVersion`] if S0 is not 3.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        let mut consumed = 0;
        if self.state == ClientState::WaitS0S1 {
            consumed += self.collected.fill(input, 1 + HANDSHAKE_SIZE);
            if let Some(&version) = self.collected.buf.first() {
                if version != RTMP_VERSION {
                    return Err(HandshakeError::UnsupportedVersion(version));
                }
            }
            let Some(s1) = self.collected.buf.get(1..1 + HANDSHAKE_SIZE) else {
                return Ok(consumed);
            };
            // C2 may go out before S2 arrives (RTMP spec 5.2.1).
            self.output.put_slice(s1);
            self.collected = Collector::new();
            self.state = ClientState::WaitS2;
        }
        if self.state == ClientState::WaitS2 {
            consumed += self.collected.fill(&input[consumed..], HANDSHAKE_SIZE);
            if self.collected.buf.len() == HANDSHAKE_SIZE {
                self.collected = Collector::new();
                self.state = ClientState::Done;
            }
        }
        Ok(consumed)
    }

    /// Bytes to send to the server now (C0+C1 first, C2 after S1); empty
    /// when nothing is pending.
    pub fn take_output(&mut self) -> Bytes {
        self.output.split().freeze()
    }

    /// True once S2 has been received (C2 is queued by then).
    pub fn is_done(&self) -> bool {
        self.state == ClientState::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn player_key_full() -> Vec<u8> {
        [&PLAYER_KEY_TEXT[..], &KEY_TAIL[..]].concat()
    }

    /// A C1 as Flash Player/ffmpeg build it, with the digest in `block`.
    fn complex_c1(block: usize) -> Box<[u8; HANDSHAKE_SIZE]> {
        let mut c1 = random_packet();
        c1[..4].fill(0);
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        imprint_digest(&mut c1, block, PLAYER_KEY_TEXT);
        c1
    }

    fn run_server(c1: &[u8; HANDSHAKE_SIZE]) -> (Vec<u8>, ServerHandshake) {
        let mut server = ServerHandshake::new();
        let mut input = vec![RTMP_VERSION];
        input.extend_from_slice(c1);
        assert_eq!(server.feed(&input).unwrap(), input.len());
        assert!(!server.is_done());
        let out = server.take_output().to_vec();
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(out[0], RTMP_VERSION);
        (out, server)
    }

    #[test]
    fn client_and_server_in_memory() {
        let mut client = ClientHandshake::new();
        let mut server = ServerHandshake::new();
        let mut to_server = client.take_output().to_vec();
        assert_eq!(to_server.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(&to_server[1..9], &[0; 8]);
        let mut to_client = Vec::new();
        for _ in 0..10 {
            // Deliver in odd-sized pieces to exercise partial feeds.
            let n = to_server.len().min(700);
            let used = server.feed(&to_server[..n]).unwrap();
            to_server.drain(..used);
            to_client.extend_from_slice(&server.take_output());
            let n = to_client.len().min(1000);
            let used = client.feed(&to_client[..n]).unwrap();
            to_client.drain(..used);
            to_server.extend_from_slice(&client.take_output());
        }
        assert!(client.is_done());
        assert!(server.is_done());
        assert!(to_server.is_empty() && to_client.is_empty());
    }

    #[test]
    fn simple_server_echoes_c1() {
        let mut c1 = random_packet();
        c1[4..8].fill(0);
        let (out, _) = run_server(&c1);
        assert_eq!(&out[5..9], &[0; 4], "simple S1 has zero version");
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
    }

    fn check_complex(block: usize) {
        let c1 = complex_c1(block);
        let c1_pos = find_digest(&c1, PLAYER_KEY_TEXT).unwrap();
        assert_eq!(c1_pos, digest_pos(&c1, block));
        let (out, mut server) = run_server(&c1);
        let s1: &[u8; HANDSHAKE_SIZE] = out[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
        let s2 = &out[1 + HANDSHAKE_SIZE..];
        assert_eq!(&s1[4..8], &FMS_VERSION);
        // S1 digest validates with the FMS key in the client's schema.
        let s1_pos = find_digest(s1, FMS_KEY_TEXT).unwrap();
        assert_eq!(s1_pos, digest_pos(s1, block));
        // S2 validates the way ffmpeg/librtmp check it.
        let temp_key = hmac_sha256(&fms_key_full(), &[&c1[c1_pos..c1_pos + 32]]);
        let sig = hmac_sha256(&temp_key, &[&s2[..HANDSHAKE_SIZE - 32]]);
        assert_eq!(&s2[HANDSHAKE_SIZE - 32..], &sig);
        // Junk C2 plus trailing chunk bytes: only C2 is consumed.
        let mut c2 = vec![0xAB; HANDSHAKE_SIZE];
        c2.extend_from_slice(&[1, 2, 3]);
        assert_eq!(server.feed(&c2).unwrap(), HANDSHAKE_SIZE);
        assert!(server.is_done());
        assert_eq!(server.feed(&[1, 2, 3]).unwrap(), 0);
    }

    #[test]
    fn complex_schema1() {
        check_complex(8);
    }

    #[test]
    fn complex_schema0() {
        check_complex(772);
    }

    #[test]
    fn full_player_key_is_not_used_for_c1() {
        // A digest keyed with the full 62-byte key is not valid for C1.
        let mut c1 = random_packet();
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        imprint_digest(&mut c1, 8, &player_key_full());
        assert_eq!(find_digest(&c1, PLAYER_KEY_TEXT), None);
    }

    #[test]
    fn bad_versions() {
        let mut server = ServerHandshake::new();
        assert_eq!(
            server.feed(&[6]),
            Err(HandshakeError::UnsupportedVersion(6))
        );
        let mut client = ClientHandshake::new();
        client.take_output();
        assert_eq!(
            client.feed(&[9, 0, 0]),
            Err(HandshakeError::UnsupportedVersion(9))
        );
    }

    #[test]
    fn client_sends_c2_after_s1() {
        let mut client = ClientHandshake::new();
        client.take_output();
        let mut s0s1 = vec![RTMP_VERSION];
        s0s1.extend_from_slice(&[7u8; HANDSHAKE_SIZE]);
        assert_eq!(client.feed(&s0s1).unwrap(), s0s1.len());
        assert_eq!(&client.take_output()[..], &[7u8; HANDSHAKE_SIZE][..]);
        assert!(!client.is_done());
        let mut s2 = vec![0u8; HANDSHAKE_SIZE];
        s2.push(0x42);
        assert_eq!(client.feed(&s2).unwrap(), HANDSHAKE_SIZE);
        assert!(client.is_done());
        assert!(client.take_output().is_empty());
    }
}
