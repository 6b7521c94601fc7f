//! RTMP chunk stream encoder and decoder (RTMP spec 5.3), sans-IO.
//!
//! Timestamps follow the spec and FFmpeg/SRS: a type 0 header carries the
//! absolute timestamp, which also becomes the chunk stream's delta for a
//! following type 3 message; types 1 and 2 carry a delta that is added with
//! wrapping u32 arithmetic. When a header's timestamp field is 0xFFFFFF, a
//! 4-byte extended timestamp follows it, and also follows every type 3 chunk
//! of that chunk stream until the next type 0/1/2 header (RTMP spec 5.3.1.3).

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub use crate::error::ChunkError;

/// Chunk size both sides start with (RTMP spec 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// Largest message length the 24-bit length field can express.
pub const MAX_MESSAGE_LENGTH: u32 = 0xFF_FFFF;

/// Smallest and largest chunk stream ids (RTMP spec 5.3.1.1).
pub const MIN_CSID: u32 = 2;
/// See [`MIN_CSID`].
pub const MAX_CSID: u32 = 65599;

/// Timestamp field value signalling an extended timestamp.
const EXTENDED: u32 = 0xFF_FFFF;

/// Per chunk stream state, keyed by chunk stream id: the entries in one small vector searched
/// from the front. A connection uses a handful of chunk streams (at most
/// `Limits::max_chunk_streams`) and looks them up several times per chunk; a linear scan of a
/// few contiguous entries touches less memory than a hash table.
#[derive(Debug, Clone)]
struct CsidMap<V> {
    entries: Vec<(u32, V)>,
}

impl<V> Default for CsidMap<V> {
    fn default() -> Self {
        CsidMap {
            entries: Vec::new(),
        }
    }
}

impl<V> CsidMap<V> {
    fn position(&self, csid: u32) -> Option<usize> {
        self.entries.iter().position(|(k, _)| *k == csid)
    }

    fn get(&self, csid: &u32) -> Option<&V> {
        self.entries.iter().find(|(k, _)| k == csid).map(|(_, v)| v)
    }

