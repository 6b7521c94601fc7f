//! WebRTC against srs-origin directly: WHIP publish and WHEP play with the str0m client
//! (`srs-rtc-client`), SRS's JSON API, the answer's shape, DELETE, bad input, the token, and the
//! heartbeat's `rtc` entry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use srs_e2e::{Origin, TempDir};
use srs_rtc_client::{build_offer, delete, play, post_offer, publish, Options, Role};

const WAIT: Duration = Duration::from_secs(15);

fn whip(origin: &Origin, stream: &str) -> String {
    format!(
        "http://{}/rtc/v1/whip/?app=live&stream={stream}",
        origin.api
    )
}

fn whep(origin: &Origin, stream: &str) -> String {
    format!(
        "http://{}/rtc/v1/whep/?app=live&stream={stream}",
        origin.api
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publish_reaches_a_whep_player_from_a_keyframe() {
    let dir = TempDir::new("webrtc-flow");
    let origin = Origin::start(&dir, "origin", "", &[]);
    let publisher = publish(Options::whip(whip(&origin, "s"))).await.unwrap();
    publisher.wait_connected(WAIT).await.unwrap();
    let player = play(Options::whip(whep(&origin, "s"))).await.unwrap();
    let frames = player.wait_frames(51, WAIT).await.unwrap_or_else(|e| {
        panic!(
            "player: {e}; {:?}\n{}",
            player.stats(),
            origin.proc.log_tail(30)
        )
    });
    assert!(frames > 50);
    let stats = player.stats();
    assert!(
        stats.first_frame_keyframe == Some(true)
            || stats
                .keyframe_delay
                .is_some_and(|d| d < Duration::from_secs(2)),
        "{stats:?}"
    );
    player.wait_audio_frames(50, WAIT).await.unwrap();
    // The player joining asked the publisher for a keyframe (PLI), through the origin.
    publisher
        .wait_keyframe_requests(1, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", publisher.stats()));

    let stream = origin.stream("live", "s").expect("stream listed");
    assert_eq!(stream["clients"], 2, "{stream}");
    assert_eq!(stream["video"]["codec"], "H264", "{stream}");
    assert_eq!(stream["audio"]["codec"], "Opus", "{stream}");

    let reply = player.close().await.unwrap().unwrap();
    assert_eq!(reply.status, 200);
    let reply = publisher.close().await.unwrap().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    srs_e2e::wait_until(Duration::from_secs(5), "stream gone", || {
        origin.stream("live", "s").is_none()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_may_start_before_the_publisher() {
    let dir = TempDir::new("webrtc-early");
    let origin = Origin::start(&dir, "origin", "", &[]);
    let player = play(Options::whip(whep(&origin, "early"))).await.unwrap();
    let answer = &player.signalled().answer;
    assert!(
        answer.contains("H264/90000") && answer.contains("opus/48000"),
        "{answer}"
    );
    player.wait_connected(WAIT).await.unwrap();
    let publisher = publish(Options::whip(whip(&origin, "early")))
        .await
        .unwrap();
    player.wait_frames(30, WAIT).await.unwrap();
    assert_eq!(player.stats().first_frame_keyframe, Some(true));
    // A second publisher of the same stream is refused.
    let offer = build_offer(Role::Publish).unwrap();
    let reply = post_offer(&whip(&origin, "early"), &offer, None)
        .await
        .unwrap();
    assert_eq!(reply.status, 409, "{}", reply.body);
    publisher.close().await.unwrap();
    player.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_stay_when_the_publisher_leaves_and_get_the_next_one() {
    let dir = TempDir::new("webrtc-republish");
    let origin = Origin::start(&dir, "origin", "", &[]);
    let first = publish(Options::whip(whip(&origin, "r"))).await.unwrap();
    let player = play(Options::whip(whep(&origin, "r"))).await.unwrap();
    player.wait_frames(20, WAIT).await.unwrap();
    first.close().await.unwrap();
    srs_e2e::wait_until(Duration::from_secs(5), "stream unlisted", || {
        origin.stream("live", "r").is_none()
    });
    let seen = player.stats();
    assert!(!seen.ended, "{seen:?}");
    let second = publish(Options::whip(whip(&origin, "r"))).await.unwrap();
    player
        .wait_frames(seen.video_frames + 20, WAIT)
        .await
        .unwrap();
    assert!(player.stats().keyframes > seen.keyframes);
    second.close().await.unwrap();
    player.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_is_ice_lite_with_one_host_candidate_and_delete_ends_the_session() {
    let dir = TempDir::new("webrtc-answer");
    let origin = Origin::start(&dir, "origin", "", &[("ORIGIN_CANDIDATE", "127.0.0.1")]);
    let publisher = publish(Options::whip(whip(&origin, "d"))).await.unwrap();
    let player = play(Options::whip(whep(&origin, "d"))).await.unwrap();
    for signalled in [publisher.signalled(), player.signalled()] {
        assert_eq!(signalled.status, 201);
        assert_eq!(signalled.headers["content-type"], "application/sdp");
        let location = signalled.headers["location"].to_str().unwrap();
        assert!(location.starts_with("/rtc/v1/wh"), "{location}");
        assert!(
            location.contains("app=live&stream=d&session="),
            "{location}"
        );
        let answer = &signalled.answer;
        assert!(answer.contains("a=ice-lite"), "{answer}");
        let candidates: Vec<&str> = answer
            .lines()
            .filter(|l| l.starts_with("a=candidate:"))
            .collect();
        assert_eq!(candidates.len(), 1, "{answer}");
        let port = origin.rtc.port();
        assert!(
            candidates[0].contains(" udp ")
                && candidates[0].contains(&format!(" 127.0.0.1 {port} typ host")),
            "{}",
            candidates[0]
        );
    }
    player.wait_frames(10, WAIT).await.unwrap();

    // DELETE on the player's Location, not through the client: the origin stops sending.
    let location = player.signalled().location.clone().unwrap();
    assert!(location.starts_with(&format!("http://{}/", origin.api)));
    let reply = delete(&location, None).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = player.stats().video_frames;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(player.stats().video_frames, before, "frames after DELETE");
    let again = delete(&location, None).await.unwrap();
    assert_eq!(again.status, 404);
    // A publisher's session is not deleted through the WHEP path.
    let whip_location = publisher.signalled().location.clone().unwrap();
    let wrong = whip_location.replace("/whip/", "/whep/");
    assert_eq!(delete(&wrong, None).await.unwrap().status, 404);
    drop(player);
    assert_eq!(publisher.close().await.unwrap().unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_srs_json_api_plays_end_to_end() {
    let dir = TempDir::new("webrtc-json");
    let origin = Origin::start(&dir, "origin", "", &[]);
    let api = format!("http://{}/rtc/v1", origin.api);
    let publisher = publish(Options::srs_json(
        format!("{api}/publish/"),
        format!("webrtc://{}/live/j", origin.api),
    ))
    .await
    .unwrap();
    let player = play(Options::srs_json(
        format!("{api}/play/"),
        "webrtc://127.0.0.1/live/j",
    ))
    .await
    .unwrap();
    let signalled = player.signalled();
    assert_eq!(signalled.status, 200);
    assert!(signalled.session_id.as_ref().is_some_and(|s| !s.is_empty()));
    assert!(signalled.answer.contains("a=ice-lite"));
    player.wait_frames(51, WAIT).await.unwrap();
    // No session resource in the JSON API: closing sends no DELETE.
    assert!(player.close().await.unwrap().is_none());
    assert!(publisher.close().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_reasons() {
    let dir = TempDir::new("webrtc-bad");
    let origin = Origin::start(&dir, "origin", "", &[]);
    let offer = build_offer(Role::Play).unwrap();

    let reply = post_offer(&whep(&origin, "s"), "this is not SDP", None)
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("SDP"), "{}", reply.body);
    // A recvonly offer cannot publish.
    let reply = post_offer(&whip(&origin, "s"), &offer, None).await.unwrap();
    assert_eq!(reply.status, 400, "{}", reply.body);

    let no_stream = format!("http://{}/rtc/v1/whep/?app=live", origin.api);
    let reply = post_offer(&no_stream, &offer, None).await.unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("missing stream"), "{}", reply.body);

    let huge = format!("{offer}{}", "a=x-padding\r\n".repeat(6000));
    let reply = post_offer(&whep(&origin, "s"), &huge, None).await.unwrap();
    assert_eq!(reply.status, 413);

    let delete_url = format!("{}&session=nosuchsession", whep(&origin, "s"));
    assert_eq!(delete(&delete_url, None).await.unwrap().status, 404);

    let (status, body) = srs_e2e::http(
        "POST",
        &format!("http://{}/rtc/v1/play/", origin.api),
        Some(r#"{"streamurl":"webrtc://h/live","sdp":"v=0"}"#),
    );
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_ne!(v["code"], 0, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_when_set() {
    let dir = TempDir::new("webrtc-token");
    let origin = Origin::start(&dir, "origin", "", &[("ORIGIN_RTC_TOKEN", "s3cret")]);
    let offer = build_offer(Role::Play).unwrap();
    for token in [None, Some("wrong")] {
        let reply = post_offer(&whep(&origin, "t"), &offer, token)
            .await
            .unwrap();
        assert_eq!(reply.status, 401, "{token:?}");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
    let (status, _) = srs_e2e::http(
        "POST",
        &format!("http://{}/rtc/v1/play/", origin.api),
        Some(r#"{"streamurl":"webrtc://h/live/t","sdp":"v=0"}"#),
    );
    assert_eq!(status, 401);
    let publisher = publish(Options::whip(whip(&origin, "t")).with_token("s3cret"))
        .await
        .unwrap();
    let player = play(Options::whip(whep(&origin, "t")).with_token("s3cret"))
        .await
        .unwrap();
    player.wait_frames(10, WAIT).await.unwrap();
    // DELETE needs the token too.
    let location = player.signalled().location.clone().unwrap();
    assert_eq!(delete(&location, None).await.unwrap().status, 401);
    assert_eq!(player.close().await.unwrap().unwrap().status, 200);
    assert_eq!(publisher.close().await.unwrap().unwrap().status, 200);
}

/// Accepts heartbeats on a free port, answering `{"code":0}`; sends each body on the channel.
fn register_receiver() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/api/v1/srs/register",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\nconnection: close\r\n\r\n{\"code\":0}";
            let _ = reader.get_mut().write_all(reply.as_bytes());
            if tx
                .send(String::from_utf8_lossy(&body).into_owned())
                .is_err()
            {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn the_heartbeat_lists_the_rtc_port() {
    let dir = TempDir::new("webrtc-heartbeat");
    let (url, beats) = register_receiver();
    let origin = Origin::start(&dir, "origin", &url, &[]);
    let body = beats
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("no heartbeat\n{}", origin.proc.log_tail(20)));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["rtc"],
        serde_json::json!([format!("udp://0.0.0.0:{}", origin.rtc.port())]),
        "{body}"
    );
    assert_eq!(v["api"], serde_json::json!([origin.api.port().to_string()]));
}
