//! End-to-end: runs the `srs-origin` binary on free ports and talks to it as real clients do,
//! with the srs-rtmp client side, HTTP-FLV over hyper, the API, and a fake proxy register API.

use std::process::Command as Process;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use srs_cluster::Direction;
use srs_rtmp::amf0::Amf0Value;
use srs_rtmp::chunk::{Limits, RawMessage};
use srs_rtmp::flv::{FlvReader, FlvTag};
use srs_rtmp::io::{open_session, RtmpStream};
use srs_rtmp::message::{csid, Message, UserControl};
use tokio::net::TcpStream;

mod support;
use support::start_origin;

const T: Duration = Duration::from_secs(5);

async fn rtmp_session(port: u16, stream: &str, kind: Direction) -> (RtmpStream<TcpStream>, u32) {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut rtmp = RtmpStream::connect(tcp, Limits::default(), T)
        .await
        .unwrap();
    let tc_url = format!("rtmp://127.0.0.1:{port}/live");
    let msid = open_session(&mut rtmp, &tc_url, "live", stream, kind, T)
        .await
        .unwrap();
    (rtmp, msid)
}

/// Reads until an onStatus arrives and returns its code.
async fn next_status(rtmp: &mut RtmpStream<TcpStream>) -> String {
    loop {
        let raw = tokio::time::timeout(T, rtmp.read_message())
            .await
            .unwrap()
            .unwrap()
            .expect("closed before onStatus");
        if let Ok(Message::Command(c)) = Message::parse(&raw) {
            if c.name == "onStatus" {
                return c.info_code_description().0;
            }
        }
    }
}

fn media(type_id: u8, timestamp: u32, msid: u32, payload: &'static [u8]) -> RawMessage {
    RawMessage {
        csid: if type_id == 8 {
            csid::AUDIO
        } else {
            csid::VIDEO
        },
        timestamp,
        type_id,
        msid,
        payload: Bytes::from_static(payload),
    }
}

const VIDEO_SH: &[u8] = &[0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f];
const AUDIO_SH: &[u8] = &[0xaf, 0x00, 0x12, 0x10];
const KEYFRAME: &[u8] = &[0x17, 0x01, 0, 0, 0, 0xaa, 0xbb];
const INTER: &[u8] = &[0x27, 0x01, 0, 0, 0, 0xcc];
const AUDIO: &[u8] = &[0xaf, 0x01, 0x21, 0x00];

async fn get(url: &str) -> hyper::Response<hyper::body::Incoming> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = url.parse().unwrap();
    tokio::time::timeout(T, client.get(uri))
        .await
        .unwrap()
        .unwrap()
}

async fn get_json(url: &str) -> serde_json::Value {
    let body = get(url)
        .await
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&body).unwrap()
}

async fn next_flv_tag(body: &mut hyper::body::Incoming, reader: &mut FlvReader) -> Option<FlvTag> {
    loop {
        if let Some(tag) = reader.next_tag().unwrap() {
            return Some(tag);
        }
        let frame = tokio::time::timeout(T, body.frame())
            .await
            .unwrap()?
            .unwrap();
        if let Some(data) = frame.data_ref() {
            reader.feed(data);
        }
    }
}

/// Reads the RTMP player's messages until `count` audio/video/data ones arrived.
async fn next_media(rtmp: &mut RtmpStream<TcpStream>, count: usize) -> Vec<RawMessage> {
    let mut out = Vec::new();
    while out.len() < count {
        let raw = tokio::time::timeout(T, rtmp.read_message())
            .await
            .unwrap()
            .unwrap()
            .expect("closed early");
        if matches!(raw.type_id, 8 | 9 | 18) {
            out.push(raw);
        }
    }
    out
}

