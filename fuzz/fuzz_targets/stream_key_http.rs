//! `StreamKey::from_http(host, path, query)`: byte 0 says whether there is a host (bit 0) and a
//! query (bit 1); the rest is split at NUL bytes into host, path and query. Must never panic,
//! and every key it returns keeps the key invariants (`srs_fuzz::check_key`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_cluster::StreamKey;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(3, '\0');
    let host = parts.next().filter(|_| flags & 1 != 0);
    let path = parts.next().unwrap_or("");
    let query = parts.next().filter(|_| flags & 2 != 0);
    if let Ok(key) = StreamKey::from_http(host, path, query) {
        srs_fuzz::check_key(&key);
    }
});
