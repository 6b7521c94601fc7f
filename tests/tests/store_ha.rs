//! The store survives its own failures (issue 13): two proxies on a Sentinel-managed Redis keep
//! serving across a failover of the primary, without a restart (docs/design.md §9).

use std::time::{Duration, Instant};

use srs_e2e::*;

/// Status and body of a new HTTP-FLV play of an unpublished stream: 404 from the origin once
/// the store assigned it, 503 while the store is unavailable.
fn new_play(proxy: &Proxy, stream: &str) -> (u16, String) {
    http("GET", &proxy.http_url(&format!("live/{stream}.flv")), None)
}

/// The `store_primary` gauge of `proxy` for `primary` in Sentinel mode.
fn primary_gauge(proxy: &Proxy, primary: &str) -> Option<f64> {
    metric(
        &proxy.metrics(),
        "srs_proxy_store_primary",
        &[("mode", "sentinel"), ("primary", primary)],
    )
}

#[test]
fn sentinel_failover_is_followed_without_restart() {
    let dir = TempDir::new("store-sentinel");
    let mut set = RedisSentinels::start();
    let env = sentinel_env(&set);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Proxy::start(&dir, "proxy-a", &env);
    let b = Proxy::start(&dir, "proxy-b", &env);
    let o1 = Origin::start(&dir, "origin-1", &a.register_url(), &[]);
    let o2 = Origin::start(&dir, "origin-2", &b.register_url(), &[]);
    b.wait_origins(2);
    let first = format!("127.0.0.1:{}", set.primary_port().expect("primary"));
    assert_eq!(primary_gauge(&a, &first), Some(1.0));

    // A relay through each proxy, before the failover.
    let mut publisher = publish(&dir, "publisher", &a.rtmp_url("live/ha"), 60);
    wait_until(Duration::from_secs(20), "stream published", || {
        o1.publishing("live", "ha") || o2.publishing("live", "ha")
    });
    let url = b.rtmp_url("live/ha");
    let relay_dir = dir.to_path_buf();
    // 10 s of frames at 25 fps: the player outlives the failover.
    let player = std::thread::spawn(move || {
        play(
            &relay_dir,
            "player-long",
            &url,
            250,
            Duration::from_secs(40),
        )
    });
    std::thread::sleep(Duration::from_secs(2));

    let killed = set.kill_primary();
    let started = Instant::now();
    let mut n = 0;
    for proxy in [&a, &b] {
        loop {
            n += 1;
            let call = Instant::now();
            let (status, body) = new_play(proxy, &format!("probe{n}"));
            if status == 404 {
                break;
            }
            assert_eq!(status, 503, "{body}");
            assert!(body.contains("unavailable"), "{body}");
            assert!(
                call.elapsed() < Duration::from_millis(2500),
                "a request took {:?} while the store failed over",
                call.elapsed()
            );
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no recovery within 20 s: {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let gap = started.elapsed();
    eprintln!("Sentinel failover: new requests failed for {gap:?} after SIGKILL of the primary");

    let promoted = set.wait_promoted(killed, Duration::from_secs(5));
    let promoted = format!("127.0.0.1:{promoted}");
    for proxy in [&a, &b] {
        assert_eq!(primary_gauge(proxy, &promoted), Some(1.0));
        assert_eq!(primary_gauge(proxy, &first), None);
    }

    // New publishes and plays through both proxies.
    let _second = publish(&dir, "publisher-2", &b.rtmp_url("live/after"), 30);
    wait_until(
        Duration::from_secs(20),
        "publish after the failover",
        || o1.publishing("live", "after") || o2.publishing("live", "after"),
    );
    let played = play(
        &dir,
        "play-rtmp-a",
        &a.rtmp_url("live/after"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&played, 50, "RTMP through proxy A after the failover");
    let played = play(
        &dir,
        "play-flv-b",
        &b.http_url("live/after.flv"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&played, 50, "HTTP-FLV through proxy B after the failover");

    // The relay that was running never stopped.
    let long = player.join().expect("player thread");
    assert_played(&long, 250, "the relay through proxy B across the failover");
    assert!(publisher.running(), "the publisher must not notice");
}
