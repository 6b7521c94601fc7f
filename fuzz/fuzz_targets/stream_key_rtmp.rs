//! `StreamKey::from_rtmp(tc_url, stream_name)` with the input split at its first NUL byte; must
//! never panic, and every key it returns keeps the key invariants (`srs_fuzz::check_key`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_cluster::StreamKey;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (tc_url, stream_name) = text.split_once('\0').unwrap_or((&text, ""));
    if let Ok(key) = StreamKey::from_rtmp(tc_url, stream_name) {
        srs_fuzz::check_key(&key);
    }
});
