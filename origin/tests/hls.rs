//! End-to-end HLS and HTTP-TS: runs the `srs-origin` binary with a real ffmpeg publishing over
//! RTMP, then reads playlists and segments over HTTP and decodes them with real ffmpeg/ffprobe.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use srs_test_support::{media, Proc};

mod support;
use support::{start_origin, Origin};

const T: Duration = Duration::from_secs(15);

/// ffmpeg publishing the test source to the origin's `live/<stream>` for at most a minute.
fn publish(origin: &Origin, stream: &str) -> Proc {
    let url = format!("rtmp://127.0.0.1:{}/live/{stream}", origin.rtmp);
    media::publish(&origin.dir, &format!("publish-{stream}"), &url, 60)
}

async fn get(url: &str) -> hyper::Response<hyper::body::Incoming> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    tokio::time::timeout(T, client.get(url.parse().unwrap()))
        .await
        .unwrap()
        .unwrap()
}

/// GET with the whole body: status, headers, body.
async fn fetch(url: &str) -> (u16, http::HeaderMap, Bytes) {
    let response = get(url).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(T, response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (status, headers, body)
}

/// Polls `url` until it answers 200: the publisher needs a moment to connect, and a playlist
/// of a stream not yet published is a 404. ffmpeg's start-up (x264, three publishers at once)
/// can take many seconds on a loaded machine, hence the long bound.
async fn wait_for_200(url: &str) {
    let deadline = Instant::now() + 3 * T;
    while fetch(url).await.0 != 200 {
        assert!(Instant::now() < deadline, "{url} never answered 200");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The parts of a media playlist the tests check.
#[derive(Debug)]
struct MediaPlaylist {
    target: u64,
    sequence: u64,
    durations: Vec<f64>,
    uris: Vec<String>,
}

fn parse_media(text: &str) -> MediaPlaylist {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("#EXTM3U"), "{text}");
    assert_eq!(lines.next(), Some("#EXT-X-VERSION:3"), "{text}");
    let mut p = MediaPlaylist {
        target: 0,
        sequence: 0,
        durations: Vec::new(),
        uris: Vec::new(),
    };
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.sequence = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let v = v.strip_suffix(',').unwrap();
            assert_eq!(v.split_once('.').unwrap().1.len(), 3, "3 decimals: {line}");
            p.durations.push(v.parse().unwrap());
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            p.uris.push(line.to_string());
        }
    }
    assert_eq!(p.durations.len(), p.uris.len(), "{text}");
    p
}

/// Plays `url` with ffmpeg and returns how many video frames it decoded (at most `frames`).
fn decoded_video_frames(origin: &Origin, url: &str, frames: u32) -> u64 {
    let played = media::play(&origin.dir, "player", url, frames, T * 2);
    assert!(played.success, "ffmpeg failed on {url}:\n{}", played.log);
    played.frames
}

