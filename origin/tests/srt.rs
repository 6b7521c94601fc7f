//! End-to-end SRT: ffmpeg (libsrt) and srt-live-transmit publish MPEG-TS to the `srs-origin`
//! binary and play it back over SRT and HTTP-TS, on free loopback ports.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use srs_test_support::media::{self, assert_played};
use srs_test_support::{wait_until, Proc};

mod support;
use support::{start_origin, Origin};

const PLAY_LIMIT: Duration = Duration::from_secs(20);

fn srt_url(origin: &Origin, streamid: &str) -> String {
    format!("srt://127.0.0.1:{}?streamid={streamid}", origin.srt)
}

/// `GET /api/v1/streams` of the origin, as JSON.
fn streams(origin: &Origin) -> serde_json::Value {
    let mut tcp = TcpStream::connect(("127.0.0.1", origin.api)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        tcp,
        "GET /api/v1/streams HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

/// Waits until the origin lists `name` with some video frames received.
fn wait_published(origin: &Origin, name: &str) {
    wait_until(
        Duration::from_secs(15),
        "the SRT stream to be listed",
        || {
            streams(origin)["streams"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["name"] == name && s["frames"] != 0))
        },
    );
}

/// Starts srt-live-transmit publishing ffmpeg's generated MPEG-TS (read from stdin) to `url`.
fn slt_publish(origin: &Origin, url: &str, seconds: u32) -> (Proc, Proc) {
    let source = media::source_command(seconds, "mpegts", "-");
    let (ffmpeg, ts) = Proc::spawn_piped("slt-source", source, &origin.dir);
    let mut cmd = Command::new("srt-live-transmit");
    cmd.args(["-q", "file://con", url]);
    let slt = Proc::try_spawn_with_stdin("slt-publish", cmd, &origin.dir, Stdio::from(ts))
        .unwrap_or_else(|e| panic!("{e} (apt-get install srt-tools)"));
    (ffmpeg, slt)
}

#[test]
fn ffmpeg_publishes_and_plays_over_srt_and_http_ts() {
    let origin = start_origin(&[]);
    let _publisher = media::publish(
        &origin.dir,
        "publish",
        &srt_url(&origin, "#!::r=live/s,m=publish"),
        20,
    );
    wait_published(&origin, "s");

    let played = media::play(
        &origin.dir,
        "play-srt",
        &srt_url(&origin, "#!::r=live/s,m=request"),
        50,
        PLAY_LIMIT,
    );
    assert_played(&played, 50, "SRT play");

    let played = media::play(
        &origin.dir,
        "play-http-ts",
        &format!("http://127.0.0.1:{}/live/s.ts", origin.http),
        50,
        PLAY_LIMIT,
    );
    assert_played(&played, 50, "HTTP-TS play of an SRT stream");

    // The short stream id form plays too.
    let played = media::play(
        &origin.dir,
        "play-short",
        &srt_url(&origin, "live/s"),
        25,
        PLAY_LIMIT,
    );
    assert_played(&played, 25, "SRT play with streamid=live/s");

    let v = streams(&origin);
    let s = &v["streams"][0];
    assert_eq!(s["url"], "/live/s", "{v}");
    assert_eq!(s["video"]["codec"], "H264", "{v}");
    assert_eq!(s["audio"]["codec"], "AAC", "{v}");
    assert!(s["recv_bytes"].as_u64().unwrap_or(0) > 10_000, "{v}");
}

#[test]
fn srt_live_transmit_publishes_and_plays_whole_1316_byte_messages() {
    let origin = start_origin(&[]);
    let _publisher = slt_publish(&origin, &srt_url(&origin, "#!::r=live/slt,m=publish"), 20);
    wait_published(&origin, "slt");

    // ffmpeg plays what srt-live-transmit publishes.
    let played = media::play(
        &origin.dir,
        "play-ffmpeg",
        &srt_url(&origin, "#!::r=live/slt,m=request"),
        50,
        PLAY_LIMIT,
    );
    assert_played(&played, 50, "ffmpeg playing an srt-live-transmit publisher");

    // srt-live-transmit plays to UDP: one datagram per SRT message, so sizes are visible.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let target = format!("udp://{}", udp.local_addr().unwrap());
    let mut cmd = Command::new("srt-live-transmit");
    cmd.args(["-q", &srt_url(&origin, "#!::r=live/slt,m=request"), &target]);
    let _player = Proc::spawn("slt-play", cmd, &origin.dir);
    let mut sizes = Vec::new();
    let mut ts = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        if let Ok(n) = udp.recv(&mut buf) {
            sizes.push(n);
            ts.extend_from_slice(&buf[..n]);
        }
    }
    assert!(sizes.len() > 50, "messages received: {}", sizes.len());
    assert!(
        sizes.iter().all(|n| n.is_multiple_of(188) && *n <= 1316),
        "messages of whole TS packets, at most 1316 bytes: {sizes:?}"
    );
    let whole = sizes.iter().filter(|n| **n == 1316).count();
    assert!(
        whole * 2 > sizes.len(),
        "mostly 1316-byte messages: {sizes:?}"
    );
    let file = origin.dir.join("slt-play.ts");
    std::fs::write(&file, &ts).unwrap();
    let frames = media::count_video_frames(&file);
    assert!(frames >= 50, "srt-live-transmit received {frames} frames");
}

#[test]
fn second_publisher_is_rejected_and_unknown_streams_are_not_found() {
    let origin = start_origin(&[]);
    let url = srt_url(&origin, "#!::r=live/one,m=publish");
    let _first = media::publish(&origin.dir, "publish-1", &url, 20);
    wait_published(&origin, "one");

    // A second publisher of the same stream (SRT or RTMP) is refused during the handshake.
    let started = Instant::now();
    let mut second = media::publish(&origin.dir, "publish-2", &url, 20);
    let status = second.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| !s.success()),
        "second SRT publisher: {status:?}\n{}",
        second.log_text()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let rtmp = format!("rtmp://127.0.0.1:{}/live/one", origin.rtmp);
    let mut rtmp_publisher = media::publish(&origin.dir, "publish-rtmp", &rtmp, 20);
    let status = rtmp_publisher.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| !s.success()),
        "RTMP publisher of an SRT stream"
    );

    // The first publisher is unharmed.
    let played = media::play(
        &origin.dir,
        "play",
        &srt_url(&origin, "#!::r=live/one,m=request"),
        50,
        PLAY_LIMIT,
    );
    assert_played(&played, 50, "the first publisher after the refusals");

    // A player of a stream nobody publishes is rejected at once; HTTP-TS gives 404.
    let started = Instant::now();
    let played = media::play(
        &origin.dir,
        "play-none",
        &srt_url(&origin, "#!::r=live/none,m=request"),
        1,
        PLAY_LIMIT,
    );
    assert!(!played.success && played.frames == 0, "{}", played.log);
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = origin.log();
    assert!(
        log.contains("rejected") && log.contains("code=2409"),
        "{log}"
    );
    assert!(log.contains("code=2404"), "{log}");
    // A bad stream id is a bad request.
    let played = media::play(
        &origin.dir,
        "play-bad",
        &srt_url(&origin, "#!::r=live/x,m=push"),
        1,
        PLAY_LIMIT,
    );
    assert!(!played.success, "{}", played.log);
    assert!(origin.log().contains("code=2400"));
}