    fn get_mut(&mut self, csid: &u32) -> Option<&mut V> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == csid)
            .map(|(_, v)| v)
    }

    /// The entry of `csid`, inserted with `V::default()` when missing.
    fn get_or_default(&mut self, csid: u32) -> &mut V
    where
        V: Default,
    {
        let at = match self.position(csid) {
            Some(at) => at,
            None => {
                self.entries.push((csid, V::default()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[at].1
    }

    fn insert(&mut self, csid: u32, value: V) {
        match self.get_mut(&csid) {
            Some(v) => *v = value,
            None => self.entries.push((csid, value)),
        }
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// One reassembled RTMP message (RTMP spec 5.3.1 + 6.1).
#[derive(Debug, Clone, PartialEq)]
pub struct RawMessage {
    /// Chunk stream id it arrived on / is sent on (2..=65599).
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wrapping u32).
    pub timestamp: u32,
    /// Message type id (see `message::type_id`).
    pub type_id: u8,
    /// Message stream id.
    pub msid: u32,
    /// The message body.
    pub payload: Bytes,
}

/// Bounds on what a peer may make the decoder hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted message length in bytes. Partial messages across all
    /// chunk streams may buffer at most twice this.
    pub max_message_size: u32,
    /// Largest chunk size the peer may set, in bytes.
    pub max_chunk_size: u32,
    /// Largest number of distinct chunk stream ids the peer may use.
    pub max_chunk_streams: usize,
}

impl Limits {
    /// Limits for a peer that has not set up a session yet: 64 KiB messages
    /// (a `connect` is a few hundred bytes), so at most 128 KiB of partial
    /// data, and 8 chunk streams.
    pub fn setup() -> Self {
        Limits {
            max_message_size: 64 * 1024,
            max_chunk_size: MAX_MESSAGE_LENGTH,
            max_chunk_streams: 8,
        }
    }
}

impl Default for Limits {
    /// 8 MiB messages (far above any real video frame over RTMP), chunk
    /// sizes up to 0xFFFFFF (no message is longer, so larger values gain
    /// nothing; SRS itself accepts 128..=65536), and 64 chunk streams (real
    /// peers use fewer than 10).
    fn default() -> Self {
        Limits {
            max_message_size: 8 * 1024 * 1024,
            max_chunk_size: MAX_MESSAGE_LENGTH,
            max_chunk_streams: 64,
        }
    }
}

/// Per chunk stream header state kept by the decoder.
#[derive(Debug, Default)]
struct DecodeState {
    /// Absolute timestamp of the current (or last) message.
    timestamp: u32,
    /// Delta a type 3 header applies to start a new message.
    delta: u32,
    length: u32,
    type_id: u8,
    msid: u32,
    /// Whether the last type 0/1/2 header used an extended timestamp, and the
    /// value it carried.
    extended: Option<u32>,
    /// Body of the message being reassembled.
    payload: BytesMut,
    in_progress: bool,
    /// The message in progress is forwarded chunk by chunk instead of
    /// reassembled ([`ChunkDecoder::next_piece`]); its payload is not held.
    forwarded: bool,
    /// Payload bytes of the forwarded message in progress consumed so far.
    passed: u32,
}

/// Header fields of one message, as the first chunk of it carries them
/// after header decompression (RTMP spec 5.3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// Absolute timestamp in milliseconds (wrapping u32).
    pub timestamp: u32,
    /// Payload length in bytes (at most 0xFFFFFF).
    pub length: u32,
    /// Message type id (see `message::type_id`).
    pub type_id: u8,
    /// Message stream id.
    pub msid: u32,
}

/// What [`ChunkDecoder::next_piece`] found at the front of the input.
#[derive(Debug, PartialEq)]
pub enum Piece {
    /// More input is needed; what was consumed is applied.
    Incomplete,
    /// The header of a chunk of a forwarded message was consumed. `len`
    /// payload bytes of this chunk follow in the input; take them with
    /// [`ChunkDecoder::forwarding`] and [`ChunkDecoder::consume_forwarded`]
    /// before asking for the next piece.
    Forward {
        /// Chunk stream id (2..=65599).
        csid: u32,
        /// True for the first chunk of the message, false for a
        /// continuation chunk.
        first: bool,
        /// The message's header.
        header: MessageHeader,
        /// Payload bytes in this chunk: at most the chunk size.
        len: u32,
    },
    /// A reassembled message is complete.
    Message(RawMessage),
}

/// The chunk whose payload [`ChunkDecoder::next_piece`] is reading.
#[derive(Debug, Clone, Copy)]
struct OpenChunk {
    csid: u32,
    /// Payload bytes of the chunk still to come.
    remaining: u32,
    /// Payload bytes of the whole chunk.
    len: u32,
    /// Forwarded by the caller (true) or reassembled here (false).
    forwarded: bool,
}

/// A parsed chunk header whose effects are not yet applied.
struct Header {
    fmt: u8,
    csid: u32,
    /// Bytes of basic + message header + extended timestamp.
    len: usize,
    /// Timestamp (type 0) or delta (types 1, 2) after extension.
    time: u32,
    length: u32,
    type_id: u8,
    msid: u32,
    extended: bool,
}

/// What a parsed header means for its chunk stream ([`ChunkDecoder::plan`]).
struct Plan {
    /// The header starts a message (any partial one on the stream is dropped).
    new_message: bool,
    /// Bytes of a partial reassembled message the stream holds now.
    held: usize,
    /// Payload bytes of the message still due, this chunk included.
    remaining: usize,
}

/// Applies a header that starts a new message to its chunk stream's state
/// (RTMP spec 5.3.1.2; timestamps as described in the module docs).
fn start_message(state: &mut DecodeState, header: &Header) {
    if state.in_progress {
        tracing::debug!(csid = header.csid, "new header discards a partial message");
    }
    match header.fmt {
        0 => {
            state.timestamp = header.time;
            state.delta = header.time;
            state.msid = header.msid;
        }
        1 | 2 => {
            state.delta = header.time;
            state.timestamp = state.timestamp.wrapping_add(header.time);
        }
        _ => state.timestamp = state.timestamp.wrapping_add(state.delta),
    }
    if header.fmt <= 1 {
        state.length = header.length;
        state.type_id = header.type_id;
    }
    if header.fmt <= 2 {
        state.extended = header.extended.then_some(header.time);
    }
    state.payload = BytesMut::new();
    state.in_progress = true;
    state.forwarded = false;
    state.passed = 0;
}

/// Reassembles messages from a byte stream of chunks (RTMP spec 5.3).
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: Limits,
    chunk_size: u32,
    streams: CsidMap<DecodeState>,
    /// Bytes held in partial message payloads across all chunk streams.
    buffered: usize,
    /// The chunk whose header [`ChunkDecoder::next_piece`] consumed and
    /// whose payload has not all arrived.
    open: Option<OpenChunk>,
    /// A chunk stream whose forwarded partial message was dropped (Abort,
    /// or a new header on it): whoever received its first chunks must be
    /// told with an Abort of its own.
    discarded: Option<u32>,
}

fn be24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl ChunkDecoder {
    /// A decoder with chunk size 128 that enforces `limits`.
    pub fn new(limits: Limits) -> Self {
        ChunkDecoder {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: CsidMap::default(),
            buffered: 0,
            open: None,
            discarded: None,
        }
    }

    /// Replaces the limits; they apply to headers decoded from now on (a
    /// message already being reassembled keeps the length it announced).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The chunk size currently expected from the peer, in bytes.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// True if some chunk stream holds part of a message (so EOF now would
    /// cut a message).
    pub fn has_partial_message(&self) -> bool {
        self.streams.values().any(|s| s.in_progress)
    }

    /// Applies the peer's Set Chunk Size (RTMP spec 5.4.1) to following
    /// chunks.
    ///
    /// Errors: [`ChunkError::InvalidChunkSize`] for 0, a value with the
    /// reserved top bit set, or a value above `Limits::max_chunk_size`.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        let limit = self.limits.max_chunk_size.min(0x7FFF_FFFF);
        if size == 0 || size > limit {
            return Err(ChunkError::InvalidChunkSize { size, limit });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Drops the partially received message on `csid` (Abort Message, RTMP
    /// spec 5.4.2). Unknown ids are ignored.
    pub fn abort(&mut self, csid: u32) {
        if let Some(state) = self.streams.get_mut(&csid) {
            if state.in_progress && state.forwarded {
                self.discarded = Some(csid);
            }
            self.buffered -= state.payload.len();
            state.payload = BytesMut::new();
            state.in_progress = false;
            state.forwarded = false;
        }
    }

    /// The chunk stream of a forwarded partial message dropped since the
    /// last call, by an Abort or by a new message header on its chunk
    /// stream; the receiver of its first chunks needs an Abort too.
    pub fn take_discarded(&mut self) -> Option<u32> {
        self.discarded.take()
    }

    /// True if some chunk stream has a forwarded message in progress.
    pub fn forwarding_any(&self) -> bool {
        self.streams.values().any(|s| s.in_progress && s.forwarded)
    }

    /// Consumes whole chunks from the front of `buf` and returns the first
    /// message they complete. `Ok(None)` means more bytes are needed; an
    /// incomplete chunk stays in `buf`.
    ///
    /// Errors ([`ChunkError`]): a type 1/2/3 chunk on an unknown chunk
    /// stream, more chunk streams than allowed, a message longer than
    /// allowed, or too many bytes of partial messages buffered. After an
    /// error the connection should be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let Some(header) = self.parse_header(buf)? else {
                return Ok(None);
            };
            let plan = self.plan(&header)?;
            let take = plan.remaining.min(self.chunk_size as usize);
            if buf.len() < header.len + take {
                return Ok(None);
            }
            let buffered_after = self.check_buffered(&plan, take)?;

            // The whole chunk is present: apply its header and payload.
            let state = self.streams.get_or_default(header.csid);
            if plan.new_message {
                start_message(state, &header);
            }
            buf.advance(header.len);
            if plan.new_message && take == plan.remaining {
                // The whole message is in this one chunk (the common case with large chunk
                // sizes): hand out its bytes from the input buffer without copying or
                // allocating; the buffer's memory is reclaimed once the message is dropped.
                state.in_progress = false;
                self.buffered = buffered_after - take;
                return Ok(Some(RawMessage {
                    csid: header.csid,
                    timestamp: state.timestamp,
                    type_id: state.type_id,
                    msid: state.msid,
                    payload: buf.split_to(take).freeze(),
                }));
            }
            state.payload.extend_from_slice(&buf[..take]);
            buf.advance(take);
            self.buffered = buffered_after;

            if state.payload.len() >= state.length as usize {
                state.in_progress = false;
                self.buffered -= state.payload.len();
                let payload = std::mem::take(&mut state.payload).freeze();
                return Ok(Some(RawMessage {
                    csid: header.csid,
                    timestamp: state.timestamp,
                    type_id: state.type_id,
                    msid: state.msid,
                    payload,
                }));
            }
        }
    }

    /// Streaming counterpart of [`ChunkDecoder::decode`] for relays: consumes
    /// chunk headers and payload bytes as they arrive, without waiting for a
    /// whole chunk, so `buf` never has to hold more than one chunk header.
    /// At the first chunk of each message, `forward(csid, type_id)` decides
    /// whether its chunks go to the caller one by one ([`Piece::Forward`],
    /// payload not held here) or are reassembled ([`Piece::Message`]).
    ///
    /// While a forwarded chunk's payload is open ([`ChunkDecoder::forwarding`]
    /// is `Some`) this returns [`Piece::Incomplete`] without consuming.
    ///
    /// Errors: as [`ChunkDecoder::decode`]. After an error the connection
    /// should be closed.
    pub fn next_piece(
        &mut self,
        buf: &mut BytesMut,
        mut forward: impl FnMut(u32, u8) -> bool,
    ) -> Result<Piece, ChunkError> {
        loop {
            if let Some(open) = self.open {
                if open.forwarded {
                    return Ok(Piece::Incomplete);
                }
                let n = (open.remaining as usize).min(buf.len());
                let Some(state) = self.streams.get_mut(&open.csid) else {
                    self.open = None;
                    continue;
                };
                state.payload.extend_from_slice(&buf[..n]);
                buf.advance(n);
                self.buffered += n;
                let remaining = open.remaining - n as u32;
                if remaining > 0 {
                    self.open = Some(OpenChunk { remaining, ..open });
                    return Ok(Piece::Incomplete);
                }
                self.open = None;
                if state.payload.len() >= state.length as usize {
                    state.in_progress = false;
                    self.buffered -= state.payload.len();
                    let payload = std::mem::take(&mut state.payload).freeze();
                    return Ok(Piece::Message(RawMessage {
                        csid: open.csid,
                        timestamp: state.timestamp,
                        type_id: state.type_id,
                        msid: state.msid,
                        payload,
                    }));
                }
                continue;
            }
            let Some(header) = self.parse_header(buf)? else {
                return Ok(Piece::Incomplete);
            };
            let plan = self.plan(&header)?;
            let take = plan.remaining.min(self.chunk_size as usize);
            let existing = self.streams.get(&header.csid);
            let forwarded = if plan.new_message {
                let type_id = match (header.fmt, existing) {
                    (2 | 3, Some(s)) => s.type_id,
                    _ => header.type_id,
                };
                forward(header.csid, type_id)
            } else {
                existing.is_some_and(|s| s.forwarded)
            };
            if !forwarded {
                self.check_buffered(&plan, take)?;
            }

            let state = self.streams.get_or_default(header.csid);
            if plan.new_message {
                if state.in_progress && state.forwarded {
                    self.discarded = Some(header.csid);
                }
                self.buffered -= plan.held;
                start_message(state, &header);
                state.forwarded = forwarded;
            }
            buf.advance(header.len);
            // take <= chunk size <= 0x7FFFFFFF
            let len = take as u32;
            if forwarded {
                if len == 0 {
                    state.in_progress = false;
                } else {
                    self.open = Some(OpenChunk {
                        csid: header.csid,
                        remaining: len,
                        len,
                        forwarded: true,
                    });
                }
                return Ok(Piece::Forward {
                    csid: header.csid,
                    first: plan.new_message,
                    header: MessageHeader {
                        timestamp: state.timestamp,
                        length: state.length,
                        type_id: state.type_id,
                        msid: state.msid,
                    },
                    len,
                });
            }
            if len == 0 {
                state.in_progress = false;
                return Ok(Piece::Message(RawMessage {
                    csid: header.csid,
                    timestamp: state.timestamp,
                    type_id: state.type_id,
                    msid: state.msid,
                    payload: Bytes::new(),
                }));
            }
            self.open = Some(OpenChunk {
                csid: header.csid,
                remaining: len,
                len,
                forwarded: false,
            });
        }
    }

    /// Payload bytes of the open forwarded chunk still to come, if the input
    /// is inside one ([`Piece::Forward`]).
    pub fn forwarding(&self) -> Option<u32> {
        self.open.filter(|o| o.forwarded).map(|o| o.remaining)
    }

    /// Records that the caller took `n` payload bytes of the open forwarded
    /// chunk from the front of the input (at most [`ChunkDecoder::forwarding`];
    /// more is clamped). Returns true when that completed the chunk.
    pub fn consume_forwarded(&mut self, n: u32) -> bool {
        let Some(open) = self.open.as_mut().filter(|o| o.forwarded) else {
            return false;
        };
        open.remaining -= n.min(open.remaining);
        if open.remaining > 0 {
            return false;
        }
        let (csid, len) = (open.csid, open.len);
        self.open = None;
        if let Some(state) = self.streams.get_mut(&csid) {
            state.passed = state.passed.saturating_add(len);
            if state.passed >= state.length {
                state.in_progress = false;
            }
        }
        true
    }

    /// Works out, for a parsed header, whether it starts a message, and the
    /// payload still due for it; enforces the message size limit.
    fn plan(&self, header: &Header) -> Result<Plan, ChunkError> {
        let existing = self.streams.get(&header.csid);
        let in_progress = existing.is_some_and(|s| s.in_progress);
        let held = existing.map_or(0, |s| s.payload.len());
        let new_message = header.fmt != 3 || !in_progress;
        let (length, received) = match existing {
            Some(s) if !new_message && s.forwarded => (s.length, s.passed as usize),
            Some(s) if !new_message => (s.length, held),
            Some(s) if header.fmt >= 2 => (s.length, 0),
            _ => (header.length, 0),
        };
        if length > self.limits.max_message_size {
            return Err(ChunkError::MessageTooLarge {
                size: length,
                limit: self.limits.max_message_size,
            });
        }
        Ok(Plan {
            new_message,
            held,
            remaining: (length as usize).saturating_sub(received),
        })
    }

    /// The bytes of partial reassembled messages after taking `take` more
    /// for `plan`'s chunk, or [`ChunkError::BufferedTooMuch`].
    fn check_buffered(&self, plan: &Plan, take: usize) -> Result<usize, ChunkError> {
        let buffered_after = if plan.new_message {
            self.buffered - plan.held + take
        } else {
            self.buffered + take
        };
        let buffer_limit = 2 * self.limits.max_message_size as usize;
        if take < plan.remaining && buffered_after > buffer_limit {
            return Err(ChunkError::BufferedTooMuch {
                buffered: buffered_after,
                limit: buffer_limit,
            });
        }
        Ok(buffered_after)
    }

    /// Parses the chunk header at the front of `buf` without consuming it.
    fn parse_header(&self, buf: &[u8]) -> Result<Option<Header>, ChunkError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3F {
            0 => match buf.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(None),
            },
            1 => match buf.get(1..3) {
                Some(b) => (64 + u32::from(b[0]) + 256 * u32::from(b[1]), 3),
                None => return Ok(None),
            },
            id => (u32::from(id), 1),
        };
        let state = self.streams.get(&csid);
        match state {
            None if fmt != 0 => return Err(ChunkError::UnknownChunkStream { csid, fmt }),
            None if self.streams.len() >= self.limits.max_chunk_streams => {
                return Err(ChunkError::TooManyChunkStreams {
                    limit: self.limits.max_chunk_streams,
                })
            }
            _ => {}
        }
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(fields) = buf.get(pos..pos + header_len) else {
            return Ok(None);
        };
        pos += header_len;
        let mut header = Header {
            fmt,
            csid,
            len: pos,
            time: 0,
            length: 0,
            type_id: 0,
            msid: 0,
            extended: false,
        };
        if fmt <= 2 {
            header.time = be24(fields);
            header.extended = header.time == EXTENDED;
        }
        if fmt <= 1 {
            header.length = be24(&fields[3..]);
            header.type_id = fields[6];
        }
        if fmt == 0 {
            header.msid = u32::from_le_bytes([fields[7], fields[8], fields[9], fields[10]]);
        }
        if header.extended {
            let Some(ext) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            header.time = be32(ext);
            header.len += 4;
        } else if let Some((value, state)) = state
            .filter(|_| fmt == 3)
            .and_then(|s| Some((s.extended?, s)))
        {
            let Some(ext) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            // Some peers do not repeat the extended timestamp on continuation
            // chunks; like SRS, treat the bytes as payload unless they match.
            let ext = be32(ext);
            if !state.in_progress || ext == value || ext == state.timestamp {
                header.len += 4;
            }
        }
        Ok(Some(header))
    }
}

