//! Many proxies, one Redis: shared stream ownership, atomic assignment, Redis faults, and fast
//! failover from a dead origin (issue: Redis load-balancer store).

use std::time::Duration;

use srs_e2e::*;

/// Starts a proxy on `redis` with extra variables.
fn proxy_on(dir: &std::path::Path, name: &str, redis: &Redis, extra: &[(&str, &str)]) -> Proxy {
    let env = redis_env(redis);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    Proxy::start(dir, name, &all)
}

fn owner_of(origins: &[&Origin], name: &str) -> usize {
    let mut found = None;
    wait_until(
        Duration::from_secs(20),
        "stream published on an origin",
        || {
            found = origins.iter().position(|o| o.publishing("live", name));
            found.is_some()
        },
    );
    found.unwrap_or(0)
}

#[test]
fn publish_through_one_proxy_play_through_another() {
    let dir = TempDir::new("redis-two");
    let redis = Redis::start();
    let a = proxy_on(&dir, "proxy-a", &redis, &[]);
    let b = proxy_on(&dir, "proxy-b", &redis, &[]);
    // Origins heartbeat to proxy A only: the registry is shared through Redis.
    let o1 = Origin::start(&dir, "origin-1", &a.register_url(), &[]);
    let o2 = Origin::start(&dir, "origin-2", &a.register_url(), &[]);
    b.wait_origins(2);

    let _publisher = publish(&dir, "publisher", &a.rtmp_url("live/shared"), 60);
    let owner = owner_of(&[&o1, &o2], "shared");
    let rtmp = play(
        &dir,
        "play-rtmp-b",
        &b.rtmp_url("live/shared"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&rtmp, 50, "RTMP through proxy B");
    let flv = play(
        &dir,
        "play-flv-b",
        &b.http_url("live/shared.flv"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&flv, 50, "HTTP-FLV through proxy B");
    let origin = if owner == 0 { &o1 } else { &o2 };
    let other = if owner == 0 { &o2 } else { &o1 };
    assert!(origin.stream("live", "shared").is_some());
    assert!(
        other.stream("live", "shared").is_none(),
        "players must not land on the other origin"
    );
}

#[test]
fn concurrent_first_requests_on_two_proxies_agree() {
    let dir = TempDir::new("redis-race");
    let redis = Redis::start();
    let a = proxy_on(&dir, "proxy-a", &redis, &[]);
    let b = proxy_on(&dir, "proxy-b", &redis, &[]);
    let _o1 = Origin::start(&dir, "origin-1", &a.register_url(), &[]);
    let _o2 = Origin::start(&dir, "origin-2", &b.register_url(), &[]);
    a.wait_origins(2);

    // 50 first requests for one unowned stream, at once, half on each proxy.
    let urls: Vec<String> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                a.http_url("live/race.flv")
            } else {
                b.http_url("live/race.flv")
            }
        })
        .collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(urls.len()));
    let handles: Vec<_> = urls
        .into_iter()
        .map(|url| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                http("GET", &url, None).0
            })
        })
        .collect();
    for h in handles {
        // Nobody publishes: the owner origin answers 404, which the proxies pass on.
        assert_eq!(h.join().unwrap(), 404);
    }
    // Every request reached an origin: each proxy counts a session per origin answer.
    let sessions = |p: &Proxy| {
        metric(
            &p.metrics(),
            "srs_proxy_sessions_total",
            &[("protocol", "http_flv"), ("direction", "play")],
        )
        .unwrap_or_else(|| panic!("{} counted no HTTP-FLV session", p.proc.name()))
    };
    assert_eq!(
        sessions(&a) + sessions(&b),
        50.0,
        "every request must reach an origin"
    );
    // All reached the same origin: one lease in the shared store, seen alike by both proxies.
    for p in [&a, &b] {
        let mut leases = [p.origin_streams("origin-1"), p.origin_streams("origin-2")];
        leases.sort_unstable();
        assert_eq!(
            leases,
            [0, 1],
            "all requests must reach the same origin: {:?}",
            p.origins()
        );
    }
}

