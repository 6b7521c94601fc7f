//! Feeds arbitrary text to the SDP functions the WebRTC signalling relay runs on an origin's
//! answer; must never panic, and a rewrite must keep every non-candidate line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_rtc::{ice_credentials, rewrite_candidates, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = validate(text);
    let _ = ice_credentials(text);
    if let Ok(r) = rewrite_candidates(text, 8000, Some("192.0.2.1")) {
        let kept = |s: &str| s.split_inclusive('\n').filter(|l| !l.starts_with("a=candidate:")).count();
        assert_eq!(kept(&r.sdp), kept(text));
    }
});
