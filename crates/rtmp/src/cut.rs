//! Cut-through relaying of RTMP chunk streams between two connections
//! (docs/design.md §6.1), sans-IO.
//!
//! Media and data messages (audio 8, video 9, data 15/18, aggregate 22) are
//! not reassembled: each chunk goes to the other leg as it arrives, its
//! payload bytes copied unchanged, so a relay holds no more of a message
//! than its buffers. Only chunk headers are parsed (to track message
//! boundaries per chunk stream, RTMP spec 5.3.1), and each chunk is sent
//! with a header of the outgoing connection's own header compression
//! (types 0..3 against what that leg last sent on the chunk stream, the
//! message stream id mapped), so per-hop messages can sit between chunks.
//!
//! A chunk's payload can only go out as it came in when both hops use the
//! same chunk size: before forwarding a message, and whenever the sending
//! peer changes its chunk size while forwarded messages are in progress,
//! the outgoing connection announces the incoming one's size (Set Chunk
//! Size, RTMP spec 5.4.1) at that chunk boundary. Every size the decoder
//! accepts can be followed (sizes above 0xFFFFFF act as 0xFFFFFF: no
//! message is longer), so the sizes always match.
//!
//! Everything else (protocol control, user control, commands, unknown
//! types, and any message on chunk stream 2) is reassembled and returned to
//! the caller, which decodes it, maps it and sends it whole, or drops it.

use bytes::Buf;

use crate::chunk::{Piece, RawMessage, MAX_MESSAGE_LENGTH};
use crate::conn::Connection;
use crate::error::RtmpError;
use crate::message::{csid, type_id, Message};

/// Message stream ids of one relayed session: stream-scoped messages
/// arriving with `from` leave with `to`; other ids pass unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsidMap {
    /// The message stream id on the receiving leg.
    pub from: u32,
    /// The message stream id on the sending leg.
    pub to: u32,
}

impl MsidMap {
    /// `msid` as the outgoing leg knows it.
    pub fn map(&self, msid: u32) -> u32 {
        if msid == self.from {
            self.to
        } else {
            msid
        }
    }
}

/// True for messages the relay forwards chunk by chunk: audio, video, data
/// (AMF0 and AMF3) and aggregate messages (RTMP spec 7.1), on any chunk
/// stream but 2 (protocol control, where the relay inserts its own).
pub fn is_cut_through(chunk_stream: u32, message_type: u8) -> bool {
    chunk_stream != csid::PROTOCOL_CONTROL
        && matches!(
            message_type,
            type_id::AUDIO
                | type_id::VIDEO
                | type_id::DATA_AMF0
                | type_id::DATA_AMF3
                | type_id::AGGREGATE
        )
}

