//! Parses arbitrary datagrams as the WebRTC relay does (demux, STUN view, integrity and
//! fingerprint checks, username split); must never panic, and a parsed USERNAME must survive
//! a re-encode as a Binding request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_rtc::{classify, split_username, BindingRequest, Message};

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    let Ok(m) = Message::parse(data) else {
        return;
    };
    let _ = (m.class(), m.method(), m.transaction_id(), m.use_candidate());
    let _ = m.verify_integrity(b"password");
    let _ = m.verify_fingerprint();
    if let Some(username) = m.username() {
        let _ = split_username(username);
        let mut out = Vec::new();
        BindingRequest {
            username,
            password: "pwd",
            transaction_id: m.transaction_id(),
            use_candidate: true,
        }
        .encode(&mut out);
        let again = Message::parse(&out).expect("an encoded request parses");
        assert_eq!(again.username(), Some(username));
        assert!(again.verify_integrity(b"pwd") && again.verify_fingerprint());
    }
});
