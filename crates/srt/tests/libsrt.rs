//! Handshakes captured from a real libsrt 1.5.1 caller (ffmpeg publishing to
//! `srt://…?streamid=#!::r=live/cap,m=publish&latency=200000`): what the relay must read, and
//! the answers it builds from them, byte for byte where libsrt's layout is fixed.

use srs_srt::{
    induction_request, induction_response, rejection, set_dst_socket_id, set_syn_cookie, Handshake,
    HandshakeType, Header, Rejection, CONTROL_HANDSHAKE,
};

const INDUCTION: &[u8] = include_bytes!("fixtures/libsrt-induction.bin");
const CONCLUSION: &[u8] = include_bytes!("fixtures/libsrt-conclusion.bin");
const LOCALHOST: [u8; 4] = [127, 0, 0, 1];

#[test]
fn a_libsrt_induction() {
    let h = Header::parse(INDUCTION).unwrap();
    assert!(h.is_control(CONTROL_HANDSHAKE));
    assert_eq!(h.dst_socket_id, 0);
    let hs = Handshake::parse(INDUCTION).unwrap();
    assert_eq!(hs.version(), 4);
    assert_eq!(hs.extension_field(), 2, "UDT datagram socket type");
    assert_eq!(hs.handshake_type(), HandshakeType::Induction);
    assert_eq!(hs.syn_cookie(), 0);
    assert_eq!(hs.extensions().count(), 0);
    assert_eq!(
        &hs.peer_ip()[..4],
        &[1, 0, 0, 127],
        "libsrt's little-endian word"
    );
}

#[test]
fn a_libsrt_conclusion() {
    let hs = Handshake::parse(CONCLUSION).unwrap();
    assert_eq!(hs.version(), 5);
    assert_eq!(hs.handshake_type(), HandshakeType::Conclusion);
    assert_eq!(
        hs.dst_socket_id(),
        0,
        "libsrt's conclusion goes to socket 0"
    );
    let ind = Handshake::parse(INDUCTION).unwrap();
    assert_eq!(
        hs.socket_id(),
        ind.socket_id(),
        "one caller socket throughout"
    );
    assert_eq!(hs.extension_field() & 0x5, 0x5, "HSREQ and CONFIG flags");
    let exts: Vec<(u16, usize)> = hs
        .extensions()
        .map(|e| e.map(|(t, c)| (t, c.len())).unwrap())
        .collect();
    assert_eq!(exts, [(1, 12), (5, 24)], "HSREQ, then the stream id");
    let (_, hsreq) = hs.extensions().next().unwrap().unwrap();
    // TSBPD delays in the HSREQ's last word: 200 ms both ways, as asked.
    assert_eq!(&hsreq[8..], &[0, 200, 0, 200]);
    assert_eq!(
        hs.stream_id().unwrap().as_deref(),
        Some("#!::r=live/cap,m=publish")
    );
}

#[test]
fn answers_built_from_libsrt_handshakes() {
    let ind = Handshake::parse(INDUCTION).unwrap();
    let peer = std::net::IpAddr::from(LOCALHOST);
    let mut out = Vec::new();
    induction_response(&ind, 0x1234_5678, 0, peer, &mut out);
    let r = Handshake::parse(&out).unwrap();
    assert_eq!(r.dst_socket_id(), ind.socket_id());
    assert_eq!((r.version(), r.extension_field()), (5, 0x4A17));
    assert_eq!(r.syn_cookie(), 0x1234_5678);
    assert_eq!(r.peer_ip(), ind.peer_ip(), "the same encoding libsrt uses");
    // The relay's own induction to the origin is libsrt's, but for the cookie-less fields it
    // copies: byte for byte the caller's induction except the header's timestamp.
    let conclusion = Handshake::parse(CONCLUSION).unwrap();
    induction_request(&conclusion, peer, &mut out);
    assert_eq!(&out[16..], &INDUCTION[16..]);
    rejection(&conclusion, Rejection::NOT_FOUND, 0, peer, &mut out);
    let r = Handshake::parse(&out).unwrap();
    assert_eq!(r.handshake_type(), HandshakeType::Rejected(Rejection(1404)));
    assert_eq!(r.dst_socket_id(), conclusion.socket_id());
    // A forwarded conclusion differs in the cookie only (its destination is already 0).
    let mut fwd = CONCLUSION.to_vec();
    set_syn_cookie(&mut fwd, 7);
    set_dst_socket_id(&mut fwd, 0);
    let diff: Vec<usize> = (0..fwd.len())
        .filter(|&i| fwd[i] != CONCLUSION[i])
        .collect();
    assert!(diff.iter().all(|i| (44..48).contains(i)), "{diff:?}");
}
