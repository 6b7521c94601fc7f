//! SRT through the proxy (docs/design.md §6.4) with real libsrt peers: ffmpeg as the client and
//! srt-live-transmit as the origin's SRT listener.

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use srs_e2e::{assert_played, http, metric, play, wait_until, Origin, Proc, Proxy, TempDir};
use srs_test_support::media::count_video_frames;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port()
}

/// srt-live-transmit listening for one SRT caller on a free UDP port (with `options`, e.g.
/// `&passphrase=...`), writing what it receives to `<dir>/<name>.ts`. Returns the process and
/// its port.
fn srt_sink(dir: &Path, name: &str, options: &str) -> (Proc, u16) {
    let port = free_udp_port();
    let url = format!("srt://127.0.0.1:{port}?mode=listener{options}");
    (slt_to_file(dir, name, &url), port)
}

/// srt-live-transmit reading SRT `url` into `<dir>/<name>.ts`.
fn slt_to_file(dir: &Path, name: &str, url: &str) -> Proc {
    let out = dir.join(format!("{name}.ts"));
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "exec srt-live-transmit -q '{url}' file://con > '{}'",
        out.display()
    ));
    Proc::spawn(name, cmd, dir)
}

/// Waits up to 30 s for `player` (an [`slt_to_file`] of `url` named `name`) to hold 200 kB,
/// stops it and returns the video frames it got. On a loaded machine srt-live-transmit 1.5
/// refused a few times can stop trying and sit idle, sending nothing, also straight against
/// srs-origin; such a player (or one that exited) is started again after 8 s without media, with
/// the same url, so what is tested is the relay and not the client's reconnects.
fn keep_playing(dir: &Path, name: &str, url: &str, mut player: Proc) -> u64 {
    let out = dir.join(format!("{name}.ts"));
    let mut started = Instant::now();
    wait_until(Duration::from_secs(30), "srt-live-transmit playing", || {
        let received = file_len(&out);
        if !player.running() || (received == 0 && started.elapsed() > Duration::from_secs(8)) {
            player.kill();
            player = slt_to_file(dir, name, url);
            started = Instant::now();
        }
        received > 200_000
    });
    player.signal(libc::SIGTERM);
    player.wait_exit(Duration::from_secs(5));
    count_video_frames(&out)
}

/// Bytes in `file` so far (0 before it exists).
fn file_len(file: &Path) -> u64 {
    std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
}

/// An SRT origin serving a live test pattern to callers: ffmpeg sends MPEG-TS over UDP to
/// srt-live-transmit, which serves it on an SRT listener. Returns both and the SRT port.
fn srt_source(dir: &Path, name: &str) -> (Proc, Proc, u16) {
    let (udp, srt) = (free_udp_port(), free_udp_port());
    let mut relay = Command::new("srt-live-transmit");
    relay.args([
        "-q",
        &format!("udp://127.0.0.1:{udp}"),
        &format!("srt://127.0.0.1:{srt}?mode=listener"),
    ]);
    let relay = Proc::spawn(name, relay, dir);
    let feed = srt_publish(
        dir,
        &format!("{name}-feed"),
        &format!("udp://127.0.0.1:{udp}?pkt_size=1316"),
        30,
    );
    (relay, feed, srt)
}

/// Registers an origin whose only streaming endpoint is SRT on `srt_port`.
fn register_srt_origin(proxy: &Proxy, server: &str, srt_port: u16) {
    let body = format!(
        r#"{{"ip":"127.0.0.1","server":"{server}","service":"s","pid":"1","rtmp":["1"],"srt":["udp://0.0.0.0:{srt_port}"]}}"#
    );
    let (status, reply) = http("POST", &proxy.register_url(), Some(&body));
    assert_eq!(status, 200, "{reply}");
}

/// ffmpeg publishing `seconds` of a test pattern and tone as MPEG-TS to `url` (`srt://`, `udp://`).
fn srt_publish(dir: &Path, name: &str, url: &str, seconds: u32) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "warning", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string(), "-c:a", "aac", "-b:a", "64k"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(["-f", "mpegts", url]);
    Proc::spawn(name, cmd, dir)
}

/// Publishes 4 s to `url`, expects the publisher to succeed, stops `sink` (an [`srt_sink`]) and
/// returns the video frames decodable in what it received (`<dir>/<sink_name>.ts`).
fn publish_into(dir: &Path, url: &str, sink: &mut Proc, sink_name: &str) -> u64 {
    let mut publisher = srt_publish(dir, &format!("publisher-{sink_name}"), url, 4);
    let status = publisher.wait_exit(Duration::from_secs(25));
    assert!(
        status.is_some_and(|s| s.success()),
        "publisher: {}",
        publisher.log_tail(20)
    );
    sink.signal(libc::SIGTERM);
    sink.wait_exit(Duration::from_secs(5));
    count_video_frames(&dir.join(format!("{sink_name}.ts")))
}