/// Moves what `from`'s input holds to `to`'s output: forwarded chunks are
/// copied through as they arrive; per-hop control messages are handled on
/// `from` as [`Connection::poll_message`] does (acknowledgements, ping
/// responses and window sizes are queued on `from`'s own output). Returns
/// the next reassembled message that is not per-hop control (a command, a
/// user-control stream event, an unknown type) for the caller to map and
/// send to `to` (it is at a chunk boundary then), or `Ok(None)` when more
/// input is needed or `to`'s output holds `budget` bytes or more.
///
/// `to`'s output grows past `budget` by at most one chunk header and the
/// control messages the relay queues (Set Chunk Size, Abort). A forwarded
/// message that `from`'s peer drops half-way (Abort, or a new header on its
/// chunk stream) is aborted on `to` too.
///
/// Errors: those of [`Connection::poll_message`]; `from` is unusable
/// afterwards.
pub fn relay(
    from: &mut Connection,
    to: &mut Connection,
    msids: MsidMap,
    budget: usize,
) -> Result<Option<RawMessage>, RtmpError> {
    loop {
        if let Some(remaining) = from.decoder.forwarding() {
            let room = budget.saturating_sub(to.output.len());
            let n = (remaining as usize).min(from.input.len()).min(room);
            if n == 0 {
                return Ok(None);
            }
            to.output.extend_from_slice(&from.input[..n]);
            from.input.advance(n);
            from.bytes_received += n as u64;
            to.bytes_sent += n as u64;
            // n <= remaining, a u32.
            if from.decoder.consume_forwarded(n as u32) {
                to.end_chunk();
            }
            from.maybe_acknowledge();
            continue;
        }
        if to.output.len() >= budget {
            return Ok(None);
        }
        let size = from.decoder.chunk_size().min(MAX_MESSAGE_LENGTH);
        if size != to.encoder.chunk_size() && from.decoder.forwarding_any() {
            // The peer changed its chunk size between chunks of forwarded messages: the far
            // side must switch at this same boundary for their remaining chunks to match.
            to.set_chunk_size(size);
        }
        let before = from.input.len();
        let piece = from
            .decoder
            .next_piece(&mut from.input, |chunk_stream, message_type| {
                if !is_cut_through(chunk_stream, message_type) {
                    return false;
                }
                if to.encoder.chunk_size() != size {
                    to.set_chunk_size(size);
                }
                true
            });
        from.bytes_received += (before - from.input.len()) as u64;
        from.maybe_acknowledge();
        let piece = piece?;
        abort_discarded(from, to);
        match piece {
            Piece::Incomplete => return Ok(None),
            Piece::Forward {
                csid,
                first,
                mut header,
                len,
            } => {
                let out_before = to.output.len();
                if first {
                    header.msid = msids.map(header.msid);
                    to.encoder.write_first_header(csid, &header, &mut to.output);
                } else {
                    to.encoder.write_continuation_header(csid, &mut to.output);
                }
                to.bytes_sent += (to.output.len() - out_before) as u64;
                to.mid_chunk = len > 0;
            }
            Piece::Message(raw) => {
                let control = from.handle_control(&raw)?;
                abort_discarded(from, to);
                if !control {
                    return Ok(Some(raw));
                }
            }
        }
    }
}

