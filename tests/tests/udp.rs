//! The proxy's UDP listeners (SRT, WebRTC): bound at start-up, reported in the listening line,
//! served, and a taken port stops start-up naming the variable.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use srs_e2e::{bin, http, temp_dir, wait_until, Proc};

fn proxy_command(srt: &str, webrtc: &str) -> Command {
    let mut cmd = Command::new(bin("srs-proxy"));
    cmd.env("PROXY_RTMP_SERVER", "127.0.0.1:0")
        .env("PROXY_HTTP_SERVER", "127.0.0.1:0")
        .env("PROXY_HTTP_API", "127.0.0.1:0")
        .env("PROXY_SYSTEM_API", "127.0.0.1:0")
        .env("PROXY_SRT_SERVER", srt)
        .env("PROXY_WEBRTC_SERVER", webrtc);
    cmd
}

#[test]
fn a_taken_udp_port_stops_start_up_naming_the_variable() {
    let dir = temp_dir("udp-taken");
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    let port = taken.local_addr().expect("local addr").port();
    let addr = format!("127.0.0.1:{port}");
    for (var, cmd) in [
        ("PROXY_SRT_SERVER", proxy_command(&addr, "127.0.0.1:0")),
        ("PROXY_WEBRTC_SERVER", proxy_command("127.0.0.1:0", &addr)),
    ] {
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
    let dir = temp_dir("udp-listen");
    let cmd = proxy_command("127.0.0.1:0", "127.0.0.1:0");
    let (_proxy, stdout) = Proc::spawn_piped("proxy", cmd, &dir);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let field = |key: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
    };
    let (srt, webrtc, system) = (field("srt"), field("webrtc"), field("system"));
    assert_ne!(srt.port(), 0);
    assert_ne!(webrtc.port(), 0);
    let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    for _ in 0..3 {
        client.send_to(b"not an SRT packet", srt).expect("send");
    }
    client.send_to(b"not STUN", webrtc).expect("send");
    let metric = |sample: &str| -> f64 {
        let (_, text) = http("GET", &format!("http://{system}/metrics"), None);
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1.0)
    };
    wait_until(Duration::from_secs(10), "datagrams counted", || {
        metric(r#"srs_proxy_udp_datagrams_total{listener="srt",outcome="dropped"}"#) == 3.0
            && metric(r#"srs_proxy_udp_datagrams_total{listener="webrtc",outcome="dropped"}"#)
                == 1.0
    });
    assert_eq!(metric(r#"srs_proxy_udp_flows{listener="srt"}"#), 1.0);
}
