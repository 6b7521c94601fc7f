//! Hostile or mistaken registrations (docs/design.md §3): an origin whose endpoints the proxy
//! cannot reach is never chosen, however many there are, and the real origin keeps serving; an
//! endpoint outside PROXY_ORIGIN_NETWORKS is refused at registration.

use std::time::Duration;

use srs_e2e::*;

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

#[test]
fn unreachable_registrations_are_never_chosen() {
    let dir = TempDir::new("reg-unreachable");
    let proxy = Proxy::start(&dir, "proxy", &[]);
    let origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    // Many fake registrations on a closed port: each is answered, none becomes a candidate.
    let port = closed_port();
    for i in 0..200 {
        let (status, body) = proxy.register_ports(&format!("fake-{i}"), port, port);
        assert_eq!(status, 200, "{body}");
    }
    let list = proxy.origin_list();
    let fake = list
        .iter()
        .find(|o| o["info"]["id"] == "fake-7/s/1")
        .expect("fake listed");
    assert_eq!(fake["down"], serde_json::json!(["rtmp", "http"]), "{fake}");
    assert_eq!(fake["probe"]["reachable"], false, "{fake}");
    assert!(
        fake["probe"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&port.to_string())),
        "{fake}"
    );
    // Every new stream lands on the real origin at once: no dial to a fake.
    let mut publishers = Vec::new();
    for name in ["a", "b", "c", "d"] {
        publishers.push(publish(
            &dir,
            &format!("pub-{name}"),
            &proxy.rtmp_url(&format!("live/{name}")),
            30,
        ));
        wait_until(
            Duration::from_secs(20),
            "published on the real origin",
            || origin.publishing("live", name),
        );
    }
    let played = play(
        &dir,
        "player",
        &proxy.http_url("live/a.flv"),
        25,
        Duration::from_secs(20),
    );
    assert_played(&played, 25, "HTTP-FLV with 200 fake registrations");
    let text = proxy.metrics();
    assert_eq!(
        metric(&text, "srs_proxy_origin_dial_failures_total", &[]),
        Some(0.0),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "srs_proxy_origin_probes_total",
            &[("outcome", "unreachable")]
        )
        .is_some_and(|n| n >= 200.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "srs_proxy_origins", &[("state", "endpoints_down")]),
        Some(200.0),
        "{text}"
    );

    // An origin that becomes reachable later is found by the periodic probe.
    let late = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let late_port = late.local_addr().expect("addr").port();
    drop(late);
    assert_eq!(proxy.register_ports("late", late_port, late_port).0, 200);
    let late = std::net::TcpListener::bind(("127.0.0.1", late_port)).expect("rebind");
    wait_until(
        Duration::from_secs(15),
        "the late origin probed again",
        || {
            proxy
                .origin_list()
                .iter()
                .any(|o| o["info"]["id"] == "late/s/1" && o["down"] == serde_json::json!([]))
        },
    );
    drop(late);
}

#[test]
fn endpoints_outside_the_origin_networks_are_refused() {
    let dir = TempDir::new("reg-networks");
    let proxy = Proxy::start(&dir, "proxy", &[("PROXY_ORIGIN_NETWORKS", "127.0.0.0/8")]);
    let body = r#"{"ip":"169.254.169.254","server":"meta","service":"s","pid":"1","rtmp":["1935"],"http":["80"]}"#;
    let (status, reply) = http("POST", &proxy.register_url(), Some(body));
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("outside PROXY_ORIGIN_NETWORKS"), "{reply}");
    assert!(reply.contains("169.254.169.254:1935"), "{reply}");
    assert_eq!(proxy.origin_list().len(), 0);
    // Inside the networks: accepted, and it serves.
    let origin = Origin::start(&dir, "origin", &proxy.register_url(), &[]);
    proxy.wait_origins(1);
    let _publisher = publish(&dir, "publisher", &proxy.rtmp_url("live/n"), 30);
    wait_until(Duration::from_secs(20), "published", || {
        origin.publishing("live", "n")
    });
}
