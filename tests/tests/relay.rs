//! RTMP and HTTP-FLV relayed end to end: ffmpeg → srs-proxy → srs-origin → srs-proxy → ffmpeg.

use std::time::Duration;

use srs_e2e::*;

/// Which of `origins` has an active publisher for `app/name`, waiting for one to appear.
fn owner(origins: &[&Origin], app: &str, name: &str) -> usize {
    let mut found = None;
    wait_until(
        Duration::from_secs(20),
        "stream published on an origin",
        || {
            found = origins.iter().position(|o| o.publishing(app, name));
            found.is_some()
        },
    );
    found.unwrap_or(0)
}

#[test]
fn publish_and_play_by_rtmp_and_http_flv() {
    let dir = TempDir::new("play");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let a = Origin::start(&dir, "origin-a", &proxy.register_url(), &[]);
    let b = Origin::start(&dir, "origin-b", &proxy.register_url(), &[]);
    proxy.wait_origins(2);

    let _publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/livestream"), 40);
    let which = owner(&[&a, &b], "live", "livestream");
    let other = if which == 0 { &b } else { &a };
    assert!(
        other.stream("live", "livestream").is_none(),
        "stream must live on one origin only"
    );

    let rtmp = play(
        &dir,
        "play-rtmp",
        &proxy.rtmp_url("live/livestream"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&rtmp, 50, "RTMP through the proxy");
    // Status and headers from the origin, CORS added, FLV bytes streaming.
    {
        use std::io::Read;
        let origin = if which == 0 { &a } else { &b };
        let resp = ureq::get(&proxy.http_url("live/livestream.flv"))
            .timeout(Duration::from_secs(10))
            .call()
            .expect("GET .flv through the proxy");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.header("Content-Type"), Some("video/x-flv"));
        assert_eq!(resp.header("Access-Control-Allow-Origin"), Some("*"));
        let mut reader = resp.into_reader();
        let mut head = [0u8; 4096];
        reader.read_exact(&mut head).expect("FLV bytes");
        assert_eq!(&head[..3], b"FLV");
        let clients = |o: &Origin| {
            o.stream("live", "livestream")
                .and_then(|s| s["clients"].as_u64())
                .unwrap_or(0)
        };
        wait_until(Duration::from_secs(10), "FLV player on the origin", || {
            clients(origin) == 2
        });
        // The client goes away: the proxy drops its origin connection too.
        drop(reader);
        wait_until(Duration::from_secs(10), "origin connection dropped", || {
            clients(origin) == 1
        });
    }
    let flv = play(
        &dir,
        "play-flv",
        &proxy.http_url("live/livestream.flv"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&flv, 50, "HTTP-FLV through the proxy");

    // What the proxy's metrics say about all this.
    let text = proxy.metrics();
    let m = |name: &str, labels: &[(&str, &str)]| metric(&text, name, labels);
    let publish = [("protocol", "rtmp"), ("direction", "publish")];
    let play = |protocol| [("protocol", protocol), ("direction", "play")];
    assert_eq!(m("srs_proxy_sessions_total", &publish), Some(1.0), "{text}");
    assert_eq!(
        m("srs_proxy_sessions_active", &publish),
        Some(1.0),
        "{text}"
    );
    let rtmp_play = m("srs_proxy_sessions_total", &play("rtmp"));
    assert!(rtmp_play >= Some(1.0), "{text}");
    let http_flv = m("srs_proxy_sessions_total", &play("http_flv"));
    assert!(http_flv >= Some(2.0), "{text}");
    let sent = |protocol| m("srs_proxy_client_bytes_sent_total", &play(protocol)).unwrap_or(0.0);
    let (flv_sent, rtmp_sent) = (sent("http_flv"), sent("rtmp"));
    assert!(flv_sent > 10_000.0 && rtmp_sent > 10_000.0, "{text}");
    assert!(flv_sent + rtmp_sent > 100_000.0, "{text}");
    // Counted as they flow: the publisher is still sending.
    let received = m("srs_proxy_client_bytes_received_total", &publish);
    assert!(received > Some(100_000.0), "{text}");
    assert_eq!(
        m("srs_proxy_origins", &[("state", "alive")]),
        Some(2.0),
        "{text}"
    );
}

#[test]
fn streams_spread_over_origins_and_players_follow() {
    let dir = TempDir::new("spread");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let a = Origin::start(&dir, "origin-a", &proxy.register_url(), &[]);
    let b = Origin::start(&dir, "origin-b", &proxy.register_url(), &[]);
    proxy.wait_origins(2);

    let names = ["s1", "s2", "s3", "s4"];
    let mut publishers = Vec::new();
    let mut owners = Vec::new();
    for name in names {
        publishers.push(publish(
            &dir,
            &format!("pub-{name}"),
            &proxy.rtmp_url(&format!("live/{name}")),
            60,
        ));
        // Wait for each before the next, so the fewest-streams choice sees every assignment.
        owners.push(owner(&[&a, &b], "live", name));
    }
    let on_a = owners.iter().filter(|o| **o == 0).count();
    assert_eq!(
        on_a, 2,
        "fewest-streams choice must spread 4 streams 2/2, got owners {owners:?}"
    );
    assert_eq!(a.streams().len(), 2, "origin a streams: {:?}", a.streams());
    assert_eq!(b.streams().len(), 2, "origin b streams: {:?}", b.streams());

    // One long-running player per stream, alternating RTMP and HTTP-FLV.
    let mut players = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let url = if i % 2 == 0 {
            proxy.rtmp_url(&format!("live/{name}"))
        } else {
            proxy.http_url(&format!("live/{name}.flv"))
        };
        let mut cmd = std::process::Command::new("ffmpeg");
        cmd.args([
            "-hide_banner",
            "-loglevel",
            "warning",
            "-i",
            &url,
            "-t",
            "30",
            "-f",
            "null",
            "-",
        ]);
        players.push(Proc::spawn(&format!("player-{name}"), cmd, &dir));
    }
    for (name, which) in names.iter().zip(&owners) {
        let origin = if *which == 0 { &a } else { &b };
        wait_until(
            Duration::from_secs(20),
            &format!("player of {name} on its owner"),
            || {
                origin
                    .stream("live", name)
                    .and_then(|s| s["clients"].as_u64())
                    .unwrap_or(0)
                    >= 2
            },
        );
    }
    for p in players.iter_mut() {
        assert!(
            p.running(),
            "player {} ended early:\n{}",
            p.name(),
            p.log_text()
        );
    }
}

