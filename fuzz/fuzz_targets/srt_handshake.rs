//! Reads arbitrary datagrams as the SRT relay does (`srs_srt`): the header, then a handshake
//! with its extensions and stream id, then the answers the relay builds from it. Must never
//! panic; an answer is always a well-formed handshake addressed to the sender's socket, a
//! forwarded conclusion differs from the input only in its cookie and destination socket id, and
//! a decoded stream id encodes back to an id that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srs_srt::{
    decode_stream_id, encode_stream_id, induction_request, induction_response, rejection,
    set_dst_socket_id, set_syn_cookie, Handshake, Header, Rejection,
};

fuzz_target!(|data: &[u8]| {
    let _ = Header::parse(data);
    let Ok(hs) = Handshake::parse(data) else {
        return;
    };
    let _ = (hs.version(), hs.extension_field(), hs.handshake_type(), hs.peer_ip());
    for ext in hs.extensions() {
        if ext.is_err() {
            break;
        }
    }
    if let Ok(Some(id)) = hs.stream_id() {
        assert!(id.len() <= 512);
        let again = decode_stream_id(&encode_stream_id(&id)).expect("re-encoded id decodes");
        assert_eq!(again, id.trim_end_matches('\0'));
    }
    let peer = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut out = Vec::new();
    induction_response(&hs, 7, 9, peer, &mut out);
    let answer = Handshake::parse(&out).expect("induction response parses");
    assert_eq!((answer.dst_socket_id(), answer.syn_cookie()), (hs.socket_id(), 7));
    rejection(&hs, Rejection::NOT_FOUND, 9, peer, &mut out);
    assert_eq!(Handshake::parse(&out).expect("rejection parses").dst_socket_id(), hs.socket_id());
    induction_request(&hs, peer, &mut out);
    assert_eq!(Handshake::parse(&out).expect("request parses").socket_id(), hs.socket_id());
    let mut forwarded = data.to_vec();
    set_syn_cookie(&mut forwarded, 0x0102_0304);
    set_dst_socket_id(&mut forwarded, 0);
    assert_eq!(forwarded.len(), data.len());
    let changed = (0..data.len()).filter(|&i| forwarded[i] != data[i]);
    assert!(changed.into_iter().all(|i| (12..16).contains(&i) || (44..48).contains(&i)));
});
