//! The proxy's UDP listeners (SRT, WebRTC): bound at start-up, reported in the listening line,
//! served, and a taken port stops start-up naming the variable.

use std::net::UdpSocket;
use std::time::Duration;

use srs_e2e::{metric, wait_until, Proc, Proxy, TempDir};

#[test]
fn a_taken_udp_port_stops_start_up_naming_the_variable() {
    let dir = TempDir::new("udp-taken");
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    let addr = taken.local_addr().expect("local addr").to_string();
    for var in ["PROXY_SRT_SERVER", "PROXY_WEBRTC_SERVER"] {
        let mut cmd = Proxy::command(&dir);
        cmd.env(var, &addr);
        let mut proxy = Proc::spawn(var, cmd, &dir);
        let status = proxy
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("srs-proxy kept running with {var} taken"));
        assert!(!status.success(), "{var}: {status}");
        let log = proxy.log_text();
        assert!(
            log.contains(&format!("cannot listen on UDP {addr} ({var})")),
            "{var}: {log}"
        );
    }
}

#[test]
fn udp_listeners_are_reported_and_served() {
    let dir = TempDir::new("udp-listen");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    assert_ne!(proxy.srt.port(), 0);
    assert_ne!(proxy.webrtc.port(), 0);
    let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    for _ in 0..3 {
        client
            .send_to(b"not an SRT packet", proxy.srt)
            .expect("send");
    }
    client.send_to(b"not STUN", proxy.webrtc).expect("send");
    let dropped = |listener| {
        metric(
            &proxy.metrics(),
            "srs_proxy_udp_datagrams_total",
            &[("listener", listener), ("outcome", "dropped")],
        )
    };
    wait_until(Duration::from_secs(10), "datagrams counted", || {
        dropped("srt") == Some(3.0) && dropped("webrtc") == Some(1.0)
    });
    let flows = |listener| {
        metric(
            &proxy.metrics(),
            "srs_proxy_udp_flows",
            &[("listener", listener)],
        )
    };
    // Garbage opens no session on either.
    assert_eq!(flows("srt"), Some(0.0));
    assert_eq!(flows("webrtc"), Some(0.0));
}
