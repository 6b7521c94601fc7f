//! HLS through the proxy (docs/design.md §6.3): playlists rewritten with an `spbhid` session id, segments
//! relayed from the session's origin by any proxy, bad ids and path tricks refused.
//!
//! Most tests use a static origin (`python3 -m http.server`) serving SRS-shaped playlists and TS
//! segments made by ffmpeg; the last two use the real srs-origin.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use srs_e2e::*;

/// The `hls_ctx` SRS would put in its URIs; the static server ignores query strings.
const CTX: &str = "ctx7f3a";

/// A directory with `live/s.m3u8` (SRS-shaped master), `live/s-media.m3u8` (media playlist whose
/// segment URIs carry `?hls_ctx=`) and `live/s-0.ts`.. (2 s each), made once per test binary.
fn fixture() -> &'static Path {
    // Shared by the tests of this binary, so never removed (a static is not dropped).
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = TempDir::new("hls-fixture");
        let live = root.join("live");
        std::fs::create_dir_all(&live).expect("fixture dir");
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", "6", "-c:v", "libx264", "-preset", "ultrafast"])
            .args([
                "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
            ])
            .args(["-f", "hls", "-hls_time", "2", "-hls_list_size", "0"])
            .arg("-hls_segment_filename")
            .arg(live.join("s-%d.ts"))
            .arg(live.join("s-media.m3u8"))
            .status()
            .expect("run ffmpeg");
        assert!(status.success(), "ffmpeg could not make the HLS fixture");
        let media = std::fs::read_to_string(live.join("s-media.m3u8")).expect("media playlist");
        let media: String = media
            .lines()
            .map(|l| {
                if l.starts_with('#') || l.is_empty() {
                    format!("{l}\n")
                } else {
                    format!("{l}?hls_ctx={CTX}\n")
                }
            })
            .collect();
        std::fs::write(live.join("s-media.m3u8"), media).expect("write media playlist");
        // SRS's master playlist shape (tests/fixtures/hls/srs-master.m3u8), pointing at the
        // media playlist by absolute path.
        let master = include_str!("../fixtures/hls/srs-master.m3u8").replace(
            "/live/s.m3u8?hls_ctx=ID",
            &format!("/live/s-media.m3u8?hls_ctx={CTX}"),
        );
        std::fs::write(live.join("s.m3u8"), master).expect("write master playlist");
        // Over the proxy's 2 MiB playlist bound.
        let big = format!("#EXTM3U\n{}", "#EXT-X-X\n".repeat(300_000));
        std::fs::write(live.join("big.m3u8"), big).expect("write big playlist");
        root
    })
    .path()
}

/// The URI lines of a playlist.
fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The `spbhid` value of a URI.
fn spbhid(uri: &str) -> String {
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .find_map(|p| p.strip_prefix("spbhid="))
        .unwrap_or_else(|| panic!("no spbhid in {uri}"))
        .to_string()
}

/// Fetches the master playlist through the proxy at `http` and returns the media playlist URI.
fn master_through(http: std::net::SocketAddr) -> String {
    let reply = get_reply(&format!("http://{http}/live/s.m3u8"));
    assert_eq!(reply.status, 200, "master playlist: {}", reply.text());
    let lines = uris(&reply.text());
    assert_eq!(lines.len(), 1, "one variant: {}", reply.text());
    lines[0].clone()
}

