//! Feeds arbitrary bytes to the chunk decoder and to a `Connection`, in
//! pseudo-random pieces with chunk-size changes in between; must never
//! panic or allocate without bound.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use srs_rtmp::chunk::{ChunkDecoder, Limits};
use srs_rtmp::conn::Connection;
use srs_rtmp::message::Message;

/// Small limits so the fuzzer reaches them quickly.
const LIMITS: Limits = Limits {
    max_message_size: 1 << 16,
    max_chunk_size: 1 << 16,
    max_chunk_streams: 8,
};

/// Linear congruential step: deterministic "randomness" from the input.
fn next(state: &mut u32) -> u32 {
    *state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    *state >> 8
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut rng = u32::from(seed);
    let mut decoder = ChunkDecoder::new(LIMITS);
    let mut conn = Connection::new(LIMITS);
    let mut buf = BytesMut::new();
    let (mut decoder_ok, mut conn_ok) = (true, true);
    let mut rest = stream;
    while !rest.is_empty() && (decoder_ok || conn_ok) {
        let n = (1 + next(&mut rng) as usize % 300).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        if decoder_ok {
            buf.extend_from_slice(piece);
            if next(&mut rng) % 8 == 0 {
                let _ = decoder.set_chunk_size(next(&mut rng) % (70_000));
            }
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(raw)) => {
                        let _ = Message::parse(&raw);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        decoder_ok = false;
                        break;
                    }
                }
            }
        }
        if conn_ok {
            conn.input_buffer().extend_from_slice(piece);
            loop {
                match conn.poll_message() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        conn_ok = false;
                        break;
                    }
                }
            }
            conn.output_buffer().clear();
        }
    }
});
