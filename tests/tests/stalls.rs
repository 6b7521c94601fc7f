//! Progress timeouts and silent origins: an HTTP-FLV session whose client stops reading, or
//! whose origin stops sending, is closed after `PROXY_IDLE_TIMEOUT`; an origin that accepts
//! connections but never answers is set aside like an unreachable one and the request served by
//! another origin; a client that leaves while its origin is dialed stops the dial.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use srs_e2e::*;

/// Sends a GET for `path` over a raw socket and reads the response head; returns the socket and
/// the head's status line.
fn get_head(addr: SocketAddr, path: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("reading the response head");
        assert!(
            n == 1,
            "closed during the head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status = text.lines().next().unwrap_or_default().to_string();
    (s, status)
}

/// Reads the start of a chunked FLV body from `s` and checks it is FLV.
fn assert_flv(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("FLV bytes");
    // `<chunk size>\r\nFLV...`
    assert!(
        buf[..n].windows(5).any(|w| w == b"\r\nFLV"),
        "not a chunked FLV body: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// Reads `s` until EOF or reset within `limit`; the bytes read, or None when still open.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> Option<usize> {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut total = 0;
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Some(total),
            Ok(n) => total += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(total),
        }
    }
    None
}

/// ffmpeg publishing a noisy picture (about 3 MB/s, cheap to encode) to `url` for 60 s. On
/// loopback the proxy's socket send buffer alone takes megabytes before hyper stops polling a
/// stalled body; at this rate it fills in a second or two.
fn publish_heavy(dir: &std::path::Path, url: &str) -> Proc {
    let mut cmd = std::process::Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "warning", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", "60", "-vf", "noise=alls=60:allf=t"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-qp", "10"])
        .args(["-g", "25", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv", url]);
    Proc::spawn("publisher", cmd, dir)
}

fn active_flv_players(proxy: &Proxy) -> f64 {
    metric(
        &proxy.metrics(),
        "srs_proxy_sessions_active",
        &[("protocol", "http_flv"), ("direction", "play")],
    )
    .unwrap_or(0.0)
}

/// Clients of `app/name` on `origin` (its publisher counts).
fn clients(origin: &Origin, app: &str, name: &str) -> u64 {
    origin
        .stream(app, name)
        .and_then(|s| s["clients"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_client_that_stops_reading_is_closed() {
    let dir = TempDir::new("stall-client");
    let proxy = Proxy::start(&dir, "proxy", &[("PROXY_IDLE_TIMEOUT", "3s")]);
    let origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let _publisher = publish_heavy(&dir, &format!("rtmp://{}/live/stall", origin.rtmp));
    wait_until(Duration::from_secs(20), "publisher on the origin", || {
        origin.publishing("live", "stall")
    });

    let (mut stalled, status) = get_head(proxy.http, "/live/stall.flv");
    assert!(status.contains(" 200 "), "{status}");
    wait_until(Duration::from_secs(10), "FLV player on the origin", || {
        clients(&origin, "live", "stall") == 2
    });
    // The client reads nothing more: the socket buffers fill, then nothing is taken for 3 s.
    let stalled_at = Instant::now();
    wait_until(Duration::from_secs(30), "stalled session closed", || {
        active_flv_players(&proxy) == 0.0
    });
    assert!(
        stalled_at.elapsed() >= Duration::from_secs(3),
        "closed before the idle timeout: {:?}",
        stalled_at.elapsed()
    );
    let log = proxy.proc.log_text();
    assert!(
        log.contains("client took no bytes for 3s"),
        "{}",
        proxy.proc.log_tail(30)
    );
    // The origin side is freed too, and the client gets EOF once it drains its socket.
    wait_until(Duration::from_secs(10), "origin connection dropped", || {
        clients(&origin, "live", "stall") == 1
    });
    let drained = read_to_close(&mut stalled, Duration::from_secs(10));
    assert!(
        drained.is_some(),
        "the stalled client's connection is still open"
    );

    // A player that reads is not affected.
    let (mut reading, status) = get_head(proxy.http, "/live/stall.flv");
    assert!(status.contains(" 200 "), "{status}");
    let started = Instant::now();
    let mut buf = [0u8; 65536];
    let mut total = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let n = reading
            .read(&mut buf)
            .expect("a reading player keeps its stream");
        assert!(n > 0, "a reading player was closed");
        total += n;
    }
    assert!(total > 10_000, "{total} bytes in 5 s");
}

#[test]
fn an_origin_that_stops_sending_is_cut_off() {
    let dir = TempDir::new("stall-origin");
    let proxy = Proxy::start(&dir, "proxy", &[("PROXY_IDLE_TIMEOUT", "3s")]);
    let origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let _publisher = publish(
        &dir,
        "publisher",
        &format!("rtmp://{}/live/frozen", origin.rtmp),
        60,
    );
    wait_until(Duration::from_secs(20), "publisher on the origin", || {
        origin.publishing("live", "frozen")
    });
    let (mut player, status) = get_head(proxy.http, "/live/frozen.flv");
    assert!(status.contains(" 200 "), "{status}");
    assert_flv(&mut player);

    origin.proc.signal(libc::SIGSTOP);
    let stopped_at = Instant::now();
    let closed = read_to_close(&mut player, Duration::from_secs(20));
    let after = stopped_at.elapsed();
    origin.proc.signal(libc::SIGCONT);
    assert!(
        closed.is_some(),
        "the player is still connected to a stopped origin"
    );
    assert!(
        after >= Duration::from_secs(3),
        "closed before the idle timeout: {after:?}"
    );
    let log = proxy.proc.log_text();
    assert!(
        log.contains("origin sent nothing for 3s"),
        "{}",
        proxy.proc.log_tail(30)
    );
    wait_until(
        Duration::from_secs(10),
        "session gone from the metrics",
        || active_flv_players(&proxy) == 0.0,
    );
}

/// A TCP listener that accepts connections and never reads or writes: an origin process that
/// is hung. Returns its port; the connections are held until the test process exits.
fn silent_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

/// Registers `port` with `proxy` as origin `server/1/1` with RTMP and HTTP endpoints.
fn register_silent(proxy: &Proxy, server: &str, port: u16) {
    let body = format!(
        r#"{{"ip":"127.0.0.1","server":"{server}","service":"1","pid":"1","rtmp":["{port}"],"http":["{port}"]}}"#
    );
    let (status, reply) = http("POST", &proxy.register_url(), Some(&body));
    assert_eq!(status, 200, "register {server}: {reply}");
}

fn set_aside(proxy: &Proxy, id: &str) -> bool {
    proxy
        .origin_list()
        .iter()
        .any(|o| o["info"]["id"] == id && o["aside"] == true)
}

#[test]
fn a_silent_origin_is_set_aside_and_the_request_served_elsewhere() {
    let dir = TempDir::new("silent");
    let proxy = Proxy::start(
        &dir,
        "proxy",
        &[
            ("PROXY_RTMP_TIMEOUT", "2s"),
            ("PROXY_ORIGIN_RESPONSE_TIMEOUT", "2s"),
        ],
    );
    let origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    // The real origin holds one stream, so a new stream goes to the origin with none.
    let _first = publish(&dir, "publisher-a", &proxy.rtmp_url("live/a"), 60);
    wait_until(Duration::from_secs(20), "live/a on the origin", || {
        origin.publishing("live", "a")
    });

    // RTMP: the handshake gets no answer within PROXY_RTMP_TIMEOUT.
    register_silent(&proxy, "silent-rtmp", silent_listener());
    let _second = publish(&dir, "publisher-b", &proxy.rtmp_url("live/b"), 60);
    wait_until(Duration::from_secs(20), "live/b on the real origin", || {
        origin.publishing("live", "b")
    });
    assert!(
        set_aside(&proxy, "silent-rtmp/1/1"),
        "{:?}",
        proxy.origins()
    );

    // HTTP: the request is sent, the response head never comes.
    register_silent(&proxy, "silent-http", silent_listener());
    let _direct = publish(
        &dir,
        "publisher-c",
        &format!("rtmp://{}/live/c", origin.rtmp),
        60,
    );
    wait_until(Duration::from_secs(20), "live/c on the real origin", || {
        origin.publishing("live", "c")
    });
    let started = Instant::now();
    let (mut player, status) = get_head(proxy.http, "/live/c.flv");
    assert!(status.contains(" 200 "), "{status}");
    assert_flv(&mut player);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "served before the silent origin timed out: the pick went elsewhere"
    );
    assert!(
        set_aside(&proxy, "silent-http/1/1"),
        "{:?}",
        proxy.origins()
    );

    let text = proxy.metrics();
    let failures = metric(&text, "srs_proxy_origin_dial_failures_total", &[]);
    assert_eq!(failures, Some(2.0), "{text}");
    let log = proxy.proc.log_text();
    assert_eq!(
        log.matches("origin unreachable or silent; setting it aside")
            .count(),
        2,
        "{}",
        proxy.proc.log_tail(40)
    );
}

/// A listener that accepts one connection, never answers, and reports when the peer closes it.
fn listener_reporting_close() -> (u16, std::sync::mpsc::Receiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The first connection is the proxy's reachability probe or its dial; watch each.
        for mut s in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let opened = Instant::now();
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                // A probe closes at once without a byte; report the dial only.
                if opened.elapsed() > Duration::from_millis(200) {
                    let _ = tx.send(Instant::now());
                }
            });
        }
    });
    (port, rx)
}