#[test]
fn relay_survives_redis_outage_and_proxy_recovers() {
    let dir = TempDir::new("redis-down");
    let mut redis = Redis::start();
    let proxy = proxy_on(
        &dir,
        "proxy",
        &redis,
        &[("PROXY_STREAM_LEASE_DURATION", "3s")],
    );
    let o1 = Origin::start(&dir, "origin-1", &proxy.register_url(), &[]);
    let o2 = Origin::start(&dir, "origin-2", &proxy.register_url(), &[]);
    proxy.wait_origins(2);

    let mut publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/outage"), 90);
    let owner = owner_of(&[&o1, &o2], "outage");
    let origin = if owner == 0 { &o1 } else { &o2 };
    let frames = || {
        origin
            .stream("live", "outage")
            .and_then(|s| s["frames"].as_u64())
            .unwrap_or(0)
    };

    redis.stop();
    let before = frames();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        publisher.running(),
        "the relay must keep going without Redis"
    );
    assert!(
        frames() > before + 25,
        "media must keep flowing without Redis"
    );

    // New requests fail cleanly and fast while Redis is down.
    let started = std::time::Instant::now();
    let (status, body) = http("GET", &proxy.http_url("live/outage.flv"), None);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("unavailable"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    let (status, _) = http(
        "POST",
        &proxy.register_url(),
        Some(r#"{"ip":"127.0.0.1","server":"x","service":"y","pid":"1","rtmp":["1935"]}"#),
    );
    assert_eq!(status, 503);

    // Redis is back (empty): origins re-register by heartbeat, the active session takes its
    // lease again, and new players reach the origin that has the stream — no proxy restart.
    redis.restart();
    wait_until(
        Duration::from_secs(30),
        "HTTP-FLV play after Redis returns",
        || {
            let r = play(
                &dir,
                "play-after",
                &proxy.http_url("live/outage.flv"),
                25,
                Duration::from_secs(15),
            );
            r.h264 && r.frames >= 25
        },
    );
    assert!(publisher.running());
}

#[test]
fn killed_origin_is_set_aside_and_publisher_moves_at_once() {
    let dir = TempDir::new("redis-kill");
    let redis = Redis::start();
    let long = [("PROXY_SERVER_ALIVE_DURATION", "300s")];
    let a = proxy_on(&dir, "proxy-a", &redis, &long);
    let b = proxy_on(&dir, "proxy-b", &redis, &long);
    let o1 = Origin::start(&dir, "origin-1", &a.register_url(), &[]);
    let o2 = Origin::start(&dir, "origin-2", &a.register_url(), &[]);
    a.wait_origins(2);

    let mut first = publish(&dir, "publisher-1", &a.rtmp_url("live/kill"), 60);
    let owner = owner_of(&[&o1, &o2], "kill");
    let (mut dead, survivor) = if owner == 0 { (o1, o2) } else { (o2, o1) };
    dead.proc.signal(libc::SIGKILL);
    dead.proc.wait_exit(Duration::from_secs(5));
    assert!(
        first.wait_exit(Duration::from_secs(20)).is_some(),
        "publisher must notice"
    );

    // The dead origin still looks alive for 300 s, but the refused dial sets it aside and the
    // first republish, through the other proxy, lands on the survivor.
    let mut second = publish(&dir, "publisher-2", &b.rtmp_url("live/kill"), 60);
    wait_until(Duration::from_secs(15), "republish on the survivor", || {
        survivor.publishing("live", "kill")
    });
    assert!(second.running(), "first republish attempt must succeed");
    assert_eq!(
        metric(&b.metrics(), "srs_proxy_origin_dial_failures_total", &[]),
        Some(1.0)
    );
    // Players on either proxy follow, without waiting for the heartbeat to expire.
    let played = play(
        &dir,
        "player-a",
        &a.rtmp_url("live/kill"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&played, 50, "play through proxy A after failover");
    let played = play(
        &dir,
        "player-b",
        &b.http_url("live/kill.flv"),
        50,
        Duration::from_secs(30),
    );
    assert_played(&played, 50, "HTTP-FLV through proxy B after failover");
}
