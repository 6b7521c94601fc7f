//! Relay loops (docs/design.md §3, §6.1, §6.2): a registration naming the proxy's own listener is
//! refused, an HTTP request that comes back through another proxy is answered 508, and an RTMP
//! session that comes back is refused with an error onStatus, instead of relayed round and round.

use std::time::Duration;

use srs_e2e::{http, play, Proxy, TempDir};

#[test]
fn a_registration_naming_the_proxys_own_listener_is_refused() {
    let dir = TempDir::new("loop-self");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let (status, body) = proxy.register_ports("self-rtmp", proxy.rtmp.port(), 1);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("PROXY_RTMP_SERVER"), "{body}");
    let (status, body) = proxy.register_ports("self-http", 1, proxy.http.port());
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("PROXY_HTTP_SERVER"), "{body}");
    assert_eq!(proxy.origins()["origins"].as_array().map(Vec::len), Some(0));
    // No origin: a player gets a quick error, not a relay to itself.
    let (status, _) = http("GET", &proxy.http_url("live/loop.flv"), None);
    assert_eq!(status, 503);
}

#[test]
fn an_http_loop_through_two_proxies_is_answered_508() {
    let dir = TempDir::new("loop-two");
    let a = Proxy::start(&dir, "proxy-a", &[]);
    let b = Proxy::start(&dir, "proxy-b", &[]);
    // Each proxy's only "origin" is the other proxy.
    assert_eq!(a.register_ports("b", b.rtmp.port(), b.http.port()).0, 200);
    assert_eq!(b.register_ports("a", a.rtmp.port(), a.http.port()).0, 200);
    let before = a.descriptors();
    for _ in 0..5 {
        let (status, body) = http("GET", &a.http_url("live/loop.flv"), None);
        assert_eq!(status, 508, "{body}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = a.descriptors();
    assert!(
        after < before + 20,
        "descriptors grew from {before} to {after}"
    );
}

#[test]
fn an_rtmp_loop_through_two_proxies_is_refused() {
    let dir = TempDir::new("loop-rtmp");
    let a = Proxy::start(&dir, "proxy-a", &[]);
    let b = Proxy::start(&dir, "proxy-b", &[]);
    assert_eq!(a.register_ports("b", b.rtmp.port(), b.http.port()).0, 200);
    assert_eq!(b.register_ports("a", a.rtmp.port(), a.http.port()).0, 200);
    let before = a.descriptors();
    let started = std::time::Instant::now();
    let played = play(
        &dir,
        "player",
        &a.rtmp_url("live/loop"),
        1,
        Duration::from_secs(20),
    );
    assert_eq!(played.frames, 0, "{played:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the player waited {:?}",
        started.elapsed()
    );
    // The session went A -> B -> A and stopped there: A refused its own id.
    std::thread::sleep(Duration::from_millis(500));
    let refusals = a
        .proc
        .log_text()
        .matches("RTMP session refused: relay loop")
        .count();
    assert_eq!(refusals, 1, "{}", a.proc.log_tail(40));
    let after = a.descriptors();
    assert!(
        after < before + 20,
        "descriptors grew from {before} to {after}"
    );
}