#[tokio::test]
async fn hls_master_media_segments_and_sliding_window() {
    let origin = start_origin(&[
        ("ORIGIN_PLAY_WAIT", "10s"),
        ("ORIGIN_HLS_FRAGMENT", "1s"),
        ("ORIGIN_HLS_WINDOW", "4s"),
    ]);
    let base = format!("http://127.0.0.1:{}", origin.http);
    let (status, _, _) = fetch(&format!("{base}/live/nobody.m3u8")).await;
    assert_eq!(status, 404, "a stream nobody publishes");
    let _publisher = publish(&origin, "win");
    wait_for_200(&format!("{base}/live/win.m3u8")).await;

    // The master playlist waits for the first segment, then names an hls_ctx session.
    let (status, headers, body) = fetch(&format!("{base}/live/win.m3u8")).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(header(&headers, "access-control-allow-origin"), "*");
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    assert_eq!(header(&headers, "content-length"), body.len().to_string());
    let master = std::str::from_utf8(&body).unwrap();
    let lines: Vec<&str> = master.lines().collect();
    assert_eq!(lines.len(), 3, "{master}");
    assert_eq!(lines[0], "#EXTM3U");
    assert_eq!(
        lines[1],
        "#EXT-X-STREAM-INF:BANDWIDTH=1,AVERAGE-BANDWIDTH=1"
    );
    let ctx = lines[2]
        .strip_prefix("/live/win.m3u8?hls_ctx=")
        .unwrap_or_else(|| panic!("{master}"));
    assert!(ctx.len() == 8 && ctx.bytes().all(|b| b.is_ascii_alphanumeric()));

    // The media playlist: ~1 s segments named win-<seq>.ts?hls_ctx=<ctx>.
    let media_url = format!("{base}{}", lines[2]);
    let (status, headers, body) = fetch(&media_url).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    let first = parse_media(std::str::from_utf8(&body).unwrap());
    assert!(!first.uris.is_empty());
    for (i, uri) in first.uris.iter().enumerate() {
        assert_eq!(
            uri,
            &format!("win-{}.ts?hls_ctx={ctx}", first.sequence + i as u64)
        );
    }
    // Keyframes come every second; a segment is cut at the first one after 1 s.
    assert!(
        first.durations.iter().all(|d| (1.0..2.0).contains(d)),
        "{first:?}"
    );
    let longest = first.durations.iter().cloned().fold(0.0, f64::max);
    assert_eq!(first.target, longest.ceil() as u64);

    // A segment decodes on its own: ffprobe finds H.264 and AAC.
    let (status, headers, segment) = fetch(&format!("{base}/live/{}", first.uris[0])).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "video/mp2t");
    assert_eq!(
        header(&headers, "content-length"),
        segment.len().to_string()
    );
    assert_eq!(segment.len() % 188, 0);
    let path = origin.dir.join("segment.ts");
    std::fs::write(&path, &segment).unwrap();
    let codecs = media::probe_codecs(&path);
    assert!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "{codecs:?}"
    );

    // The window slides: the media sequence advances, the playlist stays about 4 s long, and
    // the first segment is eventually dropped from memory.
    let first_uri = format!("{base}/live/{}", first.uris[0]);
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let (_, _, body) = fetch(&media_url).await;
        let now = parse_media(std::str::from_utf8(&body).unwrap());
        let total: f64 = now.durations.iter().sum();
        assert!(now.uris.len() <= 4 && total < 6.0, "{now:?}");
        let (status, _, _) = fetch(&first_uri).await;
        if now.sequence > first.sequence + 4 && status == 404 {
            assert!(total >= 4.0, "the playlist covers the window: {now:?}");
            break;
        }
        assert!(Instant::now() < deadline, "window never slid: {now:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, _, _) = fetch(&format!("{base}/live/win-999999.ts?hls_ctx={ctx}")).await;
    assert_eq!(status, 404, "unknown segment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_hls_and_http_ts() {
    let origin = start_origin(&[
        ("ORIGIN_PLAY_WAIT", "10s"),
        ("ORIGIN_HLS_FRAGMENT", "1s"),
        ("ORIGIN_HLS_WINDOW", "4s"),
    ]);
    let _publisher = publish(&origin, "dec");
    let base = format!("http://127.0.0.1:{}", origin.http);

    let hls = format!("{base}/live/dec.m3u8");
    wait_for_200(&hls).await;
    let frames = tokio::task::block_in_place(|| decoded_video_frames(&origin, &hls, 100));
    assert_eq!(frames, 100, "HLS through master and media playlists");

    // HTTP-TS: a streamed response that starts with a TS packet.
    let response = get(&format!("{base}/live/dec.ts")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "content-type"), "video/mp2t");
    assert!(response.headers().get("content-length").is_none());
    let mut body = response.into_body();
    let frame = tokio::time::timeout(T, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.data_ref().unwrap()[0], 0x47);
    drop(body);

    let ts = format!("{base}/live/dec.ts");
    let frames = tokio::task::block_in_place(|| decoded_video_frames(&origin, &ts, 60));
    assert_eq!(frames, 60, "HTTP-TS");
}

#[tokio::test]
async fn hls_ctx_off_and_segment_names_versus_live_ts() {
    let origin = start_origin(&[
        ("ORIGIN_PLAY_WAIT", "10s"),
        ("ORIGIN_HLS_FRAGMENT", "1s"),
        ("ORIGIN_HLS_CTX", "off"),
    ]);
    let base = format!("http://127.0.0.1:{}", origin.http);
    let _cam = publish(&origin, "cam");
    // A stream whose name has the segment form, with no stream `y` to own such a segment.
    let _y5 = publish(&origin, "y-5");
    wait_for_200(&format!("{base}/live/cam.m3u8")).await;
    wait_for_200(&format!("{base}/live/y-5.m3u8")).await;

    // With hls_ctx off the media playlist comes at once, with bare segment names.
    let (status, _, body) = fetch(&format!("{base}/live/cam.m3u8")).await;
    assert_eq!(status, 200);
    let media = parse_media(std::str::from_utf8(&body).unwrap());
    assert_eq!(media.uris[0], format!("cam-{}.ts", media.sequence));
    // Other query parameters ride along to the segments.
    let (_, _, body) = fetch(&format!("{base}/live/cam.m3u8?token=abc")).await;
    let with_query = parse_media(std::str::from_utf8(&body).unwrap());
    assert!(
        with_query.uris[0].ends_with(".ts?token=abc"),
        "{with_query:?}"
    );

    // cam-<seq>.ts is a whole segment.
    let (status, headers, segment) = fetch(&format!("{base}/live/{}", media.uris[0])).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-length"),
        segment.len().to_string()
    );

    // y-5.ts: stream `y` has no segment 5, so it is the live stream `y-5`.
    let response = get(&format!("{base}/live/y-5.ts")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "content-type"), "video/mp2t");
    assert!(response.headers().get("content-length").is_none(), "live");
    let mut body = response.into_body();
    let frame = tokio::time::timeout(T, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.data_ref().unwrap()[0], 0x47);
    drop(body);
    // ...but with hls_ctx it can only be a segment, and there is none.
    let (status, _, _) = fetch(&format!("{base}/live/y-5.ts?hls_ctx=abc")).await;
    assert_eq!(status, 404);
    // Neither a segment nor a live stream.
    let (status, _, _) = fetch(&format!("{base}/live/cam-999999.ts")).await;
    assert_eq!(status, 404);
    let (status, _, _) = fetch(&format!("{base}/live/none.ts")).await;
    assert_eq!(status, 404);
}
