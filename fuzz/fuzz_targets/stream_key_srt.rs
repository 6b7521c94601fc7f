//! `StreamKey::from_srt_streamid` on arbitrary text; must never panic, and every key it returns
//! keeps the key invariants (`srs_fuzz::check_key`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_cluster::StreamKey;

fuzz_target!(|data: &[u8]| {
    let streamid = String::from_utf8_lossy(data);
    if let Ok((key, _direction)) = StreamKey::from_srt_streamid(&streamid) {
        srs_fuzz::check_key(&key);
    }
});
