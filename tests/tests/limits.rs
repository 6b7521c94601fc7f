//! PROXY_MAX_CONNECTIONS (docs/design.md §7): at the limit a new connection is closed at once
//! and counted, a live stream is unharmed, and permits come back when connections close.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use srs_e2e::{assert_played, metric, play, publish, wait_until, Origin, Proxy, TempDir};

/// Whether the proxy closes a new connection to `addr` within 2 s without a byte sent.
fn closed_at_once(addr: std::net::SocketAddr) -> bool {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    match conn.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        // A reset is a close too; a timeout means the connection was kept.
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn connections_over_the_limit_are_refused_and_live_streams_go_on() {
    let dir = TempDir::new("limits");
    let proxy = Proxy::start(
        &dir,
        "proxy",
        &[
            ("PROXY_MAX_CONNECTIONS", "3"),
            ("PROXY_RTMP_TIMEOUT", "60s"),
        ],
    );
    let origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let _publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/limit"), 60);
    wait_until(Duration::from_secs(20), "publishing", || {
        origin.publishing("live", "limit")
    });
    // The publisher holds one permit; two idle connections take the rest.
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(proxy.rtmp).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert!(
        closed_at_once(proxy.rtmp),
        "a fourth RTMP connection must be closed"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let refused = metric(
        &proxy.metrics(),
        "srs_proxy_connections_refused_total",
        &[("listener", "rtmp")],
    );
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
    // Other listeners have their own limits: HTTP-FLV plays, and the stream is unharmed.
    let flv = play(
        &dir,
        "play-flv",
        &proxy.http_url("live/limit.flv"),
        25,
        Duration::from_secs(20),
    );
    assert_played(&flv, 25, "HTTP-FLV while RTMP is at its limit");
    assert!(origin.publishing("live", "limit"));
    // Closed connections give their permits back.
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let rtmp = play(
        &dir,
        "play-rtmp",
        &proxy.rtmp_url("live/limit"),
        25,
        Duration::from_secs(20),
    );
    assert_played(&rtmp, 25, "RTMP once connections closed");
}
