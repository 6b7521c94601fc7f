//! Bad input gets a clear error or close for that one connection; a stream relayed at the same
//! time is unharmed and the proxy keeps serving.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use srs_e2e::*;
use srs_rtmp::handshake::ClientHandshake;

/// Performs a client handshake on a blocking socket and returns the socket.
fn handshaken(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hs = ClientHandshake::new();
    s.write_all(&hs.take_output()).unwrap();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    while !hs.is_done() {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "server closed during handshake");
        pending.extend_from_slice(&buf[..n]);
        let used = hs.feed(&pending).unwrap();
        pending.drain(..used);
        let out = hs.take_output();
        if !out.is_empty() {
            s.write_all(&out).unwrap();
        }
    }
    s
}

/// Waits until the server closes `s` (EOF or reset) within `limit`.
fn closes(mut s: std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    let mut buf = [0u8; 65536];
    while std::time::Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn hostile_clients_do_not_harm_a_live_relay() {
    let dir = TempDir::new("bad");
    let proxy = Proxy::start(
        &dir,
        "proxy",
        &[("PROXY_RTMP_TIMEOUT", "2s"), ("PROXY_SETUP_TIMEOUT", "2s")],
    );
    let origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);

    let _publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/steady"), 90);
    wait_until(Duration::from_secs(20), "publisher on origin", || {
        origin.publishing("live", "steady")
    });
    // A player that runs through all the abuse below.
    let mut cmd = std::process::Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "warning",
        "-i",
        &proxy.rtmp_url("live/steady"),
        "-t",
        "60",
        "-f",
        "null",
        "-",
    ]);
    let mut player = Proc::spawn("steady-player", cmd, &dir);

    // Random bytes: C0 is not version 3 → closed.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let r = send_and_wait_close(proxy.rtmp, &junk, Duration::from_secs(5));
    assert!(r.is_ok(), "random bytes: {r:?}");

    // Truncated handshake: C0 + half of C1, then silence → closed by the handshake timeout.
    let mut partial = vec![3u8];
    partial.extend(std::iter::repeat_n(7u8, 700));
    let r = send_and_wait_close(proxy.rtmp, &partial, Duration::from_secs(8));
    assert!(r.is_ok(), "truncated handshake: {r:?}");

    // Oversized message: a type-0 chunk header declaring a 16 MiB - 1 message.
    {
        use std::io::Write;
        let mut s = handshaken(proxy.rtmp);
        let mut b = BytesMut::new();
        b.put_u8(0x03); // fmt 0, csid 3
        b.put_slice(&[0, 0, 0]); // timestamp
        b.put_slice(&[0xff, 0xff, 0xff]); // message length 16 MiB - 1
        b.put_u8(20); // command
        b.put_u32_le(0);
        b.put_slice(&[0u8; 128]);
        s.write_all(&b).unwrap();
        assert!(
            closes(s, Duration::from_secs(5)),
            "oversized message must close the connection"
        );
    }
    // Oversized chunk size: SetChunkSize 0x7fffffff.
    {
        use std::io::Write;
        let mut s = handshaken(proxy.rtmp);
        let mut b = BytesMut::new();
        b.put_u8(0x02);
        b.put_slice(&[0, 0, 0]);
        b.put_slice(&[0, 0, 4]);
        b.put_u8(1);
        b.put_u32_le(0);
        b.put_u32(0x7fff_ffff);
        // A following chunk that would need the huge size.
        b.put_u8(0x03);
        b.put_slice(&[0, 0, 0, 0, 0, 200, 20, 0, 0, 0, 0]);
        b.put_slice(&[0u8; 200]);
        s.write_all(&b).unwrap();
        assert!(
            closes(s, Duration::from_secs(5)),
            "absurd chunk size must close the connection"
        );
    }
    // A handshake and then nothing: closed by the command-exchange timeout.
    {
        let s = handshaken(proxy.rtmp);
        assert!(
            closes(s, Duration::from_secs(8)),
            "idle after handshake must be closed"
        );
    }

    // Play of a stream nobody publishes: a clear failure, not a hang.
    let missing = play(
        &dir,
        "play-missing",
        &proxy.rtmp_url("live/nobody"),
        10,
        Duration::from_secs(30),
    );
    assert!(
        !missing.success && missing.frames == 0,
        "play of a missing stream must fail:\n{}",
        missing.log
    );

    // Register bodies that are wrong: 4xx naming the field, nothing changes.
    let before = proxy.origin_list().len();
    assert_eq!(before, 1, "{:?}", proxy.origins());
    let cases = [
        (
            r#"{"server":"s","service":"x","pid":"1","rtmp":["1935"]}"#,
            "ip",
        ),
        (
            r#"{"ip":"127.0.0.1","service":"x","pid":"1","rtmp":["1935"]}"#,
            "server",
        ),
        (
            r#"{"ip":"127.0.0.1","server":"s","pid":"1","rtmp":["1935"]}"#,
            "service",
        ),
        (
            r#"{"ip":"127.0.0.1","server":"s","service":"x","rtmp":["1935"]}"#,
            "pid",
        ),
        (
            r#"{"ip":"127.0.0.1","server":"s","service":"x","pid":"1"}"#,
            "rtmp",
        ),
        (
            r#"{"ip":"127.0.0.1","server":"s","service":"x","pid":"1","rtmp":"1935"}"#,
            "rtmp",
        ),
        (
            r#"{"ip":"127.0.0.1","server":"s","service":"x","pid":"1","rtmp":[]}"#,
            "rtmp",
        ),
        (
            r#"{"ip":5,"server":"s","service":"x","pid":"1","rtmp":["1935"]}"#,
            "ip",
        ),
        (
            r#"{"ip":"127.0.0.1","server":"s","service":"x","pid":"1","rtmp":["1935"],"http":[8080]}"#,
            "http",
        ),
        (
            r#"{"ip":"127.0.0.1","server":"s","service":"x","pid":"1","rtmp":["tcp://:99999"]}"#,
            "rtmp",
        ),
        (r#"not json"#, "body is not valid JSON: "),
    ];
    for (body, field) in cases {
        let (status, text) = http("POST", &proxy.register_url(), Some(body));
        assert_eq!(status, 400, "{body} → {status} {text}");
        let reply: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("error for {body} is not JSON ({e}): {text}"));
        assert_eq!(reply["code"], 400, "{body} → {text}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(field),
            "error for {body} must name `{field}`: {text}"
        );
    }
    let after = proxy.origin_list().len();
    assert_eq!(before, after, "bad registrations must change nothing");

    // The relay survived all of it, and the proxy still serves new players.
    assert!(
        player.running(),
        "steady player died:\n{}",
        player.log_text()
    );
    let again = play(
        &dir,
        "play-after",
        &proxy.rtmp_url("live/steady"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&again, 50, "play after the abuse");
}

