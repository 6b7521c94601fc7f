//! Compares the cut-through relay (`srs_rtmp::cut::relay`) with reassembly
//! (`Connection::poll_message`) on chunk streams built from the input: messages of every type
//! interleaved on several chunk streams, chunk-size changes (also between chunks of a message),
//! aborts, per-hop control and raw bytes, fed in pseudo-random pieces with pseudo-random output
//! budgets. A decoder on the relay's far side must get exactly the messages reassembly returns
//! (message stream id mapped), must never see a malformed chunk stream, and the relay may fail
//! only where reassembly fails.
#![no_main]

use std::collections::{BTreeMap, VecDeque};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use srs_rtmp::chunk::{ChunkDecoder, ChunkEncoder, Limits, MessageHeader, RawMessage};
use srs_rtmp::conn::Connection;
use srs_rtmp::cut::{relay, MsidMap};
use srs_rtmp::message::{type_id, Message, UserControl};

/// Small limits so the fuzzer reaches them quickly.
const LIMITS: Limits = Limits {
    max_message_size: 1 << 16,
    max_chunk_size: 1 << 16,
    max_chunk_streams: 8,
};
/// The far side accepts anything the relay may legitimately send (it reassembles forwarded
/// messages, which the relay does not hold, so its bound on partial messages is higher).
const FAR_LIMITS: Limits = Limits {
    max_message_size: 1 << 20,
    max_chunk_size: 1 << 24,
    max_chunk_streams: 64,
};
const MSIDS: MsidMap = MsidMap { from: 1, to: 9 };
const TYPES: [u8; 10] = [
    type_id::AUDIO,
    type_id::VIDEO,
    type_id::DATA_AMF0,
    type_id::DATA_AMF3,
    type_id::AGGREGATE,
    type_id::COMMAND_AMF0,
    type_id::USER_CONTROL,
    30,
    type_id::VIDEO,
    type_id::AUDIO,
];

/// Reads the input as generator instructions; 0 once exhausted.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
}

/// A peer writing chunks: messages queue per chunk stream, and chunks of the current message of
/// each chunk stream are written in turn.
struct Peer {
    enc: ChunkEncoder,
    out: BytesMut,
    queues: BTreeMap<u32, VecDeque<RawMessage>>,
    active: BTreeMap<u32, (RawMessage, usize)>,
    last_ts: BTreeMap<u32, u32>,
}

impl Peer {
    fn chunk(&mut self, csid: u32) {
        let (m, start) = match self.active.remove(&csid) {
            Some((m, offset)) => {
                self.enc.write_continuation_header(csid, &mut self.out);
                (m, offset)
            }
            None => {
                let Some(m) = self.queues.get_mut(&csid).and_then(VecDeque::pop_front) else {
                    return;
                };
                let header = MessageHeader {
                    timestamp: m.timestamp,
                    length: m.payload.len() as u32,
                    type_id: m.type_id,
                    msid: m.msid,
                };
                self.enc.write_first_header(csid, &header, &mut self.out);
                (m, 0)
            }
        };
        let end = (start + self.enc.chunk_size() as usize).min(m.payload.len());
        self.out.extend_from_slice(&m.payload[start..end]);
        if end < m.payload.len() {
            self.active.insert(csid, (m, end));
        }
    }

    fn round(&mut self) {
        let ids: Vec<u32> = self
            .queues
            .keys()
            .chain(self.active.keys())
            .copied()
            .collect();
        for csid in ids {
            self.chunk(csid);
        }
    }

    fn finish(&mut self) {
        while !self.active.is_empty() || self.queues.values().any(|q| !q.is_empty()) {
            self.round();
        }
    }

    fn control(&mut self, m: Message) {
        self.enc.encode(&m.to_raw(2, 0, 0), &mut self.out);
    }
}