fn srt_url(proxy: &Proxy, stream_id: &str) -> String {
    format!("srt://{}?streamid={stream_id}", proxy.srt)
}

fn sample(proxy: &Proxy, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(&proxy.metrics(), name, labels).unwrap_or(0.0)
}

#[test]
fn srt_publish_reaches_the_owner_origin_and_the_session_is_freed() {
    let dir = TempDir::new("srt-publish");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let (mut sink, port) = srt_sink(&dir, "origin", "");
    register_srt_origin(&proxy, "slt", port);
    let mut publisher = srt_publish(
        &dir,
        "publisher",
        &srt_url(&proxy, "#!::r=live/s,m=publish"),
        4,
    );
    let publish = [("protocol", "srt"), ("direction", "publish")];
    wait_until(Duration::from_secs(10), "SRT session active", || {
        sample(&proxy, "srs_proxy_sessions_active", &publish) == 1.0
    });
    let status = publisher.wait_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "publisher: {}",
        publisher.log_tail(20)
    );
    // The client's SHUTDOWN frees the session at once, not after the idle period.
    wait_until(Duration::from_secs(5), "SRT session freed", || {
        sample(&proxy, "srs_proxy_sessions_active", &publish) == 0.0
    });
    assert_eq!(sample(&proxy, "srs_proxy_sessions_total", &publish), 1.0);
    let received = sample(&proxy, "srs_proxy_client_bytes_received_total", &publish);
    assert!(received > 50_000.0, "bytes from the publisher: {received}");
    sink.signal(libc::SIGTERM);
    sink.wait_exit(Duration::from_secs(5));
    let frames = count_video_frames(&dir.join("origin.ts"));
    assert!(frames >= 50, "frames the origin received: {frames}");
}

#[test]
fn srt_refusals_and_bad_packets_harm_nobody() {
    let dir = TempDir::new("srt-bad");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    // No origin offers SRT: the caller is rejected at once, not left to time out.
    let started = Instant::now();
    let mut refused = srt_publish(
        &dir,
        "refused",
        &srt_url(&proxy, "#!::r=live/s,m=publish"),
        4,
    );
    let status = refused.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| !s.success()),
        "publisher without origin must fail"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "rejected promptly: {:?}",
        started.elapsed()
    );
    let log = refused.log_text();
    assert!(log.to_lowercase().contains("reject"), "{log}");

    // Garbage, truncated handshakes, a conclusion with no induction, an induction flood.
    let flows = || sample(&proxy, "srs_proxy_udp_flows", &[("listener", "srt")]);
    // The refusal is kept (to answer retransmits alike) until the flow expires.
    let before = flows();
    assert!(before <= 1.0, "{before}");
    let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    let mut conclusion = vec![0u8; 64];
    conclusion[0] = 0x80;
    conclusion[16..20].copy_from_slice(&5u32.to_be_bytes());
    conclusion[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut induction = vec![0u8; 64];
    induction[0] = 0x80;
    induction[16..20].copy_from_slice(&4u32.to_be_bytes());
    induction[36..40].copy_from_slice(&1u32.to_be_bytes());
    for packet in [&b"x"[..], &[0u8; 15], &[0x80; 40], &conclusion] {
        client.send_to(packet, proxy.srt).expect("send");
    }
    for _ in 0..10_000 {
        client.send_to(&induction, proxy.srt).expect("send");
    }
    let dropped = || {
        sample(
            &proxy,
            "srs_proxy_udp_datagrams_total",
            &[("listener", "srt"), ("outcome", "dropped")],
        )
    };
    wait_until(Duration::from_secs(10), "bad packets counted", || {
        dropped() >= 4.0
    });
    assert_eq!(flows(), before, "no state for inductions or garbage");

    // A real session still works afterwards.
    let (mut sink, port) = srt_sink(&dir, "origin", "");
    register_srt_origin(&proxy, "slt", port);
    let frames = publish_into(
        &dir,
        &srt_url(&proxy, "#!::r=live/t,m=publish"),
        &mut sink,
        "origin",
    );
    assert!(frames >= 50, "frames the origin received: {frames}");
}

