//! `ChunkedBody` (srs-http1) on any bytes cut into pieces by byte 0: must never panic; fed in
//! pieces it finds the same end, the same data and the same error as fed at once; data passed
//! by count (`skip`) ends where feeding it would; `step` never claims more than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_http1::{ChunkedBody, Piece};

/// Data bytes, body length (`None` when not ended) and error of `input` in pieces of `size`.
fn run(input: &[u8], size: usize) -> (Vec<u8>, Option<usize>, bool) {
    let mut body = ChunkedBody::new();
    let mut data = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let end = (at + size).min(input.len());
        let piece = match body.step(&input[at..end]) {
            Ok(p) => p,
            Err(_) => return (data, None, true),
        };
        match piece {
            Piece::Framing(n) => {
                assert!(n > 0 && n <= end - at);
                at += n;
            }
            Piece::Data(n) => {
                assert!(n > 0 && n <= end - at);
                data.extend_from_slice(&input[at..at + n]);
                at += n;
            }
            Piece::End(n) => {
                assert!(n <= end - at);
                assert!(body.is_done());
                return (data, Some(at + n), false);
            }
        }
    }
    (data, None, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, input)) = data.split_first() else {
        return;
    };
    let whole = run(input, input.len().max(1));
    let pieces = run(input, usize::from(size).max(1));
    assert_eq!(whole, pieces);
    // feed() agrees on where the body ends.
    let mut body = ChunkedBody::new();
    match body.feed(input) {
        Ok(n) => {
            assert!(n <= input.len());
            assert_eq!(body.is_done(), whole.1.is_some());
            if let Some(end) = whole.1 {
                assert_eq!(n, end);
            }
        }
        Err(_) => assert!(whole.2),
    }
    // Passing data by count lands in the same state as feeding it.
    let mut fed = ChunkedBody::new();
    let mut skipped = ChunkedBody::new();
    let mut at = 0;
    while at < input.len() && !fed.is_done() {
        let left = skipped.data_left();
        if left > 0 {
            let n = (left as usize).min(input.len() - at);
            assert_eq!(fed.feed(&input[at..at + n]), Ok(n));
            skipped.skip(n as u64);
            at += n;
            assert_eq!(fed.data_left(), skipped.data_left());
            continue;
        }
        let a = fed.step(&input[at..]);
        let b = skipped.step(&input[at..]);
        assert_eq!(a, b);
        match a {
            Ok(Piece::Framing(n)) | Ok(Piece::Data(n)) | Ok(Piece::End(n)) => at += n,
            Err(_) => break,
        }
    }
});