fn build(data: &[u8]) -> BytesMut {
    let mut c = Cursor(data);
    let mut peer = Peer {
        enc: ChunkEncoder::new(),
        out: BytesMut::new(),
        queues: BTreeMap::new(),
        active: BTreeMap::new(),
        last_ts: BTreeMap::new(),
    };
    while !c.0.is_empty() {
        let op = c.byte();
        match op % 8 {
            0 | 1 => {
                let csid = 3 + u32::from(c.byte() % 6);
                let kind = TYPES[usize::from(c.byte()) % TYPES.len()];
                let mut len = usize::from(c.u16() % 3000);
                if op & 0x80 != 0 {
                    len *= 8;
                }
                let b = c.byte();
                let delta = match b % 4 {
                    0 => 0,
                    1 => u32::from(b) * 10,
                    2 => 0xFF_FFFF + u32::from(b),
                    _ => 40,
                };
                let ts = peer.last_ts.entry(csid).or_default();
                *ts = ts.wrapping_add(delta);
                let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(b)).collect();
                peer.queues.entry(csid).or_default().push_back(RawMessage {
                    csid,
                    timestamp: *ts,
                    type_id: kind,
                    msid: 1 + u32::from(op & 0x40 != 0),
                    payload: payload.into(),
                });
            }
            2 => {
                for _ in 0..=c.byte() % 16 {
                    peer.round();
                }
            }
            3 => {
                let size = 1 + u32::from(c.u16() % 5000) * u32::from(1 + c.byte() % 16);
                peer.control(Message::SetChunkSize(size));
                peer.enc.set_chunk_size(size);
            }
            4 => {
                let csid = 3 + u32::from(c.byte() % 6);
                peer.control(Message::Abort(csid));
                peer.active.remove(&csid);
            }
            5 => {
                let n = usize::from(c.byte() % 8);
                for _ in 0..n {
                    let b = c.byte();
                    peer.out.extend_from_slice(&[b]);
                }
            }
            6 => {
                let m = match c.byte() % 3 {
                    0 => Message::UserControl(UserControl::PingRequest(7)),
                    1 => Message::WindowAckSize(u32::from(c.u16()) * 16),
                    _ => Message::Acknowledgement(5),
                };
                peer.control(m);
            }
            _ => peer.finish(),
        }
    }
    peer.finish();
    peer.out
}

/// Linear congruential step: deterministic "randomness" from the input.
fn next(state: &mut u32) -> u32 {
    *state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    *state >> 8
}

/// Decodes what the relay sent, as its far peer would.
struct Far {
    dec: ChunkDecoder,
    buf: BytesMut,
    got: Vec<RawMessage>,
}

impl Far {
    fn read(&mut self, to: &mut Connection) {
        self.buf.extend_from_slice(&to.output_buffer().split());
        loop {
            let raw = match self.dec.decode(&mut self.buf) {
                Ok(Some(raw)) => raw,
                Ok(None) => return,
                Err(e) => panic!("the relay sent a malformed chunk stream: {e}"),
            };
            match Message::parse(&raw) {
                Ok(Message::SetChunkSize(size)) if raw.type_id == type_id::SET_CHUNK_SIZE => {
                    self.dec.set_chunk_size(size).expect("relayed chunk size");
                }
                Ok(Message::Abort(csid)) if raw.type_id == type_id::ABORT => self.dec.abort(csid),
                _ => self.got.push(raw),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, program)) = data.split_first() else {
        return;
    };
    let stream = build(program);
    let mut rng = u32::from(seed);

    let mut reference = Connection::new(LIMITS);
    let mut expected = vec![];
    let mut reference_failed = false;

    let mut from = Connection::new(LIMITS);
    let mut to = Connection::new(LIMITS);
    to.set_chunk_size(60_000);
    let mut far = Far {
        dec: ChunkDecoder::new(FAR_LIMITS),
        buf: BytesMut::new(),
        got: vec![],
    };
    let mut relay_failed = false;

    let mut rest = &stream[..];
    while !rest.is_empty() {
        let n = (1 + next(&mut rng) as usize % 2000).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        if !reference_failed {
            reference.input_buffer().extend_from_slice(piece);
            loop {
                match reference.poll_message() {
                    Ok(Some(mut m)) => {
                        m.msid = MSIDS.map(m.msid);
                        expected.push(m);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        reference_failed = true;
                        break;
                    }
                }
            }
            reference.output_buffer().clear();
        }
        if !relay_failed {
            from.input_buffer().extend_from_slice(piece);
            let budget = [1, 7, 100, 4096, 16_384, usize::MAX][next(&mut rng) as usize % 6];
            'pump: loop {
                // With the far side's buffer drained first, no progress means input is needed.
                far.read(&mut to);
                let before = from.input_len();
                loop {
                    match relay(&mut from, &mut to, MSIDS, budget) {
                        Ok(Some(mut m)) => {
                            m.msid = MSIDS.map(m.msid);
                            to.send(&m);
                        }
                        Ok(None) => break,
                        Err(_) => {
                            relay_failed = true;
                            break 'pump;
                        }
                    }
                }
                far.read(&mut to);
                from.output_buffer().clear();
                if from.input_len() == 0 || from.input_len() == before {
                    break;
                }
            }
        }
    }
    assert!(
        !relay_failed || reference_failed,
        "the relay failed where reassembly did not"
    );
    let n = expected.len().min(far.got.len());
    assert_eq!(far.got[..n], expected[..n], "relayed messages differ");
    if !reference_failed && !relay_failed {
        assert_eq!(far.got.len(), expected.len(), "relayed message count");
    }
});