#[test]
fn srt_play_through_the_proxy_decodes() {
    let dir = TempDir::new("srt-play");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let (_relay, _feed, port) = srt_source(&dir, "origin");
    register_srt_origin(&proxy, "source", port);
    let played = play(
        &dir,
        "player",
        &srt_url(&proxy, "#!::r=live/p,m=request"),
        50,
        Duration::from_secs(20),
    );
    assert_played(&played, 50, "SRT play through the proxy");
    let play = [("protocol", "srt"), ("direction", "play")];
    assert_eq!(sample(&proxy, "srs_proxy_sessions_total", &play), 1.0);
    assert!(sample(&proxy, "srs_proxy_client_bytes_sent_total", &play) > 20_000.0);
}

#[test]
fn encrypted_srt_works_end_to_end_and_a_wrong_passphrase_is_refused() {
    let dir = TempDir::new("srt-crypt");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    const SECRET: &str = "0123456789abcdef";
    let (mut sink, port) = srt_sink(&dir, "origin", &format!("&passphrase={SECRET}"));
    register_srt_origin(&proxy, "slt", port);
    // The key material travels in the handshake the proxy relays untouched.
    let wrong = format!(
        "{}&passphrase=fedcba9876543210",
        srt_url(&proxy, "#!::r=live/c,m=publish")
    );
    let mut refused = srt_publish(&dir, "wrong-key", &wrong, 2);
    let status = refused.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| !s.success()),
        "a wrong passphrase must be refused: {}",
        refused.log_tail(10)
    );
    let (mut sink, port) = {
        sink.signal(libc::SIGTERM);
        sink.wait_exit(Duration::from_secs(5));
        srt_sink(&dir, "origin2", &format!("&passphrase={SECRET}"))
    };
    register_srt_origin(&proxy, "slt2", port);
    let url = format!(
        "{}&passphrase={SECRET}",
        srt_url(&proxy, "#!::r=live/d,m=publish")
    );
    let frames = publish_into(&dir, &url, &mut sink, "origin2");
    assert!(frames >= 50, "frames the origin decrypted: {frames}");
}

#[test]
fn a_killed_origins_sessions_are_freed_and_a_republish_lands_elsewhere() {
    let dir = TempDir::new("srt-kill");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let (mut a, port_a) = srt_sink(&dir, "origin-a", "");
    let (mut b, port_b) = srt_sink(&dir, "origin-b", "");
    register_srt_origin(&proxy, "a", port_a);
    register_srt_origin(&proxy, "b", port_b);
    let url = srt_url(&proxy, "#!::r=live/k,m=publish");
    let mut first = srt_publish(&dir, "first", &url, 30);
    let size = |name: &str| file_len(&dir.join(format!("{name}.ts")));
    wait_until(Duration::from_secs(10), "media at one origin", || {
        size("origin-a") + size("origin-b") > 20_000
    });
    let (owner, survivor) = if size("origin-a") > 0 {
        (&mut a, "origin-b")
    } else {
        (&mut b, "origin-a")
    };
    owner.signal(libc::SIGKILL);
    let publish = [("protocol", "srt"), ("direction", "publish")];
    wait_until(
        Duration::from_secs(10),
        "the dead origin's session freed",
        || sample(&proxy, "srs_proxy_sessions_active", &publish) == 0.0,
    );
    first.wait_exit(Duration::from_secs(10));
    let survivor_proc = if survivor == "origin-a" {
        &mut a
    } else {
        &mut b
    };
    let frames = publish_into(&dir, &url, survivor_proc, survivor);
    assert!(frames >= 50, "frames at the surviving origin: {frames}");
    assert!(
        sample(&proxy, "srs_proxy_origin_dial_failures_total", &[]) >= 1.0,
        "the dead origin was set aside"
    );
}

