//! Decodes arbitrary bytes as AMF0 and as command/data message bodies; must
//! never panic, and whatever decodes must re-encode and decode again.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use srs_rtmp::amf0;
use srs_rtmp::chunk::RawMessage;
use srs_rtmp::message::{type_id, Message};

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while !input.is_empty() {
        if amf0::decode(&mut input).is_err() {
            break;
        }
    }
    if let Ok(values) = amf0::decode_all(data) {
        let mut out = BytesMut::new();
        amf0::encode_all(&values, &mut out);
        let again = amf0::decode_all(&out);
        assert!(again.is_ok(), "re-encoded AMF0 failed to decode: {again:?}");
        assert_eq!(again.map(|v| v.len()).ok(), Some(values.len()));
    }
    for type_id in [type_id::COMMAND_AMF0, type_id::DATA_AMF3, type_id::USER_CONTROL] {
        let raw = RawMessage {
            csid: 3,
            timestamp: 0,
            type_id,
            msid: 0,
            payload: Bytes::copy_from_slice(data),
        };
        if let Ok(msg) = Message::parse(&raw) {
            let _ = msg.to_raw(3, 0, 0);
        }
    }
});