/// Per chunk stream header state kept by the encoder.
#[derive(Debug, Clone, Copy)]
struct EncodeState {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    msid: u32,
    /// The last header was type 0; peers disagree on the delta a type 3
    /// message applies after it, so we never send that combination.
    after_fmt0: bool,
    /// The extended timestamp the last type 0/1/2 header carried, repeated
    /// in its continuation chunks.
    extended: Option<u32>,
}

/// Splits messages into chunks with header compression (RTMP spec 5.3).
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    streams: CsidMap<EncodeState>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An encoder with chunk size 128.
    pub fn new() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: CsidMap::default(),
        }
    }

    /// Sets the chunk size for following messages, clamped to
    /// 1..=0xFFFFFF bytes (no message is longer). Announce it to the peer
    /// with a Set Chunk Size message first (RTMP spec 5.4.1).
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_MESSAGE_LENGTH);
    }

    /// The current chunk size in bytes.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Appends `msg` as chunks to `out`.
    ///
    /// Uses a type 0 header for the first message of a chunk stream, when
    /// the message stream id changes or the timestamp goes backwards;
    /// types 1/2/3 otherwise; type 3 for continuation chunks. A `csid`
    /// outside 2..=65599 is clamped into that range. A payload longer than
    /// 0xFFFFFF bytes cannot be expressed in RTMP; it is dropped with a
    /// warning.
    pub fn encode(&mut self, msg: &RawMessage, out: &mut BytesMut) {
        let Ok(length) = u32::try_from(msg.payload.len()) else {
            tracing::warn!(len = msg.payload.len(), "dropping oversized RTMP message");
            return;
        };
        if length > MAX_MESSAGE_LENGTH {
            tracing::warn!(len = length, "dropping oversized RTMP message");
            return;
        }
        let csid = msg.csid.clamp(MIN_CSID, MAX_CSID);
        out.reserve(msg.payload.len() + 18 + msg.payload.len() / self.chunk_size as usize * 8);
        let header = MessageHeader {
            timestamp: msg.timestamp,
            length,
            type_id: msg.type_id,
            msid: msg.msid,
        };
        self.write_first_header(csid, &header, out);
        let mut chunks = msg.payload.chunks(self.chunk_size as usize);
        if let Some(first) = chunks.next() {
            out.put_slice(first);
        }
        for chunk in chunks {
            self.write_continuation_header(csid, out);
            out.put_slice(chunk);
        }
    }

    /// Appends the header of a message's first chunk to `out`, compressed
    /// against this chunk stream's previous header as [`ChunkEncoder::encode`]
    /// does; the caller appends at most [`ChunkEncoder::chunk_size`] bytes
    /// of payload after it, then a [`ChunkEncoder::write_continuation_header`]
    /// before each further chunk of at most that size.
    ///
    /// `csid` must be in 2..=65599 (it is clamped) and `header.length` at
    /// most 0xFFFFFF (it is written as its low 24 bits).
    pub fn write_first_header(&mut self, csid: u32, header: &MessageHeader, out: &mut BytesMut) {
        let csid = csid.clamp(MIN_CSID, MAX_CSID);
        let length = header.length & MAX_MESSAGE_LENGTH;
        let prev = self.streams.get(&csid).copied();
        let (fmt, time) = match prev {
            Some(p) if p.msid == header.msid && header.timestamp >= p.timestamp => {
                let delta = header.timestamp - p.timestamp;
                if p.length != length || p.type_id != header.type_id {
                    (1, delta)
                } else if delta == p.delta && !p.after_fmt0 && delta < EXTENDED {
                    (3, delta)
                } else {
                    (2, delta)
                }
            }
            _ => (0, header.timestamp),
        };
        let extended = (fmt != 3 && time >= EXTENDED).then_some(time);
        self.streams.insert(
            csid,
            EncodeState {
                timestamp: header.timestamp,
                delta: time,
                length,
                type_id: header.type_id,
                msid: header.msid,
                after_fmt0: fmt == 0,
                extended,
            },
        );
        write_basic_header(out, fmt, csid);
        if fmt <= 2 {
            out.put_uint(u64::from(time.min(EXTENDED)), 3);
        }
        if fmt <= 1 {
            out.put_uint(u64::from(length), 3);
            out.put_u8(header.type_id);
        }
        if fmt == 0 {
            out.put_u32_le(header.msid);
        }
        if let Some(time) = extended {
            out.put_u32(time);
        }
    }

    /// Appends a type 3 header continuing the message last started on
    /// `csid` (clamped to 2..=65599), repeating its extended timestamp if it
    /// had one, as SRS and FFmpeg expect (RTMP spec 5.3.1.3).
    pub fn write_continuation_header(&mut self, csid: u32, out: &mut BytesMut) {
        let csid = csid.clamp(MIN_CSID, MAX_CSID);
        write_basic_header(out, 3, csid);
        if let Some(time) = self.streams.get(&csid).and_then(|s| s.extended) {
            out.put_u32(time);
        }
    }
}