/// srs-origin behind the proxy: an SRT publisher and SRT players through the proxy, two streams
/// on two origins, and the owner's HTTP-TS of the SRT stream.
#[test]
fn srt_through_the_proxy_to_srs_origin() {
    let dir = TempDir::new("srt-origin");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let a = Origin::start(&dir, "origin-a", &proxy.register_url(), &[]);
    let b = Origin::start(&dir, "origin-b", &proxy.register_url(), &[]);
    proxy.wait_origins(2);
    let mut one_publisher = srt_publish(
        &dir,
        "pub-one",
        &srt_url(&proxy, "#!::r=live/one,m=publish"),
        30,
    );
    let _two = srt_publish(
        &dir,
        "pub-two",
        &srt_url(&proxy, "#!::r=live/two,m=publish"),
        30,
    );
    let owner = |name: &str| {
        let mut found = None;
        wait_until(Duration::from_secs(10), "stream on an origin", || {
            found = [&a, &b]
                .into_iter()
                .position(|o| o.publishing("live", name));
            found.is_some()
        });
        found.unwrap_or_default()
    };
    let (one, two) = (owner("one"), owner("two"));
    assert_ne!(one, two, "two streams spread over the two origins");
    // Several players of one stream and one of the other, at once, through the proxy.
    let players: Vec<_> = ["one", "one", "two"]
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let url = srt_url(&proxy, &format!("#!::r=live/{name},m=request"));
            let dir = dir.to_path_buf();
            std::thread::spawn(move || {
                play(
                    &dir,
                    &format!("player-{i}"),
                    &url,
                    50,
                    Duration::from_secs(25),
                )
            })
        })
        .collect();
    for (i, p) in players.into_iter().enumerate() {
        let played = p.join().expect("player thread");
        assert_played(&played, 50, &format!("SRT player {i} through the proxy"));
    }
    let play = [("protocol", "srt"), ("direction", "play")];
    assert_eq!(sample(&proxy, "srs_proxy_sessions_total", &play), 3.0);
    // A second publisher of a stream gets the origin's rejection through the proxy.
    let mut second = srt_publish(
        &dir,
        "pub-second",
        &srt_url(&proxy, "#!::r=live/one,m=publish"),
        5,
    );
    let status = second.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| !s.success()),
        "a second publisher must be refused"
    );
    assert!(one_publisher.running(), "the first publisher is unharmed");
    // The origin that owns the SRT stream serves it as HTTP-TS too.
    let origin = [&a, &b][one];
    let played = srs_e2e::play(
        &dir,
        "play-ts",
        &format!("http://{}/live/one.ts", origin.http),
        50,
        Duration::from_secs(20),
    );
    assert_played(&played, 50, "HTTP-TS of the SRT stream at its origin");
}

/// srt-live-transmit as the publishing client through the proxy, ffmpeg playing; then ffmpeg
/// publishing and srt-live-transmit playing.
#[test]
fn srt_live_transmit_is_a_client_too() {
    let dir = TempDir::new("srt-slt");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let _origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let udp = free_udp_port();
    let mut slt = Command::new("srt-live-transmit");
    slt.args([
        "-q",
        &format!("udp://127.0.0.1:{udp}"),
        &srt_url(&proxy, "#!::r=live/slt,m=publish"),
    ]);
    let _publisher = Proc::spawn("slt-publisher", slt, &dir);
    let _feed = srt_publish(
        &dir,
        "feed",
        &format!("udp://127.0.0.1:{udp}?pkt_size=1316"),
        30,
    );
    let played = play(
        &dir,
        "ffmpeg-player",
        &srt_url(&proxy, "#!::r=live/slt,m=request"),
        50,
        Duration::from_secs(25),
    );
    assert_played(
        &played,
        50,
        "ffmpeg playing what srt-live-transmit published",
    );

    let _ff = srt_publish(
        &dir,
        "ffmpeg-publisher",
        &srt_url(&proxy, "#!::r=live/ff,m=publish"),
        30,
    );
    // Played once the stream is being published, so that the player is not refused first.
    let publish = [("protocol", "srt"), ("direction", "publish")];
    wait_until(Duration::from_secs(15), "ffmpeg publishing", || {
        sample(&proxy, "srs_proxy_sessions_total", &publish) >= 2.0
    });
    let url = srt_url(&proxy, "#!::r=live/ff,m=request");
    let player = slt_to_file(&dir, "slt-player", &url);
    let frames = keep_playing(&dir, "slt-player", &url, player);
    assert!(frames >= 50, "frames srt-live-transmit played: {frames}");
}

/// A player bound to a fixed local port, refused while the stream is absent, gets it once it is
/// published: the refusal is not replayed to its next connections from the same port, whether
/// the same process retries or a new one starts on that port.
#[test]
fn a_player_refused_on_a_fixed_port_plays_once_the_stream_is_published() {
    let dir = TempDir::new("srt-fixed-port");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let _origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let local_port = free_udp_port();
    let url = srt_url(&proxy, "#!::r=live/later,m=request");
    let url = format!("{url}&port={local_port}");
    let player = slt_to_file(&dir, "player", &url);
    let refused = format!("client=127.0.0.1:{local_port} stream=__defaultVhost__/live/later");
    wait_until(Duration::from_secs(10), "the player refused", || {
        proxy.proc.log_text().contains(&refused)
    });
    let _publisher = srt_publish(
        &dir,
        "publisher",
        &srt_url(&proxy, "#!::r=live/later,m=publish"),
        30,
    );
    let frames = keep_playing(&dir, "player", &url, player);
    assert!(frames >= 50, "frames the player got: {frames}");
}