#[test]
fn http_flv_without_origin_is_503_with_reason() {
    let dir = TempDir::new("noorigin");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let (status, body) = http("GET", &proxy.http_url("live/livestream.flv"), None);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no origin"), "{body}");
    let (status, _) = http("GET", &proxy.http_url("live/livestream.ts"), None);
    assert_eq!(status, 503);
    // RTMP publish with no origin: ffmpeg fails promptly instead of hanging.
    let mut publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/none"), 10);
    let status = publisher.wait_exit(Duration::from_secs(20));
    assert!(
        matches!(status, Some(s) if !s.success()),
        "publish with no origin must fail promptly"
    );
    // Refused before any origin was dialled: no session, nothing registered.
    let text = proxy.metrics();
    let publishes = metric(
        &text,
        "srs_proxy_sessions_total",
        &[("protocol", "rtmp"), ("direction", "publish")],
    );
    assert!(
        publishes.unwrap_or(0.0) == 0.0,
        "no publish session without an origin: {text}"
    );
    assert!(proxy.origin_list().is_empty(), "{:?}", proxy.origins());
}

#[test]
fn slow_http_headers_are_cut_off() {
    let dir = TempDir::new("slowloris");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let started = std::time::Instant::now();
    let partial = b"GET /live/x.flv HTTP/1.1\r\nHost: a\r\nX-Slow: 1\r\n";
    let held: Vec<_> = [proxy.http, proxy.system, proxy.api]
        .into_iter()
        .map(|addr| {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(partial).unwrap();
            s
        })
        .collect();
    // Other clients are served meanwhile.
    let (status, _) = http(
        "GET",
        &format!("http://{}/api/v1/versions", proxy.api),
        None,
    );
    assert_eq!(status, 200);
    for s in held {
        assert!(
            closes(s, Duration::from_secs(20)),
            "a client that never finishes its headers must be closed"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "closed too early: {:?}",
        started.elapsed()
    );
}