#[tokio::test]
async fn publish_play_flv_api_and_heartbeat() {
    // A fake proxy register API.
    let (beats_tx, mut beats) = tokio::sync::mpsc::channel::<serde_json::Value>(16);
    let register = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let register_url = format!(
        "http://{}/api/v1/srs/register",
        register.local_addr().unwrap()
    );
    let app = axum::Router::new().route(
        "/api/v1/srs/register",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let tx = beats_tx.clone();
            async move {
                let _ = tx.try_send(v);
                axum::Json(serde_json::json!({"code": 0, "pid": "1"}))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(register, app).await });

    let origin = start_origin(&[
        ("ORIGIN_REGISTER_URL", &register_url),
        ("ORIGIN_HEARTBEAT_INTERVAL", "200ms"),
        ("ORIGIN_SERVER_ID", "vid-e2e"),
        ("ORIGIN_DEVICE_ID", "dev1"),
    ]);

    // Heartbeat carries the real bound ports.
    let beat = tokio::time::timeout(T, beats.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(beat["server"], "vid-e2e");
    assert_eq!(beat["device_id"], "dev1");
    assert_eq!(beat["ip"], "127.0.0.1");
    assert_eq!(beat["rtmp"][0], origin.rtmp.to_string());
    assert_eq!(beat["http"][0], origin.http.to_string());
    assert_eq!(beat["api"][0], origin.api.to_string());
    assert_eq!(beat["srt"][0], format!("udp://0.0.0.0:{}", origin.srt));
    assert!(beat["service"].as_str().is_some_and(|s| !s.is_empty()));

    // Publish metadata, sequence headers and a GOP.
    let (mut publisher, msid) = rtmp_session(origin.rtmp, "s1", Direction::Publish).await;
    assert_eq!(next_status(&mut publisher).await, "NetStream.Publish.Start");
    let set_data_frame = Message::Data(vec![
        Amf0Value::String("@setDataFrame".into()),
        Amf0Value::String("onMetaData".into()),
        Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(320.0))]),
    ]);
    let conn = publisher.connection();
    conn.send(&set_data_frame.to_raw(csid::OVER_STREAM, 0, msid));
    for m in [
        media(9, 0, msid, VIDEO_SH),
        media(8, 0, msid, AUDIO_SH),
        media(9, 0, msid, KEYFRAME),
        media(8, 10, msid, AUDIO),
        media(9, 40, msid, INTER),
    ] {
        conn.send(&m);
    }
    publisher.flush().await.unwrap();

    let streams_url = format!("http://127.0.0.1:{}/api/v1/streams", origin.api);
    for _ in 0..50 {
        if get_json(&streams_url).await["streams"][0]["frames"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A second publisher of the same stream is refused.
    let (mut second, _) = rtmp_session(origin.rtmp, "s1", Direction::Publish).await;
    assert_eq!(next_status(&mut second).await, "NetStream.Publish.BadName");

    // A late RTMP player starts with metadata, headers and the GOP.
    let (mut player, _) = rtmp_session(origin.rtmp, "s1", Direction::Play).await;
    assert_eq!(next_status(&mut player).await, "NetStream.Play.Reset");
    assert_eq!(next_status(&mut player).await, "NetStream.Play.Start");
    let got = next_media(&mut player, 7).await;
    let sample_access = Message::parse(&got[0]).unwrap();
    assert!(
        matches!(sample_access, Message::Data(v) if v[0].as_str() == Some("|RtmpSampleAccess"))
    );
    let Message::Data(metadata) = Message::parse(&got[1]).unwrap() else {
        panic!("expected metadata, got {:?}", got[1]);
    };
    assert_eq!(metadata[0].as_str(), Some("onMetaData"));
    let payloads: Vec<&[u8]> = got[2..].iter().map(|m| &m.payload[..]).collect();
    assert_eq!(payloads, [VIDEO_SH, AUDIO_SH, KEYFRAME, AUDIO, INTER]);

    // A late HTTP-FLV player gets the same start.
    let flv_url = format!("http://127.0.0.1:{}/live/s1.flv", origin.http);
    let response = get(&flv_url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "video/x-flv");
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let mut body = response.into_body();
    let mut reader = FlvReader::new();
    let mut tags = Vec::new();
    for _ in 0..6 {
        tags.push(next_flv_tag(&mut body, &mut reader).await.unwrap());
    }
    assert_eq!(tags[0].tag_type, 18);
    assert_eq!(tags[0].timestamp, 0);
    let payloads: Vec<&[u8]> = tags[1..].iter().map(|t| &t.payload[..]).collect();
    assert_eq!(payloads, [VIDEO_SH, AUDIO_SH, KEYFRAME, AUDIO, INTER]);

    let v = get_json(&streams_url).await;
    let s = &v["streams"][0];
    assert_eq!(s["name"], "s1");
    assert_eq!(s["clients"], 3, "publisher + 2 players: {v}");
    assert_eq!(s["video"]["codec"], "H264");
    assert_eq!(s["audio"]["codec"], "AAC");

    // Live messages reach both players.
    publisher
        .write_message(&media(9, 80, msid, INTER))
        .await
        .unwrap();
    assert_eq!(next_media(&mut player, 1).await[0].timestamp, 80);
    assert_eq!(
        next_flv_tag(&mut body, &mut reader)
            .await
            .unwrap()
            .timestamp,
        80
    );

    // The publisher leaves: players end and the stream is gone.
    drop(publisher);
    let mut saw_eof = false;
    while let Some(raw) = tokio::time::timeout(T, player.read_message())
        .await
        .unwrap()
        .unwrap()
    {
        saw_eof |= matches!(
            Message::parse(&raw),
            Ok(Message::UserControl(UserControl::StreamEof(_)))
        );
    }
    assert!(saw_eof);
    assert!(next_flv_tag(&mut body, &mut reader).await.is_none());
    assert_eq!(
        get_json(&streams_url).await["streams"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn missing_streams_and_unknown_paths() {
    let origin = start_origin(&[("ORIGIN_PLAY_WAIT", "300ms")]);
    let response = get(&format!("http://127.0.0.1:{}/live/none.flv", origin.http)).await;
    assert_eq!(response.status(), 404);
    let response = get(&format!("http://127.0.0.1:{}/live/none.xyz", origin.http)).await;
    assert_eq!(response.status(), 404);
    let v = get_json(&format!("http://127.0.0.1:{}/api/v1/nope", origin.api)).await;
    assert_eq!(v["code"], 404);
    let v = get_json(&format!("http://127.0.0.1:{}/api/v1/versions", origin.api)).await;
    assert_eq!(v["code"], 0);

    let (mut player, _) = rtmp_session(origin.rtmp, "none", Direction::Play).await;
    assert_eq!(
        next_status(&mut player).await,
        "NetStream.Play.StreamNotFound"
    );
    let closed = tokio::time::timeout(T, player.read_message())
        .await
        .unwrap();
    assert!(matches!(closed, Ok(None) | Err(_)));
}

#[test]
fn bad_configuration_stops_startup_naming_the_variable() {
    let out = Process::new(env!("CARGO_BIN_EXE_srs-origin"))
        .current_dir(std::env::temp_dir())
        .env("ORIGIN_HTTP_API", "not-a-port")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ORIGIN_HTTP_API") && stderr.contains("not-a-port"),
        "{stderr}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let out = Process::new(env!("CARGO_BIN_EXE_srs-origin"))
        .current_dir(std::env::temp_dir())
        .env("ORIGIN_RTMP_SERVER", &taken)
        .env("ORIGIN_HTTP_SERVER", "127.0.0.1:0")
        .env("ORIGIN_HTTP_API", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ORIGIN_RTMP_SERVER") && stderr.contains(&taken),
        "{stderr}"
    );

    let help = Process::new(env!("CARGO_BIN_EXE_srs-origin"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("ORIGIN_REGISTER_URL"));
}