#[test]
fn hls_from_a_static_origin_through_the_proxy() {
    let dir = TempDir::new("hls-static");
    let origin = StaticServer::start(&dir, "static-origin", fixture());
    let proxy = Proxy::start(&dir, "proxy", &[]);
    origin.register(&proxy, "fx");

    // The master: SRS's shape, its variant made a proxy path with a session id, hls_ctx kept.
    let reply = get_reply(&proxy.http_url("live/s.m3u8"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        reply.header("content-length"),
        Some(reply.body.len().to_string().as_str())
    );
    let head = ureq::head(&proxy.http_url("live/s.m3u8"))
        .call()
        .expect("HEAD playlist");
    assert_eq!(
        head.header("content-length"),
        reply.header("content-length"),
        "HEAD announces the rewritten length"
    );
    let (status, _) = http("OPTIONS", &proxy.http_url("live/s.m3u8"), None);
    assert_eq!(status, 200, "CORS preflight");
    let variant = uris(&reply.text()).remove(0);
    let id = spbhid(&variant);
    assert_eq!(id.len(), 32, "128-bit hex id: {id}");
    assert_eq!(
        variant,
        format!("/live/s-media.m3u8?hls_ctx={CTX}&spbhid={id}")
    );

    // The media playlist: every segment URI is a proxy path with hls_ctx and the same id.
    let media = get_reply(&format!("http://{}{variant}", proxy.http));
    assert_eq!(media.status, 200, "{}", media.text());
    let segments = uris(&media.text());
    assert_eq!(segments.len(), 3, "{}", media.text());
    for (n, uri) in segments.iter().enumerate() {
        assert_eq!(uri, &format!("/live/s-{n}.ts?hls_ctx={CTX}&spbhid={id}"));
    }

    // A segment through the proxy is the file, byte for byte.
    let segment = get_reply(&format!("http://{}{}", proxy.http, segments[1]));
    assert_eq!(segment.status, 200);
    assert_eq!(segment.header("access-control-allow-origin"), Some("*"));
    let file = std::fs::read(fixture().join("live/s-1.ts")).expect("segment file");
    assert_eq!(segment.body, file, "segment bytes through the proxy");

    // A player decodes across the segments.
    let played = play(
        &dir,
        "play-hls",
        &proxy.http_url("live/s.m3u8"),
        140,
        Duration::from_secs(30),
    );
    assert_played(&played, 140, "HLS from the static origin through the proxy");
    let requests = origin.requests();
    for n in 0..3 {
        let line = format!("GET /live/s-{n}.ts?hls_ctx={CTX} HTTP/1.1");
        assert!(
            requests.contains(&line),
            "origin saw {line:?}: {requests:?}"
        );
    }
    assert!(
        requests.iter().all(|r| !r.contains("spbhid")),
        "spbhid is not sent to the origin: {requests:?}"
    );
    // Each relayed request is one HLS session in the metrics: this test's segment and the
    // player's three, besides the playlists.
    let hls = metric(
        &proxy.metrics(),
        "srs_proxy_sessions_total",
        &[("protocol", "hls"), ("direction", "play")],
    );
    assert!(hls >= Some(4.0), "HLS segment relays: {hls:?}");
}

#[test]
fn hls_sessions_are_shared_by_proxies_on_redis() {
    let dir = TempDir::new("hls-redis");
    let redis = Redis::start();
    let env = redis_env(&redis);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let origin = StaticServer::start(&dir, "static-origin", fixture());
    let a = Proxy::start(&dir, "proxy-a", &env);
    let b = Proxy::start(&dir, "proxy-b", &env);
    origin.register(&a, "fx");

    // The playlist through A; its media playlist and segments through B.
    let variant = master_through(a.http);
    let id = spbhid(&variant);
    let media = get_reply(&format!("http://{}{variant}", b.http));
    assert_eq!(
        media.status,
        200,
        "media playlist through B: {}",
        media.text()
    );
    let segments = uris(&media.text());
    assert_eq!(segments.len(), 3, "{}", media.text());
    assert!(segments.iter().all(|s| spbhid(s) == id));
    for (n, uri) in segments.iter().enumerate() {
        let through_b = get_reply(&format!("http://{}{uri}", b.http));
        let direct = get_reply(&format!("http://127.0.0.1:{}/live/s-{n}.ts", origin.port));
        assert_eq!(through_b.status, 200);
        assert_eq!(
            through_b.body, direct.body,
            "segment {n} through B equals the origin's"
        );
    }
}

#[test]
fn hls_bad_input_is_refused() {
    let dir = TempDir::new("hls-bad");
    let origin = StaticServer::start(&dir, "static-origin", fixture());
    let proxy = Proxy::start(&dir, "proxy", &[("PROXY_HLS_ALIVE_DURATION", "1s")]);
    origin.register(&proxy, "fx");
    let id = spbhid(&master_through(proxy.http));

    // Ids the store does not know: 404 with a reason, never relayed.
    for forged in ["0123456789abcdef0123456789abcdef", "short", ""] {
        let reply = get_reply(&proxy.http_url(&format!("live/s-0.ts?spbhid={forged}")));
        assert_eq!(reply.status, 404, "forged id {forged:?}");
        assert!(
            reply.text().contains("unknown or expired HLS session"),
            "{}",
            reply.text()
        );
    }
    // A real id used outside its stream's app directory.
    let reply = get_reply(&proxy.http_url(&format!("other/s-0.ts?spbhid={id}")));
    assert_eq!(reply.status, 403, "{}", reply.text());

    // The playlist of a stream the origin does not have: its 404 is passed on.
    let reply = get_reply(&proxy.http_url("live/nope.m3u8"));
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));

    // A playlist over the size bound.
    let reply = get_reply(&proxy.http_url("live/big.m3u8"));
    assert_eq!(reply.status, 502, "{}", reply.text());

    // Traversal, sent verbatim.
    for target in [
        "/live/../../etc/passwd.m3u8".to_string(),
        "/live/%2e%2e/%2e%2e/x.m3u8".to_string(),
        format!("/live/..%2fsecret.ts?spbhid={id}"),
        format!("/live/%2E%2E/%2e%2e/etc/passwd.ts?spbhid={id}"),
    ] {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        assert_eq!(raw_http_status(proxy.http, &request), 400, "{target}");
    }

    // Idle longer than PROXY_HLS_ALIVE_DURATION: the id is forgotten.
    std::thread::sleep(Duration::from_millis(2200));
    let reply = get_reply(&proxy.http_url(&format!("live/s-0.ts?spbhid={id}")));
    assert_eq!(reply.status, 404, "expired id");

    let requests = origin.requests();
    assert!(
        requests.iter().all(|r| {
            !r.contains("passwd")
                && !r.contains("secret")
                && !r.contains("x.m3u8")
                && !r.contains("/other/")
                && !r.contains("..")
                && !r.contains("%2")
        }),
        "refused requests reached the origin: {requests:?}"
    );
    assert!(
        requests.iter().all(|r| !r.starts_with("GET /live/s-0.ts")),
        "forged or expired ids reached the origin: {requests:?}"
    );
}

