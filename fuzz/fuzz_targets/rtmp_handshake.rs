//! Feeds arbitrary bytes, in pseudo-random pieces, to the server and the client handshake state
//! machines; must never panic, never consume more than it is given, and answer with exactly
//! S0+S1+S2 (server) or C0+C1 then C2 (client) once a C1/S1 is in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_rtmp::handshake::{ClientHandshake, ServerHandshake, HANDSHAKE_SIZE};

/// Linear congruential step: deterministic "randomness" from the input.
fn next(state: &mut u32) -> u32 {
    *state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    *state >> 8
}

/// The pieces `data` is fed in: 1..=2000 bytes each, from `seed`.
fn pieces(seed: u8, mut data: &[u8]) -> Vec<&[u8]> {
    let mut rng = u32::from(seed);
    let mut out = Vec::new();
    while !data.is_empty() {
        let n = (1 + next(&mut rng) as usize % 2000).min(data.len());
        let (piece, rest) = data.split_at(n);
        out.push(piece);
        data = rest;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    // Low bit set: force the version byte to 3, so most inputs get past C0/S0.
    let mut stream = stream.to_vec();
    if seed & 1 == 1 {
        if let Some(first) = stream.first_mut() {
            *first = 3;
        }
    }

    let mut server = ServerHandshake::with_time(u32::from(seed));
    let mut fed = 0;
    let mut output = 0;
    for piece in pieces(seed, &stream) {
        let Ok(n) = server.feed(piece) else { break };
        assert!(n <= piece.len());
        fed += n;
        output += server.take_output().len();
        let c1_in = fed > HANDSHAKE_SIZE;
        assert_eq!(output, if c1_in { 1 + 2 * HANDSHAKE_SIZE } else { 0 });
        assert_eq!(server.is_done(), fed == 1 + 2 * HANDSHAKE_SIZE);
        if n < piece.len() {
            assert!(server.is_done(), "bytes left over before C2 was complete");
            break;
        }
    }

    let mut client = ClientHandshake::new();
    assert_eq!(client.take_output().len(), 1 + HANDSHAKE_SIZE);
    let mut fed = 0;
    let mut c2 = Vec::new();
    for piece in pieces(seed, &stream) {
        let Ok(n) = client.feed(piece) else { break };
        assert!(n <= piece.len());
        fed += n;
        c2.extend_from_slice(&client.take_output());
        if fed > HANDSHAKE_SIZE {
            // C2 echoes S1.
            assert_eq!(c2, stream[1..=HANDSHAKE_SIZE]);
        } else {
            assert!(c2.is_empty());
        }
        assert_eq!(client.is_done(), fed == 1 + 2 * HANDSHAKE_SIZE);
        if n < piece.len() {
            assert!(client.is_done(), "bytes left over before S2 was complete");
            break;
        }
    }
});
