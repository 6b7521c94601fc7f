//! WebRTC through the proxy (docs/design.md §6.5) with str0m clients (`srs-rtc-client`) and
//! srs-origin: WHIP publish and WHEP play through the proxy's HTTP API and its one UDP port,
//! SRS's JSON API, DELETE, bearer tokens passed through, two proxies on one Redis, idle expiry,
//! and bad input.

use std::net::UdpSocket;
use std::time::Duration;

use srs_e2e::{http, metric, runtime, wait_until, Origin, Proxy, TempDir};
use srs_rtc_client::{build_offer, play, post_offer, publish, Options, Role};
use srs_test_support::Redis;

fn whip(proxy: &Proxy, stream: &str) -> String {
    format!("http://{}/rtc/v1/whip/?app=live&stream={stream}", proxy.api)
}

fn whep(proxy: &Proxy, stream: &str) -> String {
    format!("http://{}/rtc/v1/whep/?app=live&stream={stream}", proxy.api)
}

/// A `srs_proxy_udp_datagrams_total{listener="webrtc"}` sample.
fn datagrams(proxy: &Proxy, outcome: &str) -> f64 {
    metric(
        &proxy.metrics(),
        "srs_proxy_udp_datagrams_total",
        &[("listener", "webrtc"), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

/// `srs_proxy_udp_flows{listener="webrtc"}`: the relay's sessions.
fn sessions(proxy: &Proxy) -> f64 {
    metric(
        &proxy.metrics(),
        "srs_proxy_udp_flows",
        &[("listener", "webrtc")],
    )
    .unwrap_or(-1.0)
}

/// The `a=candidate` lines of an SDP.
fn candidates(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter(|l| l.starts_with("a=candidate"))
        .collect()
}

fn start(
    dir: &TempDir,
    proxy_env: &[(&str, &str)],
    origin_env: &[(&str, &str)],
) -> (Proxy, Origin) {
    let proxy = Proxy::start(dir, "proxy", proxy_env);
    let origin = Origin::start(dir, "origin", &proxy.register_url(), origin_env);
    proxy.wait_origins(1);
    (proxy, origin)
}

#[test]
fn whip_and_whep_through_the_proxy() {
    let dir = TempDir::new("webrtc-relay");
    let (proxy, origin) = start(&dir, &[("PROXY_WEBRTC_CANDIDATE", "127.0.0.1")], &[]);
    let rt = runtime();
    rt.block_on(async {
        let publisher = publish(Options::whip(whip(&proxy, "s")))
            .await
            .expect("WHIP publish through the proxy");
        let answer = &publisher.signalled().answer;
        let lines = candidates(answer);
        assert!(!lines.is_empty(), "{answer}");
        let port = format!(" 127.0.0.1 {} typ host", proxy.webrtc.port());
        assert!(lines.iter().all(|l| l.contains(&port)), "{lines:?}");
        let location = publisher.signalled().location.clone().expect("a Location");
        assert!(
            location.starts_with(&format!("http://{}/rtc/", proxy.api))
                && location.contains("proxy_session="),
            "{location}"
        );
        publisher
            .wait_connected(Duration::from_secs(15))
            .await
            .expect("publisher connected through the proxy");

        let player = play(Options::whip(whep(&proxy, "s")))
            .await
            .expect("WHEP play through the proxy");
        let frames = player
            .wait_frames(50, Duration::from_secs(20))
            .await
            .expect("50 video frames through the proxy");
        assert!(frames >= 50);
        assert!(player.stats().audio_frames > 0, "{:?}", player.stats());
        assert!(player.stats().keyframes > 0, "{:?}", player.stats());
        // The media went through the proxy's UDP port, both ways.
        assert!(datagrams(&proxy, "to_origin") > 100.0);
        assert!(datagrams(&proxy, "to_client") > 100.0);
        assert_eq!(sessions(&proxy), 2.0);
        let active = |direction| {
            metric(
                &proxy.metrics(),
                "srs_proxy_sessions_active",
                &[("protocol", "webrtc"), ("direction", direction)],
            )
        };
        assert_eq!(active("publish"), Some(1.0));
        assert_eq!(active("play"), Some(1.0));
        assert_eq!(
            origin.stream("live", "s").map(|s| s["clients"].clone()),
            Some(2.into())
        );

        // DELETE through the proxy, while the player still runs, ends its session at the proxy
        // and at the origin: its frames stop.
        let player_location = player.signalled().location.clone().expect("a Location");
        let (status, body) = http("DELETE", &player_location, None);
        assert_eq!(status, 200, "{body}");
        wait_until(Duration::from_secs(5), "the player's session freed", || {
            sessions(&proxy) == 1.0
        });
        wait_until(
            Duration::from_secs(5),
            "the origin's player session ended",
            || {
                origin
                    .stream("live", "s")
                    .is_some_and(|s| s["clients"] == 1)
            },
        );
        let stopped = player.stats().video_frames;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            player.stats().video_frames <= stopped + 2,
            "frames after DELETE: {:?}",
            player.stats()
        );
        drop(player);
        let (status, body) = http("DELETE", &player_location, None);
        assert_eq!(status, 404, "a second DELETE: {body}");
        publisher.close().await.expect("close the publisher");
    });
}

#[test]
fn json_api_and_tokens_pass_through() {
    let dir = TempDir::new("webrtc-json");
    let (proxy, _origin) = start(&dir, &[], &[("ORIGIN_RTC_TOKEN", "s3cret")]);
    let rt = runtime();
    rt.block_on(async {
        // Without the token the origin's 401 reaches the client as it was sent.
        let offer = build_offer(Role::Publish).expect("offer");
        let reply = post_offer(&whip(&proxy, "t"), &offer, None)
            .await
            .expect("POST");
        assert_eq!(reply.status.as_u16(), 401, "{reply:?}");
        assert!(reply.headers.get("www-authenticate").is_some(), "{reply:?}");
        assert_eq!(sessions(&proxy), 0.0);

        let publisher = publish(Options::whip(whip(&proxy, "t")).with_token("s3cret"))
            .await
            .expect("WHIP publish with the token");
        publisher
            .wait_connected(Duration::from_secs(15))
            .await
            .expect("publisher connected");
        let streamurl = "webrtc://127.0.0.1/live/t";
        let url = format!("http://{}/rtc/v1/play/", proxy.api);
        let player = play(Options::srs_json(url, streamurl).with_token("s3cret"))
            .await
            .expect("JSON API play through the proxy");
        assert!(player.signalled().session_id.is_some());
        let lines = candidates(&player.signalled().answer);
        let port = format!(" {} typ host", proxy.webrtc.port());
        assert!(lines.iter().all(|l| l.contains(&port)), "{lines:?}");
        player
            .wait_frames(30, Duration::from_secs(20))
            .await
            .expect("frames through the JSON API session");
        drop(player);
        publisher.close().await.expect("close");
    });
}

#[test]
fn bad_offers_get_a_reason_and_record_nothing() {
    let dir = TempDir::new("webrtc-bad");
    let (proxy, _origin) = start(&dir, &[], &[]);
    let rt = runtime();
    rt.block_on(async {
        let offer = build_offer(Role::Publish).expect("offer");
        let cases = [
            (whip(&proxy, "b"), "not an SDP".to_string(), 400),
            (
                whip(&proxy, "b"),
                offer.replace("a=ice-ufrag:", "a=x-ufrag:"),
                400,
            ),
            (
                format!("http://{}/rtc/v1/whip/", proxy.api),
                offer.clone(),
                400,
            ),
            (whip(&proxy, "b"), "v=0\r\n".repeat(30_000), 413),
        ];
        for (url, body, want) in cases {
            let reply = post_offer(&url, &body, None).await.expect("POST");
            assert_eq!(reply.status.as_u16(), want, "{url}: {reply:?}");
        }
        // The origin's own refusal (a second publisher) comes back unchanged.
        let first = publish(Options::whip(whip(&proxy, "b")))
            .await
            .expect("first publisher");
        let reply = post_offer(&whip(&proxy, "b"), &offer, None)
            .await
            .expect("POST");
        assert!(reply.status.is_client_error(), "{reply:?}");
        drop(first);
    });
    let (status, _) = http(
        "DELETE",
        &format!(
            "http://{}/rtc/v1/whip/?app=live&stream=b&proxy_session=nope%3Anope",
            proxy.api
        ),
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn flood_of_garbage_and_forged_checks_leaves_a_session_playing() {
    let dir = TempDir::new("webrtc-flood");
    let (proxy, _origin) = start(&dir, &[], &[]);
    let rss = || proxy.rss_kib();
    let rt = runtime();
    rt.block_on(async {
        let publisher = publish(Options::whip(whip(&proxy, "f")))
            .await
            .expect("publish");
        let player = play(Options::whip(whep(&proxy, "f"))).await.expect("play");
        player
            .wait_frames(25, Duration::from_secs(20))
            .await
            .expect("playing before the flood");
        let before = rss();
        let sender = UdpSocket::bind("127.0.0.1:0").expect("socket");
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut stun = Vec::new();
        for i in 0..10_000u32 {
            let len = (next() % 1200) as usize;
            let mut datagram: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 {
                // A well-formed check with a forged username (and so a wrong integrity).
                let username = format!("{:08x}:{:04x}", next() as u32, next() as u16);
                srs_rtc::BindingRequest {
                    username: &username,
                    password: "forged-password-forged",
                    transaction_id: [i as u8; 12],
                    use_candidate: true,
                }
                .encode(&mut stun);
                datagram = stun.clone();
            }
            let _ = sender.send_to(&datagram, proxy.webrtc);
            if i % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let frames = player.stats().video_frames;
        player
            .wait_frames(frames + 50, Duration::from_secs(20))
            .await
            .expect("the session kept playing through the flood");
        assert_eq!(sessions(&proxy), 2.0, "no session opened by the flood");
        assert!(datagrams(&proxy, "dropped") >= 5_000.0);
        let after = rss();
        assert!(
            after < before + 16 * 1024,
            "RSS grew from {before} kB to {after} kB"
        );
        drop(player);
        drop(publisher);
    });
}

#[test]
fn idle_sessions_are_freed() {
    let dir = TempDir::new("webrtc-idle");
    let (proxy, _origin) = start(&dir, &[("PROXY_RTC_ALIVE_DURATION", "2s")], &[]);
    let rt = runtime();
    rt.block_on(async {
        let publisher = publish(Options::whip(whip(&proxy, "i")))
            .await
            .expect("publish");
        publisher
            .wait_connected(Duration::from_secs(15))
            .await
            .expect("connected");
        assert_eq!(sessions(&proxy), 1.0);
        // Gone without a DELETE: the client stops sending.
        drop(publisher);
    });
    wait_until(Duration::from_secs(10), "the idle session freed", || {
        sessions(&proxy) == 0.0
    });
}

#[test]
fn two_proxies_on_one_redis_route_a_session_signalled_by_the_other() {
    let dir = TempDir::new("webrtc-redis");
    let redis = Redis::start();
    let env: Vec<(&str, String)> = srs_e2e::redis_env(&redis);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Proxy::start(&dir, "proxy-a", &env);
    let b = Proxy::start(&dir, "proxy-b", &env);
    let _origin = Origin::start(&dir, "origin", &a.register_url(), &[]);
    a.wait_origins(1);
    b.wait_origins(1);
    let rt = runtime();
    rt.block_on(async {
        let publisher = publish(Options::whip(whip(&a, "r")))
            .await
            .expect("publish via A");
        // Signalling through A, media to B's UDP port.
        let options = Options::whip(whep(&a, "r")).with_media_to(b.webrtc);
        let player = play(options).await.expect("play via A");
        player
            .wait_frames(30, Duration::from_secs(20))
            .await
            .expect("frames with signalling on A and media through B");
        assert!(datagrams(&b, "to_client") > 30.0);
        assert_eq!(sessions(&b), 1.0);
        drop(player);
        drop(publisher);
    });
}