fn write_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        2..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => {
            out.put_u8(fmt);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            out.put_u8(fmt | 1);
            out.put_u16_le((csid - 64) as u16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(csid: u32, timestamp: u32, type_id: u8, msid: u32, len: usize) -> RawMessage {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + csid as usize) as u8).collect();
        RawMessage {
            csid,
            timestamp,
            type_id,
            msid,
            payload: payload.into(),
        }
    }

    fn encode_all(messages: &[RawMessage], chunk_size: u32) -> BytesMut {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(chunk_size);
        let mut out = BytesMut::new();
        for m in messages {
            enc.encode(m, &mut out);
        }
        out
    }

    fn decode_all(dec: &mut ChunkDecoder, buf: &mut BytesMut) -> Vec<RawMessage> {
        let mut got = vec![];
        while let Some(m) = dec.decode(buf).unwrap() {
            got.push(m);
        }
        got
    }

    fn sample_messages() -> Vec<RawMessage> {
        vec![
            msg(3, 0, 20, 0, 300),
            msg(6, 0, 9, 1, 5000),
            msg(7, 0, 8, 1, 10),
            msg(6, 40, 9, 1, 5000),
            msg(7, 23, 8, 1, 10),
            msg(7, 46, 8, 1, 10),
            msg(7, 69, 8, 1, 10),
            msg(6, 80, 9, 1, 200),
            msg(6, 30, 9, 1, 200),
            msg(4, 0xFFFF_FF00, 18, 1, 500),
            msg(4, 0xFFFF_FF10, 18, 1, 500),
            msg(5, 0x0100_0000, 9, 1, 400),
            msg(5, 0x0100_0000, 9, 1, 400),
            msg(6, 100, 9, 2, 0),
            msg(300, 5, 8, 1, 129),
            msg(65599, 6, 8, 1, 257),
            msg(64, 7, 8, 1, 1),
            msg(63, 7, 8, 1, 1),
            msg(320, 7, 8, 1, 1),
        ]
    }

    #[test]
    fn roundtrip_chunk_sizes() {
        let messages = sample_messages();
        for size in [1, 128, 4096, 60000] {
            let mut buf = encode_all(&messages, size);
            let mut dec = ChunkDecoder::new(Limits::default());
            dec.set_chunk_size(size).unwrap();
            assert_eq!(
                decode_all(&mut dec, &mut buf),
                messages,
                "chunk size {size}"
            );
            assert!(buf.is_empty());
            assert!(!dec.has_partial_message());
        }
    }

    #[test]
    fn interleaved_chunk_streams() {
        // Hand-interleave chunks of two messages on different csids.
        let a = msg(6, 1000, 9, 1, 300);
        let b = msg(7, 1001, 8, 1, 200);
        let mut wa = BytesMut::new();
        let mut wb = BytesMut::new();
        ChunkEncoder::new().encode(&a, &mut wa);
        ChunkEncoder::new().encode(&b, &mut wb);
        // a: 12+128, 1+128, 1+44; b: 12+128, 1+72
        let mut stream = BytesMut::new();
        stream.extend_from_slice(&wa[..140]);
        stream.extend_from_slice(&wb[..140]);
        stream.extend_from_slice(&wa[140..269]);
        stream.extend_from_slice(&wb[140..]);
        stream.extend_from_slice(&wa[269..]);
        let mut dec = ChunkDecoder::new(Limits::default());
        assert_eq!(decode_all(&mut dec, &mut stream), vec![b, a]);
    }

    #[test]
    fn every_split_point_and_byte_at_a_time() {
        let messages = sample_messages();
        let bytes = encode_all(&messages, 128);
        for split in 0..=bytes.len() {
            let mut dec = ChunkDecoder::new(Limits::default());
            let mut buf = BytesMut::from(&bytes[..split]);
            let mut got = decode_all(&mut dec, &mut buf);
            buf.extend_from_slice(&bytes[split..]);
            got.extend(decode_all(&mut dec, &mut buf));
            assert_eq!(got, messages, "split at {split}");
        }
        let mut dec = ChunkDecoder::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = vec![];
        for &b in bytes.iter() {
            buf.put_u8(b);
            got.extend(decode_all(&mut dec, &mut buf));
        }
        assert_eq!(got, messages);
    }

    #[test]
    fn header_compression_and_deltas() {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        enc.encode(&msg(6, 100, 9, 1, 10), &mut out);
        assert_eq!(out[0] >> 6, 0);
        out.clear();
        enc.encode(&msg(6, 140, 9, 1, 10), &mut out);
        assert_eq!(out[0] >> 6, 2, "same length/type: fmt 2");
        out.clear();
        enc.encode(&msg(6, 180, 9, 1, 10), &mut out);
        assert_eq!(out[0] >> 6, 3, "same delta: fmt 3");
        assert_eq!(out.len(), 11);
        out.clear();
        enc.encode(&msg(6, 190, 9, 1, 11), &mut out);
        assert_eq!(out[0] >> 6, 1, "new length: fmt 1");
        out.clear();
        enc.encode(&msg(6, 150, 9, 1, 11), &mut out);
        assert_eq!(out[0] >> 6, 0, "backwards: fmt 0");
        out.clear();
        enc.encode(&msg(6, 160, 9, 2, 11), &mut out);
        assert_eq!(out[0] >> 6, 0, "new msid: fmt 0");
    }

    #[test]
    fn decodes_spec_example_deltas() {
        // RTMP spec 5.3.2.1: fmt 0, fmt 2, fmt 3, fmt 3 on one chunk stream.
        let mut buf = BytesMut::new();
        buf.put_slice(&[0x03, 0, 0x03, 0xE8, 0, 0, 2, 8, 0x01, 0, 0, 0, 0xAA, 0xBB]);
        buf.put_slice(&[0x83, 0, 0, 20, 0xCC, 0xDD]);
        buf.put_slice(&[0xC3, 0xEE, 0xFF]);
        buf.put_slice(&[0xC3, 0x11, 0x22]);
        let mut dec = ChunkDecoder::new(Limits::default());
        let got = decode_all(&mut dec, &mut buf);
        let stamps: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(stamps, vec![1000, 1020, 1040, 1060]);
        assert!(got
            .iter()
            .all(|m| m.msid == 1 && m.type_id == 8 && m.payload.len() == 2));
        // A type 3 message right after type 0 reuses the absolute time as delta.
        let mut buf = BytesMut::new();
        buf.put_slice(&[0x04, 0, 0, 10, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA]);
        buf.put_slice(&[0xC4, 0xBB]);
        let got = decode_all(&mut dec, &mut buf);
        assert_eq!(got[1].timestamp, 20);
    }

    #[test]
    fn extended_timestamps() {
        let m = msg(6, 0x0123_4567, 9, 1, 300);
        let mut out = BytesMut::new();
        ChunkEncoder::new().encode(&m, &mut out);
        assert_eq!(&out[1..4], &[0xFF, 0xFF, 0xFF]);
        assert_eq!(&out[12..16], &[0x01, 0x23, 0x45, 0x67]);
        // The continuation chunk repeats the extended timestamp.
        assert_eq!(out[16 + 128], 0xC6);
        assert_eq!(&out[17 + 128..21 + 128], &[0x01, 0x23, 0x45, 0x67]);
        let mut dec = ChunkDecoder::new(Limits::default());
        assert_eq!(dec.decode(&mut out).unwrap(), Some(m.clone()));

        // A peer that does not repeat it on continuation chunks.
        let mut lenient = BytesMut::new();
        lenient.put_slice(&[0x06, 0xFF, 0xFF, 0xFF, 0, 1, 0x2C, 9, 1, 0, 0, 0]);
        lenient.put_slice(&[0x01, 0x23, 0x45, 0x67]);
        lenient.put_slice(&m.payload[..128]);
        lenient.put_u8(0xC6);
        lenient.put_slice(&m.payload[128..256]);
        lenient.put_u8(0xC6);
        lenient.put_slice(&m.payload[256..]);
        let mut dec = ChunkDecoder::new(Limits::default());
        assert_eq!(dec.decode(&mut lenient).unwrap(), Some(m));

        // Extended delta on a type 1 header.
        let a = msg(6, 10, 9, 1, 5);
        let b = msg(6, 10 + 0x0200_0000, 9, 1, 6);
        let mut out = encode_all(&[a.clone(), b.clone()], 128);
        let mut dec = ChunkDecoder::new(Limits::default());
        assert_eq!(decode_all(&mut dec, &mut out), vec![a, b]);
    }

    #[test]
    fn timestamp_wraps() {
        let mut buf = BytesMut::new();
        buf.put_slice(&[0x06, 0xFF, 0xFF, 0xFF, 0, 0, 1, 9, 1, 0, 0, 0]);
        buf.put_slice(&[0xFF, 0xFF, 0xFF, 0xF0, 0xAA]);
        buf.put_slice(&[0x86, 0, 0, 0x20, 0xBB]);
        let mut dec = ChunkDecoder::new(Limits::default());
        let got = decode_all(&mut dec, &mut buf);
        assert_eq!(got[0].timestamp, 0xFFFF_FFF0);
        assert_eq!(got[1].timestamp, 0x10);
    }

    #[test]
    fn limits_can_be_raised_after_setup() {
        let big = msg(6, 0, 9, 1, 100_000);
        let mut dec = ChunkDecoder::new(Limits::setup());
        let mut buf = encode_all(std::slice::from_ref(&big), 4096);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(ChunkError::MessageTooLarge { size: 100_000, .. })
        ));
        let mut dec = ChunkDecoder::new(Limits::setup());
        dec.set_limits(Limits::default());
        let mut buf = encode_all(std::slice::from_ref(&big), 128);
        assert_eq!(decode_all(&mut dec, &mut buf), vec![big]);
    }

    #[test]
    fn limits_are_errors() {
        let limits = Limits {
            max_message_size: 1000,
            max_chunk_size: 4096,
            max_chunk_streams: 3,
        };
        let mut dec = ChunkDecoder::new(limits);
        let mut buf = BytesMut::from(&[0x06, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ChunkError::MessageTooLarge {
                size: 0xFF_FFFF,
                limit: 1000
            })
        );

        assert!(matches!(
            dec.set_chunk_size(4097),
            Err(ChunkError::InvalidChunkSize { size: 4097, .. })
        ));
        assert!(dec.set_chunk_size(0).is_err());
        assert!(dec.set_chunk_size(4096).is_ok());
        assert!(ChunkDecoder::new(Limits::default())
            .set_chunk_size(0x8000_0000)
            .is_err());

        let mut dec = ChunkDecoder::new(limits);
        let mut buf = encode_all(
            &[
                msg(2, 0, 1, 0, 1),
                msg(3, 0, 1, 0, 1),
                msg(4, 0, 1, 0, 1),
                msg(5, 0, 1, 0, 1),
            ],
            128,
        );
        for _ in 0..3 {
            assert!(dec.decode(&mut buf).unwrap().is_some());
        }
        assert_eq!(
            dec.decode(&mut buf),
            Err(ChunkError::TooManyChunkStreams { limit: 3 })
        );

        let mut dec = ChunkDecoder::new(limits);
        let mut buf = BytesMut::from(&[0x45, 0, 0, 0, 0, 0, 1, 9, 0xAA][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ChunkError::UnknownChunkStream { csid: 5, fmt: 1 })
        );
        let mut buf = BytesMut::from(&[0xC5][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ChunkError::UnknownChunkStream { csid: 5, fmt: 3 })
        );
    }

    #[test]
    fn partial_buffering_is_bounded() {
        let limits = Limits {
            max_message_size: 1000,
            max_chunk_size: 4096,
            max_chunk_streams: 64,
        };
        let mut dec = ChunkDecoder::new(limits);
        let mut buf = BytesMut::new();
        for csid in 3..10u8 {
            // 1000-byte messages, only the first 400 bytes sent.
            buf.put_slice(&[csid, 0, 0, 0, 0, 0x03, 0xE8, 9, 1, 0, 0, 0]);
            buf.put_slice(&[0u8; 400]);
        }
        dec.set_chunk_size(400).unwrap();
        // decode() keeps consuming chunks until the bound trips.
        assert!(matches!(
            dec.decode(&mut buf),
            Err(ChunkError::BufferedTooMuch { limit: 2000, .. })
        ));
    }

    #[test]
    fn abort_drops_partial() {
        let mut dec = ChunkDecoder::new(Limits::default());
        let m = msg(6, 0, 9, 1, 200);
        let mut bytes = BytesMut::new();
        ChunkEncoder::new().encode(&m, &mut bytes);
        let mut buf = BytesMut::from(&bytes[..140]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert!(dec.has_partial_message());
        dec.abort(6);
        assert!(!dec.has_partial_message());
        dec.abort(99);
        // A fresh message on the same csid decodes normally.
        let mut buf = BytesMut::new();
        ChunkEncoder::new().encode(&m, &mut buf);
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(m));
    }

    #[test]
    fn large_message_grows_without_preallocation() {
        let m = msg(6, 0, 9, 1, 100_000);
        let mut buf = encode_all(std::slice::from_ref(&m), 4096);
        let mut dec = ChunkDecoder::new(Limits::default());
        dec.set_chunk_size(4096).unwrap();
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(m));
    }

    #[test]
    fn encoder_clamps() {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(0);
        assert_eq!(enc.chunk_size(), 1);
        enc.set_chunk_size(u32::MAX);
        assert_eq!(enc.chunk_size(), MAX_MESSAGE_LENGTH);
        let mut out = BytesMut::new();
        enc.encode(&msg(0, 0, 8, 1, 1), &mut out);
        assert_eq!(out[0], 0x02);
    }
}