/// Tells `to` to drop the forwarded partial message `from`'s peer gave up.
fn abort_discarded(from: &mut Connection, to: &mut Connection) {
    if let Some(chunk_stream) = from.decoder.take_discarded() {
        to.send_control(&Message::Abort(chunk_stream));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};

    use bytes::BytesMut;

    use super::*;
    use crate::chunk::{ChunkDecoder, ChunkEncoder, Limits, MessageHeader};
    use crate::message::UserControl;

    const MSIDS: MsidMap = MsidMap { from: 1, to: 7 };

    fn msg(csid: u32, timestamp: u32, type_id: u8, msid: u32, len: usize) -> RawMessage {
        let payload: Vec<u8> = (0..len)
            .map(|i| (i * 31 + csid as usize + timestamp as usize) as u8)
            .collect();
        RawMessage {
            csid,
            timestamp,
            type_id,
            msid,
            payload: payload.into(),
        }
    }

    fn control(m: Message) -> RawMessage {
        m.to_raw(csid::PROTOCOL_CONTROL, 0, 0)
    }

    /// A stream of media, data, aggregate, command and user-control messages
    /// on several chunk streams, with every header type and extended
    /// timestamps (absolute and as deltas).
    fn sample() -> Vec<RawMessage> {
        let mut v = vec![
            msg(5, 0, type_id::DATA_AMF0, 1, 400),
            msg(6, 0, type_id::VIDEO, 1, 150_000),
            msg(7, 0, type_id::AUDIO, 1, 300),
        ];
        for i in 1..40u32 {
            v.push(msg(7, i * 23, type_id::AUDIO, 1, 300));
            v.push(msg(6, i * 40, type_id::VIDEO, 1, 5_000 + (i as usize % 3)));
            if i % 10 == 0 {
                v.push(msg(5, i * 40, type_id::DATA_AMF0, 1, 60));
                v.push(msg(5, i * 40, type_id::DATA_AMF3, 1, 61));
                v.push(msg(8, i * 40, type_id::AGGREGATE, 1, 9_000));
                v.push(Message::UserControl(UserControl::StreamBegin(1)).to_raw(2, 0, 0));
                v.push(
                    Message::Command(crate::message::Command::on_status("status", "X", "y"))
                        .to_raw(5, 0, 1),
                );
            }
        }
        v.push(msg(9, 0x00FF_FFFF, type_id::VIDEO, 1, 70_000));
        v.push(msg(9, 0x0123_4567, type_id::VIDEO, 1, 70_000));
        v.push(msg(9, 0x0123_4567 + 0x0100_0000, type_id::VIDEO, 1, 300));
        v.push(msg(10, 1, type_id::VIDEO, 3, 0));
        v.push(msg(10, 2, 30, 1, 10));
        v.push(msg(300, 5, type_id::AUDIO, 1, 129));
        v.push(msg(65599, 6, type_id::AUDIO, 1, 257));
        v
    }

    /// What a peer sends: Set Chunk Size `size`, then `messages`.
    fn peer_stream(messages: &[RawMessage], size: u32) -> BytesMut {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        enc.encode(&control(Message::SetChunkSize(size)), &mut out);
        enc.set_chunk_size(size);
        for m in messages {
            enc.encode(m, &mut out);
        }
        out
    }

    /// Writes `messages` with their chunk streams interleaved chunk by chunk
    /// (one chunk of each chunk stream's current message in turn), sending
    /// Set Chunk Size `size` after chunk number `at` for each `(at, size)`.
    fn interleaved(messages: &[RawMessage], first_size: u32, changes: &[(usize, u32)]) -> BytesMut {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        enc.encode(&control(Message::SetChunkSize(first_size)), &mut out);
        enc.set_chunk_size(first_size);
        let mut queues: BTreeMap<u32, VecDeque<&RawMessage>> = BTreeMap::new();
        for m in messages {
            queues.entry(m.csid).or_default().push_back(m);
        }
        let mut active: BTreeMap<u32, (&RawMessage, usize)> = BTreeMap::new();
        let mut chunks = 0;
        loop {
            let mut wrote = false;
            for (&csid, queue) in queues.iter_mut() {
                let (m, offset) = match active.remove(&csid) {
                    Some(a) => a,
                    None => match queue.pop_front() {
                        Some(m) => (m, usize::MAX),
                        None => continue,
                    },
                };
                wrote = true;
                let start = if offset == usize::MAX {
                    let header = MessageHeader {
                        timestamp: m.timestamp,
                        length: m.payload.len() as u32,
                        type_id: m.type_id,
                        msid: m.msid,
                    };
                    enc.write_first_header(csid, &header, &mut out);
                    0
                } else {
                    enc.write_continuation_header(csid, &mut out);
                    offset
                };
                let end = (start + enc.chunk_size() as usize).min(m.payload.len());
                out.extend_from_slice(&m.payload[start..end]);
                if end < m.payload.len() {
                    active.insert(csid, (m, end));
                }
                chunks += 1;
                for &(_, size) in changes.iter().filter(|(at, _)| *at == chunks) {
                    enc.encode(&control(Message::SetChunkSize(size)), &mut out);
                    enc.set_chunk_size(size);
                }
            }
            if !wrote {
                return out;
            }
        }
    }

    /// The far side of `to`: decodes what the relay sent, applying Set Chunk
    /// Size and Abort, and returns every other message.
    struct Far {
        dec: ChunkDecoder,
        /// Received bytes not decoded yet (the relay may stop inside a chunk).
        buf: BytesMut,
        got: Vec<RawMessage>,
        aborts: usize,
        chunk_sizes: Vec<u32>,
    }

    impl Far {
        fn new() -> Far {
            Far {
                dec: ChunkDecoder::new(Limits::default()),
                buf: BytesMut::new(),
                got: vec![],
                aborts: 0,
                chunk_sizes: vec![],
            }
        }

        fn read(&mut self, to: &mut Connection) {
            self.buf.extend_from_slice(&to.output_buffer().split());
            while let Some(raw) = self.dec.decode(&mut self.buf).unwrap() {
                match raw.type_id {
                    type_id::SET_CHUNK_SIZE => {
                        let Ok(Message::SetChunkSize(size)) = Message::parse(&raw) else {
                            panic!("bad set chunk size");
                        };
                        self.dec.set_chunk_size(size).unwrap();
                        self.chunk_sizes.push(size);
                    }
                    type_id::ABORT => {
                        let Ok(Message::Abort(csid)) = Message::parse(&raw) else {
                            panic!("bad abort");
                        };
                        self.dec.abort(csid);
                        self.aborts += 1;
                    }
                    _ => self.got.push(raw),
                }
            }
        }
    }

    /// The proxy's side: a connection per leg after session setup (the far
    /// leg already sends with chunk size 60000).
    fn legs() -> (Connection, Connection) {
        let from = Connection::new(Limits::default());
        let mut to = Connection::new(Limits::default());
        to.set_chunk_size(60_000);
        (from, to)
    }

    /// Feeds `input` to the relay in pieces of the sizes `pieces` cycles
    /// through, with an output budget of `budget`, sending what it returns
    /// (msid mapped) like the proxy; returns the far side.
    fn run(input: &[u8], pieces: &[usize], budget: usize) -> Far {
        let (mut from, mut to) = legs();
        let mut far = Far::new();
        far.read(&mut to);
        let mut rest = input;
        let mut i = 0;
        while !rest.is_empty() || from.input_len() > 0 {
            let n = pieces[i % pieces.len()].min(rest.len());
            i += 1;
            from.input_buffer().extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(mut raw) = relay(&mut from, &mut to, MSIDS, budget).unwrap() {
                raw.msid = MSIDS.map(raw.msid);
                to.send(&raw);
            }
            assert!(to.output_buffer().len() <= budget.saturating_add(256));
            far.read(&mut to);
            assert!(i < 100_000_000, "no progress");
        }
        assert!(!to.mid_chunk);
        assert!(from.at_message_boundary());
        assert!(far.buf.is_empty(), "the far side has a partial chunk left");
        assert!(!far.dec.has_partial_message());
        far
    }

    /// The messages the far side must get: the non-control input messages
    /// with the message stream id mapped.
    fn expected(messages: &[RawMessage]) -> Vec<RawMessage> {
        messages
            .iter()
            .filter(|m| m.type_id > type_id::SET_PEER_BANDWIDTH || m.type_id == 4)
            .map(|m| RawMessage {
                msid: MSIDS.map(m.msid),
                ..m.clone()
            })
            .collect()
    }

    #[test]
    fn chunk_sizes_128_to_65536_match_reassembly() {
        let messages = sample();
        for size in [128, 1000, 4096, 60_000, 65_536] {
            let input = peer_stream(&messages, size);
            let far = run(&input, &[input.len()], usize::MAX);
            assert_eq!(far.got, expected(&messages), "chunk size {size}");
            assert_eq!(far.aborts, 0);
            // The far leg follows the peer's chunk size (60000 needs no change).
            let followed: Vec<u32> = far.chunk_sizes.iter().copied().skip(1).collect();
            if size == 60_000 {
                assert!(followed.is_empty());
            } else {
                assert_eq!(followed, vec![size]);
            }
        }
    }

    #[test]
    fn pieces_and_budgets() {
        let messages = sample();
        let input = peer_stream(&messages, 4096);
        for (pieces, budget) in [
            (&[1usize][..], 1),
            (&[7, 1, 300, 13][..], 100),
            (&[16_384][..], 16_384),
            (&[65_536, 3][..], 32_768),
        ] {
            let far = run(&input, pieces, budget);
            assert_eq!(
                far.got,
                expected(&messages),
                "pieces {pieces:?} budget {budget}"
            );
        }
    }

    #[test]
    fn payload_goes_out_as_it_came_in() {
        // A forwarded message costs the same bytes on both legs: the same chunking,
        // and headers of the same types where the compression state agrees.
        let messages: Vec<RawMessage> = (0..20)
            .map(|i| msg(6, i * 40, type_id::VIDEO, 1, 10_000))
            .collect();
        let input = peer_stream(&messages, 4096);
        let mut from = Connection::new(Limits::default());
        let mut to = Connection::new(Limits::default());
        from.input_buffer().extend_from_slice(&input);
        assert!(
            relay(&mut from, &mut to, MsidMap { from: 1, to: 1 }, usize::MAX)
                .unwrap()
                .is_none()
        );
        // The relay's own Set Chunk Size 4096 takes the place of the peer's.
        assert_eq!(&to.output_buffer()[..], &input[..]);
    }

    #[test]
    fn chunk_size_changes_mid_message() {
        let mut messages = vec![];
        for i in 0..12u32 {
            messages.push(msg(6, i * 40, type_id::VIDEO, 1, 20_000 + i as usize * 77));
            messages.push(msg(7, i * 23, type_id::AUDIO, 1, 400));
            messages.push(msg(5, i * 40, type_id::DATA_AMF0, 1, 3_000));
        }
        messages.push(
            Message::Command(crate::message::Command::on_status("status", "X", "y"))
                .to_raw(4, 0, 1),
        );
        let changes = [
            (3, 1_000),
            (10, 128),
            (11, 65_536),
            (25, 4_096),
            (40, 60_000),
            (41, 129),
        ];
        let input = interleaved(&messages, 2_000, &changes);
        for (pieces, budget) in [(&[input.len()][..], usize::MAX), (&[5, 999][..], 700)] {
            let far = run(&input, pieces, budget);
            let mut want = expected(&messages);
            let mut got = far.got.clone();
            // Interleaving reorders messages across chunk streams: compare per chunk stream.
            want.sort_by_key(|m| m.csid);
            got.sort_by_key(|m| m.csid);
            assert_eq!(got, want);
            assert_eq!(far.aborts, 0);
            assert!(far.chunk_sizes.ends_with(&[129]));
        }
    }

    #[test]
    fn extended_timestamp_continuations() {
        let messages = vec![
            msg(6, 0x0123_4567, type_id::VIDEO, 1, 300),
            msg(6, 0x0123_4567 + 0x0100_0000, type_id::VIDEO, 1, 300),
            msg(6, 0x0123_4567 + 0x0100_0000 + 40, type_id::VIDEO, 1, 300),
        ];
        let far = run(&peer_stream(&messages, 128), &[5], 64);
        assert_eq!(far.got, expected(&messages));

        // A peer that does not repeat the extended timestamp in type 3 chunks.
        let m = msg(6, 0x0123_4567, type_id::VIDEO, 1, 300);
        let mut lenient = BytesMut::new();
        lenient.extend_from_slice(&[0x06, 0xFF, 0xFF, 0xFF, 0, 1, 0x2C, 9, 1, 0, 0, 0]);
        lenient.extend_from_slice(&[0x01, 0x23, 0x45, 0x67]);
        lenient.extend_from_slice(&m.payload[..128]);
        lenient.extend_from_slice(&[0xC6]);
        lenient.extend_from_slice(&m.payload[128..256]);
        lenient.extend_from_slice(&[0xC6]);
        lenient.extend_from_slice(&m.payload[256..]);
        let far = run(&lenient, &[1], 1);
        assert_eq!(far.got, expected(&[m]));
    }

    #[test]
    fn every_header_type_in_the_input() {
        // RTMP spec 5.3.2.1-style sequence: type 0, 2, 3 (new message), 1, and type 3
        // continuations, written by hand.
        let mut input = BytesMut::new();
        input.extend_from_slice(&[0x04, 0, 0x03, 0xE8, 0, 0, 2, 8, 1, 0, 0, 0, 0xAA, 0xBB]);
        input.extend_from_slice(&[0x84, 0, 0, 20, 0xCC, 0xDD]);
        input.extend_from_slice(&[0xC4, 0xEE, 0xFF]);
        input.extend_from_slice(&[0x44, 0, 0, 5, 0, 0, 0x82, 9]);
        input.extend_from_slice(&[0u8; 128]);
        input.extend_from_slice(&[0xC4, 1, 2]);
        let far = run(&input, &[3], 10);
        let stamps: Vec<(u32, u8, usize)> = far
            .got
            .iter()
            .map(|m| (m.timestamp, m.type_id, m.payload.len()))
            .collect();
        assert_eq!(
            stamps,
            vec![(1000, 8, 2), (1020, 8, 2), (1040, 8, 2), (1045, 9, 130)]
        );
        assert!(far.got.iter().all(|m| m.msid == 7));
    }

    #[test]
    fn aborts_reach_the_far_side() {
        let a = msg(6, 0, type_id::VIDEO, 1, 1_000);
        let b = msg(6, 40, type_id::VIDEO, 1, 500);
        let mut enc = ChunkEncoder::new();
        let mut whole_a = BytesMut::new();
        enc.encode(&a, &mut whole_a);
        // The first 2 chunks of `a`, then Abort, then `b`.
        let mut input = BytesMut::from(&whole_a[..12 + 128 + 1 + 128]);
        ChunkEncoder::new().encode(&control(Message::Abort(6)), &mut input);
        enc.encode(&b, &mut input);
        let far = run(&input, &[50], 1_000);
        assert_eq!(far.got, expected(std::slice::from_ref(&b)));
        assert_eq!(far.aborts, 1);

        // A new type 0 header in the middle of a message drops it too.
        let mut input = BytesMut::from(&whole_a[..12 + 128 + 1 + 128]);
        let mut enc = ChunkEncoder::new();
        enc.encode(&msg(6, 10, type_id::AUDIO, 2, 5), &mut input);
        let far = run(&input, &[50], 1_000);
        assert_eq!(far.aborts, 1);
        assert_eq!(far.got.len(), 1);
        assert_eq!(far.got[0].type_id, type_id::AUDIO);
    }

    #[test]
    fn own_control_waits_for_the_chunk_end() {
        // The origin leg streams a chunk to the client leg; meanwhile the client pings and
        // its acknowledgement window is reached: the answers go out after that chunk.
        let (mut origin, mut client) = legs();
        let mut far = Far::new();
        far.read(&mut client);
        let video = msg(6, 0, type_id::VIDEO, 1, 50_000);
        let input = peer_stream(std::slice::from_ref(&video), 60_000);
        origin
            .input_buffer()
            .extend_from_slice(&input[..input.len() / 2]);
        assert!(relay(&mut origin, &mut client, MSIDS, usize::MAX)
            .unwrap()
            .is_none());
        assert!(client.mid_chunk);
        let mut ping = BytesMut::new();
        let mut enc = ChunkEncoder::new();
        enc.encode(&control(Message::WindowAckSize(10)), &mut ping);
        enc.encode(
            &control(Message::UserControl(UserControl::PingRequest(9))),
            &mut ping,
        );
        client.input_buffer().extend_from_slice(&ping);
        let back = MsidMap { from: 7, to: 1 };
        assert!(relay(&mut client, &mut origin, back, usize::MAX)
            .unwrap()
            .is_none());
        origin
            .input_buffer()
            .extend_from_slice(&input[input.len() / 2..]);
        assert!(relay(&mut origin, &mut client, MSIDS, usize::MAX)
            .unwrap()
            .is_none());
        let mut buf = client.output_buffer().split();
        let mut got = vec![];
        while let Some(raw) = far.dec.decode(&mut buf).unwrap() {
            got.push(raw.type_id);
        }
        assert!(buf.is_empty());
        assert_eq!(
            got,
            vec![
                type_id::VIDEO,
                type_id::ACKNOWLEDGEMENT,
                type_id::USER_CONTROL
            ]
        );
    }

    #[test]
    fn control_and_commands_are_not_forwarded() {
        assert!(!is_cut_through(2, type_id::VIDEO));
        assert!(!is_cut_through(3, type_id::COMMAND_AMF0));
        assert!(!is_cut_through(3, type_id::USER_CONTROL));
        assert!(!is_cut_through(3, 30));
        assert!(is_cut_through(3, type_id::AGGREGATE));
        // A video message on chunk stream 2 is reassembled and returned whole.
        let m = msg(2, 0, type_id::VIDEO, 1, 300);
        let (mut from, mut to) = legs();
        from.input_buffer()
            .extend_from_slice(&peer_stream(std::slice::from_ref(&m), 128));
        let got = relay(&mut from, &mut to, MSIDS, usize::MAX).unwrap();
        assert_eq!(got, Some(m));
        assert_eq!(relay(&mut from, &mut to, MSIDS, usize::MAX).unwrap(), None);
    }

    #[test]
    fn errors_are_those_of_the_decoder() {
        let (mut from, mut to) = legs();
        from.input_buffer()
            .extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 1, 9, 0xAA]);
        assert!(matches!(
            relay(&mut from, &mut to, MSIDS, usize::MAX),
            Err(RtmpError::Chunk(_))
        ));
    }
}