#[test]
fn a_client_that_leaves_stops_the_dial_to_its_origin() {
    let dir = TempDir::new("client-gone");
    let proxy = Proxy::start(&dir, "proxy", &[("PROXY_RTMP_TIMEOUT", "30s")]);
    let (port, closed) = listener_reporting_close();
    register_silent(&proxy, "hung", port);
    let mut player = Proc::spawn(
        "player",
        {
            let mut cmd = std::process::Command::new("ffprobe");
            cmd.args(["-v", "error", &proxy.rtmp_url("live/gone")]);
            cmd
        },
        &dir,
    );
    // The proxy answers the client itself, then dials the hung origin and waits on it (up to
    // PROXY_RTMP_TIMEOUT for the handshake).
    std::thread::sleep(Duration::from_secs(3));
    let left = Instant::now();
    player.kill();
    let origin_closed = closed
        .recv_timeout(Duration::from_secs(10))
        .expect("the origin connection was never closed");
    assert!(
        origin_closed.duration_since(left) < Duration::from_secs(3),
        "the dial went on {:?} after the client left",
        origin_closed.duration_since(left)
    );
    wait_until(Duration::from_secs(5), "logged", || {
        proxy
            .proc
            .log_text()
            .contains("client went away while its origin was dialed")
    });
}

#[test]
fn an_http_client_that_leaves_stops_the_request_to_its_origin() {
    let dir = TempDir::new("client-gone-http");
    let proxy = Proxy::start(&dir, "proxy", &[("PROXY_ORIGIN_RESPONSE_TIMEOUT", "30s")]);
    let (port, closed) = listener_reporting_close();
    register_silent(&proxy, "hung", port);
    for path in ["/live/gone.flv", "/live/gone.m3u8"] {
        let mut client = TcpStream::connect(proxy.http).expect("connect");
        write!(
            client,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
        )
        .expect("request");
        // The proxy sends the request on and waits for a response head that never comes.
        std::thread::sleep(Duration::from_secs(2));
        let left = Instant::now();
        drop(client);
        let origin_closed = closed
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{path}: the origin request was never dropped"));
        assert!(
            origin_closed.duration_since(left) < Duration::from_secs(3),
            "{path}: the origin request went on {:?} after the client left",
            origin_closed.duration_since(left)
        );
    }
}