#[test]
fn republish_lands_on_surviving_origin_after_kill() {
    let dir = TempDir::new("failover");
    let proxy = Proxy::start(&dir, "proxy", &[("PROXY_SERVER_ALIVE_DURATION", "3s")]);
    let a = Origin::start(&dir, "origin-a", &proxy.register_url(), &[]);
    let b = Origin::start(&dir, "origin-b", &proxy.register_url(), &[]);
    proxy.wait_origins(2);

    let mut first = publish(&dir, "publisher-1", &proxy.rtmp_url("live/failover"), 60);
    let which = owner(&[&a, &b], "live", "failover");
    let (mut dead, survivor) = if which == 0 { (a, b) } else { (b, a) };
    dead.proc.signal(libc::SIGKILL);
    dead.proc.wait_exit(Duration::from_secs(5));
    // The publisher loses its session when the origin dies.
    assert!(
        first.wait_exit(Duration::from_secs(20)).is_some(),
        "publisher should notice the dead origin"
    );

    // After PROXY_SERVER_ALIVE_DURATION the dead owner is no candidate and the stream moves.
    std::thread::sleep(Duration::from_secs(4));
    let _second = publish(&dir, "publisher-2", &proxy.rtmp_url("live/failover"), 60);
    wait_until(
        Duration::from_secs(20),
        "republish on the surviving origin",
        || survivor.publishing("live", "failover"),
    );
    let played = play(
        &dir,
        "player",
        &proxy.rtmp_url("live/failover"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&played, 50, "play after failover");
}

#[test]
fn tcurl_vhost_and_query_reach_the_origin_unchanged() {
    let dir = TempDir::new("tcurl");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);

    // A domain-name host (a vhost) and auth tokens on both the tcUrl and the stream name.
    let tc_url = format!(
        "rtmp://live.example.com:{}/live?token=abc",
        proxy.rtmp.port()
    );
    let mut cmd = std::process::Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "warning", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25"])
        .args([
            "-t",
            "30",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
        ])
        .args(["-f", "flv", "-rtmp_tcurl", &tc_url])
        .arg(proxy.rtmp_url("live/vh?auth=xyz"));
    let _publisher = Proc::spawn("publisher", cmd, &dir);
    let mut stream = None;
    wait_until(Duration::from_secs(20), "stream on the origin", || {
        stream = origin.stream("live", "vh");
        stream.is_some()
    });
    let stream = stream.unwrap_or_default();
    assert_eq!(stream["tcUrl"], tc_url.as_str(), "{stream}");
    assert_eq!(stream["vhost"], "live.example.com", "{stream}");
    // The proxy's stream key carries the vhost: the same app/stream on the default vhost is
    // another stream, with a lease of its own on the origin.
    assert_eq!(proxy.origin_streams("origin"), 1, "{:?}", proxy.origins());
    let other_vhost = "GET /live/vh.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let status = raw_http_status(proxy.http, other_vhost);
    assert_ne!(status, 0, "no answer to the default-vhost request");
    assert_eq!(proxy.origin_streams("origin"), 2, "{:?}", proxy.origins());
}