/// Starts a proxy and an srs-origin, and an RTMP publisher through the proxy to `live/stream`.
fn live_stream(dir: &Path) -> (Proxy, Origin, Proc) {
    let proxy = Proxy::start(dir, "proxy", &[]);
    let origin = Origin::start(dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let publisher = publish(dir, "publisher", &proxy.rtmp_url("live/stream"), 40);
    wait_until(Duration::from_secs(20), "stream published", || {
        origin.publishing("live", "stream")
    });
    (proxy, origin, publisher)
}

#[test]
fn hls_from_srs_origin_through_the_proxy() {
    let dir = TempDir::new("hls-origin");
    let (proxy, _origin, _publisher) = live_stream(&dir);
    wait_until(
        Duration::from_secs(20),
        "HLS playlist with segments",
        || {
            let reply = get_reply(&proxy.http_url("live/stream.m3u8"));
            if reply.status != 200 {
                return false;
            }
            // Follow the master to the media playlist, which needs a few segments.
            let Some(media) = uris(&reply.text()).into_iter().next() else {
                return false;
            };
            let media = get_reply(&format!("http://{}{media}", proxy.http));
            media.status == 200 && uris(&media.text()).len() >= 2
        },
    );
    let played = play(
        &dir,
        "play-hls",
        &proxy.http_url("live/stream.m3u8"),
        100,
        Duration::from_secs(30),
    );
    assert_played(&played, 100, "HLS from srs-origin through the proxy");
    // The proxy counts each relayed request, playlists and segments.
    let hls = metric(
        &proxy.metrics(),
        "srs_proxy_sessions_total",
        &[("protocol", "hls"), ("direction", "play")],
    );
    assert!(hls >= Some(2.0), "segments relayed: {hls:?}");
}

#[test]
fn http_ts_from_srs_origin_through_the_proxy() {
    let dir = TempDir::new("ts-origin");
    let (proxy, _origin, _publisher) = live_stream(&dir);
    let played = play(
        &dir,
        "play-ts",
        &proxy.http_url("live/stream.ts"),
        50,
        Duration::from_secs(20),
    );
    assert_played(&played, 50, "HTTP-TS from srs-origin through the proxy");
}

#[test]
fn hls_session_moves_when_its_origin_dies() {
    let dir = TempDir::new("hls-move");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let fast = [("ORIGIN_HLS_FRAGMENT", "1s"), ("ORIGIN_HLS_WINDOW", "4s")];
    let a = Origin::start(&dir, "origin-a", &proxy.register_url(), &fast);
    let b = Origin::start(&dir, "origin-b", &proxy.register_url(), &fast);
    proxy.wait_origins(2);
    let first = publish(&dir, "publisher-1", &proxy.rtmp_url("live/move"), 60);
    let mut owner = None;
    wait_until(Duration::from_secs(20), "stream published", || {
        owner = [&a, &b].iter().position(|o| o.publishing("live", "move"));
        owner.is_some()
    });

    // A player's session: the media playlist URI, with its spbhid.
    let mut media = String::new();
    wait_until(
        Duration::from_secs(20),
        "media playlist with segments",
        || {
            let master = get_reply(&proxy.http_url("live/move.m3u8"));
            let Some(uri) = uris(&master.text()).into_iter().next() else {
                return false;
            };
            media = format!("http://{}{uri}", proxy.http);
            let reply = get_reply(&media);
            reply.status == 200 && !uris(&reply.text()).is_empty()
        },
    );

    // The session's origin dies; the publisher comes back through the proxy elsewhere.
    let (mut dead, survivor) = if owner == Some(0) { (a, b) } else { (b, a) };
    dead.proc.signal(libc::SIGKILL);
    dead.proc.wait_exit(Duration::from_secs(5));
    drop(first);
    let _second = publish(&dir, "publisher-2", &proxy.rtmp_url("live/move"), 60);
    wait_until(
        Duration::from_secs(20),
        "republished on the survivor",
        || survivor.publishing("live", "move"),
    );

    // The same session URL keeps working: the proxy moves the session to the live owner.
    wait_until(
        Duration::from_secs(20),
        "the old session's playlist served again",
        || {
            let reply = get_reply(&media);
            reply.status == 200 && !uris(&reply.text()).is_empty()
        },
    );
    let playlist = get_reply(&media).text();
    let segment = uris(&playlist).into_iter().last().expect("a segment");
    assert_eq!(spbhid(&segment), spbhid(&media), "same session id");
    let reply = get_reply(&format!("http://{}{segment}", proxy.http));
    assert_eq!(reply.status, 200, "segment after the move");
    assert_eq!(reply.body.first(), Some(&0x47), "MPEG-TS bytes");
    // The move went through the proxy's view: the dead origin is set aside after the refused
    // dial, the survivor holds the stream.
    let (dead_name, survivor_name) = if owner == Some(0) {
        ("origin-a", "origin-b")
    } else {
        ("origin-b", "origin-a")
    };
    let dead_entry = proxy.origin_entry(dead_name);
    assert_eq!(dead_entry["aside"], true, "{dead_entry}");
    assert!(proxy.origin_streams(survivor_name) >= 1);
    let dials = metric(
        &proxy.metrics(),
        "srs_proxy_origin_dial_failures_total",
        &[],
    );
    assert!(dials >= Some(1.0), "dial failures: {dials:?}");
}
